//! Cluster DNS for the node's pods: `index` lays out the names of the
//! "Kubernetes DNS-Based Service Discovery" specification (schema 1.1.0)
//! from the node's view and `answer` turns one query into a reply or a
//! decision to forward (both pure functions); `server` answers the node's
//! pods over UDP and TCP on the node's address and forwards other names;
//! `fast` hands the names with one A record to the kernel, which answers
//! those queries itself.

pub mod answer;
pub mod fast;
pub mod index;
pub mod server;

pub use answer::{Answer, DnsError, answer, encode, parse, udp_limit};
pub use index::{DnsIndex, Lookup, Rdata};
