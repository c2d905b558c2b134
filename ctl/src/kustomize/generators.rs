//! `configMapGenerator` and `secretGenerator`: objects made from literals,
//! files and env files, merged with (or replacing) a base's by `behavior`,
//! marked for the content-hash suffix unless `disableNameSuffixHash`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::KustomizeError;
use super::file::{self, Generator, GeneratorOptions, Kustomization};
use super::resource::{Behavior, Resource};

/// Where generators run: the kustomization's directory and file.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The kustomization's directory.
    pub root: &'a Path,
    /// Its file.
    pub file: &'a Path,
}

/// Runs every generator of `k`, in file order (ConfigMaps, then Secrets).
pub fn run(
    k: &Kustomization,
    cx: Context<'_>,
    resources: &mut Vec<Resource>,
) -> Result<(), KustomizeError> {
    let global = k.generator_options.clone().unwrap_or_default();
    for (field, list, kind) in [
        ("configMapGenerator", &k.config_map_generator, "ConfigMap"),
        ("secretGenerator", &k.secret_generator, "Secret"),
    ] {
        for (i, g) in list.iter().enumerate() {
            let field = format!("{field}[{i}]");
            let (made, behavior) = generate(g, kind, &global, cx, &field)?;
            absorb(resources, made, behavior, cx.file, &field)?;
        }
    }
    Ok(())
}

fn behavior(g: &Generator, file: &Path, field: &str) -> Result<Behavior, KustomizeError> {
    match g.behavior.as_deref() {
        None | Some("" | "create") => Ok(Behavior::Create),
        Some("merge") => Ok(Behavior::Merge),
        Some("replace") => Ok(Behavior::Replace),
        Some(other) => Err(KustomizeError::invalid(
            file,
            format!("{field}.behavior"),
            format!("\"{other}\" is none of create, merge, replace"),
        )),
    }
}

/// One generator's object.
pub fn generate(
    g: &Generator,
    kind: &str,
    global: &GeneratorOptions,
    cx: Context<'_>,
    field: &str,
) -> Result<(Resource, Behavior), KustomizeError> {
    let behavior = behavior(g, cx.file, field)?;
    if g.name.is_empty() {
        return Err(KustomizeError::invalid(
            cx.file,
            format!("{field}.name"),
            "a generator needs a name",
        ));
    }
    let options = merge_options(global, g.options.as_ref());
    let pairs = pairs(g, cx, field)?;
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(g.name));
    if let Some(ns) = g.namespace.as_deref().filter(|n| !n.is_empty()) {
        metadata.insert("namespace".into(), json!(ns));
    }
    if !options.labels.is_empty() {
        metadata.insert("labels".into(), json!(options.labels));
    }
    if !options.annotations.is_empty() {
        metadata.insert("annotations".into(), json!(options.annotations));
    }
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!("v1"));
    object.insert("kind".into(), json!(kind));
    object.insert("metadata".into(), Value::Object(metadata));
    let mut data = Map::new();
    let mut binary = Map::new();
    for (key, bytes) in pairs {
        if kind == "Secret" {
            data.insert(key, json!(STANDARD.encode(&bytes)));
        } else {
            match String::from_utf8(bytes) {
                Ok(text) => data.insert(key, json!(text)),
                Err(e) => binary.insert(key, json!(STANDARD.encode(e.as_bytes()))),
            };
        }
    }
    if kind == "Secret" {
        let kind = g
            .kind
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("Opaque");
        object.insert("type".into(), json!(kind));
    }
    if !data.is_empty() {
        object.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        object.insert("binaryData".into(), Value::Object(binary));
    }
    if options.immutable {
        object.insert("immutable".into(), json!(true));
    }
    let mut r = Resource::new(Value::Object(object));
    r.needs_hash = !options.disable_name_suffix_hash;
    Ok((r, behavior))
}

/// A generator's options over `generatorOptions`.
fn merge_options(global: &GeneratorOptions, local: Option<&GeneratorOptions>) -> GeneratorOptions {
    let Some(local) = local else {
        return global.clone();
    };
    let mut merged = global.clone();
    merged.labels.extend(local.labels.clone());
    merged.annotations.extend(local.annotations.clone());
    merged.disable_name_suffix_hash |= local.disable_name_suffix_hash;
    merged.immutable |= local.immutable;
    merged
}

/// Whether `key` may be a data key (`[-._a-zA-Z0-9]+`, not `.` or `..`).
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `"v"` or `'v'` without its quotes.
fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// The keys and values of literals, files and env files, in that order.
fn pairs(
    g: &Generator,
    cx: Context<'_>,
    field: &str,
) -> Result<BTreeMap<String, Vec<u8>>, KustomizeError> {
    let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut add = |key: String, value: Vec<u8>, at: &str| -> Result<(), KustomizeError> {
        if !valid_key(&key) {
            return Err(KustomizeError::invalid(
                cx.file,
                at,
                format!("\"{key}\" is not a valid key (letters, digits, '-', '_', '.')"),
            ));
        }
        if out.insert(key.clone(), value).is_some() {
            return Err(KustomizeError::invalid(
                cx.file,
                at,
                format!("the key \"{key}\" is given twice; keep one"),
            ));
        }
        Ok(())
    };
    for (i, literal) in g.literals.iter().enumerate() {
        let at = format!("{field}.literals[{i}]");
        let Some((key, value)) = literal.split_once('=') else {
            return Err(KustomizeError::invalid(
                cx.file,
                at,
                format!("\"{literal}\" is not KEY=VALUE"),
            ));
        };
        add(key.to_owned(), unquote(value).as_bytes().to_vec(), &at)?;
    }
    for (i, entry) in g.files.iter().enumerate() {
        let at = format!("{field}.files[{i}]");
        let (key, path) = match entry.split_once('=') {
            Some((key, path)) => (Some(key.to_owned()), path),
            None => (None, entry.as_str()),
        };
        let real = file::local_file(cx.root, cx.file, &at, path)?;
        let key = match key {
            Some(key) => key,
            None => Path::new(path)
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned(),
        };
        add(key, file::read_bytes(&real)?, &at)?;
    }
    let envs = g.envs.iter().chain(g.env.iter());
    for (i, entry) in envs.enumerate() {
        let at = format!("{field}.envs[{i}]");
        let real = file::local_file(cx.root, cx.file, &at, entry)?;
        let text = file::read_text(&real)?;
        for (key, value) in env_lines(&text, &real)? {
            add(key, value.into_bytes(), &at)?;
        }
    }
    Ok(out)
}

/// The `KEY=VALUE` lines of an env file (blank lines and `#` comments
/// skipped; a line without `=` is a key with an empty value, as in
/// kustomize v5.7, never read from jotactl's environment).
pub fn env_lines(text: &str, path: &Path) -> Result<Vec<(String, String)>, KustomizeError> {
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (line.to_owned(), String::new()),
        };
        let env_name = key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if !env_name {
            return Err(KustomizeError::invalid(
                path,
                format!("line {}", n + 1),
                format!("\"{key}\" is not a valid environment variable name"),
            ));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Adds a generated object: a new one (create), or merged into / replacing
/// the one of the same kind, name and namespace from a base.
pub fn absorb(
    resources: &mut Vec<Resource>,
    made: Resource,
    behavior: Behavior,
    file: &Path,
    field: &str,
) -> Result<(), KustomizeError> {
    let ns = |n: &str| {
        if n.is_empty() {
            "default".to_owned()
        } else {
            n.to_owned()
        }
    };
    let existing = resources.iter().position(|r| {
        r.kind() == made.kind()
            && r.answers_to(made.name())
            && (ns(r.namespace()) == ns(made.namespace())
                || ns(r.original_namespace()) == ns(made.namespace()))
    });
    let what = format!("{} {}", made.kind(), made.name());
    match (behavior, existing) {
        (Behavior::Create, None) => {
            resources.push(made);
            Ok(())
        }
        (Behavior::Create, Some(_)) => Err(KustomizeError::invalid(
            file,
            format!("{field}.behavior"),
            format!("{what} already exists in a base; set behavior: merge or replace"),
        )),
        (_, None) => Err(KustomizeError::invalid(
            file,
            format!("{field}.behavior"),
            format!("{what} is in no base, so it cannot be merged or replaced; drop behavior"),
        )),
        (behavior, Some(at)) => {
            let old = &mut resources[at];
            let merged = combine(old, made, behavior);
            *old = merged;
            Ok(())
        }
    }
}

/// `new` merged into (or replacing) `old`, keeping old's name, namespace,
/// history and hash marking (an object from a file merged with a
/// generator gets no hash, as in kustomize); labels and annotations are
/// merged either way.
fn combine(old: &Resource, new: Resource, behavior: Behavior) -> Resource {
    let mut value = new.value;
    let merge_map = |old: Option<&Value>, new: Option<&Value>| -> Map<String, Value> {
        let mut m = old.and_then(Value::as_object).cloned().unwrap_or_default();
        if let Some(new) = new.and_then(Value::as_object) {
            m.extend(new.clone());
        }
        m
    };
    let labels = merge_map(
        old.value.pointer("/metadata/labels"),
        value.pointer("/metadata/labels"),
    );
    let annotations = merge_map(
        old.value.pointer("/metadata/annotations"),
        value.pointer("/metadata/annotations"),
    );
    let data_keys: &[&str] = if behavior == Behavior::Merge {
        &["data", "binaryData"]
    } else {
        &[]
    };
    let merged_data: Vec<(&str, Map<String, Value>)> = data_keys
        .iter()
        .map(|k| (*k, merge_map(old.value.get(*k), value.get(*k))))
        .collect();
    if let Some(object) = value.as_object_mut() {
        for (key, data) in merged_data {
            if !data.is_empty() {
                object.insert(key.into(), Value::Object(data));
            }
        }
        if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
            metadata.insert("name".into(), json!(old.name()));
            metadata.remove("namespace");
            if !old.namespace().is_empty() {
                metadata.insert("namespace".into(), json!(old.namespace()));
            }
            for (key, map) in [("labels", labels), ("annotations", annotations)] {
                if !map.is_empty() {
                    metadata.insert(key.into(), Value::Object(map));
                }
            }
        }
    }
    Resource {
        value,
        history: old.history.clone(),
        needs_hash: old.needs_hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context<'static> {
        Context {
            root: Path::new("/nonexistent"),
            file: Path::new("k.yaml"),
        }
    }

    fn literal_generator(name: &str, literals: &[&str]) -> Generator {
        Generator {
            name: name.into(),
            literals: literals.iter().map(|l| (*l).to_owned()).collect(),
            ..Generator::default()
        }
    }

    #[test]
    fn literals_and_secrets() {
        let g = literal_generator("c", &["a=1", "b=\"x=y\""]);
        let (r, b) = generate(&g, "ConfigMap", &GeneratorOptions::default(), cx(), "f").unwrap();
        assert_eq!(b, Behavior::Create);
        assert!(r.needs_hash);
        assert_eq!(r.value["data"], json!({"a": "1", "b": "x=y"}));
        let (s, _) = generate(&g, "Secret", &GeneratorOptions::default(), cx(), "f").unwrap();
        assert_eq!(s.value["data"]["a"], "MQ==");
        assert_eq!(s.value["type"], "Opaque");
        let bad = literal_generator("c", &["novalue"]);
        let e = generate(&bad, "ConfigMap", &GeneratorOptions::default(), cx(), "f").unwrap_err();
        assert_eq!(
            e.to_string(),
            "k.yaml: f.literals[0]: \"novalue\" is not KEY=VALUE"
        );
    }

    #[test]
    fn env_files() {
        let lines = env_lines("\u{feff}# c\n\nA=1\n  B=x=y\nHOME\n", Path::new("e.env")).unwrap();
        assert_eq!(
            lines,
            [
                ("A".into(), "1".into()),
                ("B".into(), "x=y".into()),
                ("HOME".into(), String::new())
            ]
        );
        assert!(env_lines("1X=2\n", Path::new("e.env")).is_err());
    }

    #[test]
    fn merge_and_replace() {
        let opts = GeneratorOptions {
            labels: BTreeMap::from([("l".into(), "1".into())]),
            ..GeneratorOptions::default()
        };
        let (base, _) = generate(
            &literal_generator("c", &["a=1", "b=2"]),
            "ConfigMap",
            &opts,
            cx(),
            "f",
        )
        .unwrap();
        let mut rs = vec![base];
        let mut g = literal_generator("c", &["b=3"]);
        g.behavior = Some("merge".into());
        let (m, b) = generate(&g, "ConfigMap", &GeneratorOptions::default(), cx(), "f").unwrap();
        absorb(&mut rs, m, b, Path::new("k.yaml"), "f").unwrap();
        assert_eq!(rs[0].value["data"], json!({"a": "1", "b": "3"}));
        assert_eq!(rs[0].value["metadata"]["labels"], json!({"l": "1"}));
        g.behavior = Some("replace".into());
        let (m, b) = generate(&g, "ConfigMap", &GeneratorOptions::default(), cx(), "f").unwrap();
        absorb(&mut rs, m, b, Path::new("k.yaml"), "f").unwrap();
        assert_eq!(rs[0].value["data"], json!({"b": "3"}));
        let (dup, b) =
            generate(&literal_generator("c", &[]), "ConfigMap", &opts, cx(), "f").unwrap();
        assert!(absorb(&mut rs, dup, b, Path::new("k.yaml"), "f").is_err());
    }
}
