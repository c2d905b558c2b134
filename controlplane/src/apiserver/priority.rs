//! Kubernetes' Priority admission: a pod created with a
//! `priorityClassName` gets the class's value in `spec.priority` (and its
//! preemption policy); a pod naming none gets the global default class, if
//! one says so, else priority 0. A class that does not exist, or a
//! `priority` that disagrees with the class, refuses the pod in
//! Kubernetes' words. Plain functions over the classes the API server
//! read; the scheduler takes higher priorities first (jotasu does not
//! preempt).

use jotasu_api::kinds::scheduling::PriorityClass;
use jotasu_api::{Object, Outcome};

use super::admit::Prepared;
use super::error::{ApiResult, ApiServerError};

/// Whether the apply creates a pod (and so needs the classes read).
pub fn creates_pods(prepared: &[Prepared]) -> bool {
    prepared
        .iter()
        .any(|p| p.outcome == Outcome::Created && matches!(p.object, Object::Pod(_)))
}

/// Sets the priority of every pod the apply creates from `stored` classes
/// and those the apply itself brings.
pub fn resolve(prepared: &mut [Prepared], stored: &[PriorityClass]) -> ApiResult<()> {
    let mut classes: Vec<PriorityClass> = stored.to_vec();
    for p in prepared.iter() {
        if let Object::PriorityClass(c) = &p.object {
            classes.retain(|s| s.metadata.name() != c.metadata.name());
            classes.push(c.clone());
        }
    }
    let default = classes
        .iter()
        .filter(|c| c.global_default == Some(true))
        .min_by_key(|c| c.value);
    for p in prepared.iter_mut() {
        if p.outcome != Outcome::Created {
            continue;
        }
        let Object::Pod(pod) = &mut p.object else {
            continue;
        };
        let named = pod
            .spec
            .priority_class_name
            .clone()
            .filter(|n| !n.is_empty());
        let class = match &named {
            Some(name) => match classes.iter().find(|c| c.metadata.name() == name) {
                Some(c) => Some(c),
                None => {
                    return Err(ApiServerError::Refused {
                        object: p.object.object_ref(),
                        reason: format!("no PriorityClass with name {name} was found"),
                    });
                }
            },
            None => default,
        };
        let value = class.map_or(0, |c| c.value);
        if let Some(given) = pod.spec.priority
            && given != value
        {
            let r = p.object.object_ref();
            return Err(ApiServerError::Refused {
                object: r,
                reason: format!(
                    "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
                ),
            });
        }
        if let Object::Pod(pod) = &mut p.object {
            pod.spec.priority = Some(value);
            if let Some(c) = class {
                pod.spec.priority_class_name = Some(c.metadata.name().to_owned());
                pod.spec.preemption_policy = Some(c.preemption_policy().to_owned());
            }
        }
    }
    Ok(())
}

impl<S: crate::store::Store> super::ApiServer<S> {
    /// Reads the PriorityClasses (when the apply creates pods) and resolves
    /// the pods' priorities; returns the keys read with their revisions, so
    /// the commit holds them unchanged.
    pub(super) async fn admit_priority(
        &self,
        prepared: &mut [Prepared],
    ) -> ApiResult<Vec<(Vec<u8>, crate::store::Revision)>> {
        if !creates_pods(prepared) {
            return Ok(Vec::new());
        }
        let range = self
            .store
            .range(
                &super::keys::kind_prefix(jotasu_api::Kind::PriorityClass, None),
                None,
            )
            .await?;
        let mut classes = Vec::new();
        let mut read = Vec::new();
        for kv in &range.kvs {
            if let Object::PriorityClass(c) = super::decode(kv)? {
                classes.push(c);
                read.push((kv.key.clone(), kv.mod_revision));
            }
        }
        resolve(prepared, &classes)?;
        Ok(read)
    }
}

/// The built-in classes (`system-cluster-critical`, `system-node-critical`),
/// written at start.
pub fn system_classes() -> Vec<Object> {
    jotasu_api::kinds::scheduling::SYSTEM_CLASSES
        .iter()
        .map(|(name, value)| {
            let mut c = PriorityClass::default();
            c.metadata.name = Some((*name).to_owned());
            c.value = *value;
            c.description = Some("Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.".into());
            Object::PriorityClass(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prepared(objects: Vec<serde_json::Value>) -> Vec<Prepared> {
        objects
            .into_iter()
            .map(|v| Prepared {
                object: serde_json::from_value(v).expect("an object"),
                outcome: Outcome::Created,
                expected: 0,
            })
            .collect()
    }

    fn pod(name: &str, spec: serde_json::Value) -> serde_json::Value {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "x"}]);
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    fn class(name: &str, value: i32, default: bool) -> PriorityClass {
        serde_json::from_value(
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "globalDefault": default}),
        )
        .expect("a class")
    }

    fn priority(p: &Prepared) -> (Option<i32>, Option<String>) {
        match &p.object {
            Object::Pod(pod) => (pod.spec.priority, pod.spec.priority_class_name.clone()),
            _ => (None, None),
        }
    }

    #[test]
    fn a_named_class_gives_its_value_and_a_missing_one_refuses() {
        let stored = [class("high", 1000, false)];
        let mut p = prepared(vec![
            pod("a", json!({"priorityClassName": "high"})),
            pod("b", json!({})),
        ]);
        resolve(&mut p, &stored).unwrap();
        assert_eq!(priority(&p[0]), (Some(1000), Some("high".into())));
        assert_eq!(priority(&p[1]), (Some(0), None));
        let mut missing = prepared(vec![pod("c", json!({"priorityClassName": "urgent"}))]);
        let e = resolve(&mut missing, &stored).unwrap_err().to_string();
        assert!(
            e.contains("no PriorityClass with name urgent was found"),
            "{e}"
        );
        let mut wrong = prepared(vec![pod(
            "d",
            json!({"priorityClassName": "high", "priority": 5}),
        )]);
        let e = resolve(&mut wrong, &stored).unwrap_err().to_string();
        assert!(e.contains("the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000"), "{e}");
    }

    #[test]
    fn the_global_default_and_classes_in_the_same_apply() {
        let stored = [class("normal", 100, true)];
        let mut p = prepared(vec![
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": "batch"}, "value": -10}),
            pod("a", json!({"priorityClassName": "batch"})),
            pod("b", json!({})),
        ]);
        resolve(&mut p, &stored).unwrap();
        assert_eq!(priority(&p[1]), (Some(-10), Some("batch".into())));
        assert_eq!(priority(&p[2]), (Some(100), Some("normal".into())));
        assert_eq!(system_classes().len(), 2);
    }
}

#[cfg(test)]
mod server_tests {
    use jotasu_api::{Kind, ObjectRef};

    /// Through a real API server on the embedded store: the built-in
    /// classes exist after start-up, a pod naming one gets its value, a pod
    /// naming a missing one is refused and nothing is written.
    #[tokio::test]
    async fn pods_get_their_class_priority_through_apply() {
        let (_dir, server) = crate::apiserver::bootstrap::test_server().await;
        let pod = |name: &str, class: &str| {
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default"}},"spec":{{"priorityClassName":"{class}","containers":[{{"name":"c","image":"x"}}]}}}}"#
            )
        };
        server
            .apply(&[pod("critical", "system-cluster-critical")], false)
            .await
            .unwrap();
        let r = |name: &str| ObjectRef {
            kind: Kind::Pod,
            namespace: Some("default".into()),
            name: name.into(),
        };
        let stored: jotasu_api::Pod =
            serde_json::from_str(&server.get(&r("critical")).await.unwrap()).unwrap();
        assert_eq!(stored.spec.priority, Some(2_000_000_000));
        let e = server
            .apply(&[pod("lost", "urgent")], false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no PriorityClass with name urgent was found"),
            "{e}"
        );
        assert!(server.get(&r("lost")).await.is_err());
    }
}
