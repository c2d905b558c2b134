//! Errors of the data plane API: what failed, on which object, what to do.
use std::{io, net::SocketAddrV4, path::PathBuf};

use crate::service::Frontend;

/// A service the data plane cannot take, or a request about one it does not hold.
/// Nothing is written when one of these is returned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceError {
    /// Port 0 is not a service port.
    #[error("service {frontend}: port 0 is not a valid service port")]
    ZeroPort {
        /// The offending service.
        frontend: Frontend,
    },
    /// 0.0.0.0 and 255.255.255.255 are not service addresses.
    #[error("service {frontend}: {} is not a valid virtual IP", frontend.vip)]
    InvalidVip {
        /// The offending service.
        frontend: Frontend,
    },
    /// Source NAT is for clients from outside the cluster only.
    #[error(
        "service {frontend}: source NAT applies to external frontends only; mark it external or drop snat"
    )]
    SnatWithoutExternal {
        /// The offending service.
        frontend: Frontend,
    },
    /// A backend with port 0 or address 0.0.0.0.
    #[error("service {frontend}: backend {backend} is not a valid address and port")]
    InvalidBackend {
        /// The offending service.
        frontend: Frontend,
        /// The offending backend.
        backend: SocketAddrV4,
    },
    /// More backends than one service may have.
    #[error("service {frontend}: {count} backends given, at most {max} are supported")]
    TooManyBackends {
        /// The offending service.
        frontend: Frontend,
        /// Backends given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One backend listed twice.
    #[error("service {frontend}: backend {backend} is listed twice")]
    DuplicateBackend {
        /// The offending service.
        frontend: Frontend,
        /// The repeated backend.
        backend: SocketAddrV4,
    },
    /// One frontend listed twice in a desired set.
    #[error("service {frontend} is listed twice in the desired set")]
    DuplicateService {
        /// The repeated frontend.
        frontend: Frontend,
    },
    /// Removing a service that is not programmed.
    #[error("service {frontend} is not programmed on this node")]
    UnknownService {
        /// The frontend asked for.
        frontend: Frontend,
    },
    /// The change does not fit in a map.
    #[error("the {map} map would be full ({capacity} entries): remove services or backends first")]
    MapFull {
        /// The map that would overflow.
        map: &'static str,
        /// Its capacity.
        capacity: u32,
    },
}

/// Any failure of [`crate::Datapath`].
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The request was invalid; nothing was written.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The node name cannot name a bpffs directory.
    #[error("node name {name:?} is invalid: use 1-63 characters of [a-zA-Z0-9._-]")]
    InvalidNodeName {
        /// The name given.
        name: String,
    },
    /// The bpffs root is not a BPF filesystem.
    #[error("{path} is not on a BPF filesystem: mount it with `mount -t bpf bpf /sys/fs/bpf`")]
    NotBpffs {
        /// The directory checked.
        path: PathBuf,
    },
    /// A filesystem operation on a pin directory or cgroup failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Loading an eBPF object (verifier, map creation or pin reuse) failed.
    #[error("loading the {object} eBPF object: {} (are you root, with bpffs mounted?)", chain(source.as_ref()))]
    Load {
        /// `from_pod` or `sock`.
        object: &'static str,
        /// aya's error, with the verifier log if the verifier refused.
        source: Box<aya::EbpfError>,
    },
    /// Loading or attaching a program failed.
    #[error("{action} program {program} on {target}: {}", chain(source.as_ref()))]
    Program {
        /// What was being done.
        action: &'static str,
        /// The program's name.
        program: &'static str,
        /// An interface or cgroup.
        target: String,
        /// aya's error.
        source: Box<aya::programs::ProgramError>,
    },
    /// Pinning or opening a pinned link failed.
    #[error("{action} link pin {path}: {reason}")]
    Link {
        /// What was being done.
        action: &'static str,
        /// The pin.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A map read or write failed.
    #[error("{op} on map {map}: {}", chain(source.as_ref()))]
    Map {
        /// Which operation.
        op: &'static str,
        /// Which map.
        map: &'static str,
        /// aya's error.
        source: Box<aya::maps::MapError>,
    },
    /// More DNS frontends than the map holds.
    #[error("{count} DNS frontends given; the fast path holds at most {max}")]
    TooManyDnsFrontends {
        /// How many were given.
        count: usize,
        /// The map's size.
        max: usize,
    },
    /// A map the object should define is missing or of another type.
    #[error("map {map} is missing from the eBPF object or has an unexpected type")]
    MissingMap {
        /// Which map.
        map: &'static str,
    },
    /// Maps pinned by an earlier version have another layout than this
    /// version's objects define; nothing was loaded, pinned or replaced.
    #[error(
        "refusing to open the data plane pinned in {}: {}. {}",
        dir.display(),
        mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        crate::layout::remedy(dir)
    )]
    MapLayoutChanged {
        /// The node's pin directory.
        dir: PathBuf,
        /// Every pinned map that differs, by name.
        mismatches: Vec<crate::layout::LayoutMismatch>,
    },
    /// A pinned map's layout (or the embedded objects' definitions) could not be read.
    #[error("reading the map layout of {path}: {reason}")]
    MapLayoutUnreadable {
        /// The pin (or the objects).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An interface name that does not exist in the caller's network namespace.
    #[error("interface {name:?} not found in this network namespace")]
    NoSuchInterface {
        /// The name given.
        name: String,
    },
}

/// An error and its sources on one line: aya's errors put the OS error in
/// `source()`, which a plain Display would drop.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
