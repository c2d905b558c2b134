//! Cluster DNS end to end: pods on real nodes resolve Services by name
//! through the cluster DNS address, answered by their own node's resolver —
//! busybox's `nslookup` and `wget` in the pods, and host clients run as the
//! pods' processes: Debian's `dig` on every node, glibc's `getent` (10,000
//! lookups, none may time out).
use std::time::{Duration, Instant};

use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::dns::{Dig, WEB, WEB_SERVICE, app_pod, clients_on_every_node, web_client};
use jotasu_tests::e2e::{Harness, SETTLE};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

/// `nslookup NAME` in the client pod: (exit code, output).
fn nslookup(h: &Harness, name: &str) -> (i32, String) {
    let run = h
        .ctl
        .at(&h.server, &["exec", "client", "--", "nslookup", name]);
    (run.code, format!("{}{}", run.stdout, run.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_resolve_services_by_name_from_their_node() {
    if !require_root("pods_resolve_services_by_name_from_their_node") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    h.apply(WEB_SERVICE);
    h.client_pod().await;
    let resolv = h.ctl(&["exec", "client", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(
        resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{resolv}"
    );
    let vip = h.vip("web").await;
    // The full name.
    let (_, out) = eventually("the name resolves", Duration::from_secs(20), || async {
        let (code, out) = nslookup(&h, "web.default.svc.cluster.local");
        (code == 0 && out.contains(&vip)).then_some((code, out))
    })
    .await;
    assert!(
        out.contains("Name:\tweb.default.svc.cluster.local"),
        "{out}"
    );
    // The short name through the search path (busybox asks every search
    // domain and exits 1 when any of them is NXDOMAIN, so its output is
    // what tells: the namespace's domain answers with the address).
    let (_, out) = nslookup(&h, "web");
    assert!(
        out.contains(&format!(
            "Name:\tweb.default.svc.cluster.local\nAddress: {vip}"
        )),
        "{out}"
    );
    assert!(
        out.contains("can't find web.svc.cluster.local: NXDOMAIN"),
        "{out}"
    );
    // The cluster DNS Service's own name, the DNS schema version.
    let (code, out) = nslookup(&h, "kube-dns.kube-system.svc.cluster.local");
    assert!(code == 0 && out.contains("10.96.0.10"), "{out}");
    // An unknown name in the cluster domain: NXDOMAIN.
    let (code, out) = nslookup(&h, "nope.default.svc.cluster.local");
    assert_ne!(code, 0, "{out}");
    // Another host of the underlay (the control plane's namespace) gets
    // REFUSED: the node's resolver is its pods', not an open resolver.
    let node_ip = h.cluster.nodes()[0].ip();
    let rcode = jotasu_dev::netns::run_in(&h.cluster.plan().control_plane_netns(), move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut query = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in "kube-dns.kube-system.svc.cluster.local".split('.') {
            query.push(u8::try_from(label.len()).unwrap());
            query.extend_from_slice(label.as_bytes());
        }
        query.extend_from_slice(&[0, 0, 1, 0, 1]);
        socket.send_to(&query, (node_ip, 53)).unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap_or(0);
        (n >= 12 && buf[..2] == [0xbe, 0xef]).then_some(buf[3] & 0x0f)
    })
    .unwrap();
    assert_eq!(
        rcode,
        Some(5),
        "REFUSED to a host outside the cluster's pods"
    );
    // A Service deleted is gone from DNS.
    h.ctl(&["delete", "service", "web"]);
    eventually(
        "the deleted name is NXDOMAIN",
        Duration::from_secs(20),
        || async {
            let (code, _) = nslookup(&h, "web.default.svc.cluster.local");
            (code != 0).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_resolves_on_every_node_and_is_gone_once_deleted() {
    if !require_root("a_service_resolves_on_every_node_and_is_gone_once_deleted") {
        return;
    }
    let h = Harness::start(ClusterOptions::spreading(2)).await;
    let clients = clients_on_every_node(&h).await;
    h.apply(&app_pod("web-0", "web", &h.node_names()[0], None));
    h.ready_pods("app=web", 1).await;
    for c in &clients {
        let d = c.dig(&[WEB, "A"]);
        assert_eq!(d.status(), "NXDOMAIN", "before the Service: {}", d.output);
    }
    h.apply(WEB_SERVICE);
    let vip = h.vip("web").await;
    for c in &clients {
        c.until_answers(WEB, "A", std::slice::from_ref(&vip)).await;
    }
    // busybox wget by the short name, through the pod's search path, from
    // both nodes: the pod on node 0 answers (node 1 reaches it through the
    // overlay).
    for c in &clients {
        let page = eventually(&format!("{}: wget http://web/", c.pod), SETTLE, || async {
            let run = h.ctl.at(
                &h.server,
                &[
                    "exec",
                    &c.pod,
                    "--",
                    "timeout",
                    "10",
                    "wget",
                    "-q",
                    "-O",
                    "-",
                    "http://web/",
                ],
            );
            (run.code == 0).then_some(run.stdout)
        })
        .await;
        assert_eq!(page.trim(), "web-0", "{}", c.pod);
    }
    h.ctl(&["delete", "service", "web"]);
    for c in &clients {
        let d = eventually(&format!("{}: {WEB} NXDOMAIN", c.pod), SETTLE, || async {
            let d = c.dig(&[WEB, "A"]);
            (d.status() == "NXDOMAIN").then_some(d)
        })
        .await;
        assert!(
            d.answer.is_empty() && d.authority.len() == 1,
            "{}",
            d.output
        );
    }
}

/// Lookups glibc makes in one run of the loop.
const LOOKUPS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glibc_resolves_ten_thousand_times_without_a_timeout() {
    if !require_root("glibc_resolves_ten_thousand_times_without_a_timeout") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    let (client, vip) = &web_client(&h).await;
    // The pod's own resolv.conf (search path, ndots:5), with no second
    // chance: a lost or late answer fails the lookup instead of costing 5 s.
    let mut resolv = h.ctl(&["exec", &client.pod, "--", "cat", "/etc/resolv.conf"]);
    resolv.push_str("options timeout:1 attempts:1\n");
    let file = h.cluster.dir().join("getent-resolv.conf");
    std::fs::write(&file, &resolv).expect("write the resolv.conf");
    // glibc sends A and AAAA at once from one socket, for every search
    // domain in turn (ndots:5): eight queries a lookup.
    let script = format!(
        "mount --bind {file} /etc/resolv.conf || exit 99
getent ahosts {WEB} | head -n 1
failed=0
for i in $(seq {LOOKUPS}); do getent ahosts {WEB} >/dev/null || failed=$((failed+1)); done
echo failed=$failed",
        file = file.display()
    );
    let start = Instant::now();
    let (code, out, err) = client.run(
        Duration::from_secs(1800),
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &script],
    );
    let took = start.elapsed().as_secs_f64();
    eprintln!(
        "getent ahosts: {LOOKUPS} lookups in {took:.1} s ({:.2} ms each)",
        took * 1000.0 / LOOKUPS as f64
    );
    assert_eq!(code, 0, "{out}{err}");
    let first: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(first, [vip.as_str(), "STREAM", WEB], "{out}{err}");
    assert!(out.contains("\nfailed=0\n"), "lookups failed: {out}{err}");
}

/// A process in a pod's network namespace but outside the node's cgroup
/// subtree (a pod another CNI runtime started, `ip netns exec`) reaches
/// 10.96.0.10 through the tc program, which translates it to the node's own
/// address; the node's reply gets the reverse translation from `to_pod` on
/// the pod's veth, so it comes from 10.96.0.10 as dig's socket expects —
/// over UDP and TCP, for every kind of answer, not only what the kernel's
/// DNS fast path answers itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_outside_the_pods_cgroup_resolves_through_tc() {
    if !require_root("a_process_outside_the_pods_cgroup_resolves_through_tc") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    let (client, _) = &web_client(&h).await;
    let netns = format!("--net={}", client.netns.display());
    let dig = |args: &[&str]| {
        let out = std::process::Command::new("timeout")
            .args(["30", "nsenter", &netns, "--", "dig", "@10.96.0.10"])
            .args(["+tries=1", "+time=2"])
            .args(args)
            .output()
            .expect("dig runs");
        let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        Dig::parse(out.status.code().unwrap_or(-1), &text)
    };
    let srv = format!("_http._tcp.{WEB}");
    let asked: [(&[&str], &str); 4] = [
        (&[WEB, "A"], "NOERROR"),
        (&["+tcp", WEB, "A"], "NOERROR"),
        (&[&srv, "SRV"], "NOERROR"),
        (&["nope.default.svc.cluster.local", "A"], "NXDOMAIN"),
    ];
    let wrong: Vec<String> = asked
        .iter()
        .filter_map(|(args, status)| {
            let d = dig(args);
            (d.status() != *status).then(|| format!("{args:?}: {}", d.status()))
        })
        .collect();
    assert!(wrong.is_empty(), "through tc: {wrong:?}");
}
