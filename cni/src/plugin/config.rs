//! The plugin's own network configuration (its keys beside the spec's).
//!
//! ```json
//! { "cniVersion": "1.1.0", "name": "pods", "type": "jotasu-cni",
//!   "node": "node-1", "bpffs": "/sys/fs/bpf", "mtu": 1450, "tcHook": "filter",
//!   "ipam": { "subnet": "10.244.1.0/24" },
//!   "capabilities": { "dns": true } }
//! ```
use std::{net::Ipv4Addr, path::PathBuf};

use ipnetwork::Ipv4Network;
use jotasu_ebpf::PodHook;

use serde::Deserialize;

use crate::spec::{CniError, Code, Dns, NetConf};

/// Leaves room for a VXLAN header (50 bytes) on a 1500-byte underlay.
pub const DEFAULT_MTU: u32 = 1450;
/// The link-local gateway every pod routes through; the node answers for it
/// with a permanent neighbour entry, so no address is spent on gateways.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pod's default route, through [`GATEWAY`].
pub const DEFAULT_ROUTE: Ipv4Network = match Ipv4Network::new_checked(Ipv4Addr::UNSPECIFIED, 0) {
    Some(n) => n,
    None => panic!("0.0.0.0/0 is a valid prefix"),
};
/// Prefix of host-side veth names (`jtc` + 12 hex digits).
pub const HOST_IF_PREFIX: &str = "jtc";

/// What the plugin reads from its config.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginConfig {
    /// The node's data-plane name: its maps are pinned under
    /// `<bpffs>/jotasu/<node>/`.
    pub node: String,
    /// The bpffs mount.
    #[serde(default = "default_bpffs")]
    pub bpffs: PathBuf,
    /// MTU of both ends of the veth.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// How `from_pod` is attached to the host veth: `filter` (default,
    /// fastest) or `tcx` (needed when a later plugin in the chain adds its
    /// own ingress qdisc, like `bandwidth` with egress shaping).
    #[serde(default, deserialize_with = "hook")]
    pub tc_hook: PodHook,
    /// IPAM: built in (`type` absent or `jotasu`) or a delegated plugin.
    pub ipam: serde_json::Value,
    /// Static DNS settings; `runtimeConfig.dns` overrides them.
    #[serde(default)]
    pub dns: Dns,
}

fn hook<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PodHook, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(|e: String| serde::de::Error::custom(format!("\"tcHook\": {e}")))
}

fn default_bpffs() -> PathBuf {
    PathBuf::from(jotasu_ebpf::DEFAULT_BPFFS)
}

/// `runtimeConfig.dns` as containerd's CRI passes it.
#[derive(Debug, Default, Deserialize)]
struct RuntimeDns {
    #[serde(default)]
    servers: Vec<String>,
    #[serde(default)]
    searches: Vec<String>,
    #[serde(default)]
    options: Vec<String>,
}

impl PluginConfig {
    /// Reads and checks the plugin's keys (code 7 on anything invalid).
    pub fn from_netconf(conf: &NetConf) -> Result<Self, CniError> {
        let me: Self = conf.typed()?;
        let bad = |msg: String| {
            Err(CniError::new(
                Code::InvalidConfig,
                format!("network {:?}: {msg}", conf.name),
            ))
        };
        if me.node.is_empty() || me.node.contains('/') || me.node.starts_with('.') {
            return bad(format!("\"node\" {:?} is not a node name", me.node));
        }
        if let Some(mtu) = me.mtu
            && !(576..=65_535).contains(&mtu)
        {
            return bad(format!("\"mtu\" {mtu} is out of range (576-65535)"));
        }
        if !me.ipam.is_object() {
            return bad(
                "\"ipam\" is required (an object, e.g. {\"subnet\": \"10.244.1.0/24\"})".into(),
            );
        }
        Ok(me)
    }

    /// The MTU to set.
    pub fn mtu(&self) -> u32 {
        self.mtu.unwrap_or(DEFAULT_MTU)
    }

    /// The DNS settings of the result: `runtimeConfig.dns` if given, else the static ones.
    pub fn dns(&self, conf: &NetConf) -> Result<Dns, CniError> {
        let Some(v) = conf.runtime_config("dns") else {
            return Ok(self.dns.clone());
        };
        let rt: RuntimeDns = serde_json::from_value(v.clone()).map_err(|e| {
            CniError::new(
                Code::InvalidConfig,
                format!("runtimeConfig.dns is invalid: {e}"),
            )
        })?;
        Ok(Dns {
            nameservers: rt.servers,
            domain: self.dns.domain.clone(),
            search: rt.searches,
            options: rt.options,
        })
    }
}

/// The host-side veth name of attachment (`container_id`, `ifname`):
/// `jtc` and 12 hex digits of a SHA-256 of both — deterministic, so DEL,
/// CHECK and GC find it with nothing but the attachment.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::new()
        .chain_update(container_id.as_bytes())
        .chain_update([0u8])
        .chain_update(ifname.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{HOST_IF_PREFIX}{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: serde_json::Value) -> NetConf {
        NetConf::parse(json.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn host_names_are_stable_short_and_distinct() {
        let a = host_ifname("abc", "eth0");
        assert_eq!(a, host_ifname("abc", "eth0"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with(HOST_IF_PREFIX));
        assert_ne!(a, host_ifname("abc", "eth1"));
        assert_ne!(a, host_ifname("abd", "eth0"));
        assert_ne!(host_ifname("ab", "ceth0"), host_ifname("abc", "eth0"));
    }

    #[test]
    fn reads_defaults_and_refuses_bad_values() {
        let base = serde_json::json!({"cniVersion":"1.0.0","name":"n","type":"jotasu-cni","node":"n1","ipam":{"subnet":"10.244.1.0/24"}});
        let c = PluginConfig::from_netconf(&conf(base.clone())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.mtu(), DEFAULT_MTU);
        assert_eq!(c.bpffs, PathBuf::from("/sys/fs/bpf"));
        for (k, v) in [
            ("mtu", serde_json::json!(100)),
            ("node", serde_json::json!("../x")),
            ("ipam", serde_json::json!(null)),
            ("mtu", serde_json::json!("big")),
        ] {
            let mut bad = base.clone();
            bad[k] = v;
            let e = PluginConfig::from_netconf(&conf(bad))
                .err()
                .unwrap_or_default();
            assert_eq!(e.code, Code::InvalidConfig, "{k}");
        }
    }

    #[test]
    fn runtime_dns_overrides_the_static_one() {
        let c = conf(
            serde_json::json!({"cniVersion":"1.0.0","name":"n","type":"t","node":"n1","ipam":{},
            "dns":{"nameservers":["1.1.1.1"],"domain":"cluster.local"},
            "runtimeConfig":{"dns":{"servers":["10.96.0.10"],"searches":["default.svc.cluster.local"],"options":["ndots:5"]}}}),
        );
        let p = PluginConfig::from_netconf(&c).unwrap_or_else(|e| panic!("{e}"));
        let d = p.dns(&c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.nameservers, ["10.96.0.10"]);
        assert_eq!(d.domain, "cluster.local");
        assert_eq!(d.options, ["ndots:5"]);
    }
}
