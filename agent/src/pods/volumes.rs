//! A pod's volumes on the node: its PersistentVolumeClaims and their
//! volumes read through the API (the node authorizer lets a node read the
//! claims its pods name and the volumes bound to them), once per claim — a
//! bound claim's volume does not change — then every volume planned and
//! written ([`crate::pod::volumes`]).

use std::sync::PoisonError;

use jotasu_api::{Kind, Object, ObjectRef, PersistentVolume};

use super::ViewConfig;
use super::containers::PodRun;
use crate::pod::claims::{ClaimError, ClaimVolume, ClaimVolumes, claim_volume};
use crate::pod::env::ConfigSource;
use crate::pod::volume_ops::HostVolumeOps;
use crate::pod::volumes::MaterializedVolume;

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
    /// The pod's volumes, ready to mount; an error is the message the pod
    /// waits with in `ContainerCreating`.
    pub(super) async fn prepare_volumes(&mut self) -> Result<Vec<MaterializedVolume>, String> {
        self.resolve_claims().await?;
        self.write_volumes()
    }

    fn write_volumes(&self) -> Result<Vec<MaterializedVolume>, String> {
        let view = self.ctx.view.read().unwrap_or_else(PoisonError::into_inner);
        let facts = self.node_facts();
        let source = WithClaims {
            view: ViewConfig(&view),
            claims: &self.claims,
        };
        let contents = crate::pod::volumes::plan_volumes(&self.pod, &source, &facts)
            .map_err(|e| e.to_string())?;
        drop(view);
        crate::pod::volumes::write_volumes(
            &self.ctx.config.pod_dir(&self.id.uid),
            &contents,
            &HostVolumeOps,
        )
        .map_err(|e| format!("MountVolume.SetUp failed: {e}"))
    }

    /// Reads the claims not read yet; an error is the volume set-up
    /// message the pod waits with (the claim is missing or not bound).
    async fn resolve_claims(&mut self) -> Result<(), String> {
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
            // An unbound claim says so before its volume is asked for (the
            // node may read a volume only once it is bound to the claim).
            let bound = claim.phase() == "Bound";
            let pv: Option<PersistentVolume> = match claim.spec.volume_name.as_deref() {
                Some(v) if bound && !v.is_empty() => {
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
