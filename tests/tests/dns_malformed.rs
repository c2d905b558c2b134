//! Malformed queries to the cluster DNS address, sent as raw bytes by the
//! testbin running as a client pod's process: each gets FORMERR or no reply
//! (never anything else, never a stalled server), a TCP client that stops
//! half-way stalls no one, and afterwards the node still answers `dig` from
//! the same agent process.
use std::time::Duration;

use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::dns::wire::{HELD, from_hex, query_bytes, to_hex, wire_name};
use jotasu_tests::dns::{Background, CLUSTER_DNS, WEB, set, web_client};
use jotasu_tests::e2e::Harness;
use jotasu_tests::lab::testbin_path;
use jotasu_tests::privilege::require_root;

/// What a malformed query may get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing: no header to answer, or a response (never answered).
    Nothing,
    /// FORMERR (with the query's id), or nothing.
    FormErrOrNothing,
}

/// The malformed messages, each with its id and what it may get.
fn malformed() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::{FormErrOrNothing as F, Nothing as N};
    let name = wire_name(WEB);
    let question = [name.clone(), vec![0, 1, 0, 1]].concat();
    let mut long = Vec::new();
    for _ in 0..4 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut response = query_bytes(0x0109, 1, &question);
    response[2] |= 0x80;
    // Fixed pseudo-random bytes (the same every run).
    let mut x: u32 = 0x2545_f491;
    let garbage: Vec<u8> = (0..64)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_be_bytes()[0]
        })
        .collect();
    let (mut as_response, mut as_query) = (garbage.clone(), garbage);
    as_response[2] |= 0x80;
    as_query[2] &= 0x7f;
    vec![
        ("an empty datagram", vec![], N),
        (
            "a truncated header",
            query_bytes(0x0101, 1, &[])[..7].to_vec(),
            N,
        ),
        (
            "a header claiming a missing question",
            query_bytes(0x0102, 1, &[]),
            F,
        ),
        (
            "a truncated question",
            query_bytes(0x0103, 1, &question[..10]),
            F,
        ),
        (
            "a question without type and class",
            query_bytes(0x0104, 1, &name),
            F,
        ),
        (
            "class CHAOS",
            query_bytes(
                0x0105,
                1,
                &[wire_name("version.bind"), vec![0, 16, 0, 3]].concat(),
            ),
            F,
        ),
        (
            "a name pointing to itself",
            query_bytes(0x0106, 1, &[0xc0, 12, 0, 1, 0, 1]),
            F,
        ),
        (
            "a loop of two pointers",
            query_bytes(0x0107, 1, &[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]),
            F,
        ),
        ("a 257-byte name", query_bytes(0x0108, 1, &long), F),
        ("a response (QR=1)", response, N),
        (
            "65535 questions claimed",
            query_bytes(0x010a, 0xffff, &question),
            F,
        ),
        ("garbage with QR set", as_response, N),
        ("garbage with QR clear", as_query, F),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_get_formerr_or_nothing_and_the_node_answers_on() {
    if !require_root("malformed_queries_get_formerr_or_nothing_and_the_node_answers_on") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    let (client, vip) = &web_client(&h).await;
    let agent = h.cluster.nodes()[0].agent_pid().expect("the agent runs");
    let testbin = testbin_path().expect("jotasu-testbin is built");
    let testbin = testbin.to_str().expect("a UTF-8 path");
    let to = format!("{CLUSTER_DNS}:53");
    let cases = malformed();
    let mut args = vec!["dns-exchange".to_owned(), "--to".into(), to.clone()];
    args.extend(["--wait-ms".into(), "1000".into()]);
    args.extend(cases.iter().map(|(_, bytes, _)| to_hex(bytes)));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = client.run(Duration::from_secs(120), testbin, &args);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), cases.len(), "{out}{err}");
    for ((what, bytes, expect), line) in cases.iter().zip(&lines) {
        let reply = match line.strip_prefix("reply ") {
            None => {
                assert_eq!(*line, "none", "{what}");
                eprintln!("{what}: no reply");
                continue;
            }
            Some(hex) => from_hex(hex).expect("hex"),
        };
        assert_eq!(*expect, Expect::FormErrOrNothing, "{what}: a reply {line}");
        assert!(reply.len() >= 12, "{what}: {line}");
        assert_eq!(reply[..2], bytes[..2], "{what}: the query's id: {line}");
        assert!(reply[2] & 0x80 != 0, "{what}: QR: {line}");
        assert_eq!(reply[3] & 0x0f, 1, "{what}: FORMERR: {line}");
        eprintln!("{what}: FORMERR");
    }
    // A TCP client that announces 64 bytes, sends 5 and holds on does not
    // stall others (over TCP or UDP).
    let partial = to_hex(&[&[0, 64], &query_bytes(0x0200, 1, &[])[..5]].concat());
    let held = Background::start(
        client.command(
            Duration::from_secs(120),
            testbin,
            &["dns-hold", "--to", &to, &partial],
        ),
        HELD,
    )
    .expect("a TCP connection held");
    let d = client.dig(&["+tcp", WEB, "A"]);
    assert!(d.answers("A", &set([&vip])), "{}", d.output);
    drop(held);
    // The node still answers, from the same agent process.
    let d = client.dig(&[WEB, "A"]);
    assert!(d.answers("A", &set([&vip])), "{}", d.output);
    let stat = std::fs::read_to_string(format!("/proc/{agent}/stat")).expect("the agent lives");
    let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
    assert!(
        matches!(state, Some(s) if s != "Z" && s != "X"),
        "agent: {stat}"
    );
}
