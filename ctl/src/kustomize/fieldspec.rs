//! kustomize's field specs: a kind (group, version optional) and a path
//! of map keys (`spec/template/metadata/labels`); lists on the way are
//! walked element by element; `create` makes missing maps.

use serde_json::{Map, Value};

use super::resource::Resource;

/// Where a transformer writes in objects of a kind.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// API group (None: any).
    pub group: Option<&'static str>,
    /// API version (None: any).
    pub version: Option<&'static str>,
    /// Kind (None: any).
    pub kind: Option<&'static str>,
    /// Slash-separated keys; `[]` after a key is allowed (lists are walked anyway).
    pub path: &'static str,
    /// Make missing maps.
    pub create: bool,
}

/// A field spec for every kind.
pub const fn any(path: &'static str, create: bool) -> FieldSpec {
    FieldSpec {
        group: None,
        version: None,
        kind: None,
        path,
        create,
    }
}

/// A field spec for one kind.
pub const fn kind(kind: &'static str, path: &'static str, create: bool) -> FieldSpec {
    FieldSpec {
        group: None,
        version: None,
        kind: Some(kind),
        path,
        create,
    }
}

/// A field spec for one kind of one group.
pub const fn group_kind(
    group: &'static str,
    kind: &'static str,
    path: &'static str,
    create: bool,
) -> FieldSpec {
    FieldSpec {
        group: Some(group),
        version: None,
        kind: Some(kind),
        path,
        create,
    }
}

impl FieldSpec {
    /// Whether it applies to `r`.
    pub fn applies(&self, r: &Resource) -> bool {
        self.group.is_none_or(|g| g == r.group())
            && self.version.is_none_or(|v| v == r.version())
            && self.kind.is_none_or(|k| k == r.kind())
    }

    /// The path's keys.
    pub fn keys(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .map(|k| k.trim_end_matches("[]"))
            .collect()
    }
}

/// Calls `f` on every map at `keys` below `value` (missing maps made when
/// `create`; a null leaf counts as missing).
pub fn visit_maps(
    value: &mut Value,
    keys: &[&str],
    create: bool,
    f: &mut dyn FnMut(&mut Map<String, Value>),
) {
    match value {
        Value::Array(items) => {
            for item in items {
                visit_maps(item, keys, create, f);
            }
        }
        Value::Object(map) => {
            let Some((first, rest)) = keys.split_first() else {
                f(map);
                return;
            };
            let missing = map.get(*first).is_none_or(Value::is_null);
            if missing {
                if !create {
                    return;
                }
                map.insert((*first).to_owned(), Value::Object(Map::new()));
            }
            if let Some(next) = map.get_mut(*first) {
                visit_maps(next, rest, create, f);
            }
        }
        _ => {}
    }
}

/// Calls `f` on every value at `keys` below `value` (nothing is made).
pub fn visit_values(value: &mut Value, keys: &[&str], f: &mut dyn FnMut(&mut Value)) {
    match (value, keys.split_first()) {
        (value, None) => f(value),
        (Value::Array(items), Some(_)) => {
            for item in items {
                visit_values(item, keys, f);
            }
        }
        (Value::Object(map), Some((first, rest))) => {
            if let Some(next) = map.get_mut(*first) {
                visit_values(next, rest, f);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn walks_lists_and_creates() {
        let mut v =
            json!({"spec": {"vct": [{"metadata": {}}, {"metadata": {"labels": {"a": "1"}}}]}});
        let mut n = 0;
        visit_maps(
            &mut v,
            &["spec", "vct", "metadata", "labels"],
            true,
            &mut |m| {
                m.insert("b".into(), json!("2"));
                n += 1;
            },
        );
        assert_eq!(n, 2);
        assert_eq!(v["spec"]["vct"][0]["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(
            v["spec"]["vct"][1]["metadata"]["labels"],
            json!({"a": "1", "b": "2"})
        );
        let mut none = json!({"spec": {}});
        visit_maps(
            &mut none,
            &["spec", "selector", "matchLabels"],
            false,
            &mut |_| panic!("not created"),
        );
        assert_eq!(none, json!({"spec": {}}));
    }

    #[test]
    fn values_in_lists() {
        let mut v = json!({"c": [{"env": [{"n": "a"}, {"n": "b"}]}, {"env": [{"n": "c"}]}]});
        let mut seen = Vec::new();
        visit_values(&mut v, &["c", "env", "n"], &mut |x| {
            seen.push(x.as_str().unwrap_or_default().to_owned())
        });
        assert_eq!(seen, ["a", "b", "c"]);
    }
}
