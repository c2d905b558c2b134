//! Node membership: the Node object the agent registers (capacity,
//! addresses, its endpoint, versions) and the heartbeat that keeps it Ready.

pub mod capacity;
mod heartbeat;
mod register;

pub use heartbeat::{UsageSource, heartbeat_loop};
pub use register::{NodeFacts, RegisterError, node_status, register};
