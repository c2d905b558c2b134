//! Node membership: the Node object the agent registers (capacity,
//! addresses, its endpoint, versions), the heartbeat that keeps it Ready,
//! and the directories of its local PersistentVolumes.

pub mod capacity;
mod heartbeat;
pub mod local_volumes;
mod register;

pub use heartbeat::{UsageSource, heartbeat_loop};
pub use register::{NodeFacts, RegisterError, node_status, register};
