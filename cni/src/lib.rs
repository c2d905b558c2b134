//! jotasu's CNI side: the `jotasu-cni` plugin and the CNI runtime library
//! the agent (and the tests) use to run plugin chains.
//!
//! - [`spec`]: the CNI specification's data (versions, configs, results,
//!   errors, environment), shared by plugin and runtime.
//! - [`exec`]: running a plugin binary the way a runtime does.
pub mod exec;
pub mod ipam;
pub mod plugin;
pub mod runtime;
pub mod spec;
