//! Reading a pod's PersistentVolumeClaims and their volumes through the
//! API (the node authorizer lets a node read the claims its pods name and
//! the volumes bound to them), once per claim: a bound claim's volume does
//! not change.

use jotasu_api::{Kind, Object, ObjectRef, PersistentVolume};

use super::ViewConfig;
use super::containers::PodRun;
use crate::pod::claims::{ClaimError, ClaimVolume, ClaimVolumes, claim_volume};
use crate::pod::env::ConfigSource;

/// The view's ConfigMaps and Secrets with the pod's resolved claims.
pub(crate) struct WithClaims<'a> {
    /// ConfigMaps and Secrets.
    pub view: ViewConfig<'a>,
    /// The claims read so far.
    pub claims: &'a ClaimVolumes,
}

impl ConfigSource for WithClaims<'_> {
    fn config_map(&self, ns: &str, name: &str) -> Option<&jotasu_api::ConfigMap> {
        self.view.config_map(ns, name)
    }

    fn secret(&self, ns: &str, name: &str) -> Option<&jotasu_api::Secret> {
        self.view.secret(ns, name)
    }

    fn claim_volume(&self, name: &str) -> Option<&ClaimVolume> {
        self.claims.get(name)
    }
}

impl PodRun {
    /// Reads the claims not read yet; an error is the volume set-up
    /// message the pod waits with (the claim is missing or not bound).
    pub(super) async fn resolve_claims(&mut self) -> Result<(), String> {
        let namespace = crate::pod::pod_namespace(&self.pod).to_owned();
        let wanted: Vec<(String, String)> = self
            .pod
            .spec
            .volumes
            .iter()
            .filter_map(|v| {
                let c = v.persistent_volume_claim.as_ref()?;
                (!self.claims.contains_key(&c.claim_name))
                    .then(|| (v.name.clone(), c.claim_name.clone()))
            })
            .collect();
        for (volume, name) in wanted {
            let failed =
                |e: String| format!("MountVolume.SetUp failed for volume {volume:?} : {e}");
            let r = ObjectRef {
                kind: Kind::PersistentVolumeClaim,
                namespace: Some(namespace.clone()),
                name: name.clone(),
            };
            let claim = match self.ctx.client.get(&r).await {
                Ok(Object::PersistentVolumeClaim(c)) => c,
                Ok(_) => return Err(failed(format!("{r} is not a PersistentVolumeClaim"))),
                Err(e) if e.is_not_found() => {
                    return Err(failed(ClaimError::ClaimNotFound { name }.to_string()));
                }
                Err(e) => return Err(failed(e.to_string())),
            };
            let pv: Option<PersistentVolume> = match claim.spec.volume_name.as_deref() {
                Some(v) if !v.is_empty() => {
                    let r = ObjectRef {
                        kind: Kind::PersistentVolume,
                        namespace: None,
                        name: v.to_owned(),
                    };
                    match self.ctx.client.get(&r).await {
                        Ok(Object::PersistentVolume(pv)) => Some(pv),
                        Ok(_) => None,
                        Err(e) if e.is_not_found() => None,
                        Err(e) => return Err(failed(e.to_string())),
                    }
                }
                _ => None,
            };
            let resolved = claim_volume(&claim, pv.as_ref(), &self.ctx.config.volumes_dir())
                .map_err(|e| failed(e.to_string()))?;
            self.claims.insert(name, resolved);
        }
        Ok(())
    }
}
