//! Cluster DNS for the node's pods, as pure functions: `index` lays out the
//! names of the "Kubernetes DNS-Based Service Discovery" specification
//! (schema 1.1.0) from the node's view; `answer` turns one query into a
//! reply or a decision to forward. The server (sockets, forwarding, cache)
//! sits on top of these.

pub mod answer;
pub mod index;

pub use answer::{Answer, DnsError, answer, encode, parse, udp_limit};
pub use index::{DnsIndex, Lookup, Rdata};
