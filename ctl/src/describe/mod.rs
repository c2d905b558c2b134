//! `jotactl describe`: a page per object, kubectl's layout, one module per
//! group of kinds. Pages are pure functions of the objects; this module
//! fetches them and what some pages show besides (a Service's Endpoints,
//! the pods bound to a Node).

mod batch;
mod cluster;
mod config;
mod namespace;
mod network;
mod pod;
mod rbac;
mod storage;
mod workloads;
mod writer;

use jotasu_api::client::Client;
use jotasu_api::{Kind, Object, ObjectRef, Pod};

use crate::args::{object_ref, parse_targets};
use crate::cli::{DescribeArgs, GlobalArgs};
use crate::connect;
use crate::get::{check, nothing_found};
use crate::report::{CtlError, Failures, note, out};

/// The page of `object`; `endpoints` and `pods` are the extras the page of
/// a Service or Node shows.
pub fn page(
    object: &Object,
    endpoints: Option<&jotasu_api::Endpoints>,
    pods: &[Pod],
    now: i64,
) -> String {
    match object {
        Object::Pod(p) => pod::describe(p),
        Object::Deployment(d) => workloads::deployment(d),
        Object::ReplicaSet(r) => workloads::replicaset(r),
        Object::DaemonSet(d) => workloads::daemonset(d),
        Object::StatefulSet(d) => workloads::statefulset(d, pods),
        Object::ControllerRevision(r) => workloads::controller_revision(r),
        Object::PodDisruptionBudget(b) => workloads::disruption_budget(b),
        Object::Job(j) => batch::job(j, now),
        Object::CronJob(c) => batch::cron_job(c),
        Object::Service(s) => network::service(s, endpoints),
        Object::Endpoints(e) => network::endpoints(e),
        Object::EndpointSlice(e) => network::endpoint_slice(e),
        Object::ConfigMap(c) => config::configmap(c),
        Object::Secret(s) => config::secret(s),
        Object::HorizontalPodAutoscaler(h) => cluster::hpa(h),
        Object::Node(n) => cluster::node(n, pods, now),
        Object::PriorityClass(c) => cluster::priority_class(c),
        Object::Lease(l) => cluster::lease(l),
        Object::LimitRange(l) => cluster::limit_range(l),
        Object::ResourceQuota(q) => cluster::resource_quota(q),
        Object::PersistentVolume(v) => storage::persistent_volume(v),
        Object::PersistentVolumeClaim(c) => storage::persistent_volume_claim(c, pods),
        Object::StorageClass(c) => storage::storage_class(c),
        Object::Namespace(n) => namespace::namespace(n),
        Object::ServiceAccount(s) => namespace::service_account(s),
        Object::Role(r) => rbac::role(&r.metadata, &r.rules),
        Object::ClusterRole(r) => rbac::role(&r.metadata, &r.rules),
        Object::RoleBinding(b) => rbac::binding(&b.metadata, &b.role_ref, &b.subjects),
        Object::ClusterRoleBinding(b) => rbac::binding(&b.metadata, &b.role_ref, &b.subjects),
    }
}

/// Fetches the extras and renders the page.
async fn fetch_page(client: &Client, object: &Object) -> Result<String, CtlError> {
    let now = jotasu_api::meta::unix_now();
    match object {
        Object::Service(_) => {
            let r = ObjectRef {
                kind: Kind::Endpoints,
                ..object.object_ref()
            };
            let endpoints = match client.get(&r).await {
                Ok(Object::Endpoints(e)) => Some(e),
                Ok(_) => None,
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            };
            Ok(page(object, endpoints.as_ref(), &[], now))
        }
        Object::Node(n) => {
            let pods: Vec<Pod> = pods_in(client, None)
                .await?
                .into_iter()
                .filter(|p| p.spec.node_name.as_deref() == Some(n.metadata.name()))
                .collect();
            Ok(page(object, None, &pods, now))
        }
        Object::StatefulSet(d) => {
            let uid = d.metadata.uid.as_deref();
            let pods: Vec<Pod> = pods_in(client, d.metadata.namespace.as_deref())
                .await?
                .into_iter()
                .filter(|p| {
                    p.metadata
                        .controller_ref()
                        .is_some_and(|o| Some(o.uid.as_str()) == uid)
                })
                .collect();
            Ok(page(object, None, &pods, now))
        }
        Object::PersistentVolumeClaim(c) => {
            let pods = pods_in(client, c.metadata.namespace.as_deref()).await?;
            Ok(page(object, None, &pods, now))
        }
        _ => Ok(page(object, None, &[], now)),
    }
}

/// The pods of `namespace` (or of every namespace).
async fn pods_in(client: &Client, namespace: Option<&str>) -> Result<Vec<Pod>, CtlError> {
    Ok(client
        .list(Kind::Pod, namespace, "")
        .await?
        .items
        .into_iter()
        .filter_map(|o| Pod::try_from(o).ok())
        .collect())
}

/// Runs `describe`.
pub async fn run(global: &GlobalArgs, args: &DescribeArgs) -> Result<(), CtlError> {
    let targets = parse_targets(&args.resources)?;
    let selector = args.selector.as_deref().unwrap_or_default();
    check(&targets, selector, args.all_namespaces)?;
    let namespace = connect::namespace(global);
    let client = connect::connect(global).await?;
    let mut failures = Failures::default();
    let mut objects = Vec::new();
    if targets.has_names() {
        for (kind, name) in targets.named() {
            match client.get(&object_ref(kind, namespace, &name)).await {
                Ok(object) => objects.push(object),
                Err(e) if e.is_not_found() => {
                    // kubectl describes every object whose name starts with the name given.
                    let ns = kind.namespaced().then_some(namespace);
                    let list = client.list(kind, ns, "").await?;
                    let matching: Vec<Object> = list
                        .items
                        .into_iter()
                        .filter(|o| o.name().starts_with(&name))
                        .collect();
                    if matching.is_empty() {
                        failures.report(e);
                    }
                    objects.extend(matching);
                }
                Err(e) => failures.report(e),
            }
        }
    } else {
        for kind in targets.kinds() {
            let ns = (!args.all_namespaces && kind.namespaced()).then_some(namespace);
            objects.extend(client.list(kind, ns, selector).await?.items);
        }
        if objects.is_empty() {
            let ns = (!args.all_namespaces).then_some(namespace);
            note(&nothing_found(&targets.kinds(), ns));
        }
    }
    let mut pages = Vec::with_capacity(objects.len());
    for object in &objects {
        pages.push(fetch_page(&client, object).await?);
    }
    if !pages.is_empty() {
        out(&pages.join("\n\n"))?;
    }
    failures.finish()
}
