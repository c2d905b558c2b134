//! Where a pod's address comes from: the built-in allocator, or a standard
//! IPAM plugin found in `CNI_PATH` (delegated exactly as the reference
//! plugins delegate, with this plugin's whole config on stdin).
use std::net::Ipv4Addr;

use crate::{
    exec::PluginEnv,
    ipam::{self, Allocator, IpamConfig},
    spec::{CniError, CniResult, Code, Command, Invocation, NetConf},
};

/// The address source of one network.
#[derive(Debug)]
pub enum Pool {
    /// jotasu's own allocator.
    Builtin(Allocator),
    /// A delegated IPAM plugin, by type.
    Delegated(String),
}

impl Pool {
    /// The pool the `ipam` object of `conf` describes.
    pub fn new(conf: &NetConf) -> Result<Self, CniError> {
        let cfg = IpamConfig::from_netconf(conf)?;
        if !cfg.is_builtin() {
            return Ok(Self::Delegated(cfg.plugin_type().to_owned()));
        }
        let range = cfg.validate()?;
        Ok(Self::Builtin(Allocator::open(
            cfg.data_dir(),
            &conf.name,
            range,
        )?))
    }

    /// An address for the attachment (the same one again on a repeated ADD
    /// with the built-in allocator).
    pub fn assign(&self, inv: &Invocation, stdin: &[u8]) -> Result<Ipv4Addr, CniError> {
        match self {
            Self::Builtin(a) => a.allocate(&inv.container_id, &inv.ifname),
            Self::Delegated(t) => {
                let r = delegate(Command::Add, t, inv, stdin)?.unwrap_or_default();
                r.ipv4().ok_or_else(|| {
                    CniError::new(
                        Code::Delegate,
                        format!("IPAM plugin {t:?} returned no IPv4 address"),
                    )
                })
            }
        }
    }

    /// Releases the attachment's address; nothing to release is success.
    pub fn release(&self, inv: &Invocation, stdin: &[u8]) -> Result<Vec<Ipv4Addr>, CniError> {
        match self {
            Self::Builtin(a) => a.release(&inv.container_id, &inv.ifname),
            Self::Delegated(t) => delegate(Command::Del, t, inv, stdin).map(|_| Vec::new()),
        }
    }

    /// The attachment's address as the pool records it, if it can tell.
    pub fn recorded(&self, inv: &Invocation) -> Result<Option<Ipv4Addr>, CniError> {
        match self {
            Self::Builtin(a) => a.lookup(&inv.container_id, &inv.ifname),
            Self::Delegated(_) => Ok(None),
        }
    }
}

fn delegate(
    command: Command,
    plugin_type: &str,
    inv: &Invocation,
    stdin: &[u8],
) -> Result<Option<CniResult>, CniError> {
    let env = PluginEnv {
        container_id: &inv.container_id,
        netns: inv.netns.as_deref(),
        ifname: &inv.ifname,
        args: &inv.args.raw,
        path: &inv.path,
    };
    ipam::delegate(command, plugin_type, stdin, &env)
}
