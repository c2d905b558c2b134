//! [`Datapath`]: one node's data plane — its pinned maps, its programs and the
//! services, endpoints and counters they hold.
use std::{
    fs, io,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{CgroupSockAddr, SchedClassifier},
};

use crate::{
    abi,
    attach::{self, Attached},
    dns::DnsFastPath,
    drops::{DropCounters, Drops},
    error::DatapathError,
    flows::FlowEvents,
    layout,
    maps::Maps,
    objects,
    overlay::{FROM_OVERLAY_PIN, Overlay},
    plan::{Entry, Op, Programmed, ReconcileSummary},
    pods::{FROM_POD_PIN, PodDatapath, TO_POD_PIN},
    service::{Frontend, Service},
    underlay::{FROM_UNDERLAY_PIN, Underlay},
};

/// Where bpffs is normally mounted.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Per-service counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceCounters {
    /// New flows balanced by the tc program.
    pub tc_new_flows: u64,
    /// New flows balanced by the socket programs.
    pub sock_new_flows: u64,
    /// New flows refused because the service had no backend.
    pub rejected: u64,
}

/// A programmed service with its id and counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The service as programmed.
    pub service: Service,
    /// Its id in the counter maps.
    pub id: u32,
    /// Its counters.
    pub counters: ServiceCounters,
}

/// One tc conntrack entry, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConntrackEntry {
    /// Packet source, as seen.
    pub src: std::net::SocketAddrV4,
    /// Packet destination, as seen.
    pub dst: std::net::SocketAddrV4,
    /// IP protocol number.
    pub proto: u8,
    /// True for client-to-VIP entries (DNAT), false for replies (reverse NAT).
    pub forward: bool,
    /// The address written into the packet.
    pub nat: std::net::SocketAddrV4,
    /// A FIN or RST was seen in this direction.
    pub closing: bool,
    /// A flow from outside the cluster (a node port, an external IP, a host port).
    pub external: bool,
    /// For an external flow SNATed to the node: the other end's rewrite
    /// (forward: the node's address and SNAT port; reply: the client).
    pub peer: Option<std::net::SocketAddrV4>,
}

/// One node's data plane. Opening it loads and verifies the programs, opens
/// (or creates) the maps pinned under `<bpffs>/jotasu/<node>/` and pins the
/// verified tc programs under `progs/` (`from_pod` for [`PodDatapath`],
/// `from_overlay` for [`Overlay`]); links pinned under
/// `links/` keep programs attached after the process exits. Everything it
/// programs survives the process; a later `open` finds it again.
#[derive(Debug)]
pub struct Datapath {
    dir: PathBuf,
    sock: Ebpf,
    maps: Maps,
    programmed: Programmed,
    pods: PodDatapath,
    overlay: Overlay,
    underlay: Underlay,
    dns: DnsFastPath,
    drops: Drops,
    flows: FlowEvents,
}

impl Datapath {
    /// Opens node `node`'s data plane under [`DEFAULT_BPFFS`].
    pub fn open(node: &str) -> Result<Self, DatapathError> {
        Self::open_in(Path::new(DEFAULT_BPFFS), node)
    }

    /// Opens node `node`'s data plane under the bpffs mount `bpffs`.
    pub fn open_in(bpffs: &Path, node: &str) -> Result<Self, DatapathError> {
        let dir = node_dir(bpffs, node)?;
        ensure_bpffs(bpffs)?;
        for d in [&dir, &dir.join("links"), &dir.join("progs")] {
            fs::create_dir_all(d).map_err(|source| DatapathError::Io {
                action: "creating pin directory",
                path: d.clone(),
                source,
            })?;
        }
        // Two processes opening a fresh node at once (the agent and the CNI
        // plugin, or parallel ADDs) would both create and pin each map; the
        // loser's pin fails with EEXIST. An flock on the pin directory makes
        // the first creation exclusive; later opens reuse the pins.
        let lock = fs::File::open(&dir).map_err(|source| DatapathError::Io {
            action: "opening pin directory",
            path: dir.clone(),
            source,
        })?;
        lock.lock().map_err(|source| DatapathError::Io {
            action: "locking pin directory",
            path: dir.clone(),
            source,
        })?;
        // aya reuses a pinned map whatever its layout: compare every pin
        // with this version's definitions before anything is loaded or
        // replaced, and refuse rather than misread or recreate one.
        layout::check_pins(&dir)?;
        // One loader for both objects: creating one parses the kernel's BTF.
        let mut loader = EbpfLoader::new();
        loader.default_map_pin_directory(&dir);
        let mut load = |object: &'static str, bytes: &[u8]| {
            loader.load(bytes).map_err(|e| DatapathError::Load {
                object,
                source: Box::new(e),
            })
        };
        let mut tc = load("tc", objects::TC)?;
        let mut sock = load("sock", objects::SOCK)?;
        for (name, pin) in [
            ("from_pod", FROM_POD_PIN),
            ("to_pod", TO_POD_PIN),
            ("from_overlay", FROM_OVERLAY_PIN),
            ("from_underlay", FROM_UNDERLAY_PIN),
        ] {
            let prog = program::<SchedClassifier>(&mut tc, name)?;
            prog.load().map_err(|e| load_err(name, e))?;
            pin_program(prog, &dir.join(pin))?;
        }
        for name in objects::SOCK_PROGRAMS {
            program::<CgroupSockAddr>(&mut sock, name)?
                .load()
                .map_err(|e| load_err(name, e))?;
        }
        let maps = Maps::take(&mut tc)?;
        let pods = PodDatapath::from_pins(&dir)?;
        let overlay = Overlay::from_pins(&dir)?;
        let underlay = Underlay::from_pins(&dir)?;
        let dns = DnsFastPath::from_pins(&dir)?;
        let drops = Drops::from_pins(&dir)?;
        let flows = FlowEvents::from_pins(&dir)?;
        drop(lock);
        let (programmed, repair) =
            Programmed::from_maps(maps.services()?, maps.backends()?, |id| {
                maps.affinity_timeout(id)
            });
        let mut me = Self {
            dir,
            sock,
            maps,
            programmed,
            pods,
            overlay,
            underlay,
            dns,
            drops,
            flows,
        };
        if !repair.is_empty() {
            tracing::warn!(
                node,
                writes = repair.len(),
                "repairing leftovers of an interrupted update"
            );
            me.execute(&repair)?;
        }
        tracing::debug!(
            node,
            services = me.programmed.services().count(),
            "data plane opened"
        );
        Ok(me)
    }

    /// The node's pin directory.
    pub fn pin_dir(&self) -> &Path {
        &self.dir
    }

    /// The pod-facing part: `from_pod` on pod veths and the endpoint map.
    pub fn pods(&self) -> &PodDatapath {
        &self.pods
    }

    /// The pod-facing part, to attach pods and register endpoints.
    pub fn pods_mut(&mut self) -> &mut PodDatapath {
        &mut self.pods
    }

    /// The overlay part: the tunnel map and the VXLAN device.
    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// The overlay part, to set up the device and program tunnels.
    pub fn overlay_mut(&mut self) -> &mut Overlay {
        &mut self.overlay
    }

    /// The external-traffic part: `from_underlay` and the node's address.
    pub fn underlay(&self) -> &Underlay {
        &self.underlay
    }

    /// The external-traffic part, to attach the underlay interface.
    pub fn underlay_mut(&mut self) -> &mut Underlay {
        &mut self.underlay
    }

    /// The DNS fast path: its names, frontends and counters.
    pub fn dns(&self) -> &DnsFastPath {
        &self.dns
    }

    /// The DNS fast path, to program names and frontends.
    pub fn dns_mut(&mut self) -> &mut DnsFastPath {
        &mut self.dns
    }

    /// The flow events' knobs and counters.
    pub fn flow_events(&self) -> &FlowEvents {
        &self.flows
    }

    /// The flow events' knobs, to turn them on, off or sample them.
    pub fn flow_events_mut(&mut self) -> &mut FlowEvents {
        &mut self.flows
    }

    /// Attaches the socket programs to the cgroup directory `cgroup` (cgroup2),
    /// covering every process in its subtree. Idempotent.
    pub fn attach_cgroup(&mut self, cgroup: &Path) -> Result<Attached, DatapathError> {
        let links = self.dir.join("links");
        let mut outcome = Attached::Kept;
        for name in objects::SOCK_PROGRAMS {
            let pin = attach::cgroup_pin(&links, name, cgroup)?;
            let prog = program::<CgroupSockAddr>(&mut self.sock, name)?;
            if attach::cgroup(prog, name, cgroup, &pin)? == Attached::New {
                outcome = Attached::New;
            }
        }
        tracing::debug!(cgroup = %cgroup.display(), ?outcome, "socket programs attached");
        Ok(outcome)
    }

    /// Detaches the socket programs from `cgroup`. Returns whether they were attached.
    pub fn detach_cgroup(&mut self, cgroup: &Path) -> Result<bool, DatapathError> {
        let links = self.dir.join("links");
        let mut any = false;
        for name in objects::SOCK_PROGRAMS {
            any |= attach::remove_pin(&attach::cgroup_pin(&links, name, cgroup)?)?;
        }
        Ok(any)
    }

    /// Programs `svc`, adding it or replacing its backends. A reader of the
    /// maps never sees it half-written. Invalid input writes nothing.
    pub fn upsert_service(&mut self, svc: &Service) -> Result<(), DatapathError> {
        let ops = self.programmed.plan_upsert(svc)?;
        self.execute(&ops)
    }

    /// Removes a programmed service. Its established flows keep their backend
    /// until they end; new flows to the VIP are no longer balanced.
    pub fn remove_service(&mut self, frontend: &Frontend) -> Result<(), DatapathError> {
        let ops = self.programmed.plan_remove(frontend)?;
        self.execute(&ops)
    }

    /// Makes the programmed services exactly `desired`, writing only the
    /// difference. If any service is invalid, nothing is written.
    pub fn reconcile(&mut self, desired: &[Service]) -> Result<ReconcileSummary, DatapathError> {
        let (ops, summary) = self.programmed.plan_reconcile(desired)?;
        self.execute(&ops)?;
        Ok(summary)
    }

    /// The programmed services with their counters, ordered by frontend.
    pub fn services(&self) -> Result<Vec<ServiceStatus>, DatapathError> {
        self.programmed
            .services()
            .map(
                |(
                    frontend,
                    Entry {
                        id,
                        backends,
                        reach,
                    },
                )| {
                    Ok(ServiceStatus {
                        service: Service {
                            frontend,
                            backends,
                            reach,
                        },
                        id,
                        counters: self.counters_of(id)?,
                    })
                },
            )
            .collect()
    }

    /// The programmed frontends by service id (from the model: no map reads).
    pub fn frontends(&self) -> Vec<(u32, Frontend)> {
        self.programmed
            .services()
            .map(|(frontend, e)| (e.id, frontend))
            .collect()
    }

    /// New flows per backend of the service with id `id` and `count`
    /// backends, in slot order: each since its backend took the slot (tc
    /// and socket paths, ClientIP affinity included). One map read per
    /// backend: a view for operators, not for every metrics scrape.
    pub fn backend_new_flows(&self, id: u32, count: usize) -> Result<Vec<u64>, DatapathError> {
        (0..count as u32)
            .map(|slot| self.maps.backend_flows(id, slot))
            .collect()
    }

    /// One service's counters.
    pub fn service_counters(&self, frontend: &Frontend) -> Result<ServiceCounters, DatapathError> {
        let entry = self
            .programmed
            .get(frontend)
            .ok_or(crate::ServiceError::UnknownService {
                frontend: *frontend,
            })?;
        self.counters_of(entry.id)
    }

    /// Node-wide counters by name (packets, ct_hits, local_redirect, ...).
    pub fn node_counters(&self) -> Result<Vec<(&'static str, u64)>, DatapathError> {
        self.maps.global_stats()
    }

    /// Packets dropped (and connections refused) by reason, summed over CPUs.
    pub fn drop_counters(&self) -> Result<DropCounters, DatapathError> {
        self.drops.counters()
    }

    /// The tc conntrack table, decoded (for debugging; it can be large).
    pub fn conntrack(&self) -> Result<Vec<ConntrackEntry>, DatapathError> {
        let sa = |addr: u32, port: u16| {
            std::net::SocketAddrV4::new(Ipv4Addr::from(u32::from_be(addr)), u16::from_be(port))
        };
        Ok(self
            .maps
            .conntrack()?
            .into_iter()
            .map(|(k, v)| ConntrackEntry {
                src: sa(k.saddr, k.sport),
                dst: sa(k.daddr, k.dport),
                proto: k.proto,
                forward: v.dir == abi::CT_DIR_FORWARD,
                nat: sa(v.nat_addr, v.nat_port),
                closing: v.flags & abi::CT_FLAG_CLOSING != 0,
                external: v.flags & abi::CT_FLAG_EXTERNAL != 0,
                peer: (v.peer_addr != 0).then(|| sa(v.peer_addr, v.peer_port)),
            })
            .collect())
    }

    /// Removes node `node`'s whole data plane: unpins every link (detaching
    /// the programs) and every map. Drop any open [`Datapath`] of the node first.
    pub fn purge(bpffs: &Path, node: &str) -> Result<bool, DatapathError> {
        let dir = node_dir(bpffs, node)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(DatapathError::Io {
                action: "removing",
                path: dir,
                source,
            }),
        }
    }

    fn counters_of(&self, id: u32) -> Result<ServiceCounters, DatapathError> {
        let s = self.maps.svc_stats(id)?;
        Ok(ServiceCounters {
            tc_new_flows: s.tc_new_flows,
            sock_new_flows: s.sock_new_flows,
            rejected: s.rejected,
        })
    }

    /// Performs planned writes in order, recording each in the model as it
    /// lands, so the model equals the maps even when a write fails midway.
    fn execute(&mut self, ops: &[Op]) -> Result<(), DatapathError> {
        for op in ops {
            self.maps.write(op)?;
            self.programmed.apply(op);
        }
        Ok(())
    }
}

pub(crate) fn node_dir(bpffs: &Path, node: &str) -> Result<PathBuf, DatapathError> {
    let ok = !node.is_empty()
        && node.len() < 64
        && node != "."
        && node != ".."
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !ok {
        return Err(DatapathError::InvalidNodeName {
            name: node.to_owned(),
        });
    }
    Ok(bpffs.join("jotasu").join(node))
}

pub(crate) fn ensure_bpffs(bpffs: &Path) -> Result<(), DatapathError> {
    let c = std::ffi::CString::new(bpffs.as_os_str().as_encoded_bytes()).map_err(|_| {
        DatapathError::NotBpffs {
            path: bpffs.to_owned(),
        }
    })?;
    // SAFETY: statfs writes into a zeroed struct we own; c outlives the call.
    let magic = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        if libc::statfs(c.as_ptr(), &mut st) != 0 {
            return Err(DatapathError::Io {
                action: "statfs",
                path: bpffs.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        st.f_type
    };
    if magic as i64 != BPF_FS_MAGIC {
        return Err(DatapathError::NotBpffs {
            path: bpffs.to_owned(),
        });
    }
    Ok(())
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, DatapathError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    ebpf.program_mut(name)
        .and_then(|p| p.try_into().ok())
        .ok_or(DatapathError::Program {
            action: "finding",
            program: name,
            target: "the embedded object".to_owned(),
            source: Box::new(aya::programs::ProgramError::UnexpectedProgramType),
        })
}

/// Pins `prog` at `pin`, replacing what is there atomically (pin beside it,
/// then rename), so a concurrent [`PodDatapath`] open finds one or the other.
fn pin_program(prog: &mut SchedClassifier, pin: &Path) -> Result<(), DatapathError> {
    // bpffs refuses dots in names (EPERM): no `.new` suffix.
    let mut fresh = pin.as_os_str().to_owned();
    fresh.push("_new");
    let fresh = PathBuf::from(fresh);
    attach::remove_pin(&fresh)?;
    prog.pin(&fresh).map_err(|e| DatapathError::Link {
        action: "pinning program at",
        path: fresh.clone(),
        reason: e.to_string(),
    })?;
    fs::rename(&fresh, pin).map_err(|source| DatapathError::Io {
        action: "renaming program pin to",
        path: pin.to_owned(),
        source,
    })
}

fn load_err(program: &'static str, e: aya::programs::ProgramError) -> DatapathError {
    DatapathError::Program {
        action: "loading (verifier)",
        program,
        target: "the kernel".to_owned(),
        source: Box::new(e),
    }
}
