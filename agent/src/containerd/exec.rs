//! Commands run in a running container (`jotactl exec`, exec probes): a
//! process spec derived from the container's own (same env, cwd, user);
//! stdout and stderr through FIFOs that the session copies into two files
//! the caller reads as they grow; stdin through a FIFO closed with CloseIO.
//!
//! FIFOs, not `file://` stdio: containerd's shim writes both streams of a
//! `file://` process into the stdout file and ignores the stderr URL.
//! And `wait` returns once the output is complete: the shim reports the
//! exit before it has copied the last output, so the session deletes the
//! process (which waits for the shim's copy) and drains the FIFOs first.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, KillRequest, StartRequest,
    WaitRequest,
};
use prost_types::Any;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinHandle;

use super::error::rpc;
use super::{Containerd, ContainerdError, Result};

const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// How long `wait` lets the shim finish copying output after the exit
/// (a background child can hold the command's stdout open for longer).
const DRAIN: Duration = Duration::from_secs(5);

/// One command running in a container. Dropping it without [`Self::finish`]
/// kills the command and cleans up in the background.
#[derive(Debug)]
pub struct ExecSession {
    containerd: Containerd,
    id: String,
    exec_id: String,
    dir: PathBuf,
    stdin: Option<tokio::net::unix::pipe::Sender>,
    copiers: Arc<Mutex<Vec<JoinHandle<()>>>>,
    finished: bool,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ContainerdError {
    let path = path.to_owned();
    move |source| ContainerdError::Io { what, path, source }
}

fn mkfifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| io_err("mkfifo", path)(std::io::Error::from(e)))
}

/// Appends what comes out of `fifo` to `file` until every writer is gone.
async fn copy(mut fifo: tokio::net::unix::pipe::Receiver, file: PathBuf) {
    let Ok(mut out) = tokio::fs::OpenOptions::new().append(true).open(&file).await else {
        return;
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match fifo.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                let _ = out.flush().await;
            }
        }
    }
}

impl Containerd {
    /// Starts `args` in the running container `id` as process `exec_id`.
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        args: Vec<String>,
        stdin: bool,
    ) -> Result<ExecSession> {
        let mut spec = self.spec(id).await?;
        let mut process = spec
            .get_mut("process")
            .map(serde_json::Value::take)
            .ok_or_else(|| ContainerdError::Image {
                object: id.to_owned(),
                reason: "the container spec has no process".into(),
            })?;
        process["args"] = serde_json::json!(args);
        process["terminal"] = serde_json::json!(false);
        let body = serde_json::to_vec(&process).map_err(|e| ContainerdError::Image {
            object: id.to_owned(),
            reason: e.to_string(),
        })?;
        let dir = self.exec_dir().join(exec_id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let mut session = ExecSession {
            containerd: self.clone(),
            id: id.to_owned(),
            exec_id: exec_id.to_owned(),
            dir: dir.clone(),
            stdin: None,
            copiers: Arc::default(),
            finished: false,
        };
        let mut readers = Vec::new();
        for name in ["stdout", "stderr"] {
            let file = dir.join(name);
            std::fs::File::create(&file).map_err(io_err("creating", &file))?;
            let fifo = dir.join(format!("{name}.fifo"));
            mkfifo(&fifo)?;
            // Opened before the shim's writer: non-blocking, and read only
            // once the process has started (before that it reads as EOF).
            let rx = tokio::net::unix::pipe::OpenOptions::new()
                .open_receiver(&fifo)
                .map_err(io_err("opening", &fifo))?;
            readers.push((rx, file, fifo));
        }
        let stdin_path = if stdin {
            let p = dir.join("stdin.fifo");
            mkfifo(&p)?;
            // Read-write, so opening does not wait for the shim's reader.
            let sender = tokio::net::unix::pipe::OpenOptions::new()
                .read_write(true)
                .open_sender(&p)
                .map_err(io_err("opening", &p))?;
            session.stdin = Some(sender);
            p.display().to_string()
        } else {
            String::new()
        };
        let mut tasks = TasksClient::new(self.channel());
        let started = async {
            tasks
                .exec(self.req(ExecProcessRequest {
                    container_id: id.to_owned(),
                    stdin: stdin_path,
                    stdout: readers[0].2.display().to_string(),
                    stderr: readers[1].2.display().to_string(),
                    terminal: false,
                    spec: Some(Any {
                        type_url: PROCESS_TYPE.to_owned(),
                        value: body,
                    }),
                    exec_id: exec_id.to_owned(),
                }))
                .await
                .map_err(rpc("exec", id))?;
            tasks
                .start(self.req(StartRequest {
                    container_id: id.to_owned(),
                    exec_id: exec_id.to_owned(),
                }))
                .await
                .map_err(rpc("start exec", id))
        }
        .await;
        if let Err(e) = started {
            session.finish().await;
            return Err(e);
        }
        // The shim opened its end of the FIFOs while starting the process.
        if let Ok(mut copiers) = session.copiers.lock() {
            for (rx, file, _) in readers {
                copiers.push(tokio::spawn(copy(rx, file)));
            }
        }
        Ok(session)
    }
}

impl ExecSession {
    /// The file the command's stdout is appended to.
    pub fn stdout(&self) -> PathBuf {
        self.dir.join("stdout")
    }

    /// The file the command's stderr is appended to.
    pub fn stderr(&self) -> PathBuf {
        self.dir.join("stderr")
    }

    /// Feeds the command's stdin (when it was asked for).
    pub async fn write_stdin(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.stdin {
            Some(s) => s.write_all(data).await,
            None => Ok(()),
        }
    }

    /// Closes the command's stdin (what was written is still delivered).
    pub async fn close_stdin(&mut self) -> Result<()> {
        if self.stdin.take().is_none() {
            return Ok(());
        }
        TasksClient::new(self.containerd.channel())
            .close_io(self.containerd.req(CloseIoRequest {
                container_id: self.id.clone(),
                exec_id: self.exec_id.clone(),
                stdin: true,
            }))
            .await
            .map_err(rpc("close stdin", &self.id))?;
        Ok(())
    }

    /// Waits for the command; its exit code. When it returns, the output
    /// files are complete.
    pub async fn wait(&self) -> Result<u32> {
        self.waiter().await
    }

    /// A future of the exit code that owns what it needs (to run beside
    /// the session's other calls). Like [`Self::wait`], it completes once
    /// the output files are complete.
    pub fn waiter(&self) -> impl Future<Output = Result<u32>> + Send + 'static {
        let (cd, id, exec_id) = (
            self.containerd.clone(),
            self.id.clone(),
            self.exec_id.clone(),
        );
        let copiers = self.copiers.clone();
        async move {
            let r = TasksClient::new(cd.channel())
                .wait(cd.req(WaitRequest {
                    container_id: id.clone(),
                    exec_id: exec_id.clone(),
                }))
                .await
                .map_err(rpc("wait exec", &id))?;
            // Deleting the process waits for the shim's output copy and
            // closes its ends of the FIFOs, so the copiers see the end.
            let _ = tokio::time::timeout(DRAIN, delete_process(&cd, &id, &exec_id)).await;
            let handles = copiers.lock().map(|mut c| std::mem::take(&mut *c));
            for h in handles.unwrap_or_default() {
                let abort = h.abort_handle();
                if tokio::time::timeout(DRAIN, h).await.is_err() {
                    abort.abort();
                }
            }
            Ok(r.into_inner().exit_status)
        }
    }

    /// Signals the command.
    pub async fn kill(&self, signal: i32) -> Result<()> {
        TasksClient::new(self.containerd.channel())
            .kill(self.containerd.req(KillRequest {
                container_id: self.id.clone(),
                exec_id: self.exec_id.clone(),
                signal: u32::try_from(signal).unwrap_or(9),
                all: false,
            }))
            .await
            .map_err(rpc("kill exec", &self.id))?;
        Ok(())
    }

    /// Releases the process in containerd and removes the session's files.
    pub async fn finish(mut self) {
        self.finished = true;
        self.stdin = None;
        let _ = delete_process(&self.containerd, &self.id, &self.exec_id).await;
        abort_all(&self.copiers);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn delete_process(cd: &Containerd, id: &str, exec_id: &str) -> Result<()> {
    TasksClient::new(cd.channel())
        .delete_process(cd.req(DeleteProcessRequest {
            container_id: id.to_owned(),
            exec_id: exec_id.to_owned(),
        }))
        .await
        .map_err(rpc("delete exec", id))?;
    Ok(())
}

fn abort_all(copiers: &Mutex<Vec<JoinHandle<()>>>) {
    if let Ok(mut c) = copiers.lock() {
        for h in c.drain(..) {
            h.abort();
        }
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A session given up on (a caller gone, a probe timed out): kill
        // the command, release it and remove its files in the background.
        let (cd, id, exec_id, dir) = (
            self.containerd.clone(),
            self.id.clone(),
            self.exec_id.clone(),
            self.dir.clone(),
        );
        let copiers = self.copiers.clone();
        self.stdin = None;
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            abort_all(&copiers);
            return;
        };
        rt.spawn(async move {
            let _ = TasksClient::new(cd.channel())
                .kill(cd.req(KillRequest {
                    container_id: id.clone(),
                    exec_id: exec_id.clone(),
                    signal: 9,
                    all: false,
                }))
                .await;
            let _ = tokio::time::timeout(
                DRAIN,
                TasksClient::new(cd.channel()).wait(cd.req(WaitRequest {
                    container_id: id.clone(),
                    exec_id: exec_id.clone(),
                })),
            )
            .await;
            let _ = tokio::time::timeout(DRAIN, delete_process(&cd, &id, &exec_id)).await;
            abort_all(&copiers);
            let _ = std::fs::remove_dir_all(&dir);
        });
    }
}
