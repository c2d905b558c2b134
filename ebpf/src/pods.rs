//! [`PodDatapath`]: the pod-facing part of a node's data plane — `from_pod`
//! (ingress) and `to_pod` (egress) on each pod's host-side veth and the
//! endpoint map — opened from pins alone.
//!
//! A CNI plugin runs once per pod operation, so it cannot afford what
//! [`crate::Datapath::open`] does (parse the objects and the kernel's BTF,
//! verify every program: about 40 ms). The full open pins the verified
//! `from_pod` program under `progs/`; this handle opens that pin and the
//! endpoint map's pin, which takes microseconds.
use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use aya::{
    maps::{HashMap, Map, MapData},
    programs::SchedClassifier,
};

use crate::{
    Attached,
    datapath::{Datapath, ensure_bpffs, node_dir},
    error::DatapathError,
    maps::{is_missing, map_err},
    tc::{self, PodHook, Side},
};

/// Where the verified `from_pod` program is pinned, in a node's pin directory.
pub(crate) const FROM_POD_PIN: &str = "progs/from_pod";
/// Where the verified `to_pod` program is pinned.
pub(crate) const TO_POD_PIN: &str = "progs/to_pod";
/// A pod veth's TCX link pins, in the node's `links/`, are named
/// `<program>_<ifname>` (`from_pod_…`, `to_pod_…`).
const SIDES: [Side; 2] = [Side::Ingress, Side::Egress];
/// The endpoint map's pin (pinned by name by the object).
const ENDPOINTS_PIN: &str = "endpoints";

/// A pod on this node, as the tc program delivers to it: the endpoint map's
/// value as it is (ifindex of the host-side veth, the pod's and the host
/// side's MACs).
pub use crate::abi::EndpointValue as Endpoint;

/// Attaches pods to a node's data plane and registers them as endpoints.
/// Everything it does is pinned and outlives the process.
#[derive(Debug)]
pub struct PodDatapath {
    dir: PathBuf,
    from_pod: SchedClassifier,
    to_pod: SchedClassifier,
    endpoints: HashMap<MapData, u32, Endpoint>,
}

impl PodDatapath {
    /// Opens node `node`'s pod data plane under [`crate::DEFAULT_BPFFS`].
    pub fn open(node: &str) -> Result<Self, DatapathError> {
        Self::open_in(Path::new(crate::DEFAULT_BPFFS), node)
    }

    /// Opens node `node`'s pod data plane under the bpffs mount `bpffs`. A
    /// node whose data plane was never set up is set up first (a full
    /// [`Datapath::open_in`], once).
    pub fn open_in(bpffs: &Path, node: &str) -> Result<Self, DatapathError> {
        let dir = node_dir(bpffs, node)?;
        ensure_bpffs(bpffs)?;
        if [FROM_POD_PIN, TO_POD_PIN, ENDPOINTS_PIN]
            .iter()
            .any(|pin| !dir.join(pin).exists())
        {
            tracing::info!(node, "setting up the node's data plane (first use)");
            drop(Datapath::open_in(bpffs, node)?);
        }
        Self::from_pins(&dir)
    }

    /// Opens the pins under the node directory `dir`.
    pub(crate) fn from_pins(dir: &Path) -> Result<Self, DatapathError> {
        let open = |program: &'static str, pin: &str| {
            let prog = dir.join(pin);
            SchedClassifier::from_pin(&prog).map_err(|e| DatapathError::Program {
                action: "opening pinned",
                program,
                target: prog.display().to_string(),
                source: Box::new(e),
            })
        };
        let from_pod = open("from_pod", FROM_POD_PIN)?;
        let to_pod = open("to_pod", TO_POD_PIN)?;
        let map = dir.join(ENDPOINTS_PIN);
        let endpoints = MapData::from_pin(&map)
            .map(Map::HashMap)
            .map_err(map_err("open pin of", "endpoints"))
            .and_then(|m| HashMap::try_from(m).map_err(map_err("type-check", "endpoints")))?;
        Ok(Self {
            dir: dir.to_owned(),
            from_pod,
            to_pod,
            endpoints,
        })
    }

    /// Attaches `from_pod` to ingress and `to_pod` to egress of `ifname`, a
    /// pod's host-side veth in the calling thread's network namespace, by
    /// `hook`. Idempotent: an attachment made the same way is replaced in
    /// place, one made the other way is removed.
    pub fn attach_pod_interface(
        &mut self,
        ifname: &str,
        hook: PodHook,
    ) -> Result<Attached, DatapathError> {
        let pin = self.link_pin(ifname, Side::Ingress);
        let ingress = tc::attach(&mut self.from_pod, ifname, Side::Ingress, hook, &pin)?;
        let pin = self.link_pin(ifname, Side::Egress);
        let egress = tc::attach(&mut self.to_pod, ifname, Side::Egress, hook, &pin)?;
        let outcome = if ingress == Attached::New || egress == Attached::New {
            Attached::New
        } else {
            ingress
        };
        tracing::debug!(ifname, %hook, ?outcome, "from_pod and to_pod attached");
        Ok(outcome)
    }

    /// Replaces `from_pod` and `to_pod` on every registered pod's veth (in
    /// the calling thread's network namespace) with this handle's programs
    /// — the ones the last [`Datapath::open_in`] loaded and pinned — keeping
    /// each veth's hook. After an upgrade, running pods get the new programs
    /// as new pods do. Each replacement is atomic (a filter replaced in
    /// place, a TCX link updated): the veth never runs without a program.
    /// A veth that carries neither program is left alone. Returns the
    /// interfaces replaced.
    pub fn replace_pod_programs(&mut self) -> Result<Vec<String>, DatapathError> {
        let mut replaced = Vec::new();
        for (_, ep) in self.endpoints()? {
            let Some(ifname) = crate::attach::ifname(ep.ifindex) else {
                continue;
            };
            if let Some(hook) = self.pod_interface_hook(&ifname)? {
                self.attach_pod_interface(&ifname, hook)?;
                replaced.push(ifname);
            }
        }
        Ok(replaced)
    }

    /// Detaches `from_pod` and `to_pod` from `ifname` (which may be gone
    /// already). Returns whether either was attached.
    pub fn detach_pod_interface(&mut self, ifname: &str) -> Result<bool, DatapathError> {
        let ingress = tc::detach(ifname, Side::Ingress, &self.link_pin(ifname, Side::Ingress))?;
        let egress = tc::detach(ifname, Side::Egress, &self.link_pin(ifname, Side::Egress))?;
        Ok(ingress || egress)
    }

    /// How `from_pod` and `to_pod` run on `ifname` (in the calling thread's
    /// namespace): the hook, when both are attached the same way.
    pub fn pod_interface_hook(&self, ifname: &str) -> Result<Option<PodHook>, DatapathError> {
        let ingress = tc::attached(ifname, Side::Ingress, &self.link_pin(ifname, Side::Ingress))?;
        let egress = tc::attached(ifname, Side::Egress, &self.link_pin(ifname, Side::Egress))?;
        Ok(ingress.filter(|_| egress == ingress))
    }

    /// The interfaces that have a pinned TCX link (some may be gone).
    pub fn tcx_pod_interfaces(&self) -> Result<Vec<String>, DatapathError> {
        let links = self.dir.join("links");
        let entries = fs::read_dir(&links).map_err(|source| DatapathError::Io {
            action: "listing pinned links",
            path: links.clone(),
            source,
        })?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                SIDES.iter().find_map(|side| {
                    name.strip_prefix(side.program())?
                        .strip_prefix('_')
                        .map(str::to_owned)
                })
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn link_pin(&self, ifname: &str, side: Side) -> PathBuf {
        self.dir
            .join("links")
            .join(format!("{}_{ifname}", side.program()))
    }

    /// Registers a pod of this node for direct delivery.
    pub fn upsert_endpoint(&mut self, ip: Ipv4Addr, ep: Endpoint) -> Result<(), DatapathError> {
        self.endpoints
            .insert(u32::from(ip).to_be(), ep, 0)
            .map_err(map_err("insert", "endpoints"))
    }

    /// Unregisters a pod. Returns whether it was registered.
    pub fn remove_endpoint(&mut self, ip: Ipv4Addr) -> Result<bool, DatapathError> {
        match self.endpoints.remove(&u32::from(ip).to_be()) {
            Ok(()) => Ok(true),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(map_err("remove", "endpoints")(e)),
        }
    }

    /// The registered pods.
    pub fn endpoints(&self) -> Result<Vec<(Ipv4Addr, Endpoint)>, DatapathError> {
        self.endpoints
            .iter()
            .map(|r| r.map(|(k, ep)| (Ipv4Addr::from(u32::from_be(k)), ep)))
            .collect::<Result<_, _>>()
            .map_err(map_err("iterate", "endpoints"))
    }
}
