//! A kustomization rendered by jotactl itself, as `kubectl kustomize`
//! (kustomize v5) renders it: `jotactl kustomize DIR` prints the objects,
//! `jotactl apply -k DIR` and `delete -k DIR` send them through the same
//! checks as `-f`. Local kustomizations only: remote resources are refused.
//!
//! `build` walks the tree (resources, then generators, then transformers,
//! per kustomization); `file` reads kustomization files; `generators`,
//! `transformers`, `labels`, `patches` (with `smp` for strategic merge),
//! `hash` and `nameref` are kustomize's built-in steps, each a function
//! over the list of objects.

mod build;
mod error;
mod fieldspec;
mod file;
mod generators;
mod hash;
mod labels;
mod nameref;
mod patches;
mod resource;
mod smp;
mod transformers;
mod yaml;

use std::path::Path;

use serde_json::Value;

pub use build::render;
pub use error::KustomizeError;

/// The objects as YAML documents separated by `---`, as kubectl prints them.
pub fn to_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&yaml::document(object));
    }
    out
}

/// The rendered objects as one manifest source for [`crate::manifests`].
pub fn source(dir: &Path) -> Result<crate::manifests::Source, KustomizeError> {
    let objects = render(dir)?;
    Ok(crate::manifests::Source {
        name: format!("{} (kustomization)", dir.display()),
        text: to_yaml(&objects),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixtures' objects pass the checks `apply -f` makes.
    #[test]
    fn rendered_fixtures_load_as_manifests() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kustomize");
        for overlay in ["base", "prod", "dev"] {
            let source = source(&fixtures.join(overlay)).unwrap();
            let loaded = crate::manifests::load(&[source], None)
                .unwrap_or_else(|e| panic!("{overlay}: {e}"));
            assert!(loaded.len() >= 8, "{overlay}: {}", loaded.len());
        }
    }
}
