//! Admission of applied objects: decode strictly, default, validate, and
//! merge with what is stored. Plain functions, no I/O: the API server reads
//! the store, calls these, and writes what they return.

use std::collections::HashSet;

pub use jotasu_api::Outcome;
use jotasu_api::{FieldError, Object, ObjectMeta, ParseOptions, Time, load_manifest};

use super::error::{ApiResult, ApiServerError};
use crate::store::Revision;

/// An admitted object merged with its stored version, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The object to store (without resourceVersion).
    pub object: Object,
    /// What the write does.
    pub outcome: Outcome,
    /// The mod revision the key must still have for the write to apply (0: absent).
    pub expected: Revision,
}

/// Decodes (strict about unknown fields), defaults and validates every
/// object of one apply, reporting every problem of every object, one per
/// line (`object 2 (Deployment web): spec.replicas: ...`). The same object
/// twice is an error too.
pub fn admit(objects: &[String]) -> ApiResult<Vec<Object>> {
    let mut admitted = Vec::with_capacity(objects.len());
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (i, json) in objects.iter().enumerate() {
        let n = i + 1;
        match load_manifest("", json, ParseOptions::default()) {
            Ok(loaded) if loaded.objects.len() == 1 => {
                let object = loaded.into_objects().remove(0);
                let r = object.object_ref();
                if !r.name.is_empty() && !seen.insert(r.clone()) {
                    problems.push(format!("object {n} ({r}): applied twice in one request"));
                } else {
                    admitted.push(object);
                }
            }
            Ok(loaded) => problems.push(format!(
                "object {n}: expected one object, found {} (send a List's items as separate objects)",
                loaded.objects.len()
            )),
            Err(errors) => {
                for e in errors.0 {
                    let what = match (&e.location.kind, &e.location.name) {
                        (Some(k), Some(name)) => format!("object {n} ({k} {name})"),
                        (Some(k), None) => format!("object {n} ({k})"),
                        _ => format!("object {n}"),
                    };
                    problems.push(format!("{what}: {}", FieldError::new(&e.path, e.message)));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(admitted)
    } else {
        Err(ApiServerError::Invalid(problems.join("\n")))
    }
}

/// Server-assigned identity for a new object.
#[derive(Debug, Clone)]
pub struct Identity {
    /// A fresh uid.
    pub uid: String,
    /// Now.
    pub now: Time,
    /// A name suffix for `generateName` (5 lower-case alphanumerics).
    pub suffix: String,
}

impl Identity {
    /// A random identity at the current time.
    pub fn fresh() -> Self {
        let uid = uuid::Uuid::new_v4();
        let suffix: String = uid
            .as_bytes()
            .iter()
            .take(5)
            .map(|b| char::from(b"bcdfghjklmnpqrstvwxz2456789"[usize::from(*b) % 27]))
            .collect();
        Self {
            uid: uid.to_string(),
            now: Time::now(),
            suffix,
        }
    }
}

/// Gives an object with `generateName` and no name its generated name;
/// returns whether it did (a generated name must be new: the caller picks
/// another if it is taken).
pub fn assign_name(object: &mut Object, identity: &Identity) -> bool {
    let meta = object.metadata_mut();
    if meta.name.as_deref().is_none_or(str::is_empty)
        && let Some(prefix) = meta.generate_name.as_deref()
    {
        meta.name = Some(format!("{prefix}{}", identity.suffix));
        return true;
    }
    false
}

/// Annotation prefixes that controllers write on objects users apply (a
/// Deployment's revision): an apply that does not name them keeps them,
/// so re-applying the same manifest stays "unchanged".
const CONTROLLER_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/",
    "volume.kubernetes.io/",
    "pv.kubernetes.io/",
];

fn keep_controller_annotations(meta: &mut ObjectMeta, old: &ObjectMeta) {
    for (k, v) in &old.annotations {
        if CONTROLLER_ANNOTATIONS.iter().any(|p| k.starts_with(p)) {
            meta.annotations
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
}

/// Merges an admitted object with its stored version (`existing`, with its
/// mod revision). The apply owns labels, annotations, owner references and
/// the spec; the server owns uid, creationTimestamp, generation (bumped
/// when the spec changes) and the status, and fields assigned later (a
/// Pod's node, a Service's cluster IP) survive an apply that leaves them
/// out. A `metadata.resourceVersion` in the applied object is a
/// precondition: it must be the stored one.
pub fn merge(
    mut object: Object,
    existing: Option<(&Object, Revision)>,
    identity: &Identity,
) -> ApiResult<Prepared> {
    let r = object.object_ref();
    let precondition = object.metadata_mut().resource_version.take();
    let precondition = precondition.filter(|v| !v.is_empty());
    let Some((old, mod_revision)) = existing else {
        if precondition.is_some() {
            return Err(ApiServerError::NotFound(r));
        }
        object.clear_status();
        let meta = object.metadata_mut();
        meta.uid = Some(identity.uid.clone());
        meta.creation_timestamp = Some(identity.now.clone());
        meta.generation = Some(1);
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        if let Object::Job(job) = &mut object {
            jotasu_api::kinds::batch::generate_selector(job);
        }
        return Ok(Prepared {
            object,
            outcome: Outcome::Created,
            expected: 0,
        });
    };
    if let Some(v) = precondition
        && v != mod_revision.to_string()
    {
        return Err(ApiServerError::Conflict(r));
    }
    object.set_status_from(old);
    object.keep_assigned_fields(old);
    keep_controller_annotations(object.metadata_mut(), old.metadata());
    super::allocate::check_immutable(&object, old)?;
    super::storage::check_update(&object, old)?;
    if let (Object::Job(new), Object::Job(stored)) = (&object, old) {
        let errs = jotasu_api::kinds::batch::immutable_changes(new, stored);
        if !errs.is_empty() {
            let lines: Vec<String> = errs.iter().map(|e| format!("{r}: {e}")).collect();
            return Err(ApiServerError::Invalid(lines.join("\n")));
        }
    }
    let old_meta = old.metadata();
    let generation = old_meta.generation.unwrap_or(1);
    let meta = object.metadata_mut();
    meta.uid.clone_from(&old_meta.uid);
    meta.creation_timestamp
        .clone_from(&old_meta.creation_timestamp);
    meta.deletion_timestamp
        .clone_from(&old_meta.deletion_timestamp);
    meta.deletion_grace_period_seconds = old_meta.deletion_grace_period_seconds;
    meta.generate_name.clone_from(&old_meta.generate_name);
    meta.generation = Some(generation);
    if spec_differs(&object, old) {
        object.metadata_mut().generation = Some(generation + 1);
    }
    let outcome = if object == *old {
        Outcome::Unchanged
    } else {
        Outcome::Configured
    };
    Ok(Prepared {
        object,
        outcome,
        expected: mod_revision,
    })
}

/// Whether two objects differ outside metadata and status.
pub fn spec_differs(a: &Object, b: &Object) -> bool {
    let strip = |o: &Object| {
        let mut o = o.clone();
        *o.metadata_mut() = Default::default();
        o.clear_status();
        o
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i32, image: &str) -> String {
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}
                }
            }
        })
        .to_string()
    }

    fn id(uid: &str) -> Identity {
        Identity {
            uid: uid.into(),
            now: Time::from_unix_seconds(1_000),
            suffix: "abcde".into(),
        }
    }

    #[test]
    fn admits_with_defaults_and_reports_every_problem() {
        let ok = admit(&[deployment(3, "nginx")]).unwrap();
        assert_eq!(ok[0].namespace(), Some("default"));
        let bad = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "Bad_Name"}, "data": {"k": "v"}, "extra": 1
        })
        .to_string();
        let e = admit(&[deployment(3, "nginx"), bad, deployment(-1, "nginx")])
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("object 2 (ConfigMap Bad_Name): ") && l.contains("extra")),
            "{e}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("object 3 (Deployment web): spec.replicas")),
            "{e}"
        );
        let e = admit(&[deployment(1, "a"), deployment(2, "b")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "object 2 (Deployment default/web): applied twice in one request"
        );
        let e = admit(&["{not json".into()]).unwrap_err().to_string();
        assert!(e.starts_with("object 1: "), "{e}");
    }

    #[test]
    fn controller_annotations_survive_an_apply() {
        let obj = || admit(&[deployment(3, "nginx")]).unwrap().remove(0);
        let mut stored = merge(obj(), None, &id("u1")).unwrap().object;
        stored
            .metadata_mut()
            .annotations
            .insert("deployment.kubernetes.io/revision".into(), "2".into());
        let again = merge(obj(), Some((&stored, 5)), &id("u2")).unwrap();
        assert_eq!(again.outcome, Outcome::Unchanged);
        assert_eq!(
            again.object.metadata().annotations["deployment.kubernetes.io/revision"],
            "2"
        );
    }

    #[test]
    fn merge_outcomes_generation_and_preconditions() {
        let obj = |r, img| admit(&[deployment(r, img)]).unwrap().remove(0);
        let created = merge(obj(3, "nginx"), None, &id("u1")).unwrap();
        assert_eq!(created.outcome, Outcome::Created);
        assert_eq!(created.expected, 0);
        let stored = created.object;
        assert_eq!(stored.metadata().uid.as_deref(), Some("u1"));
        assert_eq!(stored.metadata().generation, Some(1));

        let same = merge(obj(3, "nginx"), Some((&stored, 7)), &id("u2")).unwrap();
        assert_eq!(same.outcome, Outcome::Unchanged);
        assert_eq!(same.expected, 7);
        assert_eq!(same.object.metadata().uid.as_deref(), Some("u1"));

        let changed = merge(obj(3, "nginx:2"), Some((&stored, 7)), &id("u2")).unwrap();
        assert_eq!(changed.outcome, Outcome::Configured);
        assert_eq!(changed.object.metadata().generation, Some(2));

        let mut labels_only = obj(3, "nginx");
        labels_only
            .metadata_mut()
            .labels
            .insert("tier".into(), "fe".into());
        let relabelled = merge(labels_only, Some((&stored, 7)), &id("u2")).unwrap();
        assert_eq!(relabelled.outcome, Outcome::Configured);
        assert_eq!(relabelled.object.metadata().generation, Some(1));

        let mut stale = obj(3, "nginx:3");
        stale.metadata_mut().resource_version = Some("6".into());
        let e = merge(stale, Some((&stored, 7)), &id("u2")).unwrap_err();
        assert!(matches!(e, ApiServerError::Conflict(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let mut current = obj(3, "nginx:3");
        current.metadata_mut().resource_version = Some("7".into());
        assert!(merge(current.clone(), Some((&stored, 7)), &id("u2")).is_ok());
        assert!(matches!(
            merge(current, None, &id("u2")),
            Err(ApiServerError::NotFound(_))
        ));
    }

    #[test]
    fn generate_name() {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}
        })
        .to_string();
        let mut o = admit(&[json]).unwrap().remove(0);
        assign_name(&mut o, &id("u"));
        assert_eq!(o.name(), "cfg-abcde");
    }
}
