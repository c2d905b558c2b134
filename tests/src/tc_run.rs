//! The tc programs run by the kernel on hand-built frames
//! (BPF_PROG_TEST_RUN), on a node of its own: [`TcNode`] opens a fresh
//! node's data plane (its own pinned maps, programmed through [`Datapath`])
//! and loads a second copy of the tc programs on the same pins to run.
//!
//! `from_pod` admits a frame only from the veth of the pod that owns its
//! source address, so a frame runs as if it came in on an interface:
//! [`TcNode::add_pod`] makes a pod's "host-side veth" (a veth in a network
//! namespace of the node's own, down, which nothing sends through) and
//! registers the pod as an endpoint; [`TcNode::run`] runs a frame on the
//! interface of the pod that owns its source, [`TcNode::run_on`] on any.
use std::net::Ipv4Addr;

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, TestRun, TestRunOptions},
};
use jotasu_ebpf::{Datapath, Endpoint, objects};

use crate::{netns::NetNs, pins::NodePins};

/// `ifindex` of the loopback device: a frame run without an interface
/// comes in on it.
pub const LOOPBACK_IFINDEX: u32 = 1;
/// The tc programs of the object, loaded to run.
const PROGRAMS: [&str; 3] = ["from_pod", "to_pod", "from_overlay"];
/// Offset of `ifindex` in `struct __sk_buff` (linux/bpf.h: ten `__u32`s precede it).
const SKB_IFINDEX_OFF: usize = 40;

/// A fresh node's data plane and runnable tc programs on its maps.
pub struct TcNode {
    /// The node's data plane, to program services, names, endpoints.
    pub dp: Datapath,
    tc: Ebpf,
    ns: NetNs,
    prefix: String,
    interfaces: usize,
    /// Declared last: dropped after the maps are closed.
    _pins: NodePins,
}

impl TcNode {
    /// A node with nothing programmed.
    ///
    /// # Panics
    /// When the data plane cannot be opened or a program does not verify.
    #[allow(clippy::expect_used)] // a test harness fails loudly by design
    pub fn new() -> Self {
        let pins = NodePins::fresh();
        let prefix = pins.name().to_owned();
        let ns = NetNs::new(&format!("{prefix}tc")).expect("a namespace for the pods' interfaces");
        let dp = Datapath::open(pins.name()).expect("opening the node");
        let mut tc = EbpfLoader::new()
            .default_map_pin_directory(dp.pin_dir())
            .load(objects::TC)
            .expect("loading the tc object on the node's pins");
        for name in PROGRAMS {
            let prog: &mut SchedClassifier = tc
                .program_mut(name)
                .unwrap_or_else(|| panic!("{name} in the object"))
                .try_into()
                .expect("a classifier");
            prog.load()
                .unwrap_or_else(|e| panic!("verifying {name}: {e}"));
        }
        Self {
            dp,
            tc,
            ns,
            prefix,
            interfaces: 0,
            _pins: pins,
        }
    }

    /// Makes a pod with address `ip`: a host-side interface of its own
    /// (its ifindex is the endpoint's) and an endpoint entry with the MACs
    /// given. Returns the endpoint.
    ///
    /// # Panics
    /// When the interface cannot be made or the endpoint written.
    #[allow(clippy::expect_used)]
    pub fn add_pod(&mut self, ip: Ipv4Addr, pod_mac: [u8; 6], host_mac: [u8; 6]) -> Endpoint {
        let ep = Endpoint {
            ifindex: self.add_interface(),
            pod_mac,
            host_mac,
        };
        self.dp
            .pods_mut()
            .upsert_endpoint(ip, ep)
            .expect("writing the endpoint");
        ep
    }

    /// Makes an interface no pod is registered on; returns its ifindex.
    ///
    /// # Panics
    /// When the interface cannot be made.
    #[allow(clippy::expect_used)]
    pub fn add_interface(&mut self) -> u32 {
        // A veth pair with both ends in the node's namespace (this kernel
        // has no dummy driver); the `v` end stands for a pod's host side.
        let (name, peer) = (
            format!("{}v{}", self.prefix, self.interfaces),
            format!("{}w{}", self.prefix, self.interfaces),
        );
        self.interfaces += 1;
        self.ns
            .ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer])
            .expect("adding a veth pair");
        self.ifindex_of(&name).expect("the veth's ifindex")
    }

    fn ifindex_of(&self, name: &str) -> anyhow::Result<u32> {
        let out = self.ns.ip(&["-j", "link", "show", "dev", name])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        let index = v[0]["ifindex"].as_u64().context("no ifindex")?;
        Ok(u32::try_from(index)?)
    }

    /// Runs `from_pod` on `frame` as the pod that owns its IPv4 source sent
    /// it (on the interface of that address's endpoint; on the loopback
    /// device if it has none, or the frame is not IPv4): its verdict and the
    /// frame as it leaves.
    ///
    /// # Panics
    /// When the kernel refuses the test run.
    pub fn run(&self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run_on(self.sender_ifindex(frame), frame)
    }

    /// Runs `from_pod` on `frame` as if it came in on interface `ifindex`.
    ///
    /// # Panics
    /// When the kernel refuses the test run.
    pub fn run_on(&self, ifindex: u32, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run_program("from_pod", ifindex, frame)
    }

    /// Runs program `name` (`from_pod`, `to_pod` or `from_overlay`) on
    /// `frame` as if it came in on interface `ifindex`.
    ///
    /// # Panics
    /// When the kernel refuses the test run.
    #[allow(clippy::expect_used)]
    pub fn run_program(&self, name: &str, ifindex: u32, frame: &[u8]) -> (u32, Vec<u8>) {
        let prog: &SchedClassifier = self
            .tc
            .program(name)
            .unwrap_or_else(|| panic!("{name} in the object"))
            .try_into()
            .expect("a classifier");
        // The kernel takes the device from the context's ifindex, looked up
        // in the calling thread's namespace: the run happens in the node's.
        let mut ctx = [0u8; SKB_IFINDEX_OFF + 4];
        ctx[SKB_IFINDEX_OFF..].copy_from_slice(&ifindex.to_ne_bytes());
        let with_ctx = ifindex > LOOPBACK_IFINDEX;
        self.ns
            .run(|| {
                let mut out = vec![0; 1500];
                let res = prog
                    .test_run(TestRunOptions {
                        data_in: Some(frame),
                        data_out: Some(&mut out),
                        ctx_in: with_ctx.then_some(&ctx[..]),
                        ..Default::default()
                    })
                    .expect("BPF_PROG_TEST_RUN");
                out.truncate(res.data_size_out as usize);
                (res.return_value, out)
            })
            .expect("entering the node's namespace")
    }

    /// Runs program `name` on `frame` `repeat` times in the kernel, as if
    /// it came in on `ifindex`: its verdict and the time of one run (the
    /// kernel's average over the repeats).
    ///
    /// # Panics
    /// When the kernel refuses the test run.
    #[allow(clippy::expect_used)]
    pub fn time_program(
        &self,
        name: &str,
        ifindex: u32,
        frame: &[u8],
        repeat: u32,
    ) -> (u32, std::time::Duration) {
        let prog: &SchedClassifier = self
            .tc
            .program(name)
            .unwrap_or_else(|| panic!("{name} in the object"))
            .try_into()
            .expect("a classifier");
        let mut ctx = [0u8; SKB_IFINDEX_OFF + 4];
        ctx[SKB_IFINDEX_OFF..].copy_from_slice(&ifindex.to_ne_bytes());
        self.ns
            .run(|| {
                let mut out = vec![0; 1500];
                let res = prog
                    .test_run(TestRunOptions {
                        data_in: Some(frame),
                        data_out: Some(&mut out),
                        ctx_in: (ifindex > LOOPBACK_IFINDEX).then_some(&ctx[..]),
                        repeat,
                        ..Default::default()
                    })
                    .expect("BPF_PROG_TEST_RUN");
                (res.return_value, res.duration)
            })
            .expect("entering the node's namespace")
    }

    /// The interface a frame's IPv4 source is registered on, else loopback.
    fn sender_ifindex(&self, frame: &[u8]) -> u32 {
        const IPV4_SADDR: std::ops::Range<usize> = 26..30; // Ethernet 14 + 12
        let is_ipv4 = frame.get(12..14) == Some(&[0x08, 0x00][..]);
        let Some(saddr) = frame
            .get(IPV4_SADDR)
            .filter(|_| is_ipv4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
        else {
            return LOOPBACK_IFINDEX;
        };
        let saddr = Ipv4Addr::from(saddr);
        self.dp
            .pods()
            .endpoints()
            .ok()
            .and_then(|eps| eps.into_iter().find(|(ip, _)| *ip == saddr))
            .map_or(LOOPBACK_IFINDEX, |(_, ep)| ep.ifindex)
    }

    /// The node's per-run name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl std::fmt::Debug for TcNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcNode")
            .field("pins", &self.dp.pin_dir())
            .field("netns", &self.ns.name())
            .finish_non_exhaustive()
    }
}

impl Default for TcNode {
    fn default() -> Self {
        Self::new()
    }
}
