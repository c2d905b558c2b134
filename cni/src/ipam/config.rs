//! [`IpamConfig`]: the `"ipam"` object of the plugin's network config, and
//! its validation into the [`Range`] the built-in allocator hands out.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use ipnetwork::Ipv4Network;
use serde::Deserialize;

use super::Range;
use crate::spec::{CniError, Code, NetConf};

/// Where the built-in allocator keeps its state when `dataDir` is absent.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/jotasu/cni/ipam";

/// The `type` naming the built-in allocator (as does an absent `type`).
pub const BUILTIN_TYPE: &str = "jotasu";

/// The `"ipam"` object. Unknown keys are accepted: a delegated plugin
/// (`host-local`...) reads keys of its own from the same object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConfig {
    /// `type`: absent or `"jotasu"` for the built-in allocator, else the
    /// IPAM plugin to delegate to.
    #[serde(rename = "type", default)]
    pub ipam_type: Option<String>,
    /// `subnet`, e.g. `10.244.0.0/24`: required by the built-in allocator
    /// (a delegated plugin may describe its addresses otherwise, e.g.
    /// host-local's `ranges`).
    #[serde(default)]
    pub subnet: Option<Ipv4Network>,
    /// `rangeStart`: the first address handed out.
    #[serde(default)]
    pub range_start: Option<Ipv4Addr>,
    /// `rangeEnd`: the last address handed out.
    #[serde(default)]
    pub range_end: Option<Ipv4Addr>,
    /// `dataDir`: where allocations are stored ([`DEFAULT_DATA_DIR`]).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
}

fn invalid(msg: String) -> CniError {
    CniError::new(Code::InvalidConfig, msg)
}

impl IpamConfig {
    /// The `"ipam"` object of `conf` (code 7 when absent or malformed).
    pub fn from_netconf(conf: &NetConf) -> Result<Self, CniError> {
        let ipam = conf.raw.get("ipam").ok_or_else(|| {
            invalid(format!(
                "network {:?}: \"ipam\" is required (at least {{\"subnet\": \"10.244.0.0/24\"}})",
                conf.name
            ))
        })?;
        Self::deserialize(ipam)
            .map_err(|e| invalid(format!("network {:?}: invalid \"ipam\": {e}", conf.name)))
    }

    /// Whether the built-in allocator serves this network.
    pub fn is_builtin(&self) -> bool {
        self.ipam_type.as_deref().is_none_or(|t| t == BUILTIN_TYPE)
    }

    /// The IPAM plugin's type: `ipam.type`, or [`BUILTIN_TYPE`] when absent.
    pub fn plugin_type(&self) -> &str {
        self.ipam_type.as_deref().unwrap_or(BUILTIN_TYPE)
    }

    /// `dataDir`, or [`DEFAULT_DATA_DIR`].
    pub fn data_dir(&self) -> &Path {
        self.data_dir
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_DATA_DIR))
    }

    /// The addresses the built-in allocator hands out. By default the
    /// subnet's hosts except the first (the node's own, e.g. `.1` of a
    /// /24); never the network or the broadcast address. Code 7, naming
    /// the field and its value, when `subnet` is absent, its prefix is not
    /// within /8../30, or the range is outside the subnet's hosts or
    /// reversed.
    pub fn validate(&self) -> Result<Range, CniError> {
        if !self.is_builtin() {
            return Err(invalid(format!(
                "ipam.type {:?} is a delegated plugin; only the built-in allocator ({BUILTIN_TYPE:?}) has a range",
                self.plugin_type()
            )));
        }
        let subnet = self
            .subnet
            .ok_or_else(|| invalid("ipam.subnet is required, e.g. \"10.244.0.0/24\"".to_owned()))?;
        if !(8..=30).contains(&subnet.prefix()) {
            return Err(invalid(format!(
                "ipam.subnet {subnet}: the prefix length must be between /8 and /30"
            )));
        }
        let (net, bcast) = (subnet.network().to_bits(), subnet.broadcast().to_bits());
        // First and last host; prefix <= 30 keeps both in the subnet.
        let (first_host, last_host) =
            (Ipv4Addr::from_bits(net + 1), Ipv4Addr::from_bits(bcast - 1));
        let hosts = |field: &str, ip: Ipv4Addr| {
            if first_host <= ip && ip <= last_host {
                Ok(ip)
            } else {
                Err(invalid(format!(
                    "ipam.{field} {ip} is outside the hosts of ipam.subnet {subnet} ({first_host}-{last_host})"
                )))
            }
        };
        let start = match self.range_start {
            Some(ip) => hosts("rangeStart", ip)?,
            None => Ipv4Addr::from_bits(net + 2),
        };
        let end = match self.range_end {
            Some(ip) => hosts("rangeEnd", ip)?,
            None => last_host,
        };
        Range::new(start, end).ok_or_else(|| {
            invalid(format!(
                "ipam.rangeStart {start} is after ipam.rangeEnd {end} (subnet {subnet})"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(ipam: serde_json::Value) -> IpamConfig {
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": "pods", "type": "jotasu-cni", "ipam": ipam});
        let conf = NetConf::parse(conf.to_string().as_bytes()).unwrap();
        IpamConfig::from_netconf(&conf).unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn error(ipam: serde_json::Value) -> String {
        let e = parse(ipam).validate().unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig, "{e}");
        e.msg
    }

    #[test]
    fn defaults_to_the_hosts_after_the_nodes_own() {
        let c = parse(serde_json::json!({"subnet": "10.244.0.0/24", "routes": [], "other": 1}));
        assert!(c.is_builtin());
        assert_eq!(c.plugin_type(), BUILTIN_TYPE);
        assert_eq!(c.data_dir(), Path::new(DEFAULT_DATA_DIR));
        let r = c.validate().unwrap();
        assert_eq!(
            (r.start(), r.end(), r.len()),
            (ip("10.244.0.2"), ip("10.244.0.254"), 253)
        );
        let r = parse(serde_json::json!({"subnet": "10.0.0.0/30"}))
            .validate()
            .unwrap();
        assert_eq!((r.start(), r.end()), (ip("10.0.0.2"), ip("10.0.0.2")));
        // Host bits in the subnet are ignored, as host-local does.
        let r = parse(serde_json::json!({"subnet": "10.1.2.3/16"}))
            .validate()
            .unwrap();
        assert_eq!((r.start(), r.end()), (ip("10.1.0.2"), ip("10.1.255.254")));
    }

    #[test]
    fn reads_an_explicit_range_type_and_data_dir() {
        let c = parse(serde_json::json!({
            "type": "jotasu", "subnet": "10.244.1.0/24", "rangeStart": "10.244.1.100",
            "rangeEnd": "10.244.1.199", "dataDir": "/tmp/ipam"
        }));
        assert!(c.is_builtin());
        assert_eq!(c.data_dir(), Path::new("/tmp/ipam"));
        let r = c.validate().unwrap();
        assert_eq!(
            (r.start(), r.end(), r.len()),
            (ip("10.244.1.100"), ip("10.244.1.199"), 100)
        );
        let only_end =
            parse(serde_json::json!({"subnet": "10.244.1.0/24", "rangeEnd": "10.244.1.9"}));
        assert_eq!(only_end.validate().unwrap().len(), 8);
    }

    #[test]
    fn a_delegated_type_needs_no_subnet() {
        let c = parse(
            serde_json::json!({"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]]}),
        );
        assert!(!c.is_builtin());
        assert_eq!(c.plugin_type(), "host-local");
        assert!(error(serde_json::json!({"type": "host-local"})).contains("host-local"));
    }

    #[test]
    fn names_the_field_and_value_of_an_invalid_config() {
        let m = error(serde_json::json!({}));
        assert!(m.contains("ipam.subnet is required"), "{m}");
        let m = error(serde_json::json!({"subnet": "10.0.0.0/31"}));
        assert!(m.contains("ipam.subnet 10.0.0.0/31"), "{m}");
        let m = error(serde_json::json!({"subnet": "10.0.0.0/7"}));
        assert!(m.contains("ipam.subnet 10.0.0.0/7"), "{m}");
        let m = error(serde_json::json!({"subnet": "10.244.0.0/24", "rangeStart": "10.245.0.5"}));
        assert!(
            m.contains("ipam.rangeStart 10.245.0.5") && m.contains("10.244.0.0/24"),
            "{m}"
        );
        let m = error(serde_json::json!({"subnet": "10.244.0.0/24", "rangeEnd": "10.244.0.255"}));
        assert!(m.contains("ipam.rangeEnd 10.244.0.255"), "{m}");
        let m = error(serde_json::json!({"subnet": "10.244.0.0/24", "rangeStart": "10.244.0.0"}));
        assert!(m.contains("ipam.rangeStart 10.244.0.0"), "{m}");
        let m = error(serde_json::json!({
            "subnet": "10.244.0.0/24", "rangeStart": "10.244.0.200", "rangeEnd": "10.244.0.100"
        }));
        assert!(
            m.contains("10.244.0.200 is after ipam.rangeEnd 10.244.0.100"),
            "{m}"
        );
    }

    #[test]
    fn a_missing_or_malformed_ipam_object_is_invalid_config() {
        let conf = |ipam: Option<serde_json::Value>| {
            let mut v =
                serde_json::json!({"cniVersion": "1.0.0", "name": "pods", "type": "jotasu-cni"});
            if let Some(i) = ipam {
                v["ipam"] = i;
            }
            NetConf::parse(v.to_string().as_bytes()).unwrap()
        };
        for ipam in [
            None,
            Some(serde_json::json!({"subnet": "nope"})),
            Some(serde_json::json!(3)),
        ] {
            let e = IpamConfig::from_netconf(&conf(ipam.clone())).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{ipam:?}: {e}");
            assert!(e.msg.contains("\"pods\""), "{e}");
        }
    }
}
