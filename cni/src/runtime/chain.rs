//! Running a conflist's plugins for each verb, as libcni's
//! `AddNetworkList`, `CheckNetworkList`, `DelNetworkList`, `GCNetworkList`
//! and `GetStatusNetworkList` do.
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{Attachment, Runtime, join_errors};
use crate::{
    exec::{PluginEnv, find_plugin, invoke},
    spec::{CniError, CniResult, Code, Command, NetConfList},
};

/// The key GC passes the attachments to keep under (CNI 1.1).
pub const VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";
/// The key the first 1.1 text used; libcni passes both (cni#1101).
const VALID_ATTACHMENTS_OLD: &str = "cni.dev/attachments";

impl Runtime {
    /// Runs plugin `i` of `list` for `command` with `stdin`; its stdout.
    fn call(
        &self,
        list: &NetConfList,
        i: usize,
        command: Command,
        env: &PluginEnv<'_>,
        stdin: &Value,
    ) -> Result<Vec<u8>, CniError> {
        let plugin_type = plugin_type(list, i);
        let started = Instant::now();
        let out = find_plugin(plugin_type, &self.path)
            .and_then(|p| invoke(&p, command, env, stdin.to_string().as_bytes()));
        tracing::debug!(
            network = %list.name,
            plugin = plugin_type,
            command = command.as_str(),
            container_id = env.container_id,
            ifname = env.ifname,
            elapsed_ms = started.elapsed().as_millis() as u64,
            error = out.as_ref().err().map(tracing::field::display),
            "CNI plugin call"
        );
        out
    }

    /// ADD: attaches `att` to `list`'s network. Plugins run in order, each
    /// given the previous one's result as `prevResult`; the last result is
    /// cached (with the attachment and the conflist) and returned.
    ///
    /// On a failure (a plugin's, reported as it gave it, or the cache's)
    /// nothing is cleaned up, as in libcni: the plugins that ran may have
    /// set things up, so the caller should DEL the attachment.
    pub fn add(&self, list: &NetConfList, att: &Attachment) -> Result<CniResult, CniError> {
        att.validate(&list.name)?;
        let args = att.cni_args();
        let env = self.env(att, &args);
        let mut prev: Option<CniResult> = None;
        for i in 0..list.plugins.len() {
            let stdin = list.plugin_config(i, &att.capability_args, prev.as_ref(), &Map::new());
            let out = self.call(list, i, Command::Add, &env, &stdin)?;
            prev = Some(parse_result(list, i, &out)?);
        }
        let result = prev.unwrap_or_default();
        self.cache_add(list, att, &result)?;
        Ok(result)
    }

    /// CHECK: asks every plugin, in order, whether `att` is as ADD left it,
    /// each given the cached result as `prevResult`. The first failure is
    /// returned. Nothing is run if the list sets `disableCheck` (every
    /// version this crate reads, 0.4.0 and later, has CHECK).
    ///
    /// No cached result (never added, or the cache was lost) is
    /// [`Code::Io`]: the plugins could not check anything without it.
    pub fn check(&self, list: &NetConfList, att: &Attachment) -> Result<(), CniError> {
        if list.disable_check {
            return Ok(());
        }
        att.validate(&list.name)?;
        let cached = self
            .get_cached(&list.name, &att.container_id, &att.ifname)?
            .and_then(|c| c.result)
            .ok_or_else(|| {
                CniError::new(
                    Code::Io,
                    format!(
                        "no cached result for container {} interface {} in network {:?}: \
                         it was not added, or its cache entry in {} is gone or unreadable",
                        att.container_id,
                        att.ifname,
                        list.name,
                        self.results_dir().display()
                    ),
                )
            })?;
        let args = att.cni_args();
        let env = self.env(att, &args);
        for i in 0..list.plugins.len() {
            let stdin = list.plugin_config(i, &att.capability_args, Some(&cached), &Map::new());
            self.call(list, i, Command::Check, &env, &stdin)?;
        }
        Ok(())
    }

    /// DEL: detaches `att`. Plugins run in reverse order, each given the
    /// cached result as `prevResult` when there is one; then the cache
    /// entry is removed. DEL of an attachment never added succeeds if the
    /// plugins do. A plugin's failure stops the chain and keeps the cache
    /// entry, so DEL can be retried.
    pub fn del(&self, list: &NetConfList, att: &Attachment) -> Result<(), CniError> {
        att.validate(&list.name)?;
        let cached = match self.get_cached(&list.name, &att.container_id, &att.ifname) {
            Ok(c) => c.and_then(|c| c.result),
            Err(e) => {
                // As libcni: an unreadable entry is dropped, DEL goes on.
                tracing::warn!(error = %e, "dropping unreadable cache entry");
                self.cache_del(&list.name, att)?;
                None
            }
        };
        let args = att.cni_args();
        let env = self.env(att, &args);
        for i in (0..list.plugins.len()).rev() {
            let stdin = list.plugin_config(i, &att.capability_args, cached.as_ref(), &Map::new());
            self.call(list, i, Command::Del, &env, &stdin)?;
        }
        self.cache_del(&list.name, att)
    }

    /// GC (libcni's `GCNetworkList`): every cached attachment to `list`'s
    /// network that is not in `valid` (container id, interface name) is
    /// DELeted with what the cache holds of it (which also drops its cache
    /// entry); then, if the list's version is 1.1.0 or later, every plugin
    /// is called with GC and `cni.dev/valid-attachments`
    /// (`[{"containerID", "ifname"}]`), with no `CNI_CONTAINERID`,
    /// `CNI_IFNAME` or `CNI_NETNS`. Nothing happens if the list sets
    /// `disableGC`. Failures do not stop the rest; all are reported.
    pub fn gc(&self, list: &NetConfList, valid: &[(String, String)]) -> Result<(), CniError> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errs = Vec::new();
        match self.cached_attachments(&list.name) {
            Ok(cached) => {
                for c in cached {
                    let a = &c.attachment;
                    if valid
                        .iter()
                        .any(|(cid, ifn)| *cid == a.container_id && *ifn == a.ifname)
                    {
                        continue;
                    }
                    if let Err(mut e) = self.del(list, a) {
                        e.msg = format!(
                            "deleting stale attachment {} {}: {}",
                            a.container_id, a.ifname, e.msg
                        );
                        errs.push(e);
                    }
                }
            }
            Err(e) => errs.push(e),
        }
        if list.version.has_status_and_gc() {
            let keep: Vec<Value> = valid
                .iter()
                .map(|(cid, ifn)| json!({"containerID": cid, "ifname": ifn}))
                .collect();
            let mut extra = Map::new();
            extra.insert(VALID_ATTACHMENTS.into(), Value::Array(keep.clone()));
            extra.insert(VALID_ATTACHMENTS_OLD.into(), Value::Array(keep));
            let env = self.env_without_attachment();
            for i in 0..list.plugins.len() {
                let stdin = list.plugin_config(i, &Map::new(), None, &extra);
                if let Err(e) = self.call(list, i, Command::Gc, &env, &stdin) {
                    errs.push(e);
                }
            }
        }
        join_errors(errs)
    }

    /// STATUS: whether every plugin of `list` can serve ADD now; the first
    /// failure (typically [`Code::NotAvailable`]) is returned as is. Lists
    /// older than 1.1.0 have no STATUS and are taken as ready.
    pub fn status(&self, list: &NetConfList) -> Result<(), CniError> {
        if !list.version.has_status_and_gc() {
            return Ok(());
        }
        let env = self.env_without_attachment();
        for i in 0..list.plugins.len() {
            let stdin = list.plugin_config(i, &Map::new(), None, &Map::new());
            self.call(list, i, Command::Status, &env, &stdin)?;
        }
        Ok(())
    }

    /// VERSION: the spec versions plugin `plugin_type` supports, as it
    /// reports them (`supportedVersions`).
    pub fn plugin_versions(&self, plugin_type: &str) -> Result<Vec<String>, CniError> {
        let plugin = find_plugin(plugin_type, &self.path)?;
        let env = self.env_without_attachment();
        let out = invoke(
            &plugin,
            Command::Version,
            &env,
            br#"{"cniVersion":"1.1.0"}"#,
        )?;
        let bad = |why: &str| {
            CniError::new(
                Code::Decode,
                format!("plugin {plugin_type}: VERSION output {why}"),
            )
            .with_details(String::from_utf8_lossy(&out).trim())
        };
        let v: Value = serde_json::from_slice(&out).map_err(|_| bad("is not JSON"))?;
        v.get("supportedVersions")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|s| s.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| bad("has no \"supportedVersions\" list of strings"))
    }

    fn env<'a>(&'a self, att: &'a Attachment, args: &'a str) -> PluginEnv<'a> {
        PluginEnv {
            container_id: &att.container_id,
            netns: att.netns_env(),
            ifname: &att.ifname,
            args,
            path: &self.path,
        }
    }

    fn env_without_attachment(&self) -> PluginEnv<'_> {
        PluginEnv {
            path: &self.path,
            ..PluginEnv::default()
        }
    }
}

/// Plugin `i`'s ADD output as a result, or [`Code::Decode`] naming it.
fn parse_result(list: &NetConfList, i: usize, out: &[u8]) -> Result<CniResult, CniError> {
    let plugin_type = plugin_type(list, i);
    serde_json::from_slice::<Value>(out)
        .map_err(|e| e.to_string())
        .and_then(|v| CniResult::from_value(&v).map_err(|e| e.to_string()))
        .map_err(|why| {
            CniError::new(
                Code::Decode,
                format!(
                    "plugin {plugin_type} (network {:?}): ADD output is not a CNI result",
                    list.name
                ),
            )
            .with_details(why)
        })
}

/// Plugin `i`'s `type` (checked present when the list was parsed).
fn plugin_type(list: &NetConfList, i: usize) -> &str {
    list.plugins
        .get(i)
        .and_then(|p| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}
