//! Cluster DNS end to end: pods on a real node resolve Services by name
//! through the cluster DNS address, answered by their own node's resolver
//! (busybox's `nslookup`, a real client in a real pod).
use std::time::Duration;

use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::Harness;
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

const APP: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 80}
"#;

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
    h.apply(APP);
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
