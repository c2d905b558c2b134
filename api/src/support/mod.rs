//! What jotasu does with each field Kubernetes defines for a served kind but
//! jotasu does not implement (yet). Every such field has a [`Rule`]:
//!
//! - [`Decision::Refuse`]: ignoring it would mislead — security, scheduling,
//!   storage, networking — so the object is refused with a message naming
//!   the field and why;
//! - [`Decision::Warn`]: harmless to ignore; the field is dropped and jotactl
//!   prints a warning;
//! - [`Decision::Drop`]: deprecated or written by the system; dropped silently.
//!
//! A value a rule lists in `same` is what jotasu does anyway (`hostNetwork:
//! false`, `schedulerName: default-scheduler`): accepted silently.
//! [`screen`] applies the rules to a manifest's JSON before it is decoded;
//! fields in no rule are decoded by the kind's type, and a field Kubernetes
//! does not define stays an "unknown field". The unit test `k8s_check`
//! proves, against k8s-openapi's schemas, that every field of every served
//! kind is decoded or has a rule, and that no rule covers a decoded field.
//! `docs/api-fields.md` lists the rules (a test keeps it current).

mod rules;

#[cfg(test)]
mod k8s_check;

use serde_json::Value;

use crate::error::FieldError;
use crate::object::Kind;
use crate::path::FieldPath;

pub use rules::scopes;

/// What happens to a field jotasu does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The object is refused.
    Refuse,
    /// The field is dropped with a warning.
    Warn,
    /// The field is dropped silently.
    Drop,
}

/// One field (a path relative to its scope, `[]` for every item of a list)
/// and what jotasu does with it.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// e.g. `volumeMounts[].mountPropagation`.
    pub path: &'static str,
    /// What happens when it is set to anything but the `same` values.
    pub decision: Decision,
    /// Values (as compact JSON) that are what jotasu does anyway.
    pub same: &'static [&'static str],
    /// Why, for the message: what jotasu does instead or what to do.
    pub why: &'static str,
}

/// The fields of one object that rules matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Screened {
    /// Fields that make the object refused.
    pub refused: Vec<FieldError>,
    /// Fields dropped with a warning.
    pub warnings: Vec<FieldError>,
}

/// Applies every rule of `kind` to `value` (a manifest's JSON): refused and
/// warned fields are reported, warned and dropped ones removed (so the
/// strict decoding that follows does not see them). A field that is null,
/// `""`, `[]` or `{}` is unset, as Kubernetes reads it.
pub fn screen(kind: Kind, value: &mut Value) -> Screened {
    let mut out = Screened::default();
    for (prefix, rules) in scopes(kind) {
        for rule in *rules {
            let pattern = join_scope(prefix, rule.path);
            let steps: Vec<&str> = pattern.split('.').collect();
            visit(value, &steps, FieldPath::root(), rule, &mut out);
        }
    }
    out
}

fn visit(at: &mut Value, steps: &[&str], path: FieldPath, rule: &Rule, out: &mut Screened) {
    let Some((step, rest)) = steps.split_first() else {
        return;
    };
    let (name, each) = match step.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (*step, false),
    };
    let Some(map) = at.as_object_mut() else {
        return;
    };
    let here = path.field(name);
    if rest.is_empty() && !each {
        let Some(found) = map.get(name) else { return };
        if is_unset(found) || rule.same.contains(&found.to_string().as_str()) {
            map.remove(name);
            return;
        }
        let message = match rule.decision {
            Decision::Refuse => format!(
                "Forbidden: jotasu does not support this field: {}",
                rule.why
            ),
            Decision::Warn => format!(
                "ignored: jotasu does not implement this field: {}",
                rule.why
            ),
            Decision::Drop => String::new(),
        };
        match rule.decision {
            Decision::Refuse => out.refused.push(FieldError::new(&here, message)),
            Decision::Warn => out.warnings.push(FieldError::new(&here, message)),
            Decision::Drop => {}
        }
        map.remove(name);
        return;
    }
    let Some(child) = map.get_mut(name) else {
        return;
    };
    if each {
        if let Some(items) = child.as_array_mut() {
            for (i, item) in items.iter_mut().enumerate() {
                visit(item, rest, here.index(i), rule, out);
            }
        }
    } else {
        visit(child, rest, here, rule, out);
    }
}

/// The rules as a Markdown document (docs/api-fields.md).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Kubernetes fields jotasu does not implement (yet)\n\n\
         Generated from `api/src/support/rules.rs` (`JOTASU_UPDATE_DOCS=1 cargo test -p jotasu-api support` \
         rewrites it). Every other field Kubernetes 1.35 defines for a served kind is understood \
         (decoded, validated and stored; docs/api.md says what each kind does with them), and `status` \
         in a manifest is dropped, as the API server ignores it; a field Kubernetes does not define is \
         an `unknown field` error.\n\n\
         - **refused**: the object is refused with the field's path and the reason (ignoring it would mislead);\n\
         - **warning**: the field is dropped and `jotactl` prints a warning;\n\
         - **dropped**: deprecated or system-written, dropped silently.\n\n\
         Values listed under *accepted* are what jotasu does anyway and pass silently.\n",
    );
    for (title, rules) in rules::TABLES {
        out.push_str(&format!(
            "\n## {title}\n\n| Field | jotasu | Accepted | Why |\n|---|---|---|---|\n"
        ));
        for r in *rules {
            let decision = match r.decision {
                Decision::Refuse => "refused",
                Decision::Warn => "warning",
                Decision::Drop => "dropped",
            };
            let same: Vec<String> = r.same.iter().map(|v| format!("`{v}`")).collect();
            out.push_str(&format!(
                "| `{}` | {decision} | {} | {} |\n",
                r.path,
                same.join(", "),
                r.why.replace('|', "\\|")
            ));
        }
    }
    out
}

/// A rule's full path: its scope's prefix (`""` for top-level fields) and its path.
fn join_scope(prefix: &str, path: &str) -> String {
    if prefix.is_empty() {
        path.to_owned()
    } else {
        format!("{prefix}.{path}")
    }
}

fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn refuses_names_and_drops() {
        let mut v = pod(json!({
            "hostNetwork": true,
            "containers": [{"name": "a", "stdin": true}, {"name": "b", "tty": false}],
        }));
        let s = screen(Kind::Pod, &mut v);
        assert_eq!(s.refused.len(), 1, "{s:?}");
        assert_eq!(s.refused[0].path.as_str(), "spec.hostNetwork");
        assert!(
            s.refused[0].message.contains("jotasu does not support"),
            "{s:?}"
        );
        assert_eq!(s.warnings.len(), 1, "{s:?}");
        assert_eq!(s.warnings[0].path.as_str(), "spec.containers[0].stdin");
        // Every matched field is gone, including the silent `tty: false`.
        assert_eq!(
            v["spec"],
            json!({"containers": [{"name": "a"}, {"name": "b"}]})
        );
    }

    #[test]
    fn values_jotasu_matches_and_unset_values_pass_silently() {
        let mut v = pod(json!({
            "hostNetwork": false,
            "schedulerName": "default-scheduler",
            "hostnameOverride": "",
            "containers": [{"name": "a"}],
        }));
        let s = screen(Kind::Pod, &mut v);
        assert_eq!(s, Screened::default());
        assert_eq!(v["spec"], json!({"containers": [{"name": "a"}]}));
        let mut other = pod(json!({"schedulerName": "my-scheduler", "containers": []}));
        let s = screen(Kind::Pod, &mut other);
        assert_eq!(s.refused[0].path.as_str(), "spec.schedulerName");
    }

    #[test]
    fn the_docs_list_every_rule() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api-fields.md");
        let want = markdown();
        if std::env::var_os("JOTASU_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).expect("write docs/api-fields.md");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/api-fields.md is stale: run JOTASU_UPDATE_DOCS=1 cargo test -p jotasu-api support"
        );
    }

    #[test]
    fn workload_templates_are_screened_like_pods() {
        let mut v = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"metadata": {"managedFields": [{"manager": "x"}]},
                "spec": {"containers": [{"name": "a", "volumeDevices": [{"name": "v", "devicePath": "/dev/x"}]}]}}}});
        let s = screen(Kind::Deployment, &mut v);
        assert_eq!(
            s.refused[0].path.as_str(),
            "spec.template.spec.containers[0].volumeDevices"
        );
        assert_eq!(
            s.warnings[0].path.as_str(),
            "spec.template.metadata.managedFields"
        );
    }
}
