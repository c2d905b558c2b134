//! A pod's `persistentVolumeClaim` volumes: the claim (in the pod's
//! namespace) must be bound, and its volume bound back to it; the volume
//! is then a directory of this node (`local.path` or `hostPath.path`),
//! bind-mounted into the containers. A directory the local provisioner
//! made for this node is created when missing (mode 0777); another `local`
//! path must exist as a directory; a `hostPath` path is checked against
//! its `type`, as a hostPath pod volume is. Pure: the agent reads the
//! claim and the volume through the API and passes them here.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use jotasu_api::{PersistentVolume, PersistentVolumeClaim};

use crate::node::local_volumes::own_directory;
use crate::pod::volumes::HostPathType;

/// Where a claim's volume is on this node, and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimVolume {
    /// The directory.
    pub path: PathBuf,
    /// How it must be there ([`HostPathType::DirectoryOrCreate`] for the
    /// provisioner's own directories).
    pub check: HostPathType,
    /// Whether the provisioner made it for this node (created 0777 when missing).
    pub provisioned: bool,
    /// Whether the pod's fsGroup applies (local volumes; not hostPath, as in Kubernetes).
    pub fs_group_applies: bool,
}

/// Resolved claims of a pod, by claim name.
pub type ClaimVolumes = BTreeMap<String, ClaimVolume>;

/// Why a claim's volume cannot be used (the kubelet's words where it has them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The claim does not exist.
    #[error("persistentvolumeclaim {name:?} not found")]
    ClaimNotFound {
        /// The claim.
        name: String,
    },
    /// The claim is not bound yet.
    #[error(
        "PVC {namespace}/{name} has non-bound phase ({phase:?}) or empty pvc.Spec.VolumeName ({volume:?})"
    )]
    NotBound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its phase.
        phase: String,
        /// Its volumeName.
        volume: String,
    },
    /// The volume does not exist, or is bound to another claim.
    #[error("persistentvolume {volume:?} is not bound to persistentvolumeclaim {claim:?}")]
    VolumeNotBound {
        /// The volume.
        volume: String,
        /// The claim.
        claim: String,
    },
    /// The volume is neither `local` nor `hostPath`.
    #[error("persistentvolume {volume:?} is not a directory of a node (local or hostPath)")]
    NoDirectory {
        /// The volume.
        volume: String,
    },
}

/// The directory of `claim`'s volume `pv` on this node, whose local
/// volumes live under `volumes_dir`.
pub fn claim_volume(
    claim: &PersistentVolumeClaim,
    pv: Option<&PersistentVolume>,
    volumes_dir: &Path,
) -> Result<ClaimVolume, ClaimError> {
    let name = claim.metadata.name().to_owned();
    let volume = claim.spec.volume_name.clone().unwrap_or_default();
    if volume.is_empty() || claim.phase() != "Bound" {
        return Err(ClaimError::NotBound {
            namespace: claim.metadata.namespace.clone().unwrap_or_default(),
            name,
            phase: claim.phase().to_owned(),
            volume,
        });
    }
    let bound_back = pv.filter(|pv| {
        pv.metadata.name() == volume
            && pv.spec.claim_ref.as_ref().is_some_and(|r| {
                r.name.as_deref() == Some(claim.metadata.name())
                    && r.namespace == claim.metadata.namespace
                    && (r.uid.is_none() || r.uid == claim.metadata.uid)
            })
    });
    let Some(pv) = bound_back else {
        return Err(ClaimError::VolumeNotBound {
            volume,
            claim: name,
        });
    };
    if let Some(own) = own_directory(pv, volumes_dir) {
        return Ok(ClaimVolume {
            path: own,
            check: HostPathType::DirectoryOrCreate,
            provisioned: true,
            fs_group_applies: true,
        });
    }
    match (&pv.spec.local, &pv.spec.host_path) {
        (Some(l), _) => Ok(ClaimVolume {
            path: PathBuf::from(&l.path),
            check: HostPathType::Directory,
            provisioned: false,
            fs_group_applies: true,
        }),
        (None, Some(h)) => Ok(ClaimVolume {
            path: PathBuf::from(&h.path),
            check: HostPathType::parse(h.type_.as_deref()),
            provisioned: false,
            fs_group_applies: false,
        }),
        (None, None) => Err(ClaimError::NoDirectory { volume }),
    }
}

/// A claim's directory made (the provisioner's own) or checked, then
/// given to the pod's fsGroup.
pub fn claim_directory(
    path: &Path,
    check: HostPathType,
    provisioned: bool,
    fs_group: Option<u32>,
) -> io::Result<()> {
    if provisioned {
        crate::node::local_volumes::make_volume_dir(path)?;
    } else {
        crate::pod::volume_files::check_host_path(path, check)?;
    }
    if let Some(gid) = fs_group {
        crate::pod::volumes::set_volume_ownership(path, gid, false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::kinds::storage::{LOCAL_PROVISIONER, PROVISIONED_BY};
    use serde_json::json;

    fn claim(volume: Option<&str>, phase: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "d", "uid": "u1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": phase}}))
        .unwrap()
    }

    fn pv(name: &str, source: serde_json::Value, claim_uid: &str) -> PersistentVolume {
        let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {PROVISIONED_BY: LOCAL_PROVISIONER}},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "claimRef": {"namespace": "d", "name": "data", "uid": claim_uid}}});
        for (k, val) in source.as_object().unwrap() {
            v["spec"][k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_bound_claim_gives_its_volumes_directory() {
        let dir = Path::new("/state/n1/volumes");
        let own = pv(
            "pvc-u1",
            json!({"local": {"path": "/state/n1/volumes/pvc-u1"}}),
            "u1",
        );
        let got = claim_volume(&claim(Some("pvc-u1"), "Bound"), Some(&own), dir).unwrap();
        assert!(got.provisioned);
        assert_eq!(got.path, PathBuf::from("/state/n1/volumes/pvc-u1"));
        let host = pv(
            "h",
            json!({"hostPath": {"path": "/srv/h", "type": "DirectoryOrCreate"}}),
            "u1",
        );
        let got = claim_volume(&claim(Some("h"), "Bound"), Some(&host), dir).unwrap();
        assert_eq!(
            (got.check, got.provisioned, got.fs_group_applies),
            (HostPathType::DirectoryOrCreate, false, false)
        );
    }

    #[test]
    fn unbound_claims_and_foreign_volumes_are_refused() {
        let dir = Path::new("/v");
        let e = claim_volume(&claim(None, "Pending"), None, dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PVC d/data has non-bound phase (\"Pending\") or empty pvc.Spec.VolumeName (\"\")"
        );
        let theirs = pv("pv1", json!({"local": {"path": "/v/pv1"}}), "someone-else");
        assert!(matches!(
            claim_volume(&claim(Some("pv1"), "Bound"), Some(&theirs), dir),
            Err(ClaimError::VolumeNotBound { .. })
        ));
    }
}
