//! `jotactl exec POD [-c CONTAINER] [-i] -- COMMAND ARGS…`: runs a command
//! in a pod's container on its node (proxied by the control plane), with
//! stdin forwarded under `-i`, its stdout and stderr written to jotactl's,
//! and its exit code made jotactl's (with kubectl's `command terminated
//! with exit code N` on stderr).

use std::io::Write as _;

use jotasu_api::client::{ExecOut, ExecStart};

use crate::cli::{ExecArgs, GlobalArgs};
use crate::report::{CtlError, note};
use crate::stream::{Chunks, next, read_chunks, take_error};
use crate::{connect, podref};

/// Bytes of stdin per message.
const STDIN_CHUNK: usize = 32 << 10;

/// Runs `exec`.
pub async fn run(global: &GlobalArgs, args: &ExecArgs) -> Result<(), CtlError> {
    let namespace = connect::namespace(global);
    let client = connect::connect(global).await?;
    let pod = podref::resolve(&client, namespace, &args.pod).await?;
    if args.tty {
        note("Unable to use a TTY - jotasu's exec has no terminal mode; running without one");
    }
    let start = ExecStart {
        namespace: namespace.to_owned(),
        name: pod,
        container: args.container.clone().unwrap_or_default(),
        command: args.command.clone(),
        stdin: args.stdin,
    };
    let (stdin, read_error) = if args.stdin {
        let (chunks, error) = read_chunks(std::io::stdin(), STDIN_CHUNK, |_| {});
        (chunks, Some(error))
    } else {
        (Chunks::empty(), None)
    };
    let mut output = client.exec(start, stdin).await?;
    let mut exit = None;
    while let Some(item) = next(&mut output).await {
        match item? {
            ExecOut::Stdout(data) => {
                let mut out = std::io::stdout().lock();
                out.write_all(&data)?;
                out.flush()?;
            }
            ExecOut::Stderr(data) => {
                let mut err = std::io::stderr().lock();
                err.write_all(&data)?;
                err.flush()?;
            }
            ExecOut::ExitCode(code) => exit = Some(code),
        }
    }
    if let Some(e) = read_error.as_ref().and_then(take_error) {
        note(&format!("warning: reading stdin failed: {e}"));
    }
    match exit {
        Some(0) => Ok(()),
        Some(code) => Err(CtlError::CommandExit(code)),
        None => Err(CtlError::Usage(
            "the command's exit code never arrived: the stream from its node ended early".into(),
        )),
    }
}
