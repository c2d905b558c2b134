//! Cluster DNS for the node's pods: `index` lays out the names of the
//! "Kubernetes DNS-Based Service Discovery" specification (schema 1.1.0)
//! from the node's view and `answer` turns one query into a reply or a
//! decision to forward (both pure functions); `cache` keeps forwarded
//! answers (pure, the clock passed in); `forward` sends other names to the
//! upstream resolvers through that cache and chases aliases that leave the
//! cluster; `replies` keeps encoded replies to plain queries for the
//! current index; `server` answers the node's pods over UDP and TCP on the
//! node's address (`batch`: its UDP side takes and answers queries by the
//! batch); `fast` hands the names with one A record to the
//! kernel, which answers those queries itself.

pub mod answer;
pub mod batch;
pub mod cache;
pub mod fast;
pub mod forward;
pub mod index;
pub mod replies;
pub mod server;
pub mod upstream;

pub use answer::{Answer, DnsError, answer, encode, parse, udp_limit};
pub use index::{DnsIndex, Lookup, Rdata};
