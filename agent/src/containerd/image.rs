//! Images: OCI image-layout archives imported into the content store and
//! unpacked for the overlayfs snapshotter, client-side as `ctr images
//! import` does on containerd 1.6; images resolved by reference into what
//! the runtime spec needs; references normalized as containerd does.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;

use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{
    ApplyRequest, CreateImageRequest, CreateRequest as CreateLeaseRequest,
    DeleteRequest as DeleteLeaseRequest, GetImageRequest, Image, UpdateImageRequest,
};
use containerd_client::types::Descriptor;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::error::{ContainerdError, rpc};
use super::types::ImageConfig;
use super::{Containerd, Result, SNAPSHOTTER};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An image an archive carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// Its names.
    pub names: Vec<String>,
    /// Its target's digest.
    pub digest: String,
}

/// containerd's normalization of a reference: a bare name is on
/// `docker.io/library/`, a name without a tag is `:latest`.
pub fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let first = name.split('/').next().unwrap_or("");
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        name.to_owned()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(d) => format!("{full}@{d}"),
        None => full,
    }
}

/// The chain IDs of a layer stack (OCI image spec): the first is the first
/// diff ID, each next one the digest of `"<previous> <diff id>"`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{:x}",
                Sha256::digest(format!("{prev} {d}").as_bytes())
            ),
        };
        out.push(next);
    }
    out
}

fn bad(object: &str, reason: impl Into<String>) -> ContainerdError {
    ContainerdError::Image {
        object: object.to_owned(),
        reason: reason.into(),
    }
}

/// The config's `rootfs.diff_ids`.
fn diff_ids(config: &Value) -> Vec<String> {
    config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub(super) fn descriptor(v: &Value) -> Option<Descriptor> {
    Some(Descriptor {
        media_type: v.get("mediaType")?.as_str()?.to_owned(),
        digest: v.get("digest")?.as_str()?.to_owned(),
        size: v.get("size")?.as_i64()?,
        annotations: HashMap::new(),
    })
}

/// The manifest of an index for this machine's platform.
pub(super) fn pick_manifest(index: &Value) -> Option<&Value> {
    let manifests = index.get("manifests")?.as_array()?;
    manifests
        .iter()
        .find(|m| {
            m.pointer("/platform/os").and_then(Value::as_str) == Some("linux")
                && m.pointer("/platform/architecture").and_then(Value::as_str) == Some(host_arch())
        })
        .or_else(|| manifests.first())
}

pub(super) fn is_index(media_type: &str) -> bool {
    media_type == INDEX || media_type == DOCKER_LIST
}

/// The files of a tar archive, by path.
fn read_archive(path: &Path) -> Result<HashMap<String, Vec<u8>>> {
    let io = |source| ContainerdError::Io {
        what: "reading the image archive",
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut archive = tar::Archive::new(file);
    let mut files = HashMap::new();
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(io)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(io)?;
        files.insert(name, data);
    }
    Ok(files)
}

/// An OCI image layout's files by path (`blobs/sha256/<hex>`, `index.json`).
pub(super) struct Layout {
    pub(super) what: String,
    pub(super) files: HashMap<String, Vec<u8>>,
}

impl Layout {
    fn blob(&self, digest: &str) -> Result<&[u8]> {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| bad(&self.what, format!("unsupported digest {digest}")))?;
        let data = self
            .files
            .get(&format!("blobs/sha256/{hex}"))
            .ok_or_else(|| bad(&self.what, format!("blob {digest} is missing")))?;
        if format!("{:x}", Sha256::digest(data)) != hex {
            return Err(bad(
                &self.what,
                format!("blob {digest} does not match its digest"),
            ));
        }
        Ok(data)
    }

    fn json(&self, digest: &str) -> Result<Value> {
        serde_json::from_slice(self.blob(digest)?)
            .map_err(|e| bad(&self.what, format!("blob {digest}: {e}")))
    }
}

impl Containerd {
    /// Imports an OCI image-layout archive (a tar with `oci-layout`,
    /// `index.json` and `blobs/sha256/…`): blobs into the content store,
    /// an image record per name, layers unpacked for overlayfs.
    pub async fn import(&self, archive: &Path) -> Result<Vec<ImportedImage>> {
        let what = archive.display().to_string();
        let files = read_archive(archive)?;
        if !files.contains_key("index.json") {
            let hint = if files.contains_key("manifest.json") {
                "a docker-archive (docker save): save it as an OCI archive instead (e.g. skopeo copy … oci-archive:FILE)"
            } else {
                "no index.json: not an OCI image layout"
            };
            return Err(bad(&what, hint));
        }
        let layout = Layout { what, files };
        let index: Value = serde_json::from_slice(&layout.files["index.json"])
            .map_err(|e| bad(&layout.what, format!("index.json: {e}")))?;
        let lease = self.create_lease("import").await?;
        let result = self.import_index(&layout, &index, &lease).await;
        self.delete_lease(&lease).await;
        result
    }

    /// A lease that keeps what is written under it from garbage collection
    /// until [`Self::delete_lease`].
    pub(super) async fn create_lease(&self, purpose: &str) -> Result<String> {
        let lease = format!("jotasu-{purpose}-{}", uuid::Uuid::new_v4().simple());
        LeasesClient::new(self.channel())
            .create(self.req(CreateLeaseRequest {
                id: lease.clone(),
                labels: HashMap::from([(
                    "containerd.io/gc.expire".to_owned(),
                    "2100-01-01T00:00:00Z".to_owned(),
                )]),
            }))
            .await
            .map_err(rpc("create lease", &lease))?;
        Ok(lease)
    }

    pub(super) async fn delete_lease(&self, lease: &str) {
        let _ = LeasesClient::new(self.channel())
            .delete(self.req(DeleteLeaseRequest {
                id: lease.to_owned(),
                sync: false,
            }))
            .await;
    }

    async fn import_index(
        &self,
        layout: &Layout,
        index: &Value,
        lease: &str,
    ) -> Result<Vec<ImportedImage>> {
        let mut out = Vec::new();
        let entries = index
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(&layout.what, "index.json lists no manifests"))?;
        for entry in entries {
            let target = descriptor(entry).ok_or_else(|| {
                bad(
                    &layout.what,
                    "index.json: a manifest without mediaType, digest or size",
                )
            })?;
            self.store_tree(layout, &target, lease).await?;
            let names: Vec<String> = [
                entry.pointer("/annotations/io.containerd.image.name"),
                entry.pointer("/annotations/org.opencontainers.image.ref.name"),
            ]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|n| n.contains('/') || n.contains(':'))
            .take(1)
            .map(normalize)
            .collect();
            for name in &names {
                self.put_image(name, &target).await?;
            }
            out.push(ImportedImage {
                names,
                digest: target.digest.clone(),
            });
        }
        Ok(out)
    }

    /// Stores a manifest (or an index and its platform manifest) with its
    /// config and layers, GC references labelled, and unpacks it.
    pub(super) async fn store_tree(
        &self,
        layout: &Layout,
        target: &Descriptor,
        lease: &str,
    ) -> Result<()> {
        let (manifest_desc, index_labels) = if is_index(&target.media_type) {
            let index = layout.json(&target.digest)?;
            let m = pick_manifest(&index)
                .and_then(descriptor)
                .ok_or_else(|| bad(&layout.what, "the index has no manifest for this platform"))?;
            let labels = index
                .get("manifests")
                .and_then(Value::as_array)
                .map(|all| {
                    all.iter()
                        .enumerate()
                        .filter_map(|(i, d)| {
                            Some((
                                format!("containerd.io/gc.ref.content.m.{i}"),
                                d.get("digest")?.as_str()?.to_owned(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            (m, Some(labels))
        } else {
            (target.clone(), None)
        };
        let manifest = layout.json(&manifest_desc.digest)?;
        let config_desc = manifest
            .get("config")
            .and_then(descriptor)
            .ok_or_else(|| bad(&layout.what, "the manifest has no config"))?;
        let layers: Vec<Descriptor> = manifest
            .get("layers")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(descriptor).collect())
            .unwrap_or_default();
        let config = layout.json(&config_desc.digest)?;
        let diff_ids = diff_ids(&config);
        if diff_ids.len() != layers.len() {
            return Err(bad(
                &layout.what,
                "the config's diff_ids do not match the manifest's layers",
            ));
        }
        let chains = chain_ids(&diff_ids);
        for l in &layers {
            self.write_blob(&l.digest, layout.blob(&l.digest)?, HashMap::new(), lease)
                .await?;
        }
        let mut config_labels = HashMap::new();
        if let Some(top) = chains.last() {
            config_labels.insert(
                format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
                top.clone(),
            );
        }
        self.write_blob(
            &config_desc.digest,
            layout.blob(&config_desc.digest)?,
            config_labels,
            lease,
        )
        .await?;
        let mut manifest_labels = HashMap::from([(
            "containerd.io/gc.ref.content.config".to_owned(),
            config_desc.digest.clone(),
        )]);
        for (i, l) in layers.iter().enumerate() {
            manifest_labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                l.digest.clone(),
            );
        }
        self.write_blob(
            &manifest_desc.digest,
            layout.blob(&manifest_desc.digest)?,
            manifest_labels,
            lease,
        )
        .await?;
        if let Some(labels) = index_labels {
            self.write_blob(&target.digest, layout.blob(&target.digest)?, labels, lease)
                .await?;
        }
        self.unpack(&layers, &chains, lease).await
    }

    async fn unpack(&self, layers: &[Descriptor], chains: &[String], lease: &str) -> Result<()> {
        let mut snapshots = SnapshotsClient::new(self.channel());
        let mut parent = String::new();
        for (layer, chain) in layers.iter().zip(chains) {
            let exists = snapshots
                .stat(self.req(StatSnapshotRequest {
                    snapshotter: SNAPSHOTTER.to_owned(),
                    key: chain.clone(),
                }))
                .await
                .is_ok();
            if !exists {
                let key = format!("extract-{} {chain}", uuid::Uuid::new_v4().simple());
                let mounts = snapshots
                    .prepare(self.leased(
                        PrepareSnapshotRequest {
                            snapshotter: SNAPSHOTTER.to_owned(),
                            key: key.clone(),
                            parent: parent.clone(),
                            labels: HashMap::new(),
                        },
                        lease,
                    ))
                    .await
                    .map_err(rpc("prepare snapshot", chain))?
                    .into_inner()
                    .mounts;
                let applied = DiffClient::new(self.channel())
                    .apply(self.leased(
                        ApplyRequest {
                            diff: Some(layer.clone()),
                            mounts,
                            payloads: HashMap::new(),
                            sync_fs: false,
                        },
                        lease,
                    ))
                    .await;
                let committed = match applied {
                    Ok(_) => snapshots
                        .commit(self.leased(
                            CommitSnapshotRequest {
                                snapshotter: SNAPSHOTTER.to_owned(),
                                name: chain.clone(),
                                key: key.clone(),
                                labels: HashMap::new(),
                            },
                            lease,
                        ))
                        .await
                        .map(|_| ())
                        .or_else(|s| {
                            if s.code() == tonic::Code::AlreadyExists {
                                Ok(())
                            } else {
                                Err(s)
                            }
                        }),
                    Err(s) => Err(s),
                };
                if let Err(s) = committed {
                    let _ = snapshots
                        .remove(self.req(RemoveSnapshotRequest {
                            snapshotter: SNAPSHOTTER.to_owned(),
                            key,
                        }))
                        .await;
                    return Err(rpc("unpack layer", &layer.digest)(s));
                }
            }
            parent = chain.clone();
        }
        Ok(())
    }

    pub(super) async fn put_image(&self, name: &str, target: &Descriptor) -> Result<()> {
        let image = Image {
            name: name.to_owned(),
            labels: HashMap::new(),
            target: Some(target.clone()),
            created_at: None,
            updated_at: None,
        };
        let mut images = ImagesClient::new(self.channel());
        match images
            .create(self.req(CreateImageRequest {
                image: Some(image.clone()),
                source_date_epoch: None,
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => {
                images
                    .update(self.req(UpdateImageRequest {
                        image: Some(image),
                        update_mask: None,
                        source_date_epoch: None,
                    }))
                    .await
                    .map_err(rpc("update image", name))?;
                Ok(())
            }
            Err(s) => Err(rpc("create image", name)(s)),
        }
    }

    /// The manifest and config of image `name` (None: not on the node).
    async fn resolve(&self, name: &str) -> Result<Option<(Descriptor, Value)>> {
        let got = ImagesClient::new(self.channel())
            .get(self.req(GetImageRequest {
                name: name.to_owned(),
            }))
            .await;
        let image = match got {
            Ok(r) => r.into_inner().image,
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
            Err(s) => return Err(rpc("get image", name)(s)),
        };
        let Some(target) = image.and_then(|i| i.target) else {
            return Ok(None);
        };
        let json = |bytes: Vec<u8>| {
            serde_json::from_slice::<Value>(&bytes).map_err(|e| bad(name, e.to_string()))
        };
        let mut manifest = json(self.read_blob(&target.digest).await?)?;
        if is_index(&target.media_type) {
            let m = pick_manifest(&manifest)
                .and_then(descriptor)
                .ok_or_else(|| bad(name, "no manifest for this platform"))?;
            manifest = json(self.read_blob(&m.digest).await?)?;
        }
        let config_digest = manifest
            .pointer("/config/digest")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(name, "the manifest has no config"))?
            .to_owned();
        let config = json(self.read_blob(&config_digest).await?)?;
        Ok(Some((target, config)))
    }

    /// How to run image `name`, if it is on the node.
    pub async fn image(&self, name: &str) -> Result<Option<ImageConfig>> {
        let Some((target, config)) = self.resolve(name).await? else {
            return Ok(None);
        };
        let strings = |p: &str| -> Vec<String> {
            config
                .pointer(p)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let string = |p: &str| {
            config
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Some(ImageConfig {
            name: name.to_owned(),
            digest: target.digest,
            entrypoint: strings("/config/Entrypoint"),
            cmd: strings("/config/Cmd"),
            env: strings("/config/Env"),
            working_dir: string("/config/WorkingDir"),
            user: string("/config/User"),
            snapshot: chain_ids(&diff_ids(&config)).pop().unwrap_or_default(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize_as_containerd_does() {
        assert_eq!(normalize("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(normalize("me/app"), "docker.io/me/app:latest");
        assert_eq!(
            normalize("jotasu.local/busybox:latest"),
            "jotasu.local/busybox:latest"
        );
        assert_eq!(normalize("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(normalize("quay.io/a/b@sha256:00"), "quay.io/a/b@sha256:00");
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = "sha256:aaa".to_owned();
        let b = "sha256:bbb".to_owned();
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(
            c[1],
            format!("sha256:{:x}", Sha256::digest(b"sha256:aaa sha256:bbb"))
        );
    }
}
