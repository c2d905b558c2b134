//! The CNI specification's data: versions, the network configuration a
//! plugin reads on stdin, the result and error it writes, and the
//! environment a runtime invokes it with. Shared by the plugin and by the
//! runtime library ([`crate::runtime`]), so both speak exactly one dialect.
mod config;
mod env;
mod error;
mod result;
mod version;

pub use config::{NetConf, NetConfList};
pub use env::{CniArgs, Command, Invocation, valid_name, validate_container_id, validate_ifname};
pub use error::{CniError, Code};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::{SUPPORTED_VERSIONS, Version};
