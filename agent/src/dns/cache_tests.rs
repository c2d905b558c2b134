//! Tests of the cache's rules: the key, each answer kind's lifetime, what
//! is never kept, the bounds, and what a hit looks like. The clock is a
//! base instant plus whole seconds.

use std::net::Ipv4Addr;

use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType as T};

use super::*;
use crate::dns::answer::query_for;

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

fn query(id: u16, qname: &str, qtype: T) -> Message {
    query_for(id, qname, qtype).expect("query")
}

fn with_edns(mut q: Message, dnssec_ok: bool) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(dnssec_ok);
    q.edns = Some(edns);
    q
}

/// The upstream's reply to `q` with `code`, no records yet.
fn reply(q: &Message, code: ResponseCode) -> Message {
    let mut m = Message::error_msg(q.metadata.id, OpCode::Query, code);
    m.metadata.recursion_desired = q.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.queries.clone_from(&q.queries);
    m
}

fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(ip))))
}

fn soa(zone: &str, ttl: u32, minimum: u32) -> Record {
    let data = SOA::new(
        name(&format!("ns.{zone}")),
        name(&format!("hostmaster.{zone}")),
        1,
        3600,
        600,
        86400,
        minimum,
    );
    Record::from_rdata(name(zone), ttl, RData::SOA(data))
}

/// A positive answer for `db.example.test.` A with these TTLs.
fn positive(q: &Message, ttls: &[u32]) -> Message {
    let mut m = reply(q, ResponseCode::NoError);
    for (i, ttl) in ttls.iter().enumerate() {
        let last = u8::try_from(i + 1).expect("few");
        m.add_answer(a("db.example.test.", *ttl, [192, 0, 2, last]));
    }
    m
}

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

fn cache() -> DnsCache {
    DnsCache::default()
}

#[test]
fn positive_answers_live_for_their_smallest_ttl() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(7, "db.example.test", T::A);
    let stored = c.put(&q, &positive(&q, &[300, 60]), 80, t0).expect("kept");
    assert_eq!(
        stored,
        Stored {
            kind: Kind::Positive,
            ttl: 60
        }
    );
    assert!(c.get(&q, secs(t0, 59)).is_some());
    assert!(c.get(&q, secs(t0, 60)).is_none(), "expired at its TTL");
    assert!(c.is_empty(), "an expired entry is dropped when met");
}

#[test]
fn a_hit_carries_the_askers_id_and_question_and_aged_ttls() {
    let (mut c, t0) = (cache(), Instant::now());
    let first = query(1, "db.example.test", T::A);
    let mut kept = positive(&first, &[300]);
    kept.add_authority(soa("example.test.", 900, 60));
    c.put(&first, &kept, 80, t0).expect("kept");

    let mut again = query(0xbeef, "DB.Example.TEST", T::A);
    again.metadata.recursion_desired = false;
    let hit = c.get(&again, secs(t0, 100)).expect("hit in any case");
    assert_eq!(hit.metadata.id, 0xbeef);
    assert_eq!(hit.metadata.message_type, MessageType::Response);
    assert!(!hit.metadata.recursion_desired, "RD as asked");
    assert!(
        !hit.metadata.authoritative,
        "a cached answer is no authority"
    );
    assert_eq!(hit.queries, again.queries);
    assert_eq!(
        hit.queries[0].name().to_ascii(),
        "DB.Example.TEST.",
        "the question as asked, in its case"
    );
    assert_eq!(hit.answers[0].ttl, 200, "300 s less 100 s of age");
    assert_eq!(hit.authorities[0].ttl, 800, "every section ages");
    assert!(hit.edns.is_none(), "no EDNS asked, none answered");

    let hit = c
        .get(&with_edns(again, false), secs(t0, 250))
        .expect("EDNS without DO is the same key");
    assert_eq!(hit.answers[0].ttl, 50);
    assert_eq!(hit.edns.as_ref().map(Edns::max_payload), Some(EDNS_PAYLOAD));
}

#[test]
fn the_key_is_name_type_class_and_the_do_and_cd_bits() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(1, "db.example.test", T::A);
    c.put(&q, &positive(&q, &[300]), 80, t0).expect("kept");
    assert!(c.get(&query(2, "db.example.test.", T::A), t0).is_some());
    assert!(c.get(&query(2, "db.example.test", T::AAAA), t0).is_none());
    assert!(c.get(&query(2, "web.example.test", T::A), t0).is_none());
    let mut chaos = query(2, "db.example.test", T::A);
    chaos.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    assert!(c.get(&chaos, t0).is_none(), "another class");
    let dnssec = with_edns(query(2, "db.example.test", T::A), true);
    assert!(c.get(&dnssec, t0).is_none(), "DO set");
    let mut unchecked = query(2, "db.example.test", T::A);
    unchecked.metadata.checking_disabled = true;
    assert!(c.get(&unchecked, t0).is_none(), "CD set");
}

#[test]
fn positive_lifetimes_are_capped_at_an_hour() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(1, "db.example.test", T::A);
    let stored = c.put(&q, &positive(&q, &[86_400]), 80, t0).expect("kept");
    assert_eq!(stored.ttl, MAX_TTL);
    let hit = c.get(&q, secs(t0, 3599)).expect("within the cap");
    assert_eq!(hit.answers[0].ttl, 1, "records are capped too, then aged");
    assert!(c.get(&q, secs(t0, 3600)).is_none());
}

#[test]
fn nxdomain_lives_for_the_soa_ttl_or_minimum_whichever_is_smaller() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(1, "nope.example.test", T::A);
    let mut nx = reply(&q, ResponseCode::NXDomain);
    nx.add_authority(soa("example.test.", 900, 30));
    let stored = c.put(&q, &nx, 80, t0).expect("kept");
    assert_eq!(
        stored,
        Stored {
            kind: Kind::Negative,
            ttl: 30
        }
    );
    let hit = c.get(&q, secs(t0, 10)).expect("hit");
    assert_eq!(hit.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(hit.authorities[0].ttl, 890);
    assert!(c.get(&q, secs(t0, 30)).is_none());

    let mut small_ttl = reply(&q, ResponseCode::NXDomain);
    small_ttl.add_authority(soa("example.test.", 20, 300));
    assert_eq!(c.put(&q, &small_ttl, 80, t0).map(|s| s.ttl), Ok(20));
}

#[test]
fn nodata_is_negative_and_capped_at_half_an_hour() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(1, "db.example.test", T::AAAA);
    let mut nodata = reply(&q, ResponseCode::NoError);
    nodata.add_authority(soa("example.test.", 86_400, 86_400));
    let stored = c.put(&q, &nodata, 80, t0).expect("kept");
    assert_eq!(
        stored,
        Stored {
            kind: Kind::Negative,
            ttl: MAX_NEGATIVE_TTL
        }
    );
    assert!(c.get(&q, secs(t0, 1799)).is_some());
    assert!(c.get(&q, secs(t0, 1800)).is_none());
}

#[test]
fn negative_answers_without_an_soa_are_not_kept() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(1, "nope.example.test", T::A);
    let nx = reply(&q, ResponseCode::NXDomain);
    assert_eq!(c.put(&q, &nx, 40, t0), Err(Skip::NoSoa));
    let nodata = reply(&q, ResponseCode::NoError);
    assert_eq!(c.put(&q, &nodata, 40, t0), Err(Skip::NoSoa));
    assert!(c.is_empty());
}

#[test]
fn failures_and_truncated_answers_are_never_kept() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(1, "db.example.test", T::A);
    for code in [
        ResponseCode::ServFail,
        ResponseCode::Refused,
        ResponseCode::FormErr,
        ResponseCode::NotImp,
    ] {
        let mut m = reply(&q, code);
        m.add_authority(soa("example.test.", 300, 300));
        assert_eq!(c.put(&q, &m, 80, t0), Err(Skip::Failure(code)));
    }
    let mut truncated = positive(&q, &[300]);
    truncated.metadata.truncation = true;
    assert_eq!(c.put(&q, &truncated, 80, t0), Err(Skip::Truncated));
    assert!(c.is_empty());
}

#[test]
fn zero_ttls_are_for_this_answer_only() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(1, "db.example.test", T::A);
    assert_eq!(
        c.put(&q, &positive(&q, &[300, 0]), 80, t0),
        Err(Skip::ZeroTtl)
    );
    let mut nx = reply(&q, ResponseCode::NXDomain);
    nx.add_authority(soa("example.test.", 300, 0));
    assert_eq!(c.put(&q, &nx, 80, t0), Err(Skip::ZeroTtl));
}

#[test]
fn an_alias_ending_in_nxdomain_ages_with_its_records() {
    let q = query(1, "alias.example.test", T::A);
    let mut m = reply(&q, ResponseCode::NXDomain);
    let target = CNAME(name("gone.example.test."));
    m.add_answer(Record::from_rdata(
        name("alias.example.test."),
        10,
        RData::CNAME(target),
    ));
    m.add_authority(soa("example.test.", 300, 300));
    assert_eq!(lifetime(&m, &Limits::default()), Ok((Kind::Negative, 10)));
}

#[test]
fn only_the_reply_to_this_query_is_kept() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(1, "db.example.test", T::A);
    let other_id = positive(&query(2, "db.example.test", T::A), &[300]);
    assert_eq!(c.put(&q, &other_id, 80, t0), Err(Skip::Mismatch));
    let other_name = positive(&query(1, "evil.example.test", T::A), &[300]);
    assert_eq!(c.put(&q, &other_name, 80, t0), Err(Skip::Mismatch));
    assert_eq!(c.put(&q, &q, 80, t0), Err(Skip::Mismatch), "a query");
    let mut two = query(1, "db.example.test", T::A);
    two.add_query(two.queries[0].clone());
    assert_eq!(
        c.put(&two, &positive(&two, &[300]), 80, t0),
        Err(Skip::NoKey)
    );
    assert!(c.get(&two, t0).is_none());
}

#[test]
fn answers_over_the_size_limit_are_not_kept() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = query(1, "db.example.test", T::A);
    let m = positive(&q, &[300]);
    assert_eq!(c.put(&q, &m, MAX_ENTRY_BYTES + 1, t0), Err(Skip::TooLarge));
    assert!(c.put(&q, &m, MAX_ENTRY_BYTES, t0).is_ok());
}

#[test]
fn the_least_recently_used_entry_makes_room() {
    let limits = Limits {
        capacity: 2,
        ..Limits::default()
    };
    let (mut c, t0) = (DnsCache::new(limits), Instant::now());
    let q = |n: &str| query(1, n, T::A);
    let keep = |c: &mut DnsCache, n: &str| {
        let q = q(n);
        let mut m = reply(&q, ResponseCode::NoError);
        m.add_answer(a(n, 300, [192, 0, 2, 1]));
        c.put(&q, &m, 80, t0).expect("kept");
    };
    keep(&mut c, "a.example.test.");
    keep(&mut c, "b.example.test.");
    assert!(c.get(&q("a.example.test."), t0).is_some(), "a used last");
    keep(&mut c, "c.example.test.");
    assert_eq!(c.len(), 2);
    assert!(c.get(&q("b.example.test."), t0).is_none(), "b evicted");
    assert!(c.get(&q("a.example.test."), t0).is_some());
    assert!(c.get(&q("c.example.test."), t0).is_some());
    keep(&mut c, "c.example.test.");
    assert_eq!(c.len(), 2, "replacing an entry evicts nothing");
    assert!(c.get(&q("a.example.test."), t0).is_some());
}

#[test]
fn a_cached_reply_keeps_no_upstream_edns() {
    let (mut c, t0) = (cache(), Instant::now());
    let q = with_edns(query(1, "db.example.test", T::A), false);
    let mut m = positive(&q, &[300]);
    let mut theirs = Edns::new();
    theirs.set_max_payload(4096);
    m.edns = Some(theirs);
    c.put(&q, &m, 80, t0).expect("kept");
    let plain = c.get(&query(2, "db.example.test", T::A), t0).expect("hit");
    assert!(plain.edns.is_none());
}
