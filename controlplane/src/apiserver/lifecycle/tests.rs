//! The namespace lifecycle and ServiceAccount admission: the plain
//! decisions, then the same through an API server on a temporary store.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::apiserver::admit::admit;
use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};

fn prepared(objects: &[Value]) -> Vec<Prepared> {
    let json: Vec<String> = objects.iter().map(Value::to_string).collect();
    admit(&json)
        .unwrap()
        .into_iter()
        .map(|o| merge(o, None, &Identity::fresh()).unwrap())
        .collect()
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn config_map(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}})
}

fn pod(ns: &str, name: &str, sa: Option<&str>) -> Value {
    let mut p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    if let Some(sa) = sa {
        p["spec"]["serviceAccountName"] = json!(sa);
    }
    p
}

fn service_account_json(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}})
}

fn known(namespaces: &[(&str, bool)], accounts: &[(&str, &str)]) -> Known {
    Known {
        namespaces: namespaces
            .iter()
            .map(|(n, t)| ((*n).to_owned(), *t))
            .collect(),
        service_accounts: accounts
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect(),
    }
}

#[test]
fn creating_in_a_missing_namespace_is_refused_as_kubernetes_words_it() {
    let p = prepared(&[config_map("foo", "cfg")]);
    assert_eq!(lookups(&p).0, BTreeSet::from(["foo".to_owned()]));
    let e = admit_creations(&p, &Known::default()).unwrap_err();
    assert!(matches!(e, ApiServerError::NotFound(_)), "{e}");
    assert_eq!(e.to_string(), "namespaces \"foo\" not found");
    assert!(admit_creations(&p, &known(&[("foo", false)], &[])).is_ok());
}

#[test]
fn creating_in_a_terminating_namespace_is_forbidden_but_updates_are_not() {
    let p = prepared(&[config_map("foo", "cfg")]);
    let e = admit_creations(&p, &known(&[("foo", true)], &[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "configmaps \"cfg\" is forbidden: unable to create new content in namespace foo because it is being terminated"
    );
    assert_eq!(tonic::Status::from(e).code(), tonic::Code::PermissionDenied);
    let mut update = prepared(&[config_map("foo", "cfg")]);
    update[0].outcome = Outcome::Configured;
    assert!(admit_creations(&update, &known(&[("foo", true)], &[])).is_ok());
    assert!(lookups(&update).0.is_empty(), "an update needs no lookup");
}

#[test]
fn a_namespace_and_its_contents_in_one_apply() {
    let p = prepared(&[
        namespace("team-a"),
        config_map("team-a", "cfg"),
        pod("team-a", "p", None),
    ]);
    let (namespaces, accounts) = lookups(&p);
    assert!(
        namespaces.is_empty() && accounts.is_empty(),
        "{namespaces:?} {accounts:?}"
    );
    assert!(admit_creations(&p, &Known::default()).is_ok());
    // A pod naming another account still needs it.
    let p = prepared(&[namespace("team-a"), pod("team-a", "p", Some("build"))]);
    let e = admit_creations(&p, &Known::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pods \"p\" is forbidden: error looking up service account team-a/build: serviceaccount \"build\" not found"
    );
    let p = prepared(&[
        namespace("team-a"),
        service_account_json("team-a", "build"),
        pod("team-a", "p", Some("build")),
    ]);
    assert!(admit_creations(&p, &Known::default()).is_ok());
    assert_eq!(
        default_accounts(&p),
        vec![service_account_ref("team-a", "default")]
    );
}

#[test]
fn immortal_namespaces_need_no_lookup() {
    let p = prepared(&[config_map("default", "a"), config_map("kube-system", "b")]);
    assert!(lookups(&p).0.is_empty());
    assert!(admit_creations(&p, &Known::default()).is_ok());
}

#[test]
fn pods_need_their_service_account() {
    let p = prepared(&[pod("default", "web", None)]);
    let e = admit_creations(&p, &Known::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "pods \"web\" is forbidden: error looking up service account default/default: serviceaccount \"default\" not found"
    );
    assert!(admit_creations(&p, &known(&[], &[("default", "default")])).is_ok());
    let p = prepared(&[pod("default", "web", Some("build"))]);
    assert_eq!(
        lookups(&p).1,
        BTreeSet::from([("default".to_owned(), "build".to_owned())])
    );
    assert!(admit_creations(&p, &known(&[], &[("default", "default")])).is_err());
}

#[test]
fn immortal_namespaces_cannot_be_deleted() {
    for name in ["default", "kube-system", "kube-public"] {
        let e = refuse_deletion(&namespace_ref(name)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted")
        );
    }
    assert!(refuse_deletion(&namespace_ref("kube-node-lease")).is_ok());
    assert!(refuse_deletion(&namespace_ref("team-a")).is_ok());
}

#[test]
fn terminating_then_finalized() {
    let mut p = prepared(&[namespace("a")]);
    activate_new_namespaces(&mut p);
    let Object::Namespace(mut ns) = p.remove(0).object else {
        panic!("a Namespace")
    };
    assert_eq!(ns.phase(), NamespacePhase::Active);
    assert_eq!(finalize(&mut ns.clone()), Finalized::NotTerminating);
    let now = Time::from_unix_seconds(1_000);
    assert!(mark_terminating(&mut ns, &now));
    assert!(!mark_terminating(&mut ns, &Time::from_unix_seconds(2_000)));
    assert_eq!(ns.metadata.deletion_timestamp, Some(now));
    assert_eq!(ns.phase(), NamespacePhase::Terminating);
    let mut other = ns.clone();
    other.spec.finalizers.insert(0, "example.com/keep".into());
    assert_eq!(finalize(&mut other), Finalized::Waiting);
    assert_eq!(other.spec.finalizers, ["example.com/keep"]);
    assert_eq!(finalize(&mut ns), Finalized::Gone);
}

async fn server() -> (ApiServer<EmbeddedStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default())
        .await
        .unwrap();
    let (_, shutdown) = tokio::sync::watch::channel(false);
    (ApiServer::new(Arc::new(store), shutdown), dir)
}

fn strings(objects: &[Value]) -> Vec<String> {
    objects.iter().map(Value::to_string).collect()
}

#[tokio::test]
async fn an_api_server_keeps_the_lifecycle() {
    let (api, _dir) = server().await;
    // One apply: the namespace, a pod in it; its default account comes along.
    let applied = api
        .apply(
            &strings(&[namespace("team-a"), pod("team-a", "p", None)]),
            false,
        )
        .await
        .unwrap();
    assert_eq!(applied.len(), 2, "only what was asked for is reported");
    let sa = api
        .get(&service_account_ref("team-a", "default"))
        .await
        .unwrap();
    assert!(sa.contains("\"uid\""), "{sa}");
    let ns = api.get(&namespace_ref("team-a")).await.unwrap();
    assert!(ns.contains("\"phase\":\"Active\""), "{ns}");

    // All or nothing: one refused object writes nothing.
    let e = api
        .apply(
            &strings(&[config_map("team-a", "ok"), config_map("nowhere", "no")]),
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "namespaces \"nowhere\" not found");
    assert!(matches!(
        api.get(&ObjectRef {
            kind: Kind::ConfigMap,
            namespace: Some("team-a".into()),
            name: "ok".into()
        })
        .await,
        Err(ApiServerError::NotFound(_))
    ));

    // The immortal ones stay.
    let e = api
        .delete(&namespace_ref("default"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, ApiServerError::Refused { .. }), "{e}");

    // Deleted: terminating; nothing new, but updates go on.
    api.apply(&strings(&[config_map("team-a", "cfg")]), false)
        .await
        .unwrap();
    assert_eq!(
        api.delete(&namespace_ref("team-a"), None).await.unwrap(),
        vec![namespace_ref("team-a")]
    );
    let ns = api.get(&namespace_ref("team-a")).await.unwrap();
    assert!(ns.contains("\"phase\":\"Terminating\""), "{ns}");
    assert!(ns.contains("\"deletionTimestamp\""), "{ns}");
    let e = api
        .apply(&strings(&[config_map("team-a", "new")]), false)
        .await
        .unwrap_err();
    assert!(
        e.to_string().ends_with(
            "unable to create new content in namespace team-a because it is being terminated"
        ),
        "{e}"
    );
    let mut changed = config_map("team-a", "cfg");
    changed["data"] = json!({"k": "v"});
    api.apply(&strings(&[changed]), false).await.unwrap();
    // Applying the namespace again neither revives it nor drops its finalizer.
    api.apply(&strings(&[namespace("team-a")]), false)
        .await
        .unwrap();
    let ns = api.get(&namespace_ref("team-a")).await.unwrap();
    assert!(ns.contains("\"finalizers\":[\"kubernetes\"]"), "{ns}");
    assert!(ns.contains("Terminating"), "{ns}");

    // Finalized: gone.
    assert_eq!(
        api.finalize_namespace("team-a").await.unwrap(),
        Finalized::Gone
    );
    assert!(matches!(
        api.get(&namespace_ref("team-a")).await,
        Err(ApiServerError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_namespace_deleted_between_admission_and_commit_gains_nothing() {
    let (api, _dir) = server().await;
    api.apply(&strings(&[namespace("team-a")]), false)
        .await
        .unwrap();
    let mut p = prepared(&[config_map("team-a", "late")]);
    let read = api.admit_lifecycle(&mut p).await.unwrap();
    assert_eq!(read.len(), 1, "the namespace it read");
    // Deleted meanwhile: the commit of what was admitted before fails...
    api.delete(&namespace_ref("team-a"), None).await.unwrap();
    let e = api.commit(&p, &[], &read, false).await.unwrap_err();
    assert!(
        matches!(e, ApiServerError::Store(StoreError::Conflict { .. })),
        "{e}"
    );
    // ...and the apply, deciding again, refuses it.
    let e = api
        .apply(&strings(&[config_map("team-a", "late")]), false)
        .await
        .unwrap_err();
    assert!(matches!(e, ApiServerError::Refused { .. }), "{e}");
}
