//! Clients of cluster DNS for end-to-end tests. Host programs (Debian's
//! `dig`, glibc's `getent`, the testbin) run as one of a pod's processes
//! would ([`PodPlace`]): in the pod's network namespace *and* its cgroup,
//! so the node's socket programs translate their sockets to the cluster DNS
//! address as they do the pod's own. [`Dig`] reads what `dig` printed;
//! [`wire`] builds raw messages and holds the testbin's raw DNS clients.
use std::collections::BTreeSet;
use std::ffi::CString;
use std::io::{BufRead as _, BufReader};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use jotasu_agent::cgroup::{Hierarchies, NodeCgroups};
use jotasu_api::Pod;

use crate::e2e::{Harness, SETTLE, netns_of, ready};
use crate::wait::eventually;

mod dig;
pub mod wire;

pub use dig::{Dig, Record};

/// The cluster DNS address every ClusterFirst pod's resolv.conf names.
pub const CLUSTER_DNS: &str = "10.96.0.10";

/// Where a process must be to act as one of a pod's: the pod's network
/// namespace and its (first container's) cgroup on the cgroup2 hierarchy.
#[derive(Debug, Clone)]
pub struct PodPlace {
    /// The pod's name.
    pub pod: String,
    /// `/run/netns/<node>-<uid>`.
    pub netns: PathBuf,
    /// `<cgroup2>/jotasu/<node>/pod<uid>/<container>`.
    pub cgroup: PathBuf,
}

impl PodPlace {
    /// The place of a running pod.
    pub fn of(pod: &Pod) -> anyhow::Result<Self> {
        let name = pod.metadata.name().to_owned();
        let netns = netns_of(pod).with_context(|| format!("pod {name} is not bound"))?;
        let node = pod.spec.node_name.as_deref().context("no node")?;
        let uid = pod.metadata.uid.as_deref().context("no uid")?;
        let hierarchies = Hierarchies::detect()?;
        let root = hierarchies
            .unified()
            .context("no cgroup2 hierarchy")?
            .to_owned();
        // The agent's node subtree is `jotasu/<node>` (its --node-name).
        let pod_dir =
            root.join(NodeCgroups::existing(hierarchies, &format!("jotasu/{node}")).pod_path(uid));
        let mut containers: Vec<PathBuf> = std::fs::read_dir(&pod_dir)
            .with_context(|| format!("reading {}", pod_dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        containers.sort();
        let cgroup = containers
            .into_iter()
            .next()
            .with_context(|| format!("no container cgroup in {}", pod_dir.display()))?;
        Ok(Self {
            pod: name,
            netns: PathBuf::from(format!("/run/netns/{netns}")),
            cgroup,
        })
    }

    /// `program args…` as one of the pod's processes, killed after `limit`
    /// (a guard against hangs, not a time assertion): `timeout` joins the
    /// pod's cgroup before it executes, then `nsenter` enters the pod's
    /// network namespace (only that: the host's files, the host's tools).
    pub fn command(&self, limit: Duration, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("timeout");
        c.args(["--kill-after=5", &format!("{}", limit.as_secs().max(1))])
            .arg("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg(program)
            .args(args)
            .stdin(Stdio::null());
        join_cgroup_on_spawn(&mut c, &self.cgroup);
        c
    }

    /// `program args…` in the pod's place: (exit code, stdout, stderr).
    pub fn run(&self, limit: Duration, program: &str, args: &[&str]) -> (i32, String, String) {
        let out = self
            .command(limit, program, args)
            .output()
            .unwrap_or_else(|e| panic!("{program} in pod {}: {e}", self.pod));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `dig NAME RTYPE` from the pod, again until the answers of type
    /// `rtype` are exactly `want`.
    pub async fn until_answers(&self, name: &str, rtype: &str, want: &[String]) {
        let want = set(want);
        eventually(
            &format!("{}: {name} {rtype} {want:?}", self.pod),
            SETTLE,
            || async { self.dig(&[name, rtype]).answers(rtype, &want).then_some(()) },
        )
        .await;
    }

    /// `dig @10.96.0.10 +tries=1 +time=2 ARGS…` from the pod.
    pub fn dig(&self, args: &[&str]) -> Dig {
        let mut all = vec![
            "@".to_owned() + CLUSTER_DNS,
            "+tries=1".into(),
            "+time=2".into(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = self.run(Duration::from_secs(30), "dig", &all);
        Dig::parse(code, &format!("{stdout}{stderr}"))
    }
}

/// Makes `cmd`'s process join the cgroup `dir` before it executes (what
/// the socket programs key on: the cgroup a socket is made in).
fn join_cgroup_on_spawn(cmd: &mut Command, dir: &Path) {
    let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .expect("a cgroup path without NUL");
    // SAFETY: between fork and exec only open, write and close run, on a
    // path made before the fork: no allocation, no locks.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(err);
            }
            Ok(())
        });
    }
}

/// `items` as a set of strings.
pub fn set<I: IntoIterator<Item = S>, S: ToString>(items: I) -> BTreeSet<String> {
    items.into_iter().map(|s| s.to_string()).collect()
}

/// A pod's IP.
pub fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_else(|| panic!("pod {} has no IP", p.metadata.name()))
}

/// `a.b.c.d` → `a-b-c-d`, the label of pod A records.
pub fn dashed(ip: &str) -> String {
    ip.replace('.', "-")
}

/// `a.b.c.d` → `d.c.b.a.in-addr.arpa.`, the owner of its PTR record.
pub fn reverse(ip: &str) -> String {
    let mut octets: Vec<&str> = ip.split('.').collect();
    octets.reverse();
    format!("{}.in-addr.arpa.", octets.join("."))
}

/// A busybox pod `name` on node `node` that sleeps (a client).
pub fn client_pod(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{role: client}}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: sh
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
"#
    )
}

/// A busybox httpd pod `name` labelled `app: APP` on node `node`, answering
/// its hostname on port 80 (named `http`), with `hostname` and `subdomain`
/// when given. Ready while `/tmp/ready` exists (an exec probe every second;
/// remove the file to make it unready).
pub fn app_pod(name: &str, app: &str, node: &str, dns: Option<(&str, &str)>) -> String {
    let dns = dns.map_or(String::new(), |(hostname, subdomain)| {
        format!("  hostname: {hostname}\n  subdomain: {subdomain}\n")
    });
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {app}}}
spec:
{dns}  terminationGracePeriodSeconds: 1
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: httpd
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && touch /tmp/ready && exec httpd -f -p 80 -h /www"]
    ports:
    - {{name: http, containerPort: 80}}
    readinessProbe:
      exec: {{command: ["cat", "/tmp/ready"]}}
      periodSeconds: 1
      failureThreshold: 1
"#
    )
}

/// One client pod per node (`client-<i>` on node i), running: their
/// places, in node order.
pub async fn clients_on_every_node(h: &Harness) -> Vec<PodPlace> {
    let nodes = h.node_names();
    let yaml: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| client_pod(&format!("client-{i}"), n))
        .collect();
    h.apply(&yaml.join("---\n"));
    let mut places = Vec::new();
    for i in 0..nodes.len() {
        let name = format!("client-{i}");
        let pod = eventually(&format!("{name} running"), SETTLE, || async {
            h.pod(&name).await.filter(ready)
        })
        .await;
        places.push(PodPlace::of(&pod).expect("the client's place"));
    }
    places
}

/// The Service `web` (selector `app: web`, port `http` 80) the DNS tests ask for.
pub const WEB_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 80}
"#;

/// [`WEB_SERVICE`]'s name.
pub const WEB: &str = "web.default.svc.cluster.local";

/// [`WEB_SERVICE`] applied and a client pod on every node; returns node
/// 0's client, once it resolves `web`, and `web`'s cluster IP.
pub async fn web_client(h: &Harness) -> (PodPlace, String) {
    h.apply(WEB_SERVICE);
    let client = clients_on_every_node(h).await.swap_remove(0);
    let vip = h.vip("web").await;
    client
        .until_answers(WEB, "A", std::slice::from_ref(&vip))
        .await;
    (client, vip)
}

/// A process of the testbin (or any) kept running in a pod's place; killed
/// and reaped on drop, so nothing outlives the test in the pod's cgroup.
#[derive(Debug)]
pub struct Background {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Background {
    /// Starts `cmd` (stdin and stdout piped) and waits for the line `mark`
    /// on its stdout.
    pub fn start(mut cmd: Command, mark: &str) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawning")?;
        let stdin = child.stdin.take();
        let mut me = Self { child, stdin };
        let stdout = me.child.stdout.take().context("stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != mark {
            bail!("expected {mark:?}, got {line:?}");
        }
        Ok(me)
    }
}

impl Drop for Background {
    /// Closes its stdin, then SIGTERM (which `timeout` passes on to the
    /// program it runs; SIGKILL would orphan that program), and reaps it.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: a signal to our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_their_name_forms() {
        assert_eq!(dashed("10.244.1.5"), "10-244-1-5");
        assert_eq!(reverse("10.96.0.10"), "10.0.96.10.in-addr.arpa.");
    }
}
