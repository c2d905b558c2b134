//! `jotasu-cni`: the CNI plugin binary. Speaks only the CNI protocol: the
//! verb and attachment in `CNI_*` variables, the config on stdin, a result
//! or a CNI error on stdout, diagnostics on stderr (`JOTASU_CNI_LOG`
//! sets the filter, default `warn`).
use std::io::{Read as _, Write as _};

use jotasu_cni::{
    plugin,
    spec::{CniError, Code, Invocation, Version},
};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JOTASU_CNI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let outcome = Invocation::from_env()
        .map_err(|e| (e, Version::LATEST))
        .and_then(|inv| {
            let mut stdin = Vec::new();
            std::io::stdin().read_to_end(&mut stdin).map_err(|e| {
                (
                    CniError::new(Code::Io, "reading the config from stdin").with_details(e),
                    Version::LATEST,
                )
            })?;
            plugin::run(&inv, &stdin)
        });
    let mut out = std::io::stdout().lock();
    let code = match outcome {
        Ok(stdout) => {
            if let Some(s) = stdout {
                let _ = writeln!(out, "{s}");
            }
            0
        }
        Err((e, version)) => {
            tracing::error!(code = e.code.number(), "{e}");
            let _ = writeln!(out, "{}", e.to_json(version));
            1
        }
    };
    let _ = out.flush();
    std::process::exit(code);
}
