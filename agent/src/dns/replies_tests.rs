//! Stored replies, patched with a query's id and question, are exactly
//! what the answer function encodes for that query.

use super::*;
use crate::dns::answer::{Answer, answer, encode, parse, udp_limit};
use crate::dns::index::tests::index;

const MAX: usize = 65_535;

fn wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A query: id, flags, the name as written, type, and an OPT record's
/// (payload, options) if any.
fn query(id: u16, flags: [u8; 2], name: &str, qtype: u16, edns: Option<(u16, &[u8])>) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&flags);
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    m.extend_from_slice(&wire(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if let Some((payload, options)) = edns {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&payload.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(&(options.len() as u16).to_be_bytes());
        m.extend_from_slice(options);
    }
    m
}

fn fresh(bytes: &[u8], tcp: bool) -> Vec<u8> {
    let q = parse(bytes).expect("parses");
    let Answer::Reply(r) = answer(&index(), &q) else {
        panic!("forwarded")
    };
    encode(&r, if tcp { MAX } else { udp_limit(&q) }).expect("encodes")
}

/// A name, a type and an OPT record's (payload, options) if any.
type Asked<'a> = (&'a str, u16, Option<(u16, &'a [u8])>);

#[test]
fn a_stored_reply_is_the_fresh_one_for_every_query_of_its_shape() {
    let cookie: &[u8] = &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
    let shapes: [Asked; 6] = [
        ("web.shop.svc.cluster.local", 1, None),
        ("web.shop.svc.cluster.local", 28, None),
        (
            "_http._tcp.web.shop.svc.cluster.local",
            33,
            Some((1232, cookie)),
        ),
        ("db.shop.svc.cluster.local", 1, Some((4096, &[]))),
        ("nope.shop.svc.cluster.local", 1, None),
        ("10.0.96.10.in-addr.arpa", 12, None),
    ];
    for (i, (name, qtype, edns)) in shapes.iter().enumerate() {
        for tcp in [false, true] {
            let replies = Replies::default();
            let first = query(7, [1, 0], name, *qtype, *edns);
            let p = plain(&first, tcp, MAX).expect("plain");
            assert!(replies.get(3, &p, &first).is_none(), "nothing stored yet");
            replies.put(3, p, &fresh(&first, tcp));
            // Another id, AD set (ignored by the answer).
            let other = query(0x9000 + i as u16, [1, 0x20], name, *qtype, *edns);
            let p = plain(&other, tcp, MAX).expect("plain");
            assert_eq!(
                replies.get(3, &p, &other),
                Some(fresh(&other, tcp)),
                "{name} type {qtype} tcp {tcp}"
            );
            assert!(replies.get(4, &p, &other).is_none(), "another index");
        }
    }
}

#[test]
fn what_the_reply_depends_on_is_in_the_shape() {
    let name = "web.shop.svc.cluster.local";
    let shape = |q: &[u8]| plain(q, false, MAX).expect("plain").shape;
    let base = shape(&query(1, [1, 0], name, 1, None));
    assert_eq!(base, shape(&query(2, [1, 0x20], name, 1, None)), "id, AD");
    assert_ne!(
        base,
        shape(&query(1, [1, 0], "WEB.shop.svc.cluster.local", 1, None)),
        "the name's case: it decides where names compress"
    );
    assert_ne!(base, shape(&query(1, [0, 0], name, 1, None)), "RD");
    assert_ne!(base, shape(&query(1, [1, 0x10], name, 1, None)), "CD");
    assert_ne!(base, shape(&query(1, [1, 0], name, 28, None)), "type");
    assert_ne!(
        base,
        shape(&query(1, [1, 0], name, 1, Some((512, &[])))),
        "EDNS"
    );
    assert_ne!(
        shape(&query(1, [1, 0], name, 1, Some((512, &[])))),
        shape(&query(1, [1, 0], name, 1, Some((4096, &[])))),
        "the size the client takes"
    );
}

#[test]
fn only_plain_queries_have_a_shape() {
    let name = "web.shop.svc.cluster.local";
    let ok = query(1, [1, 0], name, 1, None);
    assert!(plain(&ok, false, MAX).is_some());
    let mut trailing = ok.clone();
    trailing.push(0);
    let mut compressed = ok[..12].to_vec();
    compressed.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut two = ok.clone();
    two[5] = 2;
    let subnet: &[u8] = &[0, 8, 0, 4, 0, 1, 0, 0];
    let bad_option: &[u8] = &[0, 10, 0, 9, 1];
    for (what, q) in [
        ("a response", query(1, [0x81, 0], name, 1, None)),
        ("opcode 2", query(1, [0x11, 0], name, 1, None)),
        ("Z set", query(1, [1, 0x40], name, 1, None)),
        ("trailing bytes", trailing),
        ("compression", compressed),
        ("two questions", two),
        (
            "a client subnet",
            query(1, [1, 0], name, 1, Some((1232, subnet))),
        ),
        (
            "an option past its record",
            query(1, [1, 0], name, 1, Some((1232, bad_option))),
        ),
        ("a header alone", ok[..12].to_vec()),
        ("nothing", Vec::new()),
    ] {
        assert!(plain(&q, false, MAX).is_none(), "{what}");
    }
}

#[test]
fn a_full_store_starts_over() {
    let replies = Replies::default();
    for i in 0..MAX_REPLIES + 1 {
        let q = query(1, [1, 0], &format!("n{i}.shop.svc.cluster.local"), 1, None);
        replies.put(1, plain(&q, false, MAX).expect("plain"), &[0; 12]);
    }
    assert_eq!(replies.len(), 1, "cleared when full, then the new one");
}
