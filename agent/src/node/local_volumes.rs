//! The node's half of jotasu's local provisioner: the directory of each
//! PersistentVolume the provisioner made for this node
//! (`<state dir>/volumes/pvc-<claim uid>`) is made when its volume appears
//! and removed when its volume is gone (reclaim policy Delete). The agent
//! lists the volumes pinned to its node every [`PERIOD`]; a directory is
//! removed only when two consecutive successful lists lack its volume
//! (a volume just made, whose pod created the directory between a list
//! and the next, is never taken), and never on a failed list. Only
//! `pvc-…` directories directly under the volumes directory are touched.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jotasu_api::client::Client;
use jotasu_api::kinds::storage::{LOCAL_PROVISIONER, PROVISIONED_BY};
use jotasu_api::{Kind, Object, PersistentVolume};
use tokio::sync::watch;
use tracing::{info, warn};

/// How often the node's volumes are listed.
pub const PERIOD: Duration = Duration::from_secs(5);
/// The names the provisioner gives its volumes start so.
pub const PREFIX: &str = "pvc-";
/// Mode of a volume's directory: any user of the pod may write (as
/// Kubernetes' local path provisioners make them); fsGroup narrows it.
pub const VOLUME_MODE: u32 = 0o777;

/// The directory on this node of a volume the local provisioner made for
/// it (`None`: not such a volume, or its path is not where the provisioner
/// puts volumes on this node — never created or removed then).
pub fn own_directory(pv: &PersistentVolume, dir: &Path) -> Option<PathBuf> {
    let provisioned = pv
        .metadata
        .annotations
        .get(PROVISIONED_BY)
        .is_some_and(|p| p == LOCAL_PROVISIONER);
    let name = pv.metadata.name();
    let expected = dir.join(name);
    let path = pv.spec.local.as_ref().map(|l| Path::new(&l.path))?;
    (provisioned && name.starts_with(PREFIX) && !name.contains('/') && path == expected)
        .then_some(expected)
}

/// What to do with the volume directories: (to make, to remove).
/// `present` are the `pvc-…` entries of the volumes directory; `volumes`
/// the node's volumes now; `missing_before` the entries the last list
/// lacked (only those still missing now are removed).
pub fn plan(
    dir: &Path,
    present: &BTreeSet<String>,
    volumes: &[PersistentVolume],
    missing_before: &BTreeSet<String>,
) -> (Vec<PathBuf>, Vec<String>) {
    let wanted: BTreeSet<String> = volumes
        .iter()
        .filter(|pv| own_directory(pv, dir).is_some())
        .map(|pv| pv.metadata.name().to_owned())
        .collect();
    let make = wanted
        .iter()
        .filter(|n| !present.contains(*n))
        .map(|n| dir.join(n))
        .collect();
    let remove = present
        .iter()
        .filter(|n| !wanted.contains(*n) && missing_before.contains(*n))
        .cloned()
        .collect();
    (make, remove)
}

/// Makes a volume's directory (and the volumes directory), mode
/// [`VOLUME_MODE`]; an existing one is left as it is.
pub fn make_volume_dir(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::create_dir(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(VOLUME_MODE))
}

/// The `pvc-…` entries of the volumes directory (none when it is missing).
pub fn present(dir: &Path) -> io::Result<BTreeSet<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e),
    };
    let mut out = BTreeSet::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) {
            out.insert(name);
        }
    }
    Ok(out)
}

/// The size of the filesystem holding `dir` (made first), in bytes.
pub fn filesystem_size(dir: &Path) -> io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let s = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    Ok(s.blocks().saturating_mul(s.fragment_size()))
}

/// Keeps the volume directories in step with the node's volumes until `stop`.
pub async fn sync_loop(
    client: Client,
    node: String,
    dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let mut missing_before = BTreeSet::new();
    loop {
        match client.list_for_node(Kind::PersistentVolume, &node).await {
            Ok(list) => {
                let volumes: Vec<PersistentVolume> = list
                    .items
                    .into_iter()
                    .filter_map(|o| match o {
                        Object::PersistentVolume(pv) => Some(pv),
                        _ => None,
                    })
                    .collect();
                match present(&dir) {
                    Ok(present) => {
                        let (make, remove) = plan(&dir, &present, &volumes, &missing_before);
                        apply(&dir, &make, &remove);
                        let wanted: BTreeSet<&str> =
                            volumes.iter().map(|v| v.metadata.name()).collect();
                        missing_before = present
                            .into_iter()
                            .filter(|n| !wanted.contains(n.as_str()) && !remove.contains(n))
                            .collect();
                    }
                    Err(e) => {
                        warn!(dir = %dir.display(), error = %e, "cannot read the local volume directory")
                    }
                }
            }
            Err(e) => {
                warn!(%node, error = %e, "cannot list the node's PersistentVolumes; leaving their directories as they are")
            }
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(PERIOD) => {}
        }
    }
}

fn apply(dir: &Path, make: &[PathBuf], remove: &[String]) {
    for path in make {
        match make_volume_dir(path) {
            Ok(()) => info!(path = %path.display(), "made a local volume's directory"),
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot make a local volume's directory")
            }
        }
    }
    for name in remove {
        let path = dir.join(name);
        match std::fs::remove_dir_all(&path) {
            Ok(()) => info!(path = %path.display(), "removed a deleted volume's directory"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot remove a deleted volume's directory")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(name: &str, path: &str, provisioned: bool) -> PersistentVolume {
        let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "local": {"path": path}}});
        if provisioned {
            v["metadata"]["annotations"] = json!({PROVISIONED_BY: LOCAL_PROVISIONER});
        }
        serde_json::from_value(v).unwrap()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_the_provisioners_own_directories_are_touched() {
        let dir = Path::new("/state/n1/volumes");
        assert!(own_directory(&pv("pvc-a", "/state/n1/volumes/pvc-a", true), dir).is_some());
        assert!(
            own_directory(&pv("pvc-a", "/etc", true), dir).is_none(),
            "a path elsewhere"
        );
        assert!(
            own_directory(&pv("pvc-a", "/state/n1/volumes/pvc-a", false), dir).is_none(),
            "made by hand"
        );
        assert!(own_directory(&pv("mine", "/state/n1/volumes/mine", true), dir).is_none());
    }

    #[test]
    fn directories_go_only_after_two_lists_without_their_volume() {
        let dir = Path::new("/v");
        let volumes = [
            pv("pvc-new", "/v/pvc-new", true),
            pv("pvc-kept", "/v/pvc-kept", true),
        ];
        let present = set(&["pvc-kept", "pvc-gone", "pvc-fresh"]);
        let (make, remove) = plan(dir, &present, &volumes, &set(&["pvc-gone"]));
        assert_eq!(make, [PathBuf::from("/v/pvc-new")]);
        assert_eq!(
            remove,
            ["pvc-gone"],
            "pvc-fresh was not missing in the last list"
        );
        let (_, remove) = plan(dir, &present, &volumes, &BTreeSet::new());
        assert!(remove.is_empty());
    }

    #[test]
    fn a_volume_directory_is_made_writable_for_any_user() {
        let tmp = std::env::temp_dir().join(format!("jotasu-lv-{}", std::process::id()));
        let path = tmp.join("volumes").join("pvc-x");
        make_volume_dir(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        std::fs::remove_dir_all(&tmp).unwrap();
        assert_eq!(mode, VOLUME_MODE);
    }
}
