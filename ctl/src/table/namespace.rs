//! Namespaces (`NAME STATUS AGE`) and ServiceAccounts (`NAME SECRETS AGE`).

use jotasu_api::{Namespace, ServiceAccount};

pub(super) const NAMESPACE_COLUMNS: &[&str] = &["STATUS", "AGE"];
pub(super) const SERVICEACCOUNT_COLUMNS: &[&str] = &["SECRETS", "AGE"];

pub(super) fn namespace_row(n: &Namespace, age: String) -> Vec<String> {
    vec![n.phase().to_string(), age]
}

pub(super) fn serviceaccount_row(s: &ServiceAccount, age: String) -> Vec<String> {
    vec![s.secrets.len().to_string(), age]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CREATED, NOW, object};
    use super::super::{TableOptions, render};
    use jotasu_api::Kind;
    use serde_json::json;

    #[test]
    fn namespaces_show_their_phase() {
        let ns = |name: &str, phase: &str| {
            object(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "creationTimestamp": CREATED},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": phase}}))
        };
        let opts = TableOptions {
            namespace_column: true,
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(
                Kind::Namespace,
                &[ns("default", "Active"), ns("team-a", "Terminating")],
                &opts
            ),
            "NAME      STATUS        AGE\ndefault   Active        5s\nteam-a    Terminating   5s\n",
            "cluster-scoped: no NAMESPACE column even with -A"
        );
    }

    #[test]
    fn service_accounts_count_their_secrets() {
        let sa = |ns: &str, name: &str, secrets: serde_json::Value| {
            object(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": CREATED},
                "secrets": secrets}))
        };
        let all = TableOptions {
            namespace_column: true,
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(
                Kind::ServiceAccount,
                &[
                    sa("default", "default", json!([])),
                    sa("team-a", "build", json!([{"name": "build-token"}]))
                ],
                &all
            ),
            "NAMESPACE   NAME      SECRETS   AGE\n\
             default     default   0         5s\n\
             team-a      build     1         5s\n"
        );
    }
}
