//! `-o yaml`, `-o json` and `-o name`. As kubectl does, one object asked
//! for by name prints as itself; anything else (a listing, several names)
//! prints as a `kind: List` so scripts can always read `.items`.

use jotasu_api::Object;
use serde::Serialize;

use crate::names::slash_name;
use crate::report::CtlError;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListOut<'a> {
    api_version: &'static str,
    items: &'a [Object],
    kind: &'static str,
    metadata: ListMeta,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: &'static str,
}

/// Either the single object or a List of all.
enum Document<'a> {
    One(&'a Object),
    List(ListOut<'a>),
}

impl<'a> Document<'a> {
    fn new(objects: &'a [Object], single: bool) -> Self {
        match objects {
            [one] if single => Document::One(one),
            _ => Document::List(ListOut {
                api_version: "v1",
                items: objects,
                kind: "List",
                metadata: ListMeta {
                    resource_version: "",
                },
            }),
        }
    }
}

impl Serialize for Document<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Document::One(o) => o.serialize(s),
            Document::List(l) => l.serialize(s),
        }
    }
}

fn encode_error(e: impl std::fmt::Display) -> CtlError {
    CtlError::Usage(format!("cannot encode the output: {e}"))
}

/// YAML of the object (`single`: one object was named) or of a List.
pub fn yaml(objects: &[Object], single: bool) -> Result<String, CtlError> {
    serde_yaml_ng::to_string(&Document::new(objects, single)).map_err(encode_error)
}

/// JSON (indented by four spaces, as kubectl does) of the object or a List.
pub fn json(objects: &[Object], single: bool) -> Result<String, CtlError> {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    Document::new(objects, single)
        .serialize(&mut ser)
        .map_err(encode_error)?;
    buf.push(b'\n');
    String::from_utf8(buf).map_err(encode_error)
}

/// `deployment.apps/web`, one line per object.
pub fn names(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| format!("{}\n", slash_name(o.kind(), o.name())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(name: &str) -> Object {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v"}
        }))
        .unwrap()
    }

    #[test]
    fn single_or_list() {
        let one = [cm("a")];
        assert_eq!(
            yaml(&one, true).unwrap(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: default\ndata:\n  k: v\n"
        );
        let listed = yaml(&one, false).unwrap();
        assert!(
            listed.starts_with("apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"),
            "{listed}"
        );
        assert!(
            listed.ends_with("kind: List\nmetadata:\n  resourceVersion: ''\n"),
            "{listed}"
        );
        let j: serde_json::Value =
            serde_json::from_str(&json(&[cm("a"), cm("b")], true).unwrap()).unwrap();
        assert_eq!(j["kind"], "List");
        assert_eq!(j["items"][1]["metadata"]["name"], "b");
        let text = json(&one, true).unwrap();
        assert!(
            text.starts_with("{\n    \"apiVersion\": \"v1\",\n"),
            "{text}"
        );
        assert_eq!(names(&[cm("a"), cm("b")]), "configmap/a\nconfigmap/b\n");
    }
}
