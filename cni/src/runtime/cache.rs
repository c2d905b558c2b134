//! The result cache: what ADD left, kept for CHECK and DEL (`prevResult`)
//! and for GC (the attachments that exist). One file per attachment,
//! `<cache_dir>/results/<net>-<cid>-<ifname>`, in libcni's `cniCacheV1`
//! JSON so either tool reads the other's entries. Written crash-safely:
//! a temporary file, fsync, rename, fsync of the directory.
use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{ErrorKind, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};

use super::{Attachment, Runtime};
use crate::spec::{CniError, CniResult, Code, NetConfList};

/// The `kind` of a cache entry, as libcni writes it.
const KIND: &str = "cniCacheV1";

/// An attachment as ADD left it in the cache (libcni's `NetworkAttachment`
/// plus the cached result): the input of DEL after a restart, and of GC.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedAttachment {
    /// The network (conflist) name.
    pub network: String,
    /// The attachment as ADD was asked about it.
    pub attachment: Attachment,
    /// The conflist ADD ran (JSON bytes; see [`Self::conflist`]).
    pub config: Vec<u8>,
    /// The chain's final result; `None` if absent or unreadable.
    pub result: Option<CniResult>,
}

impl CachedAttachment {
    /// The conflist ADD ran, to DEL with it although the file has changed.
    pub fn conflist(&self) -> Result<NetConfList, CniError> {
        NetConfList::parse(&self.config).map_err(|mut e| {
            e.msg = format!(
                "cached configuration of network {:?}: {}",
                self.network, e.msg
            );
            e
        })
    }
}

/// The file's JSON, field for field libcni's `cachedInfo`.
#[derive(Serialize, Deserialize)]
struct Entry {
    kind: String,
    #[serde(rename = "containerId", default)]
    container_id: String,
    /// Base64, as Go writes `[]byte`.
    #[serde(default)]
    config: Option<String>,
    #[serde(rename = "ifName", default)]
    if_name: String,
    #[serde(rename = "networkName", default)]
    network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Option::is_none")]
    cni_args: Option<Vec<(String, String)>>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    capability_args: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

/// The conflist as JSON (the parsed list keeps no bytes): its negotiated
/// version, name, flags and plugins.
fn conflist_bytes(list: &NetConfList) -> Vec<u8> {
    let mut m = Map::new();
    m.insert("cniVersion".into(), Value::from(list.version.as_str()));
    m.insert("name".into(), Value::from(list.name.clone()));
    if list.disable_check {
        m.insert("disableCheck".into(), Value::Bool(true));
    }
    if list.disable_gc {
        m.insert("disableGC".into(), Value::Bool(true));
    }
    let plugins = list.plugins.iter().cloned().map(Value::Object).collect();
    m.insert("plugins".into(), Value::Array(plugins));
    Value::Object(m).to_string().into_bytes()
}

fn io_error(what: String, e: std::io::Error) -> CniError {
    CniError::new(Code::Io, what).with_details(e)
}

impl Runtime {
    pub(super) fn results_dir(&self) -> PathBuf {
        self.cache_dir.join("results")
    }

    fn cache_name(network: &str, att: &Attachment) -> String {
        format!("{network}-{}-{}", att.container_id, att.ifname)
    }

    /// The cached attachment of `container_id`/`ifname` to `network`, if
    /// ADD left one. Unreadable or foreign-kind entries are errors.
    pub fn get_cached(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CachedAttachment>, CniError> {
        let att = Attachment {
            container_id: container_id.to_owned(),
            ifname: ifname.to_owned(),
            ..Attachment::default()
        };
        att.validate(network)?;
        let file = self.results_dir().join(Self::cache_name(network, &att));
        let found = read_entry(&file)?.filter(|c| {
            // Names joined with '-' can collide ("a-b"+"c" and "a"+"b-c").
            let ours = c.network == network
                && c.attachment.container_id == container_id
                && c.attachment.ifname == ifname;
            if !ours {
                tracing::debug!(file = %file.display(), "cache entry belongs to another attachment");
            }
            ours
        });
        Ok(found)
    }

    /// Every cached attachment to `network`, in file-name order: what GC
    /// compares with the valid ones. Entries that cannot be read are
    /// skipped (logged), as libcni does.
    pub fn cached_attachments(&self, network: &str) -> Result<Vec<CachedAttachment>, CniError> {
        let dir = self.results_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(format!("listing {}", dir.display()), e)),
        };
        let prefix = format!("{network}-");
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            match read_entry(&dir.join(&name)) {
                Ok(Some(c)) if c.network == network && !c.attachment.ifname.is_empty() => {
                    out.push(c);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(file = name, error = %e, "skipping cache entry"),
            }
        }
        Ok(out)
    }

    /// Records what ADD of `att` to `list` returned.
    pub(super) fn cache_add(
        &self,
        list: &NetConfList,
        att: &Attachment,
        result: &CniResult,
    ) -> Result<(), CniError> {
        let entry = Entry {
            kind: KIND.into(),
            container_id: att.container_id.clone(),
            config: Some(BASE64.encode(conflist_bytes(list))),
            if_name: att.ifname.clone(),
            network_name: list.name.clone(),
            netns: att.netns.to_string_lossy().into_owned(),
            cni_args: Some(att.args.clone()).filter(|a| !a.is_empty()),
            capability_args: Some(att.capability_args.clone()).filter(|a| !a.is_empty()),
            result: Some(result.to_value(list.version)),
        };
        let bytes = serde_json::to_vec(&entry)
            .map_err(|e| CniError::new(Code::Io, "encoding the cache entry").with_details(e))?;
        let dir = self.results_dir();
        let name = Self::cache_name(&list.name, att);
        write_atomic(&dir, &name, &bytes).map_err(|e| {
            io_error(
                format!("caching the result in {}", dir.join(&name).display()),
                e,
            )
        })
    }

    /// Forgets the attachment of `att` to `network`; nothing cached is fine.
    pub(super) fn cache_del(&self, network: &str, att: &Attachment) -> Result<(), CniError> {
        let dir = self.results_dir();
        let file = dir.join(Self::cache_name(network, att));
        match fs::remove_file(&file) {
            Ok(()) => File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error(format!("syncing {}", dir.display()), e)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(format!("removing {}", file.display()), e)),
        }
    }
}

/// Reads one entry; `None` if the file does not exist.
fn read_entry(file: &Path) -> Result<Option<CachedAttachment>, CniError> {
    let bytes = match fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(format!("reading {}", file.display()), e)),
    };
    let bad = |why: String| {
        CniError::new(
            Code::Decode,
            format!("cache entry {}: {why}", file.display()),
        )
    };
    let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if entry.kind != KIND {
        return Err(bad(format!("kind {:?} is not {KIND:?}", entry.kind)));
    }
    let config = match entry.config.as_deref() {
        Some(c) => BASE64
            .decode(c)
            .map_err(|e| bad(format!("\"config\" is not base64: {e}")))?,
        None => Vec::new(),
    };
    let result = entry.result.filter(|r| !r.is_null()).and_then(|r| {
        CniResult::from_value(&r)
            .inspect_err(
                |e| tracing::warn!(file = %file.display(), error = %e, "cached result unreadable"),
            )
            .ok()
    });
    Ok(Some(CachedAttachment {
        network: entry.network_name,
        attachment: Attachment {
            container_id: entry.container_id,
            netns: PathBuf::from(entry.netns),
            ifname: entry.if_name,
            args: entry.cni_args.unwrap_or_default(),
            capability_args: entry.capability_args.unwrap_or_default(),
        },
        config,
        result,
    }))
}

/// Writes `dir/name` so that a crash leaves the old file or the new one,
/// never a part: temporary file, fsync, rename, fsync of `dir`.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
