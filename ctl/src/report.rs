//! Errors of commands and how they are shown: `Error from server
//! (NotFound): deployments.apps "web" not found` for the server's answers,
//! the client library's text for connection problems, `error: …` for the
//! rest. Every error makes jotactl exit 1, as kubectl does.

use std::io::Write as _;

use jotasu_api::ManifestErrors;
use jotasu_api::client::ClientError;

use crate::args::ArgError;
use crate::manifests::SourceError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Talking to the server failed, or the server said no.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Manifests that cannot be applied (every problem, one per line).
    #[error(transparent)]
    Manifest(#[from] ManifestErrors),
    /// Manifest files that cannot be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A kustomization that cannot be rendered.
    #[error(transparent)]
    Kustomize(#[from] crate::kustomize::KustomizeError),
    /// Bad resource arguments.
    #[error(transparent)]
    Args(#[from] ArgError),
    /// Flags or arguments that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    /// Already shown on stderr (a command that carried on after errors).
    #[error("(reported)")]
    Reported,
    /// `exec`'s command exited with this code, which becomes jotactl's.
    #[error("command terminated with exit code {0}")]
    CommandExit(i32),
}

impl CtlError {
    /// jotactl's exit code for this error: the command's for `exec`
    /// (a code beyond 1..=255 as 1), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::CommandExit(code) => {
                u8::try_from(*code).ok().filter(|c| *c != 0).unwrap_or(1)
            }
            _ => 1,
        }
    }
}

/// The lines that show `error` on stderr.
pub fn render(error: &CtlError) -> String {
    match error {
        CtlError::Client(e) => render_client(e),
        CtlError::Manifest(errors) => errors
            .0
            .iter()
            .map(|e| format!("error: {e}"))
            .collect::<Vec<_>>()
            .join("\n"),
        CtlError::Reported => String::new(),
        // kubectl's words, without "error:".
        CtlError::CommandExit(_) => error.to_string(),
        other => format!("error: {other}"),
    }
}

/// A client error as kubectl shows server errors and connection failures.
pub fn render_client(error: &ClientError) -> String {
    match error {
        ClientError::Api(api) => format!("Error from server ({}): {}", api.reason(), api.message()),
        ClientError::Connect { .. } => capitalize(&error.to_string()),
        other => format!("error: {other}"),
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Shows `error` on stderr (nothing for [`CtlError::Reported`]).
pub fn eprint(error: &CtlError) {
    let text = render(error);
    if !text.is_empty() {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}

/// Shows `error` and remembers that the command failed.
#[derive(Debug, Default)]
pub struct Failures {
    failed: bool,
}

impl Failures {
    /// Shows `error` on stderr and marks the command failed.
    pub fn report(&mut self, error: impl Into<CtlError>) {
        eprint(&error.into());
        self.failed = true;
    }

    /// `Err(Reported)` if anything failed.
    pub fn finish(self) -> Result<(), CtlError> {
        if self.failed {
            Err(CtlError::Reported)
        } else {
            Ok(())
        }
    }
}

/// Writes `text` to stdout as is.
pub fn out(text: &str) -> Result<(), CtlError> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Writes a line to stderr.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::client::ApiError;

    #[test]
    fn kubectl_error_lines() {
        let e = ClientError::Api(ApiError(tonic::Status::not_found(
            "deployments.apps \"x\" not found",
        )));
        assert_eq!(
            render(&e.into()),
            "Error from server (NotFound): deployments.apps \"x\" not found"
        );
        let e = ClientError::Connect {
            server: "unix:///nope.sock".into(),
            detail: "No such file or directory".into(),
        };
        assert!(
            render(&e.into())
                .starts_with("The connection to the server unix:///nope.sock was refused")
        );
        assert_eq!(
            render(&CtlError::Usage("no objects passed to apply".into())),
            "error: no objects passed to apply"
        );
        assert_eq!(render(&CtlError::Reported), "");
        let exit = CtlError::CommandExit(3);
        assert_eq!(render(&exit), "command terminated with exit code 3");
        assert_eq!(exit.exit_code(), 3);
        assert_eq!(CtlError::CommandExit(300).exit_code(), 1);
        assert_eq!(CtlError::Reported.exit_code(), 1);
        let e = ClientError::Api(ApiError(tonic::Status::failed_precondition(
            "pod web does not have a host assigned",
        )));
        assert_eq!(
            render(&e.into()),
            "Error from server (BadRequest): pod web does not have a host assigned"
        );
    }
}
