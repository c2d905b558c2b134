//! [`CniNode`]: a node namespace where pods get their network from
//! `jotasu-cni`, invoked through the CNI runtime library exactly as the agent
//! (or containerd's CRI) would: the runtime runs on a thread inside the node
//! namespace, so the plugins it starts are in it too.
//!
//! Everything is per run: the node and pod namespaces carry the prefix, the
//! node's pins are purged, and IPAM state and the result cache live in a
//! temporary directory. Dropping the node removes it all.
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::Context as _;
use jotasu_cni::{
    runtime::{Attachment, Runtime},
    spec::{CniError, CniResult, NetConfList},
};
use serde_json::{Value, json};

use crate::{lab::workspace_bin, names, netns::NetNs, pins::NodePins};

/// Debian's reference plugins.
pub const REFERENCE_PLUGINS: &str = "/usr/lib/cni";
/// The node's pod CIDR in these tests.
pub const POD_SUBNET: &str = "10.244.7.0/24";

/// A node for CNI tests. Field order is drop order: pods, pins, node, state.
#[derive(Debug)]
pub struct CniNode {
    /// Pod namespaces made with [`CniNode::pod_netns`].
    pods: Vec<NetNs>,
    pins: NodePins,
    /// The node's namespace.
    pub node: NetNs,
    state: tempfile::TempDir,
    /// `CNI_PATH`: the directory of `jotasu-cni`, then [`REFERENCE_PLUGINS`].
    pub cni_path: Vec<PathBuf>,
}

impl CniNode {
    /// A fresh node namespace (forwarding on) with nothing attached yet.
    pub fn new() -> anyhow::Result<Self> {
        let prefix = names::fresh_prefix();
        let node = NetNs::new(&format!("{prefix}node"))?;
        node.sysctl("net.ipv4.ip_forward", "1")?;
        let plugin = workspace_bin("jotasu-cni", "JOTASU_CNI")?;
        let dir = plugin
            .parent()
            .context("jotasu-cni has no directory")?
            .canonicalize()?;
        Ok(Self {
            pods: Vec::new(),
            pins: NodePins::named(&prefix),
            node,
            state: tempfile::Builder::new()
                .prefix(&format!("{prefix}-cni"))
                .tempdir()?,
            cni_path: vec![dir, PathBuf::from(REFERENCE_PLUGINS)],
        })
    }

    /// The node's data-plane name (its bpffs directory).
    pub fn name(&self) -> &str {
        self.pins.name()
    }

    /// Where IPAM state and cached results live.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// jotasu-cni's own config object (no `name`/`cniVersion`: the list gives them).
    pub fn jotasu_plugin(&self) -> Value {
        json!({
            "type": "jotasu-cni",
            "node": self.name(),
            "ipam": {"subnet": POD_SUBNET, "dataDir": self.state_dir().join("ipam")},
            "capabilities": {"dns": true},
        })
    }

    /// jotasu-cni's config as one plugin's stdin: [`CniNode::jotasu_plugin`]
    /// with `name` `pods` and `cniVersion` `version`.
    pub fn plugin_config(&self, version: &str) -> Value {
        let mut conf = self.jotasu_plugin();
        conf["cniVersion"] = json!(version);
        conf["name"] = json!("pods");
        conf
    }

    /// `CNI_PATH` as a runtime passes it.
    pub fn cni_path_var(&self) -> String {
        let dirs: Vec<String> = self
            .cni_path
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        dirs.join(":")
    }

    /// Starts `jotasu-cni` by hand in the node, as a runtime would: only
    /// `env` in its environment, `stdin` written to it, stdout piped.
    pub fn spawn_plugin(&self, env: &[(&str, &str)], stdin: &str) -> anyhow::Result<Child> {
        let plugin = self.cni_path[0].join("jotasu-cni");
        self.node.run(|| -> anyhow::Result<Child> {
            let mut child = Command::new(&plugin)
                .env_clear()
                .envs(env.iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            // A plugin that fails early may close stdin first: its exit says so.
            let _ = child
                .stdin
                .take()
                .context("stdin is piped")?
                .write_all(stdin.as_bytes());
            Ok(child)
        })?
    }

    /// A conflist `version` named `pods` of `plugins`.
    pub fn conflist(&self, version: &str, plugins: Vec<Value>) -> anyhow::Result<NetConfList> {
        Self::named_conflist("pods", version, plugins)
    }

    /// A conflist `version` named `name` of `plugins`.
    pub fn named_conflist(
        name: &str,
        version: &str,
        plugins: Vec<Value>,
    ) -> anyhow::Result<NetConfList> {
        let list = json!({"cniVersion": version, "name": name, "plugins": plugins});
        Ok(NetConfList::parse(list.to_string().as_bytes())?)
    }

    /// The runtime, with its cache in the state directory.
    pub fn runtime(&self) -> Runtime {
        Runtime::new(self.cni_path.clone(), self.state_dir().join("cache"))
    }

    /// A new pod namespace `<prefix>p<i>`.
    pub fn pod_netns(&mut self) -> anyhow::Result<&NetNs> {
        let ns = NetNs::new(&format!("{}p{}", self.name(), self.pods.len()))?;
        self.pods.push(ns);
        self.pods.last().context("just pushed")
    }

    /// The pod namespaces made so far, in order.
    pub fn pods(&self) -> &[NetNs] {
        &self.pods
    }

    /// The attachment of container `id` in `ns` as `eth0`.
    pub fn attachment(id: &str, ns: &NetNs) -> Attachment {
        Attachment {
            container_id: id.to_owned(),
            netns: PathBuf::from(format!("/run/netns/{}", ns.name())),
            ifname: "eth0".into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), "default".into()),
                ("K8S_POD_NAME".into(), id.to_owned()),
            ],
            capability_args: serde_json::Map::new(),
        }
    }

    /// Runs `f` with the runtime on a thread inside the node namespace.
    pub fn in_node<T: Send>(&self, f: impl FnOnce(&Runtime) -> T + Send) -> anyhow::Result<T> {
        let rt = self.runtime();
        Ok(self.node.run(|| f(&rt))?)
    }

    /// ADD through `list` in the node.
    pub fn add(
        &self,
        list: &NetConfList,
        att: &Attachment,
    ) -> anyhow::Result<Result<CniResult, CniError>> {
        self.in_node(|rt| rt.add(list, att))
    }

    /// DEL through `list` in the node.
    pub fn del(
        &self,
        list: &NetConfList,
        att: &Attachment,
    ) -> anyhow::Result<Result<(), CniError>> {
        self.in_node(|rt| rt.del(list, att))
    }

    /// CHECK through `list` in the node.
    pub fn check(
        &self,
        list: &NetConfList,
        att: &Attachment,
    ) -> anyhow::Result<Result<(), CniError>> {
        self.in_node(|rt| rt.check(list, att))
    }

    /// Names of the node's links starting with `prefix`.
    pub fn node_links(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let out = self.node.ip(&["-j", "link", "show"])?;
        let v: Vec<Value> = serde_json::from_str(&out)?;
        Ok(v.iter()
            .filter_map(|l| l["ifname"].as_str())
            .filter(|n| n.starts_with(prefix))
            .map(str::to_owned)
            .collect())
    }
}
