//! Encoded replies to plain queries for the cluster's names, kept for the
//! index that produced them: a query of the same shape (the same name
//! bytes, type, class, RD and CD bits, EDNS or not, size limit) gets the
//! stored reply with its own id written in, without decoding or encoding
//! a message. The name's case is part of the shape: the encoder compresses
//! later names (an SOA's owner) against the question only where the case
//! matches, so another spelling can change the reply's bytes. What a plain query is, and so which bytes the
//! reply depends on, is the kernel fast path's rule (`bpf/dns.h`): one
//! question without compression, no other records but one EDNS(0) OPT
//! whose options the resolver reads only as opaque bytes.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// Replies kept at most; the whole store is dropped when it is full.
pub const MAX_REPLIES: usize = 50_000;

const HEADER: usize = 12;
const RD: u8 = 0x01;
const CD: u8 = 0x10;
const OPT: u16 = 41;
/// EDNS options the resolver decodes (NSID, DAU, client subnet).
const DECODED_OPTIONS: [u16; 3] = [3, 5, 8];

/// What a reply to a plain query depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape {
    name: Vec<u8>,
    qtype: u16,
    qclass: u16,
    flags: u8,
    edns: bool,
    limit: usize,
}

/// A plain query: what its reply depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plain {
    /// What its reply depends on.
    pub shape: Shape,
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Whether `bytes` after `at` are exactly one EDNS version 0 OPT record
/// with options the resolver does not decode; its payload size if so.
fn plain_opt(bytes: &[u8], at: usize) -> Option<u16> {
    let rest = bytes.get(at..)?;
    if rest.len() < 11 || rest[0] != 0 || be16(rest, 1)? != OPT || rest[5] != 0 || rest[6] != 0 {
        return None;
    }
    let rdlen = usize::from(be16(rest, 9)?);
    if 11 + rdlen != rest.len() {
        return None;
    }
    let mut o = 11;
    while o < rest.len() {
        let code = be16(rest, o)?;
        if DECODED_OPTIONS.contains(&code) {
            return None;
        }
        o += 4 + usize::from(be16(rest, o + 2)?);
    }
    (o == rest.len()).then(|| be16(rest, 3).unwrap_or(0))
}

/// The shape of `bytes` if it is a plain query (`tcp`: no size limit).
pub fn plain(bytes: &[u8], tcp: bool, max_message: usize) -> Option<Plain> {
    let header = bytes.get(..HEADER)?;
    let (flags1, flags2) = (header[2], header[3]);
    if flags1 & !RD != 0
        || flags2 & 0x4f != 0
        || be16(header, 4)? != 1
        || be16(header, 6)? != 0
        || be16(header, 8)? != 0
        || be16(header, 10)? > 1
    {
        return None;
    }
    let mut name = Vec::with_capacity(64);
    let mut at = HEADER;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len > 63 {
            return None;
        }
        name.push(len as u8);
        if len == 0 {
            break;
        }
        let label = bytes.get(at + 1..at + 1 + len)?;
        name.extend_from_slice(label);
        at += 1 + len;
        if name.len() > 255 {
            return None;
        }
    }
    let question_end = at + 1 + 4;
    let (qtype, qclass) = (be16(bytes, at + 1)?, be16(bytes, at + 3)?);
    let edns = be16(header, 10)? == 1;
    let payload = if edns {
        plain_opt(bytes, question_end)?
    } else if bytes.len() != question_end {
        return None;
    } else {
        0
    };
    let limit = if tcp {
        max_message
    } else {
        usize::from(payload).max(super::answer::UDP_MIN)
    };
    Some(Plain {
        shape: Shape {
            name,
            qtype,
            qclass,
            flags: (flags1 & RD) | (flags2 & CD),
            edns,
            limit,
        },
    })
}

/// The stored `reply` made the reply to `query`: its id.
fn patched(reply: &[u8], query: &[u8]) -> Option<Vec<u8>> {
    let mut out = reply.to_vec();
    out.get_mut(..2)?.copy_from_slice(query.get(..2)?);
    Some(out)
}

/// The replies of one index (by its serial).
#[derive(Debug, Default)]
pub struct Replies {
    inner: RwLock<(u32, Store)>,
}

/// Shapes → replies, hashed with foldhash (every query is hashed here;
/// SipHash's flood resistance is not needed for names the index answers).
type Store = HashMap<Shape, Vec<u8>, foldhash::fast::RandomState>;

impl Replies {
    /// The reply to `query` (plain, of shape `plain`) stored for index
    /// `serial`, if any.
    pub fn get(&self, serial: u32, plain: &Plain, query: &[u8]) -> Option<Vec<u8>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if inner.0 != serial {
            return None;
        }
        patched(inner.1.get(&plain.shape)?, query)
    }

    /// Keeps `reply` for queries shaped as `plain` under index `serial`
    /// (replies of an older index are dropped).
    pub fn put(&self, serial: u32, plain: Plain, reply: &[u8]) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.0 != serial || inner.1.len() >= MAX_REPLIES {
            inner.1.clear();
            inner.0 = serial;
        }
        inner.1.insert(plain.shape, reply.to_vec());
    }

    /// Replies kept.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "replies_tests.rs"]
mod tests;
