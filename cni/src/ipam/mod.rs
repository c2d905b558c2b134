//! IPAM: which IPv4 address a pod's interface gets.
//!
//! The plugin either allocates itself ([`Allocator`], when `ipam.type` is
//! absent or `"jotasu"`) or [`delegate`]s to a standard IPAM plugin found
//! in `CNI_PATH` (`host-local`...), exactly as the reference plugins do.
//!
//! - `config`: the `"ipam"` object ([`IpamConfig`]) and its validation
//!   into the [`Range`] handed out (`range`).
//! - `alloc`: the pure choice of the next free address ([`next_free`]).
//! - `store`: the allocator's files ([`Allocator`]); `lock`: its flock,
//!   waited for up to a timeout.
//! - `delegate`: running another IPAM plugin ([`delegate()`]).
//!
//! # What is stored where
//!
//! `<dataDir>/<network name>/` (`dataDir` defaults to
//! [`DEFAULT_DATA_DIR`]) holds one file per allocated address, named by
//! the address (`10.244.0.7`) and holding `<container id>\n<ifname>\n`;
//! `last_reserved`, where the round-robin resumes; and `lock`.
//!
//! # Invariants
//!
//! - An address is handed to at most one attachment (container id,
//!   ifname): every read-modify-write runs under an exclusive flock on
//!   `lock`, across threads and processes alike, and the file naming the
//!   address is what marks it used.
//! - ADD is idempotent: an attachment that already holds an address gets
//!   it again. DEL of an attachment holding nothing succeeds.
//! - An address file outside the configured range (the range changed)
//!   still marks its address used until it is released or collected.
//! - A lock held longer than the timeout (10 s) is CNI error 11, try again
//!   later; a holder that dies releases it (the kernel drops its flock).
//!
//! # Crash safety
//!
//! The address file is written to a temporary dot-file, fsynced, renamed
//! into place and the directory fsynced, before the address is returned,
//! so before any interface is made. A plugin killed mid-ADD thus leaves
//! either no allocation, or an allocation that no other ADD reuses and that
//! the runtime's DEL (same container id and ifname) releases; never a
//! torn file. A leftover dot-file is not an allocation; GC removes it.
mod alloc;
mod config;
mod delegate;
mod lock;
mod range;
mod store;

pub use alloc::next_free;
pub use config::{BUILTIN_TYPE, DEFAULT_DATA_DIR, IpamConfig};
pub use delegate::delegate;
pub use range::Range;
pub use store::{Allocation, Allocator, DEFAULT_LOCK_TIMEOUT};
