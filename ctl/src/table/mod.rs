//! `jotactl get`'s tables: kubectl's columns per kind (in one module per
//! group of kinds), NAME first (with the kind when several kinds are
//! shown), a NAMESPACE column for `-A`, wide columns and LABELS at the end,
//! aligned as kubectl aligns them.

mod batch;
mod config;
mod hpa;
mod namespace;
mod network;
mod node;
mod pod;
mod rbac;
mod storage;
mod workloads;

use jotasu_api::{Kind, Labels, Object};

pub use batch::duration as job_duration;
pub use config::secret_type;
pub use hpa::{reference as hpa_reference, target_text as hpa_target};
pub use network::{endpoints_of_port, type_name as service_type};
pub use node::roles as node_roles;
pub use pod::status as pod_status;
pub use storage::{access_modes, claim_of, claim_phase};
pub use workloads::selector_text;

use crate::age::age;
use crate::names::slash_name;
use crate::tabwriter::{TABLE, align};

/// What the table shows besides the kind's own columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-o wide`.
    pub wide: bool,
    /// A NAMESPACE column first (`-A`, namespaced kinds).
    pub namespace_column: bool,
    /// Names as `kind.group/name` (several kinds in one output).
    pub kind_prefix: bool,
    /// A LABELS column last.
    pub show_labels: bool,
    /// No header line.
    pub no_headers: bool,
    /// Seconds since the epoch, for AGE.
    pub now: i64,
}

/// What kubectl shows for an empty cell.
pub const NONE: &str = "<none>";

/// The kind's columns after NAME, and its wide columns.
fn columns(kind: Kind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        Kind::Pod => (pod::COLUMNS, pod::WIDE),
        Kind::Deployment => (workloads::DEPLOYMENT_COLUMNS, workloads::WIDE),
        Kind::ReplicaSet => (workloads::REPLICASET_COLUMNS, workloads::WIDE),
        Kind::DaemonSet => (workloads::DAEMONSET_COLUMNS, workloads::WIDE),
        Kind::StatefulSet => (workloads::STATEFULSET_COLUMNS, workloads::STATEFULSET_WIDE),
        Kind::ControllerRevision => (workloads::REVISION_COLUMNS, &[]),
        Kind::PodDisruptionBudget => (workloads::PDB_COLUMNS, &[]),
        Kind::Job => (batch::JOB_COLUMNS, workloads::WIDE),
        Kind::CronJob => (batch::CRONJOB_COLUMNS, workloads::WIDE),
        Kind::Service => (network::SERVICE_COLUMNS, network::SERVICE_WIDE),
        Kind::Endpoints => (network::ENDPOINTS_COLUMNS, &[]),
        Kind::EndpointSlice => (network::SLICE_COLUMNS, &[]),
        Kind::ConfigMap => (config::CONFIGMAP_COLUMNS, &[]),
        Kind::Secret => (config::SECRET_COLUMNS, &[]),
        Kind::HorizontalPodAutoscaler => (hpa::COLUMNS, &[]),
        Kind::Node => (node::COLUMNS, node::WIDE),
        Kind::PriorityClass => (node::PRIORITY_CLASS_COLUMNS, &[]),
        Kind::Lease => (node::LEASE_COLUMNS, &[]),
        Kind::LimitRange => (&["CREATED AT"], &[]),
        Kind::ResourceQuota => (&["AGE", "HARD"], &[]),
        Kind::PersistentVolume => (storage::PV_COLUMNS, storage::VOLUME_MODE),
        Kind::PersistentVolumeClaim => (storage::PVC_COLUMNS, storage::VOLUME_MODE),
        Kind::StorageClass => (storage::SC_COLUMNS, &[]),
        Kind::Namespace => (namespace::NAMESPACE_COLUMNS, &[]),
        Kind::ServiceAccount => (namespace::SERVICEACCOUNT_COLUMNS, &[]),
        Kind::Role | Kind::ClusterRole => (rbac::ROLE_COLUMNS, &[]),
        Kind::RoleBinding | Kind::ClusterRoleBinding => (rbac::BINDING_COLUMNS, rbac::BINDING_WIDE),
    }
}

/// The object's cells after NAME (AGE from `now`), and its wide cells.
fn cells(object: &Object, now: i64) -> (Vec<String>, Vec<String>) {
    let created = object.metadata().creation_timestamp.as_ref();
    let age = age(created, now);
    match object {
        Object::Pod(p) => (pod::row(p, age), pod::wide(p)),
        Object::Deployment(d) => (
            workloads::deployment_row(d, age),
            workloads::deployment_wide(d),
        ),
        Object::ReplicaSet(r) => (
            workloads::replicaset_row(r, age),
            workloads::replicaset_wide(r),
        ),
        Object::DaemonSet(d) => (
            workloads::daemonset_row(d, age),
            workloads::daemonset_wide(d),
        ),
        Object::StatefulSet(d) => (
            workloads::statefulset_row(d, age),
            workloads::statefulset_wide(d),
        ),
        Object::ControllerRevision(r) => (workloads::revision_row(r, age), Vec::new()),
        Object::PodDisruptionBudget(b) => (workloads::pdb_row(b, age), Vec::new()),
        Object::Job(j) => (batch::job_row(j, now, age), batch::job_wide(j)),
        Object::CronJob(c) => (batch::cronjob_row(c, now, age), batch::cronjob_wide(c)),
        Object::Service(s) => (network::service_row(s, age), network::service_wide(s)),
        Object::Endpoints(e) => (network::endpoints_row(e, age), Vec::new()),
        Object::EndpointSlice(e) => (network::slice_row(e, age), Vec::new()),
        Object::ConfigMap(c) => (config::configmap_row(c, age), Vec::new()),
        Object::Secret(s) => (config::secret_row(s, age), Vec::new()),
        Object::HorizontalPodAutoscaler(h) => (hpa::row(h, age), Vec::new()),
        Object::Node(n) => (node::row(n, age), node::wide(n)),
        Object::PriorityClass(c) => (node::priority_class_row(c, age), Vec::new()),
        Object::Lease(l) => (node::lease_row(l, age), Vec::new()),
        Object::ResourceQuota(q) => (
            vec![
                age,
                q.spec
                    .hard
                    .iter()
                    .map(|(r, v)| format!("{r}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ],
            Vec::new(),
        ),
        Object::LimitRange(l) => (
            vec![
                l.metadata
                    .creation_timestamp
                    .as_ref()
                    .map_or_else(|| NONE.to_owned(), |t| t.0.clone()),
            ],
            Vec::new(),
        ),
        Object::PersistentVolume(v) => (
            storage::pv_row(v, age),
            vec![storage::mode(v.spec.volume_mode.as_deref())],
        ),
        Object::PersistentVolumeClaim(c) => (
            storage::pvc_row(c, age),
            vec![storage::mode(c.spec.volume_mode.as_deref())],
        ),
        Object::StorageClass(c) => (storage::sc_row(c, age), Vec::new()),
        Object::Namespace(n) => (namespace::namespace_row(n, age), Vec::new()),
        Object::ServiceAccount(s) => (namespace::serviceaccount_row(s, age), Vec::new()),
        Object::Role(_) | Object::ClusterRole(_) => (rbac::role_row(created), Vec::new()),
        Object::RoleBinding(b) => (
            rbac::binding_row(&b.role_ref, age),
            rbac::binding_wide(&b.subjects),
        ),
        Object::ClusterRoleBinding(b) => (
            rbac::binding_row(&b.role_ref, age),
            rbac::binding_wide(&b.subjects),
        ),
    }
}

/// The header and one row per object, as tab-separated cells.
pub fn rows(kind: Kind, objects: &[Object], options: &TableOptions) -> Vec<Vec<String>> {
    let namespace_column = options.namespace_column && kind.namespaced();
    let (own, wide) = columns(kind);
    let mut out = Vec::with_capacity(objects.len() + 1);
    if !options.no_headers {
        let mut header = Vec::new();
        if namespace_column {
            header.push("NAMESPACE");
        }
        header.push("NAME");
        header.extend_from_slice(own);
        if options.wide {
            header.extend_from_slice(wide);
        }
        if options.show_labels {
            header.push("LABELS");
        }
        out.push(header.into_iter().map(str::to_owned).collect());
    }
    for object in objects {
        let mut row = Vec::new();
        if namespace_column {
            row.push(object.namespace().unwrap_or_default().to_owned());
        }
        row.push(match object {
            _ if options.kind_prefix => slash_name(object.kind(), object.name()),
            Object::StorageClass(c) => storage::sc_name(c),
            _ => object.name().to_owned(),
        });
        let (own, wide) = cells(object, options.now);
        row.extend(own);
        if options.wide {
            row.extend(wide);
        }
        if options.show_labels {
            row.push(format_labels(&object.metadata().labels));
        }
        out.push(row);
    }
    out
}

/// The table, aligned.
pub fn render(kind: Kind, objects: &[Object], options: &TableOptions) -> String {
    let text: String = rows(kind, objects, options)
        .iter()
        .map(|row| format!("{}\n", row.join("\t")))
        .collect();
    align(&text, TABLE)
}

/// `k=v,k2=v2`, or `<none>`.
pub fn format_labels(labels: &Labels) -> String {
    join_or_none(labels.iter().map(|(k, v)| format!("{k}={v}")), ",")
}

/// The items joined, or `<none>` when there are none.
pub fn join_or_none(items: impl IntoIterator<Item = String>, sep: &str) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() {
        NONE.to_owned()
    } else {
        items.join(sep)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An object from JSON (test helper).
    pub(crate) fn object(v: serde_json::Value) -> Object {
        serde_json::from_value(v).unwrap()
    }

    /// The creation time every test object carries, and "now" 5 s later.
    pub(crate) const CREATED: &str = "2024-05-01T12:00:00Z";
    pub(crate) const NOW: i64 = 1_714_564_805;

    fn cm(name: &str, ns: &str) -> Object {
        object(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": CREATED,
                         "labels": {"app": "web"}},
            "data": {"a": "1", "b": "2"}
        }))
    }

    #[test]
    fn plain_namespaced_prefixed_and_labelled() {
        let objects = [cm("settings", "default"), cm("x", "kube-system")];
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::ConfigMap, &objects, &opts),
            "NAME       DATA   AGE\nsettings   2      5s\nx          2      5s\n"
        );
        let opts = TableOptions {
            namespace_column: true,
            kind_prefix: true,
            show_labels: true,
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::ConfigMap, &objects, &opts),
            "NAMESPACE     NAME                 DATA   AGE   LABELS\n\
             default       configmap/settings   2      5s    app=web\n\
             kube-system   configmap/x          2      5s    app=web\n"
        );
        let opts = TableOptions {
            no_headers: true,
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::ConfigMap, &objects[..1], &opts),
            "settings   2     5s\n"
        );
    }
}
