//! The node's CNI network: the conflist the agent writes from its pod CIDR
//! (`jotasu-cni`, built-in IPAM over the node's /24), and ADD / DEL of one
//! pod through the CNI runtime library, on a blocking thread (plugins run
//! as processes).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnetwork::Ipv4Network;
use jotasu_cni::runtime::{Attachment, Runtime};
use jotasu_cni::spec::{CniError, NetConfList};
use serde_json::json;

/// The network's name in the conflist.
pub const NETWORK: &str = "jotasu";
/// The pod's interface.
pub const IFNAME: &str = "eth0";

/// A pod network problem.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The conflist could not be written.
    #[error("writing the CNI configuration {path}: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A plugin failed.
    #[error("CNI {verb} for pod {pod}: {source}")]
    Plugin {
        /// ADD or DEL.
        verb: &'static str,
        /// namespace/name.
        pod: String,
        /// The plugin's error.
        source: CniError,
    },
    /// ADD gave no IPv4 address.
    #[error("CNI ADD for pod {pod} returned no IPv4 address")]
    NoAddress {
        /// namespace/name.
        pod: String,
    },
}

/// The node's pod network.
#[derive(Debug, Clone)]
pub struct CniNetwork {
    runtime: Runtime,
    list: NetConfList,
}

/// Who a pod attachment is for.
#[derive(Debug, Clone)]
pub struct PodAttachment<'a> {
    /// The pod's uid (the attachment's container id).
    pub uid: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its network namespace (empty when gone).
    pub netns: &'a Path,
}

impl PodAttachment<'_> {
    fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.uid.to_owned(),
            netns: self.netns.to_owned(),
            ifname: IFNAME.to_owned(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), self.namespace.to_owned()),
                ("K8S_POD_NAME".into(), self.name.to_owned()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), self.uid.to_owned()),
                ("K8S_POD_UID".into(), self.uid.to_owned()),
            ],
            capability_args: serde_json::Map::new(),
        }
    }

    fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What the conflist says.
#[derive(Debug, Clone)]
pub struct NetworkSettings<'a> {
    /// The node's data-plane name.
    pub node: &'a str,
    /// The node's pod CIDR.
    pub subnet: Ipv4Network,
    /// The bpffs mount.
    pub bpffs: &'a Path,
    /// Pod interface MTU.
    pub mtu: u32,
    /// Where IPAM records allocations.
    pub ipam_dir: &'a Path,
}

/// The conflist for a node.
pub fn conflist(s: &NetworkSettings<'_>) -> serde_json::Value {
    json!({
        "cniVersion": "1.1.0",
        "name": NETWORK,
        "plugins": [{
            "type": "jotasu-cni",
            "node": s.node,
            "bpffs": s.bpffs,
            "mtu": s.mtu,
            "ipam": { "subnet": s.subnet.to_string(), "dataDir": s.ipam_dir },
        }],
    })
}

impl CniNetwork {
    /// Writes the conflist to `path` and prepares the runtime.
    pub fn write(
        path: &Path,
        settings: &NetworkSettings<'_>,
        cni_path: Vec<PathBuf>,
        cache_dir: &Path,
    ) -> Result<Self, NetworkError> {
        let err = |source| NetworkError::Config {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let text = serde_json::to_vec_pretty(&conflist(settings)).map_err(|e| err(e.into()))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)?;
        let list = Runtime::load_conflist(path).map_err(|e| NetworkError::Config {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Self {
            runtime: Runtime::new(cni_path, cache_dir),
            list,
        })
    }

    /// ADD: the pod's interface; returns its address.
    pub async fn add(&self, pod: &PodAttachment<'_>) -> Result<Ipv4Addr, NetworkError> {
        let (runtime, list, att, label) = (
            self.runtime.clone(),
            self.list.clone(),
            pod.attachment(),
            pod.label(),
        );
        let result = tokio::task::spawn_blocking(move || runtime.add(&list, &att))
            .await
            .map_err(|e| NetworkError::Plugin {
                verb: "ADD",
                pod: label.clone(),
                source: CniError::new(jotasu_cni::spec::Code::Io, e.to_string()),
            })?
            .map_err(|source| NetworkError::Plugin {
                verb: "ADD",
                pod: label.clone(),
                source,
            })?;
        result
            .ips
            .iter()
            .find_map(|ip| match ip.address.ip() {
                std::net::IpAddr::V4(v4) => Some(v4),
                std::net::IpAddr::V6(_) => None,
            })
            .ok_or(NetworkError::NoAddress { pod: label })
    }

    /// The address an earlier ADD gave the pod `uid`, if its result is cached
    /// (an agent that restarts adopts running pods with it).
    pub fn cached_ip(&self, uid: &str) -> Option<Ipv4Addr> {
        let cached = self.runtime.get_cached(NETWORK, uid, IFNAME).ok()??;
        cached
            .result?
            .ips
            .iter()
            .find_map(|ip| match ip.address.ip() {
                std::net::IpAddr::V4(v4) => Some(v4),
                std::net::IpAddr::V6(_) => None,
            })
    }

    /// Pod uids with a cached attachment (for orphan collection).
    pub fn attached_uids(&self) -> Vec<String> {
        self.runtime
            .cached_attachments(NETWORK)
            .map(|all| all.into_iter().map(|c| c.attachment.container_id).collect())
            .unwrap_or_default()
    }

    /// DEL: idempotent; works without the namespace (an empty path).
    pub async fn del(&self, pod: &PodAttachment<'_>) -> Result<(), NetworkError> {
        let (runtime, list, att, label) = (
            self.runtime.clone(),
            self.list.clone(),
            pod.attachment(),
            pod.label(),
        );
        tokio::task::spawn_blocking(move || runtime.del(&list, &att))
            .await
            .map_err(|e| NetworkError::Plugin {
                verb: "DEL",
                pod: label.clone(),
                source: CniError::new(jotasu_cni::spec::Code::Io, e.to_string()),
            })?
            .map_err(|source| NetworkError::Plugin {
                verb: "DEL",
                pod: label,
                source,
            })
    }

    /// GC (CNI 1.1): removes attachments of pods not in `valid` (uids).
    pub async fn gc(&self, valid: Vec<String>) -> Result<(), NetworkError> {
        let (runtime, list) = (self.runtime.clone(), self.list.clone());
        let valid: Vec<(String, String)> =
            valid.into_iter().map(|u| (u, IFNAME.to_owned())).collect();
        tokio::task::spawn_blocking(move || runtime.gc(&list, &valid))
            .await
            .map_err(|e| NetworkError::Plugin {
                verb: "GC",
                pod: "*".into(),
                source: CniError::new(jotasu_cni::spec::Code::Io, e.to_string()),
            })?
            .map_err(|source| NetworkError::Plugin {
                verb: "GC",
                pod: "*".into(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_names_the_node_and_subnet() {
        let v = conflist(&NetworkSettings {
            node: "n1",
            subnet: "10.244.3.0/24".parse().expect("a network"),
            bpffs: Path::new("/sys/fs/bpf"),
            mtu: 1450,
            ipam_dir: Path::new("/var/lib/x"),
        });
        let bytes = serde_json::to_vec(&v).expect("json");
        let list = NetConfList::parse(&bytes).expect("a valid conflist");
        assert_eq!(list.name, NETWORK);
        assert_eq!(v["plugins"][0]["ipam"]["subnet"], "10.244.3.0/24");
        assert_eq!(v["plugins"][0]["node"], "n1");
    }
}
