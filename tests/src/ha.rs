//! Several control planes on one etcd cluster, all on 127.0.0.1, for the
//! leader-election tests and the failover benchmark: [`HaPlanes`] starts a
//! 3-member etcd cluster and N `jotasu-controlplane` processes on it, and
//! tells which one leads (the Lease `kube-system/jotasu-controlplane` names
//! `<host>_<id>`, the id in the leader's `DATA_DIR/identity`).

use std::time::Duration;

use anyhow::{Context as _, bail};
use jotasu_api::client::Client;
use jotasu_api::{Kind, Object, ObjectRef};
use jotasu_dev::controlplane::{ControlPlane, Options, free_port};
use jotasu_dev::etcd::{EtcdCluster, MemberSpec};

pub use crate::etcd::etcd_or_skip;

/// Whether a test of several control planes can run: root and etcd. A
/// missing etcd fails it under `CI=true` instead of skipping it
/// ([`etcd_or_skip`]).
pub fn can_run(test: &str) -> bool {
    jotasu_dev::privilege::require_root(test)
        && etcd_or_skip().unwrap_or_else(|e| panic!("{test}: {e}"))
}

/// The election Lease.
pub fn election_lease() -> ObjectRef {
    ObjectRef {
        kind: Kind::Lease,
        namespace: Some("kube-system".into()),
        name: "jotasu-controlplane".into(),
    }
}

/// An etcd cluster and control planes on it.
#[derive(Debug)]
pub struct HaPlanes {
    /// The control planes (their data dirs removed on drop).
    pub planes: Vec<ControlPlane>,
    /// The etcd cluster (members killed and removed on drop).
    pub etcd: EtcdCluster,
    _dir: tempfile::TempDir,
}

impl HaPlanes {
    /// Starts `members` etcd members and `planes` control planes on them,
    /// each control plane with `args` added.
    pub async fn start(members: usize, planes: usize, args: &[&str]) -> anyhow::Result<Self> {
        let prefix = jotasu_dev::names::fresh_prefix();
        let dir = tempfile::Builder::new()
            .prefix(&jotasu_dev::names::scratch_prefix(&prefix, "ha-"))
            .tempdir_in(jotasu_dev::controlplane::scratch_root())?;
        let specs = (0..members)
            .map(|_| {
                Ok(MemberSpec {
                    client: free_port()?,
                    peer: free_port()?,
                    metrics: None,
                    netns: None,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let etcd = EtcdCluster::start(&prefix, dir.path(), specs).context("starting etcd")?;
        let mut started = Vec::new();
        for _ in 0..planes {
            let mut a: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            a.extend(["--etcd-prefix".into(), format!("/{prefix}")]);
            started.push(
                ControlPlane::start(Options {
                    etcd_endpoints: etcd.client_urls(),
                    args: a,
                    ..Options::default()
                })
                .await
                .context("starting a control plane")?,
            );
        }
        Ok(Self {
            planes: started,
            etcd,
            _dir: dir,
        })
    }

    /// A client of the first control plane that answers a read within a
    /// second (a paused one accepts connections but never answers).
    pub async fn client(&self) -> anyhow::Result<Client> {
        for p in &self.planes {
            if p.pid().is_none() {
                continue;
            }
            let Ok(c) = p.client().await else { continue };
            let probe = c.list(Kind::Namespace, None, "");
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), probe).await {
                return Ok(c);
            }
        }
        bail!("no control plane answers")
    }

    /// The index of the control plane holding the election Lease, if one does.
    pub async fn leader(&self) -> Option<usize> {
        let client = self.client().await.ok()?;
        let Ok(Object::Lease(l)) = client.get(&election_lease()).await else {
            return None;
        };
        let holder = l.spec.holder_identity?;
        self.planes.iter().position(|p| {
            std::fs::read_to_string(p.data_dir().join("identity")).is_ok_and(|id| {
                !id.trim().is_empty() && holder.ends_with(&format!("_{}", id.trim()))
            })
        })
    }

    /// Waits until a control plane other than `not` leads; its index.
    pub async fn new_leader(&self, not: Option<usize>, limit: Duration) -> anyhow::Result<usize> {
        let start = std::time::Instant::now();
        loop {
            if let Some(i) = self.leader().await
                && Some(i) != not
                && self.planes[i].pid().is_some()
            {
                return Ok(i);
            }
            if start.elapsed() > limit {
                bail!("no new leader within {limit:?} (not {not:?})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
