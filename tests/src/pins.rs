//! [`NodePins`]: a node's bpffs directory, purged on drop (failure included).
use std::path::Path;

use jotasu_ebpf::{DEFAULT_BPFFS, Datapath};

/// Owns node `name`'s pins under [`DEFAULT_BPFFS`]: dropping it unpins every
/// map and link of that node. Drop it after any open [`Datapath`] of the node.
#[derive(Debug)]
pub struct NodePins {
    name: String,
}

impl NodePins {
    /// Pins for a fresh per-run node name ([`crate::names::fresh_prefix`]).
    pub fn fresh() -> Self {
        Self::named(&crate::names::fresh_prefix())
    }

    /// Pins of node `name`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NodePins {
    fn drop(&mut self) {
        if let Err(e) = Datapath::purge(Path::new(DEFAULT_BPFFS), &self.name) {
            eprintln!("cleanup: purging data plane of node {}: {e}", self.name);
        }
    }
}
