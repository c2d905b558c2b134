//! The `jotasu-cni` plugin: what each CNI verb does to the kernel, the
//! address pool and the node's data plane.
//!
//! The pod gets `eth0` (`CNI_IFNAME`) with its address as a /32 and a default
//! route through the link-local gateway 169.254.1.1, which the node answers
//! with a permanent neighbour entry; the node gets the host end `jtc…`, a
//! /32 route back, the `from_pod` tc program and an endpoint map entry.
mod add;
mod check;
pub mod config;
mod del;
mod gc;
pub mod netlink;
mod pool;

use std::path::Path;

use jotasu_ebpf::PodDatapath;

pub use self::config::{DEFAULT_MTU, GATEWAY, PluginConfig, host_ifname};
use self::pool::Pool;
use crate::spec::{CniError, Code, Command, Invocation, NetConf, SUPPORTED_VERSIONS, Version};

/// One invocation's inputs.
#[derive(Debug)]
pub struct Ctx<'a> {
    inv: &'a Invocation,
    conf: NetConf,
    cfg: PluginConfig,
    stdin: &'a [u8],
}

impl Ctx<'_> {
    fn netns(&self) -> Result<&Path, CniError> {
        self.inv.netns.as_deref().ok_or_else(|| {
            CniError::new(
                Code::InvalidEnvironment,
                format!("CNI_NETNS is required for {}", self.inv.command.as_str()),
            )
        })
    }

    fn pool(&self) -> Result<Pool, CniError> {
        Pool::new(&self.conf)
    }

    fn datapath(&self) -> Result<PodDatapath, CniError> {
        PodDatapath::open_in(&self.cfg.bpffs, &self.cfg.node).map_err(|e| {
            CniError::new(
                Code::Datapath,
                format!(
                    "opening the data plane of node {:?} under {} (is bpffs mounted and the node name right?)",
                    self.cfg.node,
                    self.cfg.bpffs.display()
                ),
            )
            .with_details(e)
        })
    }
}

/// Maps a data-plane failure on interface `ifname` to error 101 (the
/// error's own text carries its sources: aya's OS errors included).
fn datapath_err(ifname: &str) -> impl FnOnce(jotasu_ebpf::DatapathError) -> CniError + '_ {
    move |e| {
        CniError::new(Code::Datapath, format!("data plane of interface {ifname}")).with_details(e)
    }
}

/// Runs one invocation with `stdin` as its config, returning the JSON to
/// print, if any. The error carries the version to report it in (the
/// config's, once it has been read).
pub fn run(inv: &Invocation, stdin: &[u8]) -> Result<Option<String>, (CniError, Version)> {
    if inv.command == Command::Version {
        return Ok(Some(version_json(stdin)));
    }
    let conf = NetConf::parse(stdin).map_err(|e| (e, Version::LATEST))?;
    let version = conf.version;
    let fail = |e: CniError| (e, version);
    if matches!(inv.command, Command::Status | Command::Gc) && !version.has_status_and_gc() {
        return Err(fail(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "{} needs cniVersion 1.1.0; the config says {version}",
                inv.command.as_str()
            ),
        )));
    }
    let cfg = PluginConfig::from_netconf(&conf).map_err(fail)?;
    let ctx = Ctx {
        inv,
        conf,
        cfg,
        stdin,
    };
    let stdout = match inv.command {
        Command::Add => Some(add::add(&ctx).map_err(fail)?.to_value(version).to_string()),
        Command::Del => {
            del::del(&ctx).map_err(fail)?;
            None
        }
        Command::Check => {
            check::check(&ctx).map_err(fail)?;
            None
        }
        Command::Gc => {
            gc::gc(&ctx).map_err(fail)?;
            None
        }
        Command::Status => {
            gc::status(&ctx).map_err(fail)?;
            None
        }
        Command::Version => None,
    };
    Ok(stdout)
}

/// VERSION's answer, in the version asked for when it is supported.
fn version_json(stdin: &[u8]) -> String {
    let asked = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(|s| s.as_str())
                .and_then(|s| Version::parse(s).ok())
        })
        .unwrap_or(Version::LATEST);
    serde_json::json!({"cniVersion": asked.as_str(), "supportedVersions": SUPPORTED_VERSIONS})
        .to_string()
}
