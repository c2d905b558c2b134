//! `jotactl apply -f`: every manifest is read and validated here first (any
//! problem: all of them are shown and nothing is sent), then one Apply call
//! carries every object; the server applies all or nothing.

use jotasu_api::client::{Applied, ClientError};
use jotasu_api::{Location, Object};

use crate::cli::{ApplyArgs, DryRun, GlobalArgs, KustomizeArgs};
use crate::connect;
use crate::kustomize;
use crate::manifests::{self, Source};
use crate::names::ref_slash_name;
use crate::report::{CtlError, note, out};

/// Runs `apply`.
pub async fn run(global: &GlobalArgs, args: &ApplyArgs) -> Result<(), CtlError> {
    let sources: Vec<Source> = match &args.kustomize {
        Some(dir) => vec![kustomize::source(dir)?],
        None if args.files.files.is_empty() => {
            return Err(CtlError::Usage(
                "must specify -f FILE|DIR|- (a manifest, a directory of them, or stdin) or -k DIR (a kustomization)".into(),
            ));
        }
        None => manifests::read_sources(&args.files)?,
    };
    let loaded = manifests::load(&sources, connect::explicit_namespace(global))?;
    if loaded.is_empty() {
        return Err(CtlError::Usage("no objects passed to apply".into()));
    }
    let objects: Vec<Object> = loaded.iter().map(|o| o.object.clone()).collect();
    let client = connect::connect(global).await?;
    match client.apply(&objects, args.dry_run != DryRun::None).await {
        Ok(applied) => out(&lines(&applied, args.dry_run)),
        Err(ClientError::Api(e)) if e.reason() == "Invalid" => {
            let locations: Vec<&Location> = loaded.iter().map(|o| &o.location).collect();
            note(&format!(
                "Error from server ({}): {}",
                e.reason(),
                locate(e.message(), &locations)
            ));
            Err(CtlError::Reported)
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `kustomize`: the rendered objects on stdout.
pub fn print_kustomization(args: &KustomizeArgs) -> Result<(), CtlError> {
    let objects = kustomize::render(&args.dir)?;
    out(&kustomize::to_yaml(&objects))
}

/// The server numbers the objects of a rejected apply (`object 2 (…): …`);
/// this names their files and documents instead.
pub fn locate(message: &str, locations: &[&Location]) -> String {
    message
        .lines()
        .map(|line| {
            let numbered = line.strip_prefix("object ").and_then(|rest| {
                let digits = rest.find(|c: char| !c.is_ascii_digit())?;
                let n: usize = rest[..digits].parse().ok()?;
                let location = locations.get(n.checked_sub(1)?)?;
                let tail = rest[digits..].trim_start();
                // Drop the server's "(Kind name)": the location names the object.
                let tail = match tail.strip_prefix('(') {
                    Some(t) => t.split_once(')').map_or(tail, |(_, after)| after),
                    None => tail,
                };
                Some(format!("{location}{tail}"))
            });
            numbered.unwrap_or_else(|| line.to_owned())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `deployment.apps/web created`, one line per object, with the dry-run note.
pub fn lines(applied: &[Applied], dry_run: DryRun) -> String {
    let suffix = match dry_run {
        DryRun::None => "",
        DryRun::Client => " (dry run)",
        DryRun::Server => " (server dry run)",
    };
    applied
        .iter()
        .map(|a| {
            format!(
                "{} {}{suffix}\n",
                ref_slash_name(&a.object_ref),
                a.outcome.as_str()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::client::Outcome;
    use jotasu_api::{Kind, ObjectRef};

    fn applied(kind: Kind, name: &str, outcome: Outcome) -> Applied {
        Applied {
            object_ref: ObjectRef {
                kind,
                namespace: Some("default".into()),
                name: name.into(),
            },
            outcome,
            resource_version: "7".into(),
        }
    }

    #[test]
    fn server_errors_name_files() {
        let a = Location {
            source: "a.yaml".into(),
            document: 2,
            kind: Some("Deployment".into()),
            name: Some("web".into()),
            ..Location::default()
        };
        let msg =
            "object 1 (Deployment web): spec.replicas: Invalid value: -1\nobject 7: bad\nother";
        assert_eq!(
            locate(msg, &[&a]),
            "a.yaml: document 2 (Deployment web): spec.replicas: Invalid value: -1\nobject 7: bad\nother"
        );
    }

    #[test]
    fn outcome_lines() {
        let a = [
            applied(Kind::Deployment, "web", Outcome::Created),
            applied(Kind::Service, "web", Outcome::Configured),
            applied(Kind::HorizontalPodAutoscaler, "h", Outcome::Unchanged),
        ];
        assert_eq!(
            lines(&a, DryRun::None),
            "deployment.apps/web created\nservice/web configured\nhorizontalpodautoscaler.autoscaling/h unchanged\n"
        );
        assert_eq!(
            lines(&a[..1], DryRun::Server),
            "deployment.apps/web created (server dry run)\n"
        );
        assert_eq!(
            lines(&a[..1], DryRun::Client),
            "deployment.apps/web created (dry run)\n"
        );
    }
}
