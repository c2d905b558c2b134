//! Tests of env resolution: values, references, envFrom, and the
//! [`Objects`] ConfigSource other tests use.

use std::collections::BTreeMap;

use jotasu_api::Bytes;
use jotasu_api::kinds::pod::{EnvVar, EnvVarSource};
use jotasu_api::meta::ObjectMeta;

use super::*;

/// A ConfigSource over two maps keyed by (namespace, name).
#[derive(Debug, Default)]
pub(crate) struct Objects {
    pub(crate) config_maps: BTreeMap<(String, String), ConfigMap>,
    pub(crate) secrets: BTreeMap<(String, String), Secret>,
}

impl Objects {
    pub(crate) fn with_config_map(mut self, ns: &str, name: &str, kv: &[(&str, &str)]) -> Self {
        let cm = ConfigMap {
            metadata: ObjectMeta::named(name),
            data: kv
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..ConfigMap::default()
        };
        self.config_maps.insert((ns.into(), name.into()), cm);
        self
    }

    pub(crate) fn with_secret(mut self, ns: &str, name: &str, kv: &[(&str, &[u8])]) -> Self {
        let s = Secret {
            metadata: ObjectMeta::named(name),
            data: kv
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Bytes(v.to_vec())))
                .collect(),
            ..Secret::default()
        };
        self.secrets.insert((ns.into(), name.into()), s);
        self
    }
}

impl ConfigSource for Objects {
    fn config_map(&self, ns: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps.get(&(ns.to_owned(), name.to_owned()))
    }
    fn secret(&self, ns: &str, name: &str) -> Option<&Secret> {
        self.secrets.get(&(ns.to_owned(), name.to_owned()))
    }
}

fn pod() -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some("web".into());
    p.metadata.namespace = Some("shop".into());
    p
}

fn val(name: &str, v: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(v.into()),
        value_from: None,
    }
}

fn cm_ref(name: &str, obj: &str, key: &str, optional: Option<bool>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(KeySelector {
                name: obj.into(),
                key: key.into(),
                optional,
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn secret_ref(name: &str, obj: &str, key: &str, optional: Option<bool>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(KeySelector {
                name: obj.into(),
                key: key.into(),
                optional,
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn resolve(env: Vec<EnvVar>, objs: &Objects) -> Result<Vec<(String, String)>, ConfigError> {
    let c = Container {
        name: "app".into(),
        env,
        ..Container::default()
    };
    resolve_env(&pod(), &c, objs)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
}

#[test]
fn literal_values_expand_earlier_vars_only() {
    let got = resolve(
        vec![
            val("A", "one"),
            val("B", "$(A)-two-$(C)"),
            val("C", "three"),
            val("D", "$$(A)"),
        ],
        &Objects::default(),
    )
    .expect("resolves");
    assert_eq!(
        got,
        pairs(&[
            ("A", "one"),
            ("B", "one-two-$(C)"),
            ("C", "three"),
            ("D", "$(A)")
        ])
    );
}

#[test]
fn config_map_and_secret_refs() {
    let objs = Objects::default()
        .with_config_map("shop", "cfg", &[("color", "blue")])
        .with_secret("shop", "creds", &[("password", b"s3cret")]);
    let got = resolve(
        vec![
            cm_ref("COLOR", "cfg", "color", None),
            secret_ref("PASS", "creds", "password", None),
            val("BOTH", "$(COLOR)/$(PASS)"),
        ],
        &objs,
    )
    .expect("resolves");
    assert_eq!(
        got,
        pairs(&[
            ("COLOR", "blue"),
            ("PASS", "s3cret"),
            ("BOTH", "blue/s3cret")
        ])
    );
}

#[test]
fn ref_values_are_not_expanded() {
    let objs = Objects::default().with_config_map("shop", "cfg", &[("v", "$(A)")]);
    let got = resolve(vec![val("A", "a"), cm_ref("B", "cfg", "v", None)], &objs).expect("resolves");
    assert_eq!(got[1].1, "$(A)");
}

#[test]
fn missing_objects_and_keys_use_kubelet_messages() {
    let objs = Objects::default()
        .with_config_map("shop", "cfg", &[("a", "1")])
        .with_secret("shop", "creds", &[("a", b"1")]);
    let err = |e: EnvVar| resolve(vec![e], &objs).expect_err("fails").to_string();
    assert_eq!(
        err(cm_ref("X", "nope", "a", None)),
        r#"configmap "nope" not found"#
    );
    assert_eq!(
        err(cm_ref("X", "cfg", "k", Some(false))),
        "couldn't find key k in ConfigMap shop/cfg"
    );
    assert_eq!(
        err(secret_ref("X", "nope", "a", None)),
        r#"secret "nope" not found"#
    );
    assert_eq!(
        err(secret_ref("X", "creds", "k", None)),
        "couldn't find key k in Secret shop/creds"
    );
}

#[test]
fn objects_are_looked_up_in_the_pods_namespace() {
    let objs = Objects::default().with_config_map("other", "cfg", &[("a", "1")]);
    assert!(resolve(vec![cm_ref("X", "cfg", "a", None)], &objs).is_err());
}

#[test]
fn optional_refs_are_skipped_when_missing() {
    let objs = Objects::default().with_config_map("shop", "cfg", &[("a", "1")]);
    let got = resolve(
        vec![
            cm_ref("A", "nope", "a", Some(true)),
            cm_ref("B", "cfg", "missing", Some(true)),
            secret_ref("C", "nope", "a", Some(true)),
            val("D", "[$(A)]"),
        ],
        &objs,
    )
    .expect("resolves");
    assert_eq!(got, pairs(&[("D", "[$(A)]")]));
}

#[test]
fn redefinition_keeps_first_position_and_last_value() {
    let got = resolve(
        vec![val("A", "1"), val("B", "2"), val("A", "$(A)$(B)")],
        &Objects::default(),
    )
    .expect("resolves");
    assert_eq!(got, pairs(&[("A", "12"), ("B", "2")]));
}

#[test]
fn service_variables_sit_underneath() {
    let c = Container {
        name: "app".into(),
        env: vec![
            val("DB_SERVICE_HOST", "override"),
            val("URL", "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"),
        ],
        ..Container::default()
    };
    let services = pairs(&[
        ("WEB_SERVICE_HOST", "10.96.0.20"),
        ("WEB_SERVICE_PORT", "80"),
        ("DB_SERVICE_HOST", "10.96.0.50"),
    ]);
    let facts = NodeFacts::default();
    let got = resolve_env_with_services(&pod(), &c, &Objects::default(), &services, &facts)
        .expect("resolves");
    assert_eq!(
        got,
        pairs(&[
            ("DB_SERVICE_HOST", "override"),
            ("URL", "http://10.96.0.20:80"),
            ("WEB_SERVICE_HOST", "10.96.0.20"),
            ("WEB_SERVICE_PORT", "80"),
        ])
    );
}

#[test]
fn empty_and_absent_values_are_empty() {
    let got = resolve(
        vec![
            EnvVar {
                name: "E".into(),
                value: None,
                value_from: None,
            },
            val("F", ""),
        ],
        &Objects::default(),
    )
    .expect("resolves");
    assert_eq!(got, pairs(&[("E", ""), ("F", "")]));
}

#[test]
fn secret_string_data_wins_and_binary_is_refused() {
    let mut objs =
        Objects::default().with_secret("shop", "s", &[("k", b"old"), ("bin", &[0xff, 0xfe])]);
    if let Some(s) = objs.secrets.get_mut(&("shop".into(), "s".into())) {
        s.string_data.insert("k".into(), "new".into());
    }
    let got = resolve(vec![secret_ref("K", "s", "k", None)], &objs).expect("resolves");
    assert_eq!(got, pairs(&[("K", "new")]));
    let err = resolve(vec![secret_ref("B", "s", "bin", None)], &objs).expect_err("binary");
    assert!(matches!(err, ConfigError::SecretNotText { .. }), "{err}");
}

fn from_cm(name: &str, prefix: Option<&str>, optional: Option<bool>) -> EnvFromSource {
    EnvFromSource {
        prefix: prefix.map(Into::into),
        config_map_ref: Some(jotasu_api::kinds::pod::EnvSourceRef {
            name: name.into(),
            optional,
        }),
        secret_ref: None,
    }
}

fn from_secret(name: &str, optional: Option<bool>) -> EnvFromSource {
    EnvFromSource {
        prefix: None,
        config_map_ref: None,
        secret_ref: Some(jotasu_api::kinds::pod::EnvSourceRef {
            name: name.into(),
            optional,
        }),
    }
}

fn resolve_from(
    env_from: Vec<EnvFromSource>,
    env: Vec<EnvVar>,
    objs: &Objects,
) -> Result<Vec<(String, String)>, ConfigError> {
    let c = Container {
        name: "app".into(),
        env,
        env_from,
        ..Container::default()
    };
    resolve_env(&pod(), &c, objs)
}

#[test]
fn env_from_gives_every_valid_key_with_its_prefix_and_env_wins() {
    let objs = Objects::default()
        .with_config_map(
            "shop",
            "cfg",
            &[
                ("color", "blue"),
                ("size", "L"),
                ("1bad", "x"),
                ("has space", "y"),
            ],
        )
        .with_secret(
            "shop",
            "creds",
            &[("password", b"s3cret"), ("color", b"red")],
        );
    let got = resolve_from(
        vec![
            from_cm("cfg", Some("CFG_"), None),
            from_secret("creds", None),
        ],
        vec![
            val("CFG_size", "XL"),
            val("BOTH", "$(CFG_color)/$(password)"),
        ],
        &objs,
    )
    .expect("resolves");
    assert_eq!(
        got,
        pairs(&[
            ("CFG_1bad", "x"),
            ("CFG_color", "blue"),
            ("CFG_size", "XL"),
            ("color", "red"),
            ("password", "s3cret"),
            ("BOTH", "blue/s3cret"),
        ])
    );
    // Without a prefix, a key that is no valid name is skipped.
    let got = resolve_from(vec![from_cm("cfg", None, None)], vec![], &objs).expect("resolves");
    assert_eq!(got, pairs(&[("color", "blue"), ("size", "L")]));
}

#[test]
fn env_from_missing_objects() {
    let objs = Objects::default();
    let err = resolve_from(vec![from_cm("nope", None, None)], vec![], &objs).expect_err("required");
    assert_eq!(err.to_string(), r#"configmap "nope" not found"#);
    let err =
        resolve_from(vec![from_secret("nope", Some(false))], vec![], &objs).expect_err("required");
    assert_eq!(err.to_string(), r#"secret "nope" not found"#);
    let got = resolve_from(
        vec![
            from_cm("nope", None, Some(true)),
            from_secret("nope", Some(true)),
        ],
        vec![val("A", "1")],
        &objs,
    )
    .expect("optional");
    assert_eq!(got, pairs(&[("A", "1")]));
}
