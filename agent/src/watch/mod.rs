//! The node's one watch stream and the view it keeps (`view.rs`).

mod slices;
mod stream;
mod view;

pub use stream::{Generations, SharedView, WatchStatus, follow};
pub use view::{ClusterView, KINDS, Key, Touched};
