//! The CNI runtime library: the part of libcni jotasu needs to run a
//! plugin chain (a conflist) for a pod, so that jotasu-cni and the
//! reference plugins (bridge, portmap, bandwidth, tuning, …) chain as they
//! do under containerd.
//!
//! - [`Runtime::add`], [`Runtime::check`], [`Runtime::del`]: one
//!   attachment, plugins in order (DEL in reverse), `prevResult` chained.
//! - [`Runtime::gc`], [`Runtime::status`]: the CNI 1.1 verbs for a whole
//!   network; [`Runtime::plugin_versions`]: VERSION.
//! - The result cache (`<cache_dir>/results/<net>-<cid>-<ifname>`, in
//!   libcni's `cniCacheV1` format): what ADD returned, handed to CHECK and
//!   DEL as `prevResult` and listed for GC ([`CachedAttachment`]).
//!
//! Calls block while plugins run; an async caller runs them on a blocking
//! thread.
mod cache;
mod chain;
#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use cache::CachedAttachment;
pub use chain::VALID_ATTACHMENTS;

use crate::spec::{
    CniError, Code, NetConfList, valid_name, validate_container_id, validate_ifname,
};

/// libcni's default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";

/// One attachment of a container to a network: what ADD, CHECK and DEL
/// are asked about (libcni's `RuntimeConf`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attachment {
    /// `CNI_CONTAINERID`: letters, digits, `_`, `.` and `-`, starting with a
    /// letter or digit.
    pub container_id: String,
    /// `CNI_NETNS`: the network namespace, e.g. `/run/netns/NAME`; empty
    /// when it is gone (DEL of a dead pod), in which case `CNI_NETNS` is unset.
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface inside the container (at most 15 bytes).
    pub ifname: String,
    /// `CNI_ARGS`, in order; passed as `K=V;K=V`.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `bandwidth`, `dns`, …), given
    /// as `runtimeConfig` to the plugins that declare the capability.
    pub capability_args: Map<String, Value>,
}

impl Attachment {
    /// `CNI_ARGS` as the plugins receive it: `K=V;K=V`.
    pub fn cni_args(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// `CNI_NETNS`, unless empty.
    fn netns_env(&self) -> Option<&Path> {
        Some(self.netns.as_path()).filter(|p| !p.as_os_str().is_empty())
    }

    /// Checks the container id and interface name as libcni does; they
    /// also name the cache file, so nothing may escape its directory.
    fn validate(&self, network: &str) -> Result<(), CniError> {
        validate_network(network)?;
        if self.container_id.is_empty() {
            return Err(CniError::new(
                Code::UnknownContainer,
                "missing container id",
            ));
        }
        validate_container_id(&self.container_id)?;
        validate_ifname(&self.ifname)
    }
}

fn validate_network(network: &str) -> Result<(), CniError> {
    if valid_name(network) {
        return Ok(());
    }
    Err(CniError::new(
        Code::InvalidConfig,
        format!(
            "invalid network name {network:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        ),
    ))
}

/// A CNI runtime: where plugins are found and where results are cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// `CNI_PATH`: directories searched for plugin binaries, in order.
    pub path: Vec<PathBuf>,
    /// The cache directory; results live in its `results/` subdirectory
    /// ([`DEFAULT_CACHE_DIR`] is libcni's).
    pub cache_dir: PathBuf,
}

impl Runtime {
    /// A runtime searching `path` for plugins and caching in `cache_dir`.
    pub fn new(path: Vec<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            path,
            cache_dir: cache_dir.into(),
        }
    }

    /// Reads and parses a conflist file. A read failure is [`Code::Io`]
    /// naming the file; a parse failure keeps its code, the file named.
    pub fn load_conflist(path: &Path) -> Result<NetConfList, CniError> {
        let bytes = std::fs::read(path).map_err(|e| {
            CniError::new(
                Code::Io,
                format!("reading network configuration list {}", path.display()),
            )
            .with_details(e)
        })?;
        NetConfList::parse(&bytes).map_err(|mut e| {
            e.msg = format!("{}: {}", path.display(), e.msg);
            e
        })
    }
}

/// One error from several (teardown carries on and reports them all): the
/// first one's code, every message with its code.
fn join_errors(mut errs: Vec<CniError>) -> Result<(), CniError> {
    if errs.len() <= 1 {
        return errs.pop().map_or(Ok(()), Err);
    }
    let msg = errs
        .iter()
        .map(|e| {
            let details = if e.details.is_empty() {
                String::new()
            } else {
                format!(" ({})", e.details)
            };
            format!("{}{details} [code {}]", e.msg, e.code.number())
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(CniError::new(
        errs[0].code,
        format!("{} failures: {msg}", errs.len()),
    ))
}
