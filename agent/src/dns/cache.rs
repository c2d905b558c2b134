//! A bounded cache of forwarded answers, kept as CoreDNS's `cache` plugin
//! keeps them: keyed by the lowercased name, type, class and the DO and CD
//! bits of the question; positive answers live for the smallest TTL of
//! their answer section (at most an hour), negative ones (NXDOMAIN, NODATA)
//! for the SOA's TTL or MINIMUM, whichever is smaller (RFC 2308, at most
//! half an hour); failures and truncated answers are never kept. A hit is
//! the stored answer with the asker's id and question and every TTL aged.
//! Pure: the clock is an argument, nothing here touches a socket.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record};

use super::answer::EDNS_PAYLOAD;

/// Entries the cache holds by default.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// The largest answer kept, in wire bytes.
pub const MAX_ENTRY_BYTES: usize = 4096;
/// The longest a positive answer is kept, in seconds.
pub const MAX_TTL: u32 = 3600;
/// The longest a negative answer is kept, in seconds.
pub const MAX_NEGATIVE_TTL: u32 = 1800;

/// The cache's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries at most; the least recently used one makes room.
    pub capacity: usize,
    /// Answers larger than this (wire bytes) are not kept.
    pub max_entry_bytes: usize,
    /// Cap of a positive answer's lifetime, in seconds.
    pub max_ttl: u32,
    /// Cap of a negative answer's lifetime, in seconds.
    pub max_negative_ttl: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            max_entry_bytes: MAX_ENTRY_BYTES,
            max_ttl: MAX_TTL,
            max_negative_ttl: MAX_NEGATIVE_TTL,
        }
    }
}

/// What an answer is keyed by: one question, its name lowercased, and the
/// bits that change what an upstream answers (DNSSEC OK, Checking Disabled).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    name: String,
    qtype: u16,
    qclass: u16,
    dnssec_ok: bool,
    checking_disabled: bool,
}

impl Key {
    /// The key of a query (`None` unless it asks exactly one question).
    pub fn of(query: &Message) -> Option<Self> {
        let [q] = query.queries.as_slice() else {
            return None;
        };
        Some(Self {
            name: q.name().to_lowercase().to_ascii(),
            qtype: u16::from(q.query_type()),
            qclass: u16::from(q.query_class()),
            dnssec_ok: query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
            checking_disabled: query.metadata.checking_disabled,
        })
    }
}

/// The kind of a cacheable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Records that answer the question.
    Positive,
    /// NXDOMAIN, or NOERROR without answers (NODATA).
    Negative,
}

/// Why an answer is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a response to this very query (another id or question).
    Mismatch,
    /// SERVFAIL, REFUSED, FORMERR and the like: worth asking again.
    Failure(ResponseCode),
    /// Truncated (TC): the client retries over TCP for the whole answer.
    Truncated,
    /// A negative answer without an SOA to say how long it holds.
    NoSoa,
    /// A TTL of zero: valid for this transaction only.
    ZeroTtl,
    /// Larger than the per-entry limit.
    TooLarge,
    /// The query has no single question to key it by.
    NoKey,
}

/// How long an answer may be kept, and as what (pure: the cache's rules).
pub fn lifetime(reply: &Message, limits: &Limits) -> Result<(Kind, u32), Skip> {
    if reply.metadata.truncation {
        return Err(Skip::Truncated);
    }
    let min_answer = reply.answers.iter().map(|r| r.ttl).min();
    let (kind, ttl, cap) = match reply.metadata.response_code {
        ResponseCode::NoError if !reply.answers.is_empty() => {
            (Kind::Positive, min_answer, limits.max_ttl)
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            let soa = reply.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            });
            let soa = soa.ok_or(Skip::NoSoa)?;
            // An alias chain ending in NXDOMAIN: its records age too.
            let ttl = min_answer.map_or(soa, |a| a.min(soa));
            (Kind::Negative, Some(ttl), limits.max_negative_ttl)
        }
        other => return Err(Skip::Failure(other)),
    };
    match ttl.map(|t| t.min(cap)) {
        Some(0) | None => Err(Skip::ZeroTtl),
        Some(t) => Ok((kind, t)),
    }
}

#[derive(Debug, Clone)]
struct Entry {
    reply: Message,
    stored: Instant,
    ttl: u32,
    /// Its place in the recency order.
    used: u64,
}

impl Entry {
    fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored)
    }

    fn fresh(&self, now: Instant) -> bool {
        self.age(now) < Duration::from_secs(u64::from(self.ttl))
    }
}

/// What a successful [`DnsCache::put`] kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Positive or negative.
    pub kind: Kind,
    /// For how many seconds.
    pub ttl: u32,
}

/// The cache: at most `capacity` answers, the least recently used evicted
/// first.
#[derive(Debug, Clone)]
pub struct DnsCache {
    limits: Limits,
    entries: HashMap<Key, Entry>,
    /// Use counter → key, oldest first.
    recency: BTreeMap<u64, Key>,
    clock: u64,
}

impl Default for DnsCache {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl DnsCache {
    /// An empty cache with these bounds.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Entries held (expired ones included until they are touched or evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The cached answer to `query` at `now`: the stored reply with the
    /// query's id, RD and CD bits and question (its case as asked), every
    /// record's TTL lessened by the entry's age, and EDNS as the query
    /// speaks it. `None` when absent or expired (an expired entry goes).
    pub fn get(&mut self, query: &Message, now: Instant) -> Option<Message> {
        let key = Key::of(query)?;
        let entry = self.entries.get(&key)?;
        if !entry.fresh(now) {
            let used = entry.used;
            self.recency.remove(&used);
            self.entries.remove(&key);
            return None;
        }
        let old = entry.used;
        let used = self.tick();
        self.recency.remove(&old);
        self.recency.insert(used, key.clone());
        let entry = self.entries.get_mut(&key)?;
        entry.used = used;
        let age = u32::try_from(entry.age(now).as_secs()).unwrap_or(u32::MAX);
        let mut reply = entry.reply.clone();
        reply.metadata.id = query.metadata.id;
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.checking_disabled = query.metadata.checking_disabled;
        reply.metadata.authoritative = false;
        reply.queries.clone_from(&query.queries);
        for record in sections(&mut reply) {
            record.decrement_ttl(age);
        }
        reply.edns = query.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            edns.set_dnssec_ok(asked.flags().dnssec_ok);
            edns
        });
        Some(reply)
    }

    /// Keeps `reply` (`wire_len` bytes as received) as the answer to
    /// `query` from `now`, if the rules allow; every record's TTL is capped
    /// at the entry's lifetime cap. Makes room by evicting the least
    /// recently used entry.
    pub fn put(
        &mut self,
        query: &Message,
        reply: &Message,
        wire_len: usize,
        now: Instant,
    ) -> Result<Stored, Skip> {
        let key = Key::of(query).ok_or(Skip::NoKey)?;
        let answers_query = reply.metadata.message_type == MessageType::Response
            && reply.metadata.id == query.metadata.id
            && reply.queries == query.queries;
        if !answers_query {
            return Err(Skip::Mismatch);
        }
        if wire_len > self.limits.max_entry_bytes {
            return Err(Skip::TooLarge);
        }
        let (kind, ttl) = lifetime(reply, &self.limits)?;
        let cap = match kind {
            Kind::Positive => self.limits.max_ttl,
            Kind::Negative => self.limits.max_negative_ttl,
        };
        let mut kept = reply.clone();
        kept.edns = None;
        for record in sections(&mut kept) {
            record.ttl = record.ttl.min(cap);
        }
        if let Some(old) = self.entries.remove(&key) {
            self.recency.remove(&old.used);
        }
        while self.entries.len() >= self.limits.capacity.max(1) {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        let used = self.tick();
        self.recency.insert(used, key.clone());
        self.entries.insert(
            key,
            Entry {
                reply: kept,
                stored: now,
                ttl,
                used,
            },
        );
        Ok(Stored { kind, ttl })
    }
}

/// The records of every section (OPT is not among them: it is `edns`).
fn sections(m: &mut Message) -> impl Iterator<Item = &mut Record> {
    m.answers
        .iter_mut()
        .chain(m.authorities.iter_mut())
        .chain(m.additionals.iter_mut())
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
