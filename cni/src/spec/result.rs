//! The success result of ADD (and the `prevResult` of chained plugins).
//! One model for every supported version: 0.4.0 differs only in the
//! `"version"` field of each IP, added on output and ignored on input.
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::{CniError, Code, Version};

/// An ADD result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// The version this result was written in (set on output).
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Interfaces created: host side (no sandbox) and container side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes added in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings for the container.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

/// An interface of the result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MAC, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Its MTU, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The network namespace path for a container interface; empty on the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An address of the result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length, e.g. `10.244.0.5/32`.
    pub address: IpNetwork,
    /// The gateway the container routes through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces` of the interface that carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route of the result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNetwork,
    /// Next hop; the default gateway if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// The result as JSON for `version` (0.4.0 adds each IP's `"version"`).
    pub fn to_value(&self, version: Version) -> serde_json::Value {
        let mut me = self.clone();
        me.cni_version = version.as_str().to_owned();
        let mut v = serde_json::to_value(&me).unwrap_or_default();
        if version == Version::V0_4_0
            && let Some(ips) = v.get_mut("ips").and_then(|i| i.as_array_mut())
        {
            for (ip, cfg) in ips.iter_mut().zip(&self.ips) {
                let fam = if cfg.address.is_ipv4() { "4" } else { "6" };
                ip["version"] = serde_json::Value::from(fam);
            }
        }
        v
    }

    /// Reads a result (any supported version) from JSON.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, CniError> {
        let r: Self = serde_json::from_value(v.clone()).map_err(|e| {
            CniError::new(Code::Decode, "the result (prevResult) is not a CNI result")
                .with_details(e)
        })?;
        if !r.cni_version.is_empty() {
            Version::parse(&r.cni_version)?;
        }
        Ok(r)
    }

    /// The first IPv4 address.
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.ips.iter().find_map(|i| match i.address {
            IpNetwork::V4(n) => Some(n.ip()),
            IpNetwork::V6(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            cni_version: String::new(),
            interfaces: vec![
                Interface {
                    name: "jt0123".into(),
                    mac: "02:00:00:00:00:01".into(),
                    mtu: Some(1450),
                    sandbox: String::new(),
                },
                Interface {
                    name: "eth0".into(),
                    mac: "02:00:00:00:00:02".into(),
                    mtu: Some(1450),
                    sandbox: "/run/netns/x".into(),
                },
            ],
            ips: vec![IpConfig {
                address: "10.244.0.5/32".parse().unwrap_or_else(|_| unreachable!()),
                gateway: Some("169.254.1.1".parse().unwrap_or_else(|_| unreachable!())),
                interface: Some(1),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap_or_else(|_| unreachable!()),
                gw: None,
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn writes_each_version_and_reads_it_back() {
        let r = sample();
        let v04 = r.to_value(Version::V0_4_0);
        assert_eq!(v04["ips"][0]["version"], "4");
        assert_eq!(v04["cniVersion"], "0.4.0");
        let v11 = r.to_value(Version::V1_1_0);
        assert!(v11["ips"][0].get("version").is_none());
        assert!(v11.get("dns").is_none());
        for v in [v04, v11] {
            let back = CniResult::from_value(&v).map(|mut b| {
                b.cni_version.clear();
                b
            });
            assert_eq!(back, Ok(r.clone()));
        }
    }

    #[test]
    fn a_result_of_an_unknown_version_or_shape_is_refused() {
        let bad = serde_json::json!({"cniVersion": "0.2.0", "ips": []});
        assert_eq!(
            CniResult::from_value(&bad).map_err(|e| e.code),
            Err(Code::IncompatibleVersion)
        );
        let bad = serde_json::json!({"ips": [{"address": "nope"}]});
        assert_eq!(
            CniResult::from_value(&bad).map_err(|e| e.code),
            Err(Code::Decode)
        );
    }
}
