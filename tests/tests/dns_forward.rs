//! The node's resolver forwards names outside the cluster to the upstream
//! `--dns-upstream` names, and caches the answers; an ExternalName Service
//! is an alias whose target is chased through the same path. A real
//! upstream (Debian's unbound, authoritative for `example.test` only, no
//! remote lookups) runs in a namespace of this run on the cluster's
//! underlay; a pod asks with busybox's `nslookup`.
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use jotasu_tests::cluster::{ClusterOptions, UNDERLAY};
use jotasu_tests::e2e::{Harness, SETTLE, sample};
use jotasu_tests::netns::NetNs;
use jotasu_tests::privilege::require_root;
use jotasu_tests::process::{Spawned, process_gone};
use jotasu_tests::wait::eventually;

/// The upstream's address on the underlay (nodes are .10 and up).
const UPSTREAM_HOST: u8 = 253;
/// A name only the upstream knows, and its address.
const UPSTREAM_NAME: &str = "db.example.test";
const UPSTREAM_ADDRESS: &str = "192.0.2.7";
/// An ExternalName Service whose name is an alias of the upstream's name.
const EXTERNAL_NAME: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  type: ExternalName
  externalName: db.example.test
"#;
/// unbound's binary (Debian's package).
const UNBOUND: &str = "/usr/sbin/unbound";

fn upstream_ip() -> Ipv4Addr {
    let [a, b, c] = UNDERLAY;
    Ipv4Addr::new(a, b, c, UPSTREAM_HOST)
}

/// unbound's configuration: it listens on `ip`, answers `nodes` only, is
/// authoritative for `example.test.` (TTL 300 s, negative answers 300 s)
/// and refuses to look anything else up (`.` is a static zone).
fn unbound_conf(dir: &Path, ip: Ipv4Addr, nodes: &[Ipv4Addr]) -> String {
    let access: String = nodes
        .iter()
        .map(|n| format!("    access-control: {n}/32 allow\n"))
        .collect();
    format!(
        r#"server:
    interface: {ip}
    port: 53
    interface-automatic: no
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    pidfile: ""
    directory: "{dir}"
    use-syslog: no
    logfile: "{dir}/unbound.log"
    verbosity: 1
    module-config: "iterator"
    access-control: 0.0.0.0/0 refuse
{access}    local-zone: "." static
    local-zone: "example.test." static
    local-data: "example.test. 300 IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300"
    local-data: "{UPSTREAM_NAME}. 300 IN A {UPSTREAM_ADDRESS}"
remote-control:
    control-enable: no
"#,
        dir = dir.display()
    )
}

/// The upstream resolver: unbound in namespace `<prefix>d`, plugged into
/// the cluster's underlay bridge. Dropping it kills unbound (by PID) and
/// deletes the namespace, its link with it.
struct Upstream {
    // Fields drop in order: the process before its namespace.
    process: Option<Spawned>,
    _netns: NetNs,
}

impl Upstream {
    fn start(h: &Harness) -> Self {
        let prefix = h.cluster.prefix();
        let netns = NetNs::new(&format!("{prefix}d")).expect("the upstream's namespace");
        let (link, peer) = (format!("{prefix}d0"), format!("{prefix}d0b"));
        let underlay = h.cluster.plan().underlay_netns();
        jotasu_tests::cmd::ip(&[
            "link",
            "add",
            "name",
            &link,
            "netns",
            netns.name(),
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &underlay,
        ])
        .expect("the upstream's veth");
        jotasu_tests::cmd::ip(&["-n", &underlay, "link", "set", &peer, "master", "br0", "up"])
            .expect("the upstream on the bridge");
        let ip = upstream_ip();
        netns
            .ip(&["addr", "add", &format!("{ip}/24"), "dev", &link])
            .expect("the upstream's address");
        netns
            .ip(&["link", "set", &link, "up"])
            .expect("the upstream's link up");
        let dir = h.cluster.dir().join("upstream");
        std::fs::create_dir_all(&dir).expect("the upstream's directory");
        let nodes: Vec<Ipv4Addr> = h.cluster.nodes().iter().map(|n| n.ip()).collect();
        let conf = dir.join("unbound.conf");
        std::fs::write(&conf, unbound_conf(&dir, ip, &nodes)).expect("unbound.conf");
        let mut cmd: Command = jotasu_tests::netns::enter(netns.name(), UNBOUND);
        cmd.arg("-d").arg("-c").arg(&conf);
        let process = Spawned::start(cmd).expect("unbound starts");
        Self {
            process: Some(process),
            _netns: netns,
        }
    }

    /// Kills unbound (by PID) and waits until it is gone.
    fn stop(&mut self) {
        let Some(mut process) = self.process.take() else {
            return;
        };
        let pid = process.child().id();
        drop(process);
        assert!(process_gone(pid), "unbound (pid {pid}) is gone");
    }
}

/// A query for `name` A with id 0xbeef, as bytes.
fn a_query(name: &str) -> Vec<u8> {
    let mut query = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).expect("a short label"));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    query
}

/// The RCODE `server`:53 answers to `name` A, asked from namespace `ns`
/// (`None`: no answer within a second).
fn rcode_from(ns: &NetNs, server: Ipv4Addr, name: &str) -> Option<u8> {
    let query = a_query(name);
    ns.run(move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        socket.send_to(&query, (server, 53)).ok()?;
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).ok()?;
        (n >= 12 && buf[..2] == [0xbe, 0xef]).then_some(buf[3] & 0x0f)
    })
    .expect("the node's namespace")
}

/// `nslookup NAME` in the client pod: (exit code, output).
fn nslookup(h: &Harness, name: &str) -> (i32, String) {
    let run = h
        .ctl
        .at(&h.server, &["exec", "client", "--", "nslookup", name]);
    (run.code, format!("{}{}", run.stdout, run.stderr))
}

/// Waits until the pod resolves `name` to `address`; the output.
async fn resolves(h: &Harness, name: &str, address: &str) -> String {
    eventually(
        &format!("{name} resolves to {address}"),
        Duration::from_secs(30),
        || async {
            let (_, out) = nslookup(h, name);
            out.contains(&format!("Address: {address}")).then_some(out)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_and_external_names_resolve_through_the_nodes_cache() {
    if !require_root("upstream_and_external_names_resolve_through_the_nodes_cache") {
        return;
    }
    assert!(
        Path::new(UNBOUND).is_file(),
        "{UNBOUND} is missing: install Debian's unbound (scripts/bootstrap.sh)"
    );
    let mut options = ClusterOptions::default();
    options
        .agent_args
        .extend(["--dns-upstream".into(), upstream_ip().to_string()]);
    let h = Harness::start(options).await;
    let mut upstream = Upstream::start(&h);
    let node = h.cluster.nodes()[0].netns();
    eventually("the upstream answers the node", SETTLE, || async {
        (rcode_from(node, upstream_ip(), UPSTREAM_NAME) == Some(0)).then_some(())
    })
    .await;
    h.apply(EXTERNAL_NAME);
    h.client_pod().await;

    // A name only the upstream knows.
    resolves(&h, UPSTREAM_NAME, UPSTREAM_ADDRESS).await;
    // NXDOMAIN passes through.
    let (code, out) = nslookup(&h, "nope.example.test");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("nope.example.test: NXDOMAIN"), "{out}");

    // The ExternalName Service: no cluster IP, its external name shown as
    // kubectl shows it; its name answers the alias and the target's address.
    let table = h.ctl(&["get", "service", "db"]);
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        row.get(..5),
        Some(&["db", "ExternalName", "<none>", UPSTREAM_NAME, "<none>"][..]),
        "{table}"
    );
    let out = resolves(&h, "db.default.svc.cluster.local", UPSTREAM_ADDRESS).await;
    assert!(
        out.contains(&format!("canonical name = {UPSTREAM_NAME}")),
        "the alias is answered: {out}"
    );
    eprintln!("{out}");
    resolves(&h, "db", UPSTREAM_ADDRESS).await;

    // The upstream goes away: the cached answers (TTL 300 s) still serve,
    // the upstream's name and the ExternalName's target alike.
    upstream.stop();
    assert_eq!(
        rcode_from(node, upstream_ip(), UPSTREAM_NAME),
        None,
        "the upstream no longer answers"
    );
    for name in [UPSTREAM_NAME, "db.default.svc.cluster.local"] {
        let (_, out) = nslookup(&h, name);
        assert!(
            out.contains(&format!("Address: {UPSTREAM_ADDRESS}")),
            "the cache answers {name} without the upstream: {out}"
        );
    }
    let hits = sample(&h.metrics(0), "jotasu_agent_dns_cache_hits_total").unwrap_or(0.0);
    assert!(hits >= 2.0, "cache hits counted: {hits}");
    drop(upstream);
}
