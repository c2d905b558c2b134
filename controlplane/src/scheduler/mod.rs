//! The scheduler: places pending pods on nodes as Kubernetes' default
//! scheduler does. A node must be Ready and schedulable, its NoSchedule /
//! NoExecute taints tolerated, the pod's nodeSelector matched and its
//! requests must fit what the node's other pods leave ([`filter`]); the
//! feasible nodes (a rotating sample in big clusters) are scored —
//! MostAllocated or LeastAllocated, PreferNoSchedule taints — ties going
//! to the node with fewer pods of the same controller ([`score`]). Nodes'
//! allocations are kept incrementally, choices counted as assumed until
//! their binding shows ([`nodes`]); bindings are written in batches. A pod
//! no node can take gets PodScheduled=False, reason Unschedulable, and is
//! retried when room may have appeared ([`queue`], [`state`], [`runner`]).
//! Pods with PersistentVolumeClaims go where their volumes are, or where
//! the local volumes they need can be provisioned ([`volumes`]).

pub mod constraints;
pub mod filter;
pub mod nodes;
pub mod queue;
pub mod resources;
mod runner;
pub mod score;
pub mod state;
pub mod volumes;

use crate::runtime::Context;
use crate::store::Store;

/// How nodes are scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scoring {
    /// Prefer the fullest node that fits (bin-packing; the default).
    #[default]
    MostAllocated,
    /// Prefer the emptiest node.
    LeastAllocated,
}

/// Scheduler settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Config {
    /// How nodes are scored.
    pub scoring: Scoring,
}

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>, config: Config) {
    runner::run(ctx, config).await;
}
