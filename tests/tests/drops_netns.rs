//! Drops with real traffic between network namespaces: a pod forging its
//! source address, and a stranger on the underlay sending VXLAN to a node.
//! The forged packets never reach their destination (its kernel's IPv4
//! receive counter does not move), the reason's counter rises, and
//! legitimate traffic keeps flowing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Command,
};

use jotasu_ebpf::{Datapath, DropReason, PodHook, Tunnels};
use jotasu_tests::{
    lab::{BACKEND_PORT, ClientPath, Lab},
    names,
    netns::{self, NetNs},
    pins::NodePins,
    privilege::require_root,
    topology::{self, Pod},
    traffic::backends_of,
};

/// IPv4 datagrams the kernel of namespace `ns` received (`Ip: InReceives`).
fn ipv4_received(ns: &NetNs) -> u64 {
    let snmp = jotasu_tests::cmd::run(ns.command("cat").arg("/proc/net/snmp")).unwrap();
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "InReceives")
        .expect("Ip: InReceives");
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

/// `ping -c COUNT` from `ns` (from `source` if given): whether any answer came.
fn ping(ns: &NetNs, to: Ipv4Addr, count: u32, source: Option<Ipv4Addr>) -> bool {
    let mut c: Command = ns.command("ping");
    c.args(["-n", "-q", "-c", &count.to_string(), "-i", "0.2", "-W", "1"]);
    if let Some(s) = source {
        c.args(["-I", &s.to_string()]);
    }
    c.arg(to.to_string());
    c.output().expect("running ping").status.success()
}

fn drops(dp: &Datapath, reason: DropReason) -> u64 {
    dp.drop_counters().expect("drop counters")[&reason]
}

/// The client pod takes extra addresses (one nobody has, one of another
/// pod) and sends from them: from_pod drops every such packet on the
/// client's veth; the destination pod's kernel never sees one.
#[test]
fn a_pod_forging_its_source_reaches_nobody_and_is_counted() {
    if !require_root("a_pod_forging_its_source_reaches_nobody_and_is_counted") {
        return;
    }
    let mut lab = Lab::new(2, &[BACKEND_PORT]).unwrap();
    let pod1 = lab.node.pod("pod1").unwrap();
    let (pod1_ip, pod2_ip) = (pod1.ip, lab.node.pod("pod2").unwrap().ip);
    let client = lab.client();
    assert!(
        ping(&client.ns, pod1_ip, 3, None),
        "the client reaches pod1"
    );
    let forged = [Ipv4Addr::new(10, 244, 0, 99), pod2_ip];
    for addr in forged {
        client
            .ns
            .ip(&["addr", "add", &format!("{addr}/32"), "dev", "eth0"])
            .unwrap();
    }

    let before = ipv4_received(&pod1.ns);
    for addr in forged {
        assert!(
            !ping(&client.ns, pod1_ip, 5, Some(addr)),
            "a ping from {addr} must not be answered"
        );
    }
    assert_eq!(
        ipv4_received(&pod1.ns),
        before,
        "no forged packet reached pod1"
    );
    assert_eq!(drops(lab.dp(), DropReason::SpoofedSource), 10);

    // The client's own address still works, ICMP and TCP, and costs nothing.
    assert!(ping(&lab.client().ns, pod1_ip, 3, None));
    let to = SocketAddr::from((pod1_ip, BACKEND_PORT));
    let answers = lab.connect(ClientPath::Tc, to, 3, &[]).unwrap();
    assert_eq!(backends_of(&answers), ["pod1"; 3], "{answers:?}");
    assert!(ipv4_received(&lab.node.pod("pod1").unwrap().ns) > before);
    assert_eq!(drops(lab.dp(), DropReason::SpoofedSource), 10);
}

/// The port every node's VXLAN device listens on.
const VXLAN_PORT: &str = "8472";
/// The VNI jotasu uses.
const VNI: u32 = 1;

/// A node of the overlay test: its namespace and pod, its underlay address,
/// its data plane. Fields drop in order: data plane, pins, then namespaces.
struct OverlayNode {
    dp: Datapath,
    _pins: NodePins,
    node: topology::Node,
    underlay_ip: Ipv4Addr,
}

impl OverlayNode {
    /// Node `index` (1-based): underlay 192.168.79.<index>, pod CIDR
    /// 10.244.<index>.0/24 with one pod at .2, a VXLAN device in external
    /// mode, the data plane attached to both. `tunnels_first` programs the
    /// tunnels before attaching the device (a node whose data plane
    /// predates the peers map), else after (the agent's order).
    fn new(underlay: &NetNs, index: u8, tunnels: &Tunnels, tunnels_first: bool) -> Self {
        let mut node = topology::Node::new().unwrap();
        let underlay_ip = Ipv4Addr::new(192, 168, 79, index);
        netns::veth_to_bridge(
            underlay,
            &node.ns,
            &format!("{}u", node.prefix),
            underlay_ip,
        )
        .unwrap();
        let vx = format!("{}vx", node.prefix);
        node.ns
            .ip(&[
                "link", "add", &vx, "type", "vxlan", "external", "dstport", VXLAN_PORT,
            ])
            .unwrap();
        node.ns
            .ip(&["link", "set", &vx, "mtu", "1450", "up"])
            .unwrap();
        node.add_pod("pod", Ipv4Addr::new(10, 244, index, 2))
            .unwrap();
        let pins = NodePins::named(node.name());
        let pod: &Pod = &node.pods[0];
        let (name, host_if, pod_ip, ep) = (node.name(), &pod.host_if, pod.ip, pod.endpoint());
        let dp = node
            .ns
            .run(|| -> anyhow::Result<Datapath> {
                let mut dp = Datapath::open(name)?;
                dp.pods_mut().upsert_endpoint(pod_ip, ep)?;
                dp.pods_mut()
                    .attach_pod_interface(host_if, PodHook::default())?;
                let ifindex = nix_ifindex(&vx)?;
                if tunnels_first {
                    dp.overlay_mut().reconcile_tunnels(tunnels)?;
                    dp.overlay_mut().attach_device(&vx, ifindex, VNI)?;
                } else {
                    dp.overlay_mut().attach_device(&vx, ifindex, VNI)?;
                    dp.overlay_mut().reconcile_tunnels(tunnels)?;
                }
                Ok(dp)
            })
            .unwrap()
            .unwrap();
        Self {
            dp,
            _pins: pins,
            node,
            underlay_ip,
        }
    }

    fn pod(&self) -> &Pod {
        &self.node.pods[0]
    }
}

/// The ifindex of `ifname` in the calling thread's namespace.
fn nix_ifindex(ifname: &str) -> anyhow::Result<u32> {
    let c = std::ffi::CString::new(ifname)?;
    // SAFETY: a NUL-terminated name we own, read by the call only.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    anyhow::ensure!(index != 0, "no interface {ifname}");
    Ok(index)
}

/// Node `index`'s pod CIDR.
fn cidr(index: u8) -> String {
    format!("10.244.{index}.0/24")
}

/// One tunnel: node `index`'s pod CIDR to `node_ip`.
fn tunnel(index: u8, node_ip: Ipv4Addr) -> Tunnels {
    [(cidr(index).parse().unwrap(), node_ip)].into()
}

/// Two nodes reach each other's pods through the overlay; a stranger on
/// the same underlay, with a VXLAN device of its own aimed at node 1,
/// gets nothing through: node 1 drops every packet as unknown_overlay_peer
/// and its pod's kernel sees none.
#[test]
fn vxlan_from_an_unknown_underlay_address_is_dropped() {
    if !require_root("vxlan_from_an_unknown_underlay_address_is_dropped") {
        return;
    }
    names::sweep_stale();
    let prefix = names::fresh_prefix();
    let underlay = NetNs::new(&format!("{prefix}u")).unwrap();
    underlay
        .ip(&["link", "add", "br0", "type", "bridge"])
        .unwrap();
    underlay.ip(&["link", "set", "br0", "up"]).unwrap();
    let one_ip = Ipv4Addr::new(192, 168, 79, 1);
    let two_ip = Ipv4Addr::new(192, 168, 79, 2);
    let one = OverlayNode::new(&underlay, 1, &tunnel(2, two_ip), true);
    let two = OverlayNode::new(&underlay, 2, &tunnel(1, one_ip), false);
    assert_eq!(one.dp.overlay().peers().unwrap(), [two_ip].into());
    assert_eq!(two.dp.overlay().peers().unwrap(), [one_ip].into());

    // Known nodes: pod to pod both ways, nothing dropped.
    assert!(
        ping(&one.pod().ns, two.pod().ip, 3, None),
        "pod 1 reaches pod 2"
    );
    assert!(
        ping(&two.pod().ns, one.pod().ip, 3, None),
        "pod 2 reaches pod 1"
    );
    for n in [&one, &two] {
        assert_eq!(drops(&n.dp, DropReason::UnknownOverlayPeer), 0);
    }

    // The stranger: 192.168.79.3, a plain VXLAN device (VNI 1, port 8472)
    // whose every frame goes to node 1; pod 1's address behind it. IPv6 off,
    // so it sends only the pings.
    let stranger = NetNs::new(&format!("{prefix}x")).unwrap();
    for scope in ["all", "default"] {
        stranger
            .sysctl(&format!("net.ipv6.conf.{scope}.disable_ipv6"), "1")
            .unwrap();
    }
    let up = format!("{prefix}xu");
    netns::veth_to_bridge(&underlay, &stranger, &up, Ipv4Addr::new(192, 168, 79, 3)).unwrap();
    let vx = format!("{prefix}xv");
    stranger
        .ip(&[
            "link",
            "add",
            &vx,
            "type",
            "vxlan",
            "id",
            &VNI.to_string(),
            "remote",
            &one.underlay_ip.to_string(),
            "dstport",
            VXLAN_PORT,
            "dev",
            &up,
        ])
        .unwrap();
    stranger
        .ip(&["addr", "add", "10.244.2.99/24", "dev", &vx])
        .unwrap();
    stranger
        .ip(&["link", "set", &vx, "mtu", "1450", "up"])
        .unwrap();
    stranger
        .ip(&["route", "add", &cidr(1), "dev", &vx])
        .unwrap();
    stranger
        .ip(&[
            "neigh",
            "add",
            &one.pod().ip.to_string(),
            "lladdr",
            "02:00:00:00:00:aa",
            "dev",
            &vx,
            "nud",
            "permanent",
        ])
        .unwrap();

    let before = ipv4_received(&one.pod().ns);
    assert!(
        !ping(&stranger, one.pod().ip, 5, None),
        "the stranger's pings must not be answered"
    );
    assert_eq!(
        ipv4_received(&one.pod().ns),
        before,
        "no packet of the stranger reached pod 1"
    );
    let dropped = drops(&one.dp, DropReason::UnknownOverlayPeer);
    assert!(dropped >= 5, "5 pings dropped and counted, got {dropped}");

    // The known nodes are unaffected.
    assert!(ping(&one.pod().ns, two.pod().ip, 3, None));
    assert_eq!(drops(&two.dp, DropReason::UnknownOverlayPeer), 0);
    drop(stranger);
    drop(two);
    drop(one);
    drop(underlay);
}
