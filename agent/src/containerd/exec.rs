//! Commands run in a running container (`jotactl exec`, exec probes): a
//! process spec derived from the container's own (same env, cwd, user),
//! stdout and stderr appended by the shim to files the caller reads as
//! they grow, stdin through a FIFO closed with CloseIO.

use std::path::{Path, PathBuf};

use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, KillRequest, StartRequest,
    WaitRequest,
};
use prost_types::Any;
use tokio::io::AsyncWriteExt as _;

use super::error::rpc;
use super::{Containerd, ContainerdError, Result};

const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// One command running in a container.
#[derive(Debug)]
pub struct ExecSession {
    containerd: Containerd,
    id: String,
    exec_id: String,
    dir: PathBuf,
    stdin: Option<tokio::net::unix::pipe::Sender>,
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
        let dir = self.exec_dir().join(exec_id);
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| ContainerdError::Io { what, path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let (out, err) = (dir.join("stdout"), dir.join("stderr"));
        for f in [&out, &err] {
            std::fs::File::create(f).map_err(io("creating", f))?;
        }
        let mut session = ExecSession {
            containerd: self.clone(),
            id: id.to_owned(),
            exec_id: exec_id.to_owned(),
            dir: dir.clone(),
            stdin: None,
        };
        let stdin_path = if stdin {
            let p = dir.join("stdin");
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| io("mkfifo", &p)(std::io::Error::from(e)))?;
            // Read-write, so opening does not wait for the shim's reader.
            let sender = tokio::net::unix::pipe::OpenOptions::new()
                .read_write(true)
                .open_sender(&p)
                .map_err(io("opening", &p))?;
            session.stdin = Some(sender);
            p.display().to_string()
        } else {
            String::new()
        };
        let body = serde_json::to_vec(&process).map_err(|e| ContainerdError::Image {
            object: id.to_owned(),
            reason: e.to_string(),
        })?;
        let mut tasks = TasksClient::new(self.channel());
        let started = async {
            tasks
                .exec(self.req(ExecProcessRequest {
                    container_id: id.to_owned(),
                    stdin: stdin_path,
                    stdout: format!("file://{}", out.display()),
                    stderr: format!("file://{}", err.display()),
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

    /// Closes the command's stdin.
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

    /// Waits for the command; its exit code.
    pub async fn wait(&self) -> Result<u32> {
        self.waiter().await
    }

    /// A future of the exit code that owns what it needs (to run beside
    /// the session's other calls).
    pub fn waiter(&self) -> impl Future<Output = Result<u32>> + Send + 'static {
        let (cd, id, exec_id) = (
            self.containerd.clone(),
            self.id.clone(),
            self.exec_id.clone(),
        );
        async move {
            let r = TasksClient::new(cd.channel())
                .wait(cd.req(WaitRequest {
                    container_id: id.clone(),
                    exec_id,
                }))
                .await
                .map_err(rpc("wait exec", &id))?;
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
        self.stdin = None;
        let _ = TasksClient::new(self.containerd.channel())
            .delete_process(self.containerd.req(DeleteProcessRequest {
                container_id: self.id.clone(),
                exec_id: self.exec_id.clone(),
            }))
            .await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
