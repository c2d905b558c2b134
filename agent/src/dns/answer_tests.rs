//! Tests of the answers: header rules, each record type, NODATA and
//! NXDOMAIN, forwarding, and malformed input that must never panic.

use super::*;
use crate::dns::index::tests::index;
use hickory_proto::rr::RecordType as T;

fn ask(name: &str, qtype: RecordType) -> Answer {
    answer(&index(), &query_for(0x4242, name, qtype).expect("query"))
}

fn reply(name: &str, qtype: RecordType) -> Message {
    match ask(name, qtype) {
        Answer::Reply(m) => m,
        Answer::Forward => panic!("{name} forwarded"),
    }
}

fn data(m: &Message) -> Vec<String> {
    m.answers.iter().map(|r| r.data.to_string()).collect()
}

#[test]
fn a_reply_carries_the_header_rules() {
    let m = reply("web.shop.svc.cluster.local", T::A);
    assert_eq!(m.metadata.id, 0x4242);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && m.metadata.recursion_available);
    assert!(m.metadata.recursion_desired);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].query_type(), T::A);
    assert_eq!(data(&m), ["10.96.0.10"]);
    assert_eq!(m.answers[0].ttl, TTL);
    assert!(m.edns.is_none());

    let mut q = query_for(1, "web.shop.svc.cluster.local", T::A).expect("query");
    q.metadata.recursion_desired = false;
    let Answer::Reply(m) = answer(&index(), &q) else {
        panic!("forwarded")
    };
    assert!(!m.metadata.recursion_desired);
}

#[test]
fn names_match_in_any_case_and_the_question_is_echoed() {
    let m = reply("WEB.shop.Svc.cluster.local", T::A);
    assert_eq!(data(&m), ["10.96.0.10"]);
    assert_eq!(
        m.queries[0].name().to_ascii(),
        "WEB.shop.Svc.cluster.local."
    );
    assert_eq!(m.answers[0].name.to_ascii(), "WEB.shop.Svc.cluster.local.");
}

#[test]
fn every_record_type_answers() {
    let srv = reply("_http._tcp.web.shop.svc.cluster.local", T::SRV);
    assert_eq!(data(&srv), ["0 100 80 web.shop.svc.cluster.local."]);
    let headless = reply("_pg._tcp.db.shop.svc.cluster.local", T::SRV);
    assert_eq!(headless.answers.len(), 2);
    let ptr = reply("10.0.96.10.in-addr.arpa", T::PTR);
    assert_eq!(data(&ptr), ["web.shop.svc.cluster.local."]);
    assert!(ptr.metadata.authoritative);
    let db = reply("db.shop.svc.cluster.local", T::A);
    assert_eq!(data(&db), ["10.244.1.5", "10.244.2.7"]);
    let pod = reply("10-244-1-33.shop.pod.cluster.local", T::A);
    assert_eq!(data(&pod), ["10.244.1.33"]);
    let txt = reply("dns-version.cluster.local", T::TXT);
    assert_eq!(data(&txt), ["1.1.0"]);
    let any = reply("web.shop.svc.cluster.local", T::ANY);
    assert_eq!(data(&any), ["10.96.0.10"]);
    let apex = reply("cluster.local", T::SOA);
    assert_eq!(apex.answers.len(), 1);
    assert_eq!(apex.answers[0].record_type(), T::SOA);
}

#[test]
fn other_types_of_existing_names_are_nodata_with_an_soa() {
    for (name, qtype) in [
        ("web.shop.svc.cluster.local", T::AAAA),
        ("web.shop.svc.cluster.local", T::TXT),
        ("shop.svc.cluster.local", T::A),
        ("db.shop.svc.cluster.local", T::SRV),
    ] {
        let m = reply(name, qtype);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.answers.is_empty(), "{name}");
        assert_eq!(m.authorities.len(), 1);
        assert_eq!(m.authorities[0].record_type(), T::SOA);
    }
}

#[test]
fn unknown_names_are_nxdomain_with_the_zone_soa() {
    let m = reply("nope.shop.svc.cluster.local", T::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative && m.answers.is_empty());
    let soa = &m.authorities[0];
    assert_eq!(soa.name.to_ascii(), "cluster.local.");
    assert_eq!(soa.ttl, TTL);
    let RData::SOA(s) = &soa.data else {
        panic!("{soa:?}")
    };
    assert_eq!(s.mname.to_ascii(), "ns.dns.cluster.local.");
    assert_eq!(s.rname.to_ascii(), "hostmaster.cluster.local.");
    assert_eq!(s.minimum, TTL);
    let rev = reply("1.0.97.10.in-addr.arpa", T::PTR);
    assert_eq!(rev.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(rev.authorities[0].name.to_ascii(), "in-addr.arpa.");
}

#[test]
fn names_outside_our_zones_are_forwarded() {
    for name in [
        "example.com",
        "cluster.local.example.com",
        "8.8.8.8.in-addr.arpa",
        "10.in-addr.arpa",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
    ] {
        assert_eq!(ask(name, T::PTR), Answer::Forward, "{name}");
    }
}

#[test]
fn aliases_answer_the_cname_and_chase_cluster_targets() {
    let mut i = index();
    i.add_external_name("shop", "pay", "api.example.com");
    i.add_external_name("shop", "www", "web.shop.svc.cluster.local");
    let ask = |name: &str, qtype| {
        let Answer::Reply(m) = answer(&i, &query_for(7, name, qtype).expect("query")) else {
            panic!("forwarded")
        };
        m
    };
    assert_eq!(
        data(&ask("pay.shop.svc.cluster.local", T::A)),
        ["api.example.com."]
    );
    assert_eq!(
        data(&ask("www.shop.svc.cluster.local", T::A)),
        ["web.shop.svc.cluster.local.", "10.96.0.10"]
    );
    assert_eq!(
        data(&ask("www.shop.svc.cluster.local", T::CNAME)),
        ["web.shop.svc.cluster.local."]
    );
}

fn formerr(q: &Message) {
    let Answer::Reply(m) = answer(&index(), q) else {
        panic!("forwarded")
    };
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, q.metadata.id);
    assert!(m.answers.is_empty());
}

#[test]
fn malformed_queries_are_formerr() {
    let mut two = query_for(3, "web.shop.svc.cluster.local", T::A).expect("query");
    two.add_query(two.queries[0].clone());
    formerr(&two);
    let mut none = query_for(4, "web.shop.svc.cluster.local", T::A).expect("query");
    none.queries.clear();
    formerr(&none);
    let mut chaos = query_for(5, "web.shop.svc.cluster.local", T::A).expect("query");
    chaos.queries[0].set_query_class(DNSClass::CH);
    formerr(&chaos);
    let mut response = query_for(6, "web.shop.svc.cluster.local", T::A).expect("query");
    response.metadata.message_type = MessageType::Response;
    formerr(&response);
    let mut update = query_for(8, "web.shop.svc.cluster.local", T::A).expect("query");
    update.metadata.op_code = OpCode::Update;
    let Answer::Reply(m) = answer(&index(), &update) else {
        panic!("forwarded")
    };
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
}

#[test]
fn edns_versions_above_zero_are_badvers() {
    let mut q = query_for(12, "web.shop.svc.cluster.local", T::A).expect("query");
    let mut edns = Edns::new();
    edns.set_version(1);
    q.edns = Some(edns);
    let Answer::Reply(m) = answer(&index(), &q) else {
        panic!("forwarded")
    };
    let back = parse(&encode(&m, UDP_MIN).expect("encode")).expect("parse");
    // 16 on the wire (BADVERS and BADSIG share the value).
    assert_eq!(u16::from(back.metadata.response_code), 16);
    assert!(back.edns.is_some());
}

/// A query header (id 0x1234, RD) with one question, then `question`.
fn wire(question: &[u8]) -> Vec<u8> {
    let mut b = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(question);
    b
}

#[test]
fn malformed_bytes_are_errors_not_panics() {
    let good = query_for(9, "web.shop.svc.cluster.local", T::A)
        .expect("query")
        .to_vec()
        .expect("encode");
    assert!(parse(&good).is_ok());
    for n in 0..good.len() {
        assert!(parse(&good[..n]).is_err(), "truncated at {n}");
    }
    // A name of 4 × 63-byte labels: 257 bytes, over the 255 limit.
    let mut long = Vec::new();
    for _ in 0..4 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert!(parse(&wire(&long)).is_err());
    // A compression pointer to itself (offset 12), and a forward one.
    assert!(parse(&wire(&[0xc0, 12, 0, 1, 0, 1])).is_err());
    assert!(parse(&wire(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1])).is_err());
    // A header claiming 65535 questions with none behind it.
    assert!(parse(&[0, 1, 1, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0]).is_err());
    // Every byte value after a header: errors or messages, never panics.
    for x in 0..=255u8 {
        let _ = parse(&wire(&[x; 40]));
    }
}

#[test]
fn unparseable_queries_get_formerr_when_they_have_a_header() {
    let m = reply_to_malformed(&wire(&[0xc0, 12])).expect("reply");
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert!(m.metadata.recursion_desired);
    assert!(encode(&m, UDP_MIN).is_ok());
    assert!(reply_to_malformed(&[0x12, 0x34, 0x01]).is_none());
    let mut response = wire(&[]);
    response[2] |= 0x80;
    assert!(reply_to_malformed(&response).is_none());
}

/// A headless Service of 60 ready endpoints: about 1 KB of A records.
fn big_index() -> DnsIndex {
    let mut v = crate::dns::index::tests::view();
    let eps = v
        .endpoints
        .get_mut(&("shop".to_owned(), "db".to_owned()))
        .expect("db");
    eps.subsets[0].addresses = (0..60)
        .map(|n| serde_json::from_value(serde_json::json!({"ip": format!("10.244.1.{n}")})))
        .collect::<Result<_, _>>()
        .expect("addresses");
    DnsIndex::build(&v, "cluster.local", None)
}

#[test]
fn udp_replies_over_the_limit_are_truncated() {
    let i = big_index();
    let q = query_for(11, "db.shop.svc.cluster.local", T::A).expect("query");
    assert_eq!(udp_limit(&q), UDP_MIN);
    let Answer::Reply(m) = answer(&i, &q) else {
        panic!("forwarded")
    };
    assert_eq!(m.answers.len(), 60);
    let bytes = encode(&m, udp_limit(&q)).expect("encode");
    assert!(bytes.len() <= UDP_MIN);
    let back = parse(&bytes).expect("parse");
    assert!(back.metadata.truncation);
    assert_eq!(back.metadata.id, 11);
    assert_eq!(back.queries, m.queries);
    assert!(back.answers.is_empty());

    // An EDNS query advertising 4096 bytes gets the whole answer.
    let mut big = q.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    big.edns = Some(edns);
    assert_eq!(udp_limit(&big), 4096);
    let Answer::Reply(m) = answer(&i, &big) else {
        panic!("forwarded")
    };
    assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(EDNS_PAYLOAD));
    let back = parse(&encode(&m, udp_limit(&big)).expect("encode")).expect("parse");
    assert!(!back.metadata.truncation);
    assert_eq!(back.answers.len(), 60);
    assert!(back.edns.is_some());
}
