//! The kernel's DNS fast path, fed from the resolver's index: `from_pod`
//! answers A queries for the names the resolver answers with one A record
//! (ClusterIP Services, headless endpoints' names), byte for byte as the
//! resolver would, without leaving the kernel; every other query reaches
//! the resolver. The names follow every rebuild of the index.
use std::net::SocketAddrV4;
use std::sync::PoisonError;

use tracing::{debug, warn};

use super::index::DnsIndex;
use crate::datapath::SharedDatapath;

/// Where the node's pods' queries arrive in `from_pod`: the cluster DNS
/// address on port 53 (processes the socket programs do not cover), and
/// the resolver's address (the socket programs' translation of the former).
pub fn frontends(cluster_dns: SocketAddrV4, resolver: SocketAddrV4) -> Vec<SocketAddrV4> {
    let mut all = vec![cluster_dns, resolver];
    all.dedup();
    all
}

/// Points the fast path at `frontends`; none turns it off and clears the
/// names an earlier run left.
pub fn enable(datapath: &SharedDatapath, frontends: &[SocketAddrV4]) {
    let mut dp = datapath.lock().unwrap_or_else(PoisonError::into_inner);
    let set = dp.dns_mut().set_frontends(frontends).and_then(|()| {
        if frontends.is_empty() {
            dp.dns_mut().reconcile(&Default::default()).map(drop)
        } else {
            Ok(())
        }
    });
    match set {
        Ok(()) => debug!(?frontends, "DNS fast path frontends set"),
        Err(e) => warn!(error = %e, "the DNS fast path stays off: its frontends cannot be set"),
    }
}

/// Makes the fast path's names those of `index`.
pub fn program(datapath: &SharedDatapath, index: &DnsIndex) {
    let names = index.single_a_names();
    let mut dp = datapath.lock().unwrap_or_else(PoisonError::into_inner);
    match dp.dns_mut().reconcile(&names) {
        Ok(s) => debug!(
            added = s.added,
            changed = s.changed,
            removed = s.removed,
            skipped = s.skipped,
            "DNS fast path names programmed"
        ),
        Err(e) => {
            warn!(error = %e, "programming the DNS fast path failed; retrying at the next change")
        }
    }
}
