//! The kustomization file: finding it, reading it (and the files it
//! names, size-limited and kept inside its directory), and its fields.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::KustomizeError;

/// The largest file read (kustomization, resource, patch, generator source).
pub const MAX_FILE_BYTES: u64 = 8 << 20;

/// The names kustomize looks for, in its order.
pub const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields of kustomize that jotactl does not render: refused with their name.
const UNSUPPORTED: [&str; 14] = [
    "components",
    "replacements",
    "vars",
    "helmCharts",
    "helmGlobals",
    "helmChartInflationGenerator",
    "crds",
    "configurations",
    "openapi",
    "transformers",
    "generators",
    "validators",
    "buildMetadata",
    "sortOptions",
];

/// A kustomization (kustomize v5 fields that jotactl renders).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Kustomization {
    /// `kustomize.config.k8s.io/v1beta1`.
    pub api_version: Option<String>,
    /// `Kustomization`.
    pub kind: Option<String>,
    /// Files and directories holding kustomizations.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The older name of `resources` for directories.
    #[serde(default)]
    pub bases: Vec<String>,
    /// Put before every name.
    pub name_prefix: Option<String>,
    /// Put after every name.
    pub name_suffix: Option<String>,
    /// The namespace of every namespaced object.
    pub namespace: Option<String>,
    /// Labels, with where they go.
    #[serde(default)]
    pub labels: Vec<LabelSet>,
    /// Labels on every object, its selectors and templates.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations on every object and its templates.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Image rewrites.
    #[serde(default)]
    pub images: Vec<Image>,
    /// Replica counts.
    #[serde(default)]
    pub replicas: Vec<Replicas>,
    /// ConfigMaps to make.
    #[serde(default)]
    pub config_map_generator: Vec<Generator>,
    /// Secrets to make.
    #[serde(default)]
    pub secret_generator: Vec<Generator>,
    /// Options of every generator.
    pub generator_options: Option<GeneratorOptions>,
    /// Strategic-merge or JSON 6902 patches.
    #[serde(default)]
    pub patches: Vec<Patch>,
    /// Strategic-merge patches (files or inline).
    #[serde(default)]
    pub patches_strategic_merge: Vec<String>,
    /// JSON 6902 patches with their targets.
    #[serde(default)]
    pub patches_json6902: Vec<Patch>,
}

/// One entry of `labels`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSet {
    /// The labels.
    #[serde(default)]
    pub pairs: BTreeMap<String, String>,
    /// Also on selectors (and templates).
    #[serde(default)]
    pub include_selectors: bool,
    /// Also on pod templates.
    #[serde(default)]
    pub include_templates: bool,
}

/// One entry of `images`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Image {
    /// The image name to match (without tag or digest).
    pub name: String,
    /// The name it becomes.
    pub new_name: Option<String>,
    /// The tag it gets.
    pub new_tag: Option<String>,
    /// The digest it gets (wins over the tag).
    pub digest: Option<String>,
}

/// One entry of `replicas`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replicas {
    /// The workload's name.
    pub name: String,
    /// Its replica count.
    pub count: i64,
}

/// One ConfigMap or Secret generator.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Generator {
    /// The object's name.
    pub name: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// `create` (default), `merge` or `replace`.
    pub behavior: Option<String>,
    /// `KEY=VALUE` entries.
    #[serde(default)]
    pub literals: Vec<String>,
    /// `FILE` or `KEY=FILE` entries.
    #[serde(default)]
    pub files: Vec<String>,
    /// Env files (`KEY=VALUE` lines).
    #[serde(default)]
    pub envs: Vec<String>,
    /// The older single env file.
    pub env: Option<String>,
    /// The Secret's type (default Opaque).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// This generator's options.
    pub options: Option<GeneratorOptions>,
}

/// `generatorOptions` and a generator's `options`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeneratorOptions {
    /// Labels of the object.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the object.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// No content-hash suffix.
    #[serde(default)]
    pub disable_name_suffix_hash: bool,
    /// `immutable: true` on the object.
    #[serde(default)]
    pub immutable: bool,
}

/// One entry of `patches` or `patchesJson6902`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// A file holding the patch.
    pub path: Option<String>,
    /// The patch itself.
    pub patch: Option<String>,
    /// The objects it applies to.
    pub target: Option<Selector>,
    /// `allowNameChange`: a strategic merge patch may rename its target
    /// (otherwise a new name in the patch is dropped).
    pub options: Option<PatchOptions>,
}

/// A patch's `options`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchOptions {
    /// The patch may change the object's name.
    #[serde(default)]
    pub allow_name_change: bool,
    /// The patch may change the object's kind.
    #[serde(default)]
    pub allow_kind_change: bool,
}

/// Which objects a patch applies to: group, version and kind exactly,
/// name and namespace as anchored regular expressions, label and
/// annotation selectors.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    /// API group.
    pub group: Option<String>,
    /// API version.
    pub version: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// Name (regular expression).
    pub name: Option<String>,
    /// Namespace (regular expression).
    pub namespace: Option<String>,
    /// Label selector (`app=web,tier!=db`).
    pub label_selector: Option<String>,
    /// Annotation selector, same syntax.
    pub annotation_selector: Option<String>,
}

/// The kustomization file of `dir` and its fields.
pub fn load(dir: &Path) -> Result<(PathBuf, Kustomization), KustomizeError> {
    let found: Vec<PathBuf> = FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect();
    let file = match found.as_slice() {
        [] => return Err(KustomizeError::NoKustomization(dir.to_owned())),
        [one] => one.clone(),
        several => {
            return Err(KustomizeError::SeveralKustomizations {
                dir: dir.to_owned(),
                names: several
                    .iter()
                    .filter_map(|p| p.file_name()?.to_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    };
    let text = read_text(&file)?;
    let value: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| KustomizeError::invalid(&file, "(file)", format!("not YAML: {e}")))?;
    let value = match value {
        Value::Null => Value::Object(Default::default()),
        v @ Value::Object(_) => v,
        _ => {
            return Err(KustomizeError::invalid(
                &file,
                "(file)",
                "a kustomization is a map of fields",
            ));
        }
    };
    if let Some(fields) = value.as_object() {
        for field in UNSUPPORTED {
            if fields.contains_key(field) {
                return Err(KustomizeError::invalid(
                    &file,
                    field,
                    "jotactl does not render this kustomize field; render with kubectl kustomize and apply its output with jotactl apply -f -",
                ));
            }
        }
    }
    let kustomization: Kustomization = serde_json::from_value(value)
        .map_err(|e| KustomizeError::invalid(&file, "(file)", e.to_string()))?;
    if let Some(version) = kustomization.api_version.as_deref()
        && !version.starts_with("kustomize.config.k8s.io/")
    {
        return Err(KustomizeError::invalid(
            &file,
            "apiVersion",
            format!("\"{version}\" is not kustomize.config.k8s.io/v1beta1"),
        ));
    }
    if let Some(kind) = kustomization.kind.as_deref()
        && kind != "Kustomization"
    {
        return Err(KustomizeError::invalid(
            &file,
            "kind",
            format!("\"{kind}\" is not Kustomization (components are not supported)"),
        ));
    }
    Ok((file, kustomization))
}

/// A file's bytes, at most [`MAX_FILE_BYTES`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, KustomizeError> {
    let read_error = |e: std::io::Error| KustomizeError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let size = bytes.len() as u64;
    if size > MAX_FILE_BYTES {
        let size = std::fs::metadata(path).map_or(size, |m| m.len());
        return Err(KustomizeError::TooLarge {
            path: path.to_owned(),
            size,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// A file's text (UTF-8), at most [`MAX_FILE_BYTES`].
pub fn read_text(path: &Path) -> Result<String, KustomizeError> {
    String::from_utf8(read_bytes(path)?).map_err(|_| KustomizeError::Read {
        path: path.to_owned(),
        reason: "not UTF-8 text".into(),
    })
}

/// Whether a resources entry names something remote.
pub fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.starts_with("github.com/")
        || entry.starts_with("gitlab.com/")
        || entry.starts_with("bitbucket.org/")
        || entry.contains("?ref=")
}

/// The file `entry` of field `field` of the kustomization `file` in
/// `root`: it must exist and lie in or below `root` (symbolic links
/// resolved), as kustomize's default load restriction wants.
pub fn local_file(
    root: &Path,
    file: &Path,
    field: &str,
    entry: &str,
) -> Result<PathBuf, KustomizeError> {
    if is_remote(entry) {
        return Err(KustomizeError::Remote {
            file: file.to_owned(),
            field: field.to_owned(),
            url: entry.to_owned(),
        });
    }
    let path = root.join(entry);
    let real = std::fs::canonicalize(&path).map_err(|_| KustomizeError::Missing {
        file: file.to_owned(),
        field: field.to_owned(),
        path: path.clone(),
    })?;
    let real_root = std::fs::canonicalize(root).map_err(|e| KustomizeError::Read {
        path: root.to_owned(),
        reason: e.to_string(),
    })?;
    if !real.starts_with(&real_root) {
        return Err(KustomizeError::OutsideRoot {
            file: file.to_owned(),
            field: field.to_owned(),
            path,
            root: root.to_owned(),
        });
    }
    if !real.is_file() {
        return Err(KustomizeError::invalid(
            file,
            field,
            format!("\"{}\" is not a file", path.display()),
        ));
    }
    Ok(real)
}
