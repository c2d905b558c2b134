//! Storage admission: Kubernetes' DefaultStorageClass (a claim created
//! without `storageClassName` gets the default class), the rules of
//! updates to claims, volumes and classes (what may change once created),
//! and the built-in class `standard` written at start. Plain functions
//! over what the API server read.

use jotasu_api::kinds::storage::{
    DEFAULT_CLASS, IS_DEFAULT_CLASS, LOCAL_PROVISIONER, StorageClass,
};
use jotasu_api::validate::storage::{pv_update, pvc_update, storage_class_update};
use jotasu_api::{Kind, Object, Outcome};

use super::admit::Prepared;
use super::error::{ApiResult, ApiServerError};
use crate::store::{KeyValue, StoreError};

/// The class every cluster has: `standard`, the default, provisioned by
/// jotasu's local provisioner when a claim's first pod is scheduled.
pub fn standard_class() -> Object {
    let mut sc = StorageClass::default();
    sc.metadata.name = Some(DEFAULT_CLASS.to_owned());
    sc.metadata
        .annotations
        .insert(IS_DEFAULT_CLASS.to_owned(), "true".to_owned());
    sc.provisioner = LOCAL_PROVISIONER.to_owned();
    sc.reclaim_policy = Some("Delete".to_owned());
    sc.volume_binding_mode = Some("WaitForFirstConsumer".to_owned());
    Object::StorageClass(sc)
}

/// The default class among `classes`: the one annotated default; of
/// several, the newest (then the first by name), as Kubernetes picks.
pub fn default_class(classes: &[StorageClass]) -> Option<&StorageClass> {
    classes.iter().filter(|c| c.is_default()).max_by(|a, b| {
        let t = |c: &StorageClass| c.metadata.creation_timestamp.clone();
        t(a).cmp(&t(b))
            .then_with(|| b.metadata.name().cmp(a.metadata.name()))
    })
}

/// Whether the apply creates a claim without a class.
pub fn creates_classless_claims(prepared: &[Prepared]) -> bool {
    prepared.iter().any(|p| {
        p.outcome == Outcome::Created
            && matches!(&p.object, Object::PersistentVolumeClaim(c) if c.spec.storage_class_name.is_none())
    })
}

/// Gives every claim the apply creates without `storageClassName` the
/// default class of `stored` and the classes the apply brings (none when
/// there is no default: the claim binds only volumes without a class).
pub fn assign_default_class(prepared: &mut [Prepared], stored: &[StorageClass]) {
    let mut classes: Vec<StorageClass> = stored.to_vec();
    for p in prepared.iter() {
        if let Object::StorageClass(c) = &p.object {
            classes.retain(|s| s.metadata.name() != c.metadata.name());
            classes.push(c.clone());
        }
    }
    let Some(default) = default_class(&classes).map(|c| c.metadata.name().to_owned()) else {
        return;
    };
    for p in prepared.iter_mut() {
        if p.outcome != Outcome::Created {
            continue;
        }
        if let Object::PersistentVolumeClaim(c) = &mut p.object
            && c.spec.storage_class_name.is_none()
        {
            c.spec.storage_class_name = Some(default.clone());
        }
    }
}

/// Refuses an update that changes what may not change (Kubernetes' update
/// validation of claims, volumes and classes).
pub fn check_update(new: &Object, old: &Object) -> ApiResult<()> {
    let errs = match (new, old) {
        (Object::PersistentVolumeClaim(a), Object::PersistentVolumeClaim(b)) => pvc_update(a, b),
        (Object::PersistentVolume(a), Object::PersistentVolume(b)) => pv_update(a, b),
        (Object::StorageClass(a), Object::StorageClass(b)) => storage_class_update(a, b),
        _ => return Ok(()),
    };
    if errs.is_empty() {
        return Ok(());
    }
    let r = new.object_ref();
    let lines: Vec<String> = errs.iter().map(|e| format!("{r}: {e}")).collect();
    Err(ApiServerError::Invalid(lines.join("\n")))
}

/// Whether `pod` uses claim `name` of its namespace and may still run
/// (not Succeeded or Failed): Kubernetes' pvc-protection keeps such a
/// claim until the pod is gone.
pub fn uses_claim(pod: &jotasu_api::Pod, name: &str) -> bool {
    use jotasu_api::kinds::pod_status::PodPhase;
    let done = pod
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| matches!(p, PodPhase::Succeeded | PodPhase::Failed));
    !done
        && pod
            .spec
            .volumes
            .iter()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .any(|c| c.claim_name == name)
}

impl<S: crate::store::Store> super::ApiServer<S> {
    /// `kubernetes.io/pvc-protection`, without finalizers: a claim some pod
    /// of its namespace still uses is marked terminating
    /// (`deletionTimestamp`) instead of deleted; the PV controller deletes
    /// it once no pod uses it. `None`: not such a claim (delete as usual);
    /// `Some(None)`: already marked; `Some(Some(json))`: mark it so.
    pub(super) async fn protect_claim(
        &self,
        kv: &KeyValue,
    ) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let internal = |e: ApiServerError| StoreError::Internal(e.to_string());
        let Some((Kind::PersistentVolumeClaim, Some(namespace), name)) =
            super::keys::split_key(&kv.key)
        else {
            return Ok(None);
        };
        let pods = self
            .store
            .range(&super::keys::kind_prefix(Kind::Pod, Some(namespace)), None)
            .await?;
        let mut used = false;
        for p in &pods.kvs {
            let Object::Pod(pod) = super::decode(p).map_err(internal)? else {
                continue;
            };
            if uses_claim(&pod, name) {
                used = true;
                break;
            }
        }
        if !used {
            return Ok(None);
        }
        let Object::PersistentVolumeClaim(mut claim) = super::decode(kv).map_err(internal)? else {
            return Ok(None);
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Ok(Some(None));
        }
        claim.metadata.deletion_timestamp = Some(jotasu_api::Time::now());
        let json = super::encode(&Object::PersistentVolumeClaim(claim)).map_err(internal)?;
        Ok(Some(Some(json)))
    }

    /// Reads the StorageClasses (when the apply creates claims without a
    /// class) and gives those claims the default class; returns the keys
    /// read with their revisions, so the commit holds them unchanged.
    pub(super) async fn admit_storage(
        &self,
        prepared: &mut [Prepared],
    ) -> ApiResult<Vec<(Vec<u8>, crate::store::Revision)>> {
        if !creates_classless_claims(prepared) {
            return Ok(Vec::new());
        }
        let range = self
            .store
            .range(&super::keys::kind_prefix(Kind::StorageClass, None), None)
            .await?;
        let mut classes = Vec::new();
        let mut read = Vec::new();
        for kv in &range.kvs {
            if let Object::StorageClass(c) = super::decode(kv)? {
                classes.push(c);
                read.push((kv.key.clone(), kv.mod_revision));
            }
        }
        assign_default_class(prepared, &classes);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::Time;
    use serde_json::json;

    fn claim(class: Option<&str>) -> Prepared {
        let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        if let Some(c) = class {
            v["spec"]["storageClassName"] = json!(c);
        }
        Prepared {
            object: serde_json::from_value(v).unwrap(),
            outcome: Outcome::Created,
            expected: 0,
        }
    }

    fn class_of(p: &Prepared) -> Option<String> {
        match &p.object {
            Object::PersistentVolumeClaim(c) => c.spec.storage_class_name.clone(),
            _ => None,
        }
    }

    #[test]
    fn claims_without_a_class_get_the_newest_default() {
        let Object::StorageClass(standard) = standard_class() else {
            panic!()
        };
        let mut newer = standard.clone();
        newer.metadata.name = Some("fast".into());
        newer.metadata.creation_timestamp = Some(Time::from_unix_seconds(200));
        let mut plain = standard.clone();
        plain.metadata.name = Some("plain".into());
        plain.metadata.annotations.clear();
        let mut p = vec![claim(None), claim(Some("")), claim(Some("gold"))];
        assign_default_class(&mut p, &[standard.clone(), newer, plain.clone()]);
        assert_eq!(class_of(&p[0]).as_deref(), Some("fast"));
        assert_eq!(
            class_of(&p[1]).as_deref(),
            Some(""),
            "\"\" asks for no class"
        );
        assert_eq!(class_of(&p[2]).as_deref(), Some("gold"));
        // No default: the claim keeps no class.
        let mut p = vec![claim(None)];
        assign_default_class(&mut p, &[plain]);
        assert_eq!(class_of(&p[0]), None);
        // An update is not defaulted.
        let mut p = vec![claim(None)];
        p[0].outcome = Outcome::Configured;
        assign_default_class(&mut p, &[standard]);
        assert_eq!(class_of(&p[0]), None);
    }

    #[test]
    fn a_bound_claims_spec_cannot_change() {
        let old = claim(Some("standard")).object;
        let mut new = old.clone();
        if let Object::PersistentVolumeClaim(c) = &mut new {
            c.spec.access_modes = vec!["ReadOnlyMany".into()];
        }
        let e = check_update(&new, &old).unwrap_err().to_string();
        assert!(
            e.contains("spec: Forbidden: spec is immutable after creation"),
            "{e}"
        );
        assert!(check_update(&old, &old).is_ok());
    }

    /// Through a real API server: a claim gets the default class at
    /// creation; deleting it while a pod uses it only marks it; once the
    /// pod is gone, deleting it deletes it.
    #[tokio::test]
    async fn a_used_claim_is_only_marked_when_deleted() {
        let (_dir, server) = super::super::bootstrap::test_server().await;
        let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}});
        server
            .apply(&[claim.to_string(), pod.to_string()], false)
            .await
            .expect("applied");
        let r = |kind, name: &str| jotasu_api::ObjectRef {
            kind,
            namespace: Some("default".into()),
            name: name.into(),
        };
        let read = |json: String| -> jotasu_api::PersistentVolumeClaim {
            match serde_json::from_str::<Object>(&json) {
                Ok(Object::PersistentVolumeClaim(c)) => c,
                other => panic!("not a claim: {other:?}"),
            }
        };
        let stored = read(
            server
                .get(&r(Kind::PersistentVolumeClaim, "data"))
                .await
                .unwrap(),
        );
        assert_eq!(stored.spec.storage_class_name.as_deref(), Some("standard"));
        server
            .delete(&r(Kind::PersistentVolumeClaim, "data"), None)
            .await
            .expect("deleting is accepted");
        let marked = read(
            server
                .get(&r(Kind::PersistentVolumeClaim, "data"))
                .await
                .unwrap(),
        );
        assert!(
            marked.metadata.deletion_timestamp.is_some(),
            "kept while the pod uses it"
        );
        server
            .delete(&r(Kind::Pod, "p"), None)
            .await
            .expect("the pod goes");
        server
            .delete(&r(Kind::PersistentVolumeClaim, "data"), None)
            .await
            .expect("deleted");
        assert!(matches!(
            server.get(&r(Kind::PersistentVolumeClaim, "data")).await,
            Err(ApiServerError::NotFound(_))
        ));
    }

    /// A bad volume refuses the whole apply, in Kubernetes' words, and
    /// nothing of it is written; a claim's spec cannot change once created.
    #[tokio::test]
    async fn bad_storage_objects_write_nothing() {
        let (_dir, server) = super::super::bootstrap::test_server().await;
        let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        let bad = json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": "escape"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "local": {"path": "/srv/../etc"}}});
        let e = server
            .apply(&[claim.to_string(), bad.to_string()], false)
            .await
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("spec.local.path: Invalid value: \"/srv/../etc\": must not contain '..'"),
            "{e}"
        );
        assert!(
            e.contains("spec.nodeAffinity: Required value: Local volume requires node affinity"),
            "{e}"
        );
        let r = jotasu_api::ObjectRef {
            kind: Kind::PersistentVolumeClaim,
            namespace: Some("default".into()),
            name: "data".into(),
        };
        assert!(matches!(
            server.get(&r).await,
            Err(ApiServerError::NotFound(_))
        ));
        server
            .apply(&[claim.to_string()], false)
            .await
            .expect("the claim alone");
        let mut wider = claim.clone();
        wider["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        let e = server
            .apply(&[wider.to_string()], false)
            .await
            .expect_err("immutable")
            .to_string();
        assert!(e.contains("spec is immutable after creation"), "{e}");
    }
}
