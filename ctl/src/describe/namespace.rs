//! Namespaces (status, and the conditions of a deletion under way) and
//! ServiceAccounts (their secrets), as kubectl describes them.

use jotasu_api::{Namespace, ServiceAccount};

use super::writer::Writer;
use crate::table::{NONE, join_or_none};

/// A Namespace: labels, status; while it terminates, why it is not gone yet.
pub fn namespace(n: &Namespace) -> String {
    let mut w = Writer::default();
    w.name(&n.metadata);
    w.labels_annotations(&n.metadata);
    w.field(0, "Status", n.phase());
    if let Some(status) = n.status.as_ref().filter(|s| !s.conditions.is_empty()) {
        w.line(0, "Conditions:");
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    format!("{:?}", c.status),
                    c.last_transition_time
                        .as_ref()
                        .map_or_else(|| NONE.to_owned(), ToString::to_string),
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default(),
                ]
            })
            .collect();
        w.table(
            1,
            &["Type", "Status", "LastTransitionTime", "Reason", "Message"],
            &rows,
        );
    }
    w.blank();
    w.line(0, "No resource quota.");
    w.blank();
    w.line(0, "No LimitRange resource.");
    w.finish()
}

/// A ServiceAccount: its image pull secrets and mountable secrets (jotasu
/// issues no tokens).
pub fn service_account(s: &ServiceAccount) -> String {
    let mut w = Writer::default();
    w.name(&s.metadata);
    w.labels_annotations(&s.metadata);
    w.field(
        0,
        "Image pull secrets",
        join_or_none(s.image_pull_secrets.iter().map(|r| r.name.clone()), ", "),
    );
    w.field(
        0,
        "Mountable secrets",
        join_or_none(s.secrets.iter().filter_map(|r| r.name.clone()), ", "),
    );
    w.field(0, "Tokens", NONE);
    w.field(0, "Events", NONE);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_terminating_namespace_says_what_remains() {
        let n: Namespace = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Terminating", "conditions": [{
                "type": "NamespaceContentRemaining", "status": "True",
                "lastTransitionTime": "2024-05-01T12:00:00Z", "reason": "SomeResourcesRemain",
                "message": "Some resources are remaining: pods. has 1 resource instances"}]}
        }))
        .unwrap();
        let text = namespace(&n);
        assert!(text.starts_with("Name:         team-a\nLabels:       kubernetes.io/metadata.name=team-a\nAnnotations:  <none>\nStatus:       Terminating\nConditions:\n"), "{text}");
        assert!(
            text.contains("NamespaceContentRemaining  True    2024-05-01T12:00:00Z  SomeResourcesRemain  Some resources are remaining: pods. has 1 resource instances"),
            "{text}"
        );
        assert!(
            text.ends_with("No resource quota.\n\nNo LimitRange resource.\n"),
            "{text}"
        );
    }

    #[test]
    fn a_service_account_lists_its_secrets() {
        let s: ServiceAccount = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "build", "namespace": "ci"},
            "imagePullSecrets": [{"name": "registry"}]
        }))
        .unwrap();
        assert_eq!(
            service_account(&s),
            "Name:                build\n\
             Namespace:           ci\n\
             Labels:              <none>\n\
             Annotations:         <none>\n\
             Image pull secrets:  registry\n\
             Mountable secrets:   <none>\n\
             Tokens:              <none>\n\
             Events:              <none>\n"
        );
    }
}
