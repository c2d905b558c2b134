//! `jotactl scale --replicas=N`: sets `spec.replicas` of the named objects
//! (`KIND NAME…`, `KIND/NAME…`, or the objects of `-f` manifests). The
//! server refuses kinds without replicas.

use jotasu_api::ObjectRef;

use crate::cli::{GlobalArgs, ScaleArgs};
use crate::connect;
use crate::manifests;
use crate::names::ref_slash_name;
use crate::report::{CtlError, Failures, out};

/// The objects the arguments name.
pub fn targets(
    args: &ScaleArgs,
    namespace: &str,
    explicit_ns: Option<&str>,
) -> Result<Vec<ObjectRef>, CtlError> {
    if !args.files.files.is_empty() {
        if !args.resources.is_empty() {
            return Err(CtlError::Usage(
                "resources cannot be given as arguments with -f".into(),
            ));
        }
        let sources = manifests::read_sources(&args.files)?;
        return Ok(manifests::refs(&sources, explicit_ns)?);
    }
    crate::args::named_refs(&args.resources, namespace)
}

/// Runs `scale`.
pub async fn run(global: &GlobalArgs, args: &ScaleArgs) -> Result<(), CtlError> {
    let refs = targets(
        args,
        connect::namespace(global),
        connect::explicit_namespace(global),
    )?;
    let client = connect::connect(global).await?;
    let mut failures = Failures::default();
    for r in &refs {
        match client.scale(r, args.replicas).await {
            Ok(_) => out(&format!("{} scaled\n", ref_slash_name(r)))?,
            Err(e) => failures.report(e),
        }
    }
    failures.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::object_ref;
    use crate::cli::FileArgs;
    use jotasu_api::Kind;

    fn args(resources: &[&str]) -> ScaleArgs {
        ScaleArgs {
            resources: resources.iter().map(|s| (*s).to_owned()).collect(),
            files: FileArgs {
                files: Vec::new(),
                recursive: false,
            },
            replicas: 3,
        }
    }

    #[test]
    fn names_required() {
        assert_eq!(
            targets(&args(&["deploy", "web"]), "ns", None).unwrap(),
            [object_ref(Kind::Deployment, "ns", "web")]
        );
        assert_eq!(
            targets(&args(&["deployment.apps/web"]), "ns", None).unwrap(),
            [object_ref(Kind::Deployment, "ns", "web")]
        );
        assert!(targets(&args(&["deploy"]), "ns", None).is_err());
        assert!(targets(&args(&[]), "ns", None).is_err());
    }
}
