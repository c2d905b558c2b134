//! Commands in containers for the rest of the agent: streaming a session's
//! output to a `jotactl exec` caller (and its stdin from it), and running
//! one to completion with a timeout for exec probes.

use std::path::Path;
use std::time::Duration;

use jotasu_api::grpc::v1::{ExecInput, ExecOutput, exec_input, exec_output};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tonic::{Status, Streaming};

use crate::containerd::{Containerd, ExecSession};

/// How often output files are polled.
const POLL: Duration = Duration::from_millis(20);

/// Reads what was appended to `file` since `offset` (and moves it on).
pub(crate) async fn read_new(file: &Path, offset: &mut u64) -> Vec<u8> {
    let Ok(mut f) = tokio::fs::File::open(file).await else {
        return Vec::new();
    };
    if f.seek(std::io::SeekFrom::Start(*offset)).await.is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).await.is_ok() {
        *offset += buf.len() as u64;
    }
    buf
}

fn output(o: exec_output::Output) -> Result<ExecOutput, Status> {
    Ok(ExecOutput { output: Some(o) })
}

/// Streams `session` to `tx` (stdout, stderr, then the exit code) while
/// feeding it the caller's stdin; ends when the command does, or kills it
/// when the caller goes away.
pub async fn pump(
    mut session: ExecSession,
    mut input: Streaming<ExecInput>,
    tx: mpsc::Sender<Result<ExecOutput, Status>>,
) {
    let (out, err) = (session.stdout(), session.stderr());
    let (mut out_at, mut err_at) = (0u64, 0u64);
    let waiter = session.waiter();
    tokio::pin!(waiter);
    let mut input_open = true;
    let code = loop {
        tokio::select! {
            r = &mut waiter => break r.ok(),
            msg = input.next(), if input_open => match msg {
                Some(Ok(ExecInput { input: Some(exec_input::Input::Stdin(data)) })) => {
                    let _ = session.write_stdin(&data).await;
                }
                Some(Ok(ExecInput { input: Some(exec_input::Input::StdinClosed(_)) })) | None => {
                    input_open = false;
                    let _ = session.close_stdin().await;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => {
                    input_open = false;
                    let _ = session.kill(libc::SIGKILL).await;
                }
            },
            () = tokio::time::sleep(POLL) => {
                for (file, at, stdout) in [(&out, &mut out_at, true), (&err, &mut err_at, false)] {
                    let data = read_new(file, at).await;
                    if data.is_empty() {
                        continue;
                    }
                    let o = if stdout { exec_output::Output::Stdout(data) } else { exec_output::Output::Stderr(data) };
                    if tx.send(output(o)).await.is_err() {
                        let _ = session.kill(libc::SIGKILL).await;
                    }
                }
            }
        }
    };
    // The shim has finished copying once the process is reported exited.
    for (file, at, stdout) in [(&out, &mut out_at, true), (&err, &mut err_at, false)] {
        let data = read_new(file, at).await;
        if !data.is_empty() {
            let o = if stdout {
                exec_output::Output::Stdout(data)
            } else {
                exec_output::Output::Stderr(data)
            };
            let _ = tx.send(output(o)).await;
        }
    }
    let code = code.map_or(255, |c| i32::try_from(c).unwrap_or(255));
    let _ = tx.send(output(exec_output::Output::ExitCode(code))).await;
    session.finish().await;
}

/// Runs `command` in container `id` to completion: its exit code and
/// output (stdout then stderr), or None when it overran `timeout` (then it
/// is killed).
pub async fn collect(
    containerd: &Containerd,
    id: &str,
    command: Vec<String>,
    timeout: Duration,
) -> Result<Option<(u32, String)>, String> {
    let exec_id = format!("probe-{}", uuid::Uuid::new_v4().simple());
    let session = containerd
        .exec(id, &exec_id, command, false)
        .await
        .map_err(|e| e.to_string())?;
    let result = match tokio::time::timeout(timeout, session.wait()).await {
        Ok(Ok(code)) => {
            let mut text = tokio::fs::read(session.stdout()).await.unwrap_or_default();
            text.extend(tokio::fs::read(session.stderr()).await.unwrap_or_default());
            Ok(Some((code, String::from_utf8_lossy(&text).into_owned())))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            let _ = session.kill(libc::SIGKILL).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), session.wait()).await;
            Ok(None)
        }
    };
    session.finish().await;
    result
}
