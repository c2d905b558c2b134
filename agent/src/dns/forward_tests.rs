//! Tests of the way out: alias chains, the cache in front of a fake
//! upstream on loopback (it counts what reaches it), and chasing an
//! ExternalName's target through it.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hickory_proto::rr::rdata::{A, CNAME};
use tokio::task::JoinHandle;

use super::*;
use crate::dns::answer::query_for;

fn name(s: &str) -> Name {
    Name::from_ascii(s).expect("name")
}

fn cname(owner: &str, target: &str) -> Record {
    Record::from_rdata(name(owner), 30, RData::CNAME(CNAME(name(target))))
}

fn a(owner: &Name, ip: [u8; 4]) -> Record {
    Record::from_rdata(owner.clone(), 300, RData::A(A(Ipv4Addr::from(ip))))
}

/// The reply an upstream gives to `q`: NOERROR with `answers`.
fn reply_with(q: &Message, answers: Vec<Record>) -> Message {
    let mut m = Message::error_msg(q.metadata.id, OpCode::Query, ResponseCode::NoError);
    m.metadata.recursion_available = true;
    m.queries.clone_from(&q.queries);
    m.answers = answers;
    m
}

/// A fake upstream on 127.0.0.1 answering each query as `respond` says;
/// the count of queries it got. Abort the handle to take it away.
async fn upstream(
    respond: impl Fn(&Message) -> Message + Send + 'static,
) -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let mut buf = vec![0; 4096];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let bytes = respond(&q).to_vec().expect("encode");
            let _ = socket.send_to(&bytes, peer).await;
        }
    });
    (addr, seen, task)
}

/// Answers every question with an A record 192.0.2.7.
fn address(q: &Message) -> Message {
    let owner = q.queries[0].name().clone();
    reply_with(q, vec![a(&owner, [192, 0, 2, 7])])
}

fn forwarder(addr: SocketAddr) -> Forwarder {
    Forwarder::new(vec![addr], Limits::default())
}

async fn forward(f: &Forwarder, q: &Message) -> Option<Forwarded> {
    f.forward(q, &q.to_vec().expect("encode"), false).await
}

#[test]
fn dangling_names_the_end_of_an_alias_chain_without_an_answer() {
    let q = name("alias.example.test.");
    let chain = vec![
        cname("alias.example.test.", "mid.example.test."),
        cname("MID.example.test.", "db.example.test."),
    ];
    assert_eq!(
        dangling(&chain, &q, RecordType::A),
        Some(name("db.example.test."))
    );
    let mut answered = chain.clone();
    answered.push(a(&name("db.example.test."), [192, 0, 2, 7]));
    assert_eq!(dangling(&answered, &q, RecordType::A), None);
    assert_eq!(
        dangling(&[a(&q, [192, 0, 2, 7])], &q, RecordType::A),
        None,
        "no alias"
    );
    assert_eq!(dangling(&[], &q, RecordType::A), None);
    let looped = vec![
        cname("alias.example.test.", "mid.example.test."),
        cname("mid.example.test.", "alias.example.test."),
    ];
    assert_eq!(dangling(&looped, &q, RecordType::A), None, "a loop");
}

#[tokio::test]
async fn a_forwarded_answer_is_kept_and_served_to_the_next_asker() {
    let (addr, seen, task) = upstream(address).await;
    let metrics = DnsCacheMetrics::default();
    let f = forwarder(addr).with_metrics(metrics.clone());
    let first = query_for(1, "db.example.test", RecordType::A).expect("query");
    let Some(Forwarded::Fresh(bytes)) = forward(&f, &first).await else {
        panic!("the upstream answers the first query");
    };
    let fresh = Message::from_vec(&bytes).expect("reply");
    assert_eq!(fresh.metadata.id, 1);
    task.abort();

    let again = query_for(2, "DB.example.test", RecordType::A).expect("query");
    let Some(Forwarded::Cached(hit)) = forward(&f, &again).await else {
        panic!("the second asker is answered from the cache");
    };
    assert_eq!(hit.metadata.id, 2);
    assert_eq!(hit.queries[0].name().to_ascii(), "DB.example.test.");
    assert_eq!(hit.answers, fresh.answers);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(
        (
            metrics.hits.get(),
            metrics.misses.get(),
            metrics.entries.get()
        ),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn failures_are_asked_again() {
    let servfail = |q: &Message| {
        let mut m = reply_with(q, Vec::new());
        m.metadata.response_code = ResponseCode::ServFail;
        m
    };
    let (addr, seen, task) = upstream(servfail).await;
    let f = forwarder(addr);
    let q = query_for(1, "db.example.test", RecordType::A).expect("query");
    for _ in 0..2 {
        assert!(matches!(forward(&f, &q).await, Some(Forwarded::Fresh(_))));
    }
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    task.abort();
}

#[tokio::test]
async fn no_upstream_no_answer() {
    let (addr, _, task) = upstream(address).await;
    task.abort();
    let _ = task.await;
    let q = query_for(1, "db.example.test", RecordType::A).expect("query");
    assert_eq!(forward(&forwarder(addr), &q).await, None);
    assert_eq!(
        forward(&Forwarder::new(Vec::new(), Limits::default()), &q).await,
        None
    );
}

fn external_index() -> DnsIndex {
    let mut index = DnsIndex::new("cluster.local", None, Vec::new());
    index.add_external_name("default", "alias", "db.example.test");
    index
}

async fn chased(f: &Forwarder, index: &DnsIndex, qname: &str) -> Message {
    let q = query_for(9, qname, RecordType::A).expect("query");
    let Answer::Reply(mut reply) = answer(index, &q) else {
        panic!("{qname} is a cluster name");
    };
    f.chase(index, &q, &mut reply).await;
    reply
}

#[tokio::test]
async fn an_alias_out_of_the_cluster_is_chased_through_the_upstream_and_cache() {
    let (addr, seen, task) = upstream(address).await;
    let (f, index) = (forwarder(addr), external_index());
    let reply = chased(&f, &index, "alias.default.svc.cluster.local").await;
    let data: Vec<String> = reply.answers.iter().map(|r| r.data.to_string()).collect();
    assert_eq!(data, ["db.example.test.", "192.0.2.7"]);
    assert_eq!(reply.answers[1].name, name("db.example.test."));
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    task.abort();
    let again = chased(&f, &index, "alias.default.svc.cluster.local").await;
    assert_eq!(again.answers.len(), 2, "the target's answer was cached");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unanswered_target_leaves_the_alias_alone() {
    let (addr, _, task) = upstream(address).await;
    task.abort();
    let _ = task.await;
    let reply = chased(
        &forwarder(addr),
        &external_index(),
        "alias.default.svc.cluster.local",
    )
    .await;
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn chasing_stops_after_a_bounded_number_of_aliases() {
    // Every name is an alias of a longer one: an endless chain.
    let endless = |q: &Message| {
        let owner = q.queries[0].name().to_ascii();
        let target = format!("x.{owner}");
        reply_with(q, vec![cname(&owner, &target)])
    };
    let (addr, seen, task) = upstream(endless).await;
    let reply = chased(
        &forwarder(addr),
        &external_index(),
        "alias.default.svc.cluster.local",
    )
    .await;
    assert_eq!(seen.load(Ordering::SeqCst), MAX_CHASE);
    assert_eq!(reply.answers.len(), MAX_CHASE + 1);
    task.abort();
}
