//! The node's resolver: answers its pods' DNS queries on the node's
//! address (UDP and TCP port 53 by default), from a [`DnsIndex`] rebuilt
//! whenever the node's view of Services, Endpoints or Nodes changes. The
//! cluster DNS address (10.96.0.10) reaches it because the agent programs
//! that Service with this node's resolver as its only backend. Names
//! outside the cluster domain are forwarded to the upstream resolvers
//! through a cache of their answers ([`Forwarder`]), which also chases
//! aliases that leave the cluster (ExternalName Services). Malformed
//! queries get FORMERR or are dropped; nothing a query holds stops the
//! server.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd as _;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_proto::op::Message;
use ipnetwork::Ipv4Network;
use tokio::io::Interest;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::answer::{Answer, answer, encode, parse, reply_to_malformed, udp_limit};
use super::batch::{self, Batch};
use super::cache::Limits;
use super::forward::{Forwarded, Forwarder};
use super::index::DnsIndex;
use super::replies::{Replies, plain};
use crate::datapath::SharedDatapath;
use crate::metrics::DnsCacheMetrics;
use crate::pod::dns::ResolvConf;
use crate::watch::SharedView;

/// How long a TCP client may take to send its query.
const TCP_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest DNS message (TCP's 16-bit length; over UDP, queries up to
/// [`batch::SLOT`] bytes are taken).
const MAX_MESSAGE: usize = 65_535;
/// TCP connections served at once.
const MAX_TCP: usize = 256;
/// UDP receive loops at most (one per core up to this).
const MAX_UDP_LOOPS: usize = 8;

/// The index the server answers from, replaced whole on every rebuild.
pub type SharedIndex = Arc<RwLock<Arc<DnsIndex>>>;

/// What the resolver serves.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// Where it listens (the node's address, port 53).
    pub listen: SocketAddr,
    /// The cluster domain.
    pub domain: String,
    /// The service range, for reverse lookups of unknown cluster IPs.
    pub service_cidr: Option<Ipv4Network>,
    /// Where other names go (`--dns-upstream`, else the node's
    /// resolv.conf nameservers).
    pub upstreams: Vec<SocketAddr>,
    /// Bounds of the cache of their answers.
    pub cache: Limits,
}

/// The resolver could not start.
#[derive(Debug, thiserror::Error)]
#[error("cluster DNS: cannot listen on {addr}: {source}")]
pub struct DnsServeError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// Rebuilds `index` from `view` whenever its Services, Endpoints (`services`)
/// or Nodes (`nodes`: their pod CIDRs) change, until `stop`; the kernel's
/// fast path (`fast`) gets each new index's names.
pub async fn index_loop(
    index: SharedIndex,
    view: SharedView,
    settings: DnsSettings,
    fast: Option<SharedDatapath>,
    mut services: watch::Receiver<u64>,
    mut nodes: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut serial: u32 = 1;
    loop {
        tokio::select! {
            r = services.changed() => if r.is_err() { return },
            r = nodes.changed() => if r.is_err() { return },
            () = crate::stopped(&mut stop) => return,
        }
        serial = serial.wrapping_add(1);
        let built = {
            let v = view.read().unwrap_or_else(PoisonError::into_inner);
            DnsIndex::build(&v, &settings.domain, settings.service_cidr).with_serial(serial)
        };
        if let Some(dp) = &fast {
            super::fast::program(dp, &built);
        }
        *index.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(built);
        debug!(serial, "cluster DNS names rebuilt");
    }
}

/// What to do with one query.
enum Local {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Send nothing.
    Drop,
    /// Not ours: ask the upstreams.
    Forward(Message),
    /// Ours, but an alias leaves the cluster: its target is the upstreams'
    /// (the query, the reply so far, the index it came from).
    Chase(Message, Message, Arc<DnsIndex>),
}

/// What the index alone makes of the query in `bytes` (sync: the UDP
/// loops answer the cluster's names without a task per query); `tcp`
/// lifts the UDP size limit.
fn respond_local(
    index: &SharedIndex,
    settings: &DnsSettings,
    replies: &Replies,
    peer: SocketAddr,
    bytes: &[u8],
    tcp: bool,
) -> Local {
    let guard = index.read().unwrap_or_else(PoisonError::into_inner);
    let current: &Arc<DnsIndex> = &guard;
    if !may_ask(current, settings.listen.ip(), peer.ip()) {
        debug!(%peer, "cluster DNS: a query from outside the cluster's pods refused");
        return refused(bytes)
            .and_then(|r| encode(&r, MAX_MESSAGE).ok())
            .map_or(Local::Drop, Local::Reply);
    }
    if is_response(bytes) {
        debug!(%peer, "cluster DNS: a response dropped");
        return Local::Drop;
    }
    let shape = plain(bytes, tcp, MAX_MESSAGE);
    if let Some(reply) = shape
        .as_ref()
        .and_then(|p| replies.get(current.serial(), p, bytes))
    {
        return Local::Reply(reply);
    }
    let reply = match parse(bytes) {
        Err(_) => reply_to_malformed(bytes).and_then(|r| encode(&r, MAX_MESSAGE).ok()),
        Ok(query) => match answer(current, &query) {
            Answer::Reply(reply) if Forwarder::must_chase(&query, &reply) => {
                return Local::Chase(query, reply, Arc::clone(current));
            }
            Answer::Reply(reply) => {
                let encoded = encode(&reply, limit(&query, tcp)).ok();
                if let (Some(shape), Some(encoded)) = (shape, &encoded) {
                    replies.put(current.serial(), shape, encoded);
                }
                encoded
            }
            Answer::Forward => return Local::Forward(query),
        },
    };
    reply.map_or(Local::Drop, Local::Reply)
}

/// The size a reply to `query` may take (`tcp`: any).
fn limit(query: &Message, tcp: bool) -> usize {
    if tcp { MAX_MESSAGE } else { udp_limit(query) }
}

/// Finishes what the index could not: forwarding and chasing aliases.
async fn respond_remote(
    local: Local,
    forwarder: &Forwarder,
    bytes: &[u8],
    tcp: bool,
) -> Option<Vec<u8>> {
    match local {
        Local::Reply(reply) => Some(reply),
        Local::Drop => None,
        Local::Chase(query, mut reply, index) => {
            forwarder.chase(&index, &query, &mut reply).await;
            encode(&reply, limit(&query, tcp)).ok()
        }
        Local::Forward(query) => match forwarder.forward(&query, bytes, tcp).await? {
            Forwarded::Cached(reply) => encode(&reply, limit(&query, tcp)).ok(),
            Forwarded::Fresh(reply) => Some(reply),
        },
    }
}

/// The reply to the query in `bytes` (`tcp`: no UDP size limit), or `None`
/// when nothing should be sent back.
async fn respond(
    index: &SharedIndex,
    settings: &DnsSettings,
    replies: &Replies,
    forwarder: &Forwarder,
    peer: SocketAddr,
    bytes: &[u8],
    tcp: bool,
) -> Option<Vec<u8>> {
    let local = respond_local(index, settings, replies, peer, bytes, tcp);
    respond_remote(local, forwarder, bytes, tcp).await
}

/// Whether `peer` may use this resolver: the cluster's pods (their
/// CIDRs) and the node itself. Anyone else on the underlay would otherwise
/// have an open forwarding resolver.
pub fn may_ask(index: &DnsIndex, node: IpAddr, peer: IpAddr) -> bool {
    peer.is_loopback()
        || peer == node
        || match peer {
            IpAddr::V4(v4) => index.owns_address(v4),
            IpAddr::V6(_) => false,
        }
}

/// REFUSED for the query in `bytes` (its id and RD kept), if it has a header.
fn refused(bytes: &[u8]) -> Option<hickory_proto::op::Message> {
    let mut reply = reply_to_malformed(bytes)?;
    reply.metadata.response_code = hickory_proto::op::ResponseCode::Refused;
    Some(reply)
}

/// Serves DNS on `settings.listen` (UDP and TCP) until `stop`; the cache
/// of forwarded answers counts into `cache_metrics`.
pub async fn serve(
    index: SharedIndex,
    settings: DnsSettings,
    cache_metrics: DnsCacheMetrics,
    stop: watch::Receiver<bool>,
) -> Result<(), DnsServeError> {
    let addr = settings.listen;
    let err = |source| DnsServeError { addr, source };
    // One UDP socket per core (SO_REUSEPORT spreads clients over them),
    // each with its own receive loop.
    let loops = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_UDP_LOOPS));
    let udp = (0..loops)
        .map(|_| udp_socket(addr).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let tcp = TcpListener::bind(addr).await.map_err(err)?;
    info!(%addr, domain = %settings.domain, upstreams = ?settings.upstreams, udp_loops = loops, "cluster DNS listening");
    let settings = Arc::new(settings);
    let forwarder = Forwarder::new(settings.upstreams.clone(), settings.cache);
    let forwarder = Arc::new(forwarder.with_metrics(cache_metrics));
    let replies = Arc::new(Replies::default());
    let udp_tasks: Vec<_> = udp
        .into_iter()
        .map(|udp| {
            let (index, settings, stop) = (index.clone(), Arc::clone(&settings), stop.clone());
            let (replies, forwarder) = (Arc::clone(&replies), Arc::clone(&forwarder));
            tokio::spawn(serve_udp(udp, index, settings, replies, forwarder, stop))
        })
        .collect();
    let udp_task = async {
        for t in udp_tasks {
            let _ = t.await;
        }
    };
    let tcp_task = {
        let (index, settings, mut stop) = (index, Arc::clone(&settings), stop);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP));
        async move {
            loop {
                let (stream, peer) = tokio::select! {
                    r = tcp.accept() => match r {
                        Ok(x) => x,
                        Err(e) => { warn!(error = %e, "cluster DNS: accepting"); continue; }
                    },
                    () = crate::stopped(&mut stop) => return,
                };
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    continue;
                };
                let (index, settings) = (index.clone(), Arc::clone(&settings));
                let (replies, forwarder) = (Arc::clone(&replies), Arc::clone(&forwarder));
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = serve_tcp(stream, peer, &index, &settings, &replies, &forwarder).await;
                });
            }
        }
    };
    tokio::join!(udp_task, tcp_task);
    Ok(())
}

/// A UDP socket on `addr` that other sockets may share (SO_REUSEPORT).
fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// One UDP receive loop, until `stop`: the queries waiting are taken in
/// batches (one `recvmmsg`), the cluster's names answered in the loop and
/// their replies sent together (one `sendmmsg`); other names are forwarded
/// from a task of their own.
async fn serve_udp(
    udp: Arc<UdpSocket>,
    index: SharedIndex,
    settings: Arc<DnsSettings>,
    replies: Arc<Replies>,
    forwarder: Arc<Forwarder>,
    mut stop: watch::Receiver<bool>,
) {
    let fd = udp.as_raw_fd();
    let mut batch = Batch::default();
    let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::with_capacity(batch::BATCH);
    loop {
        tokio::select! {
            r = udp.readable() => if let Err(e) = r {
                warn!(error = %e, "cluster DNS: waiting for queries");
                continue;
            },
            () = crate::stopped(&mut stop) => return,
        }
        loop {
            let n = match udp.try_io(Interest::READABLE, || batch.recv(fd)) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(error = %e, "cluster DNS: receiving");
                    break;
                }
            };
            out.clear();
            for i in 0..n {
                let Some((query, peer)) = batch.datagram(i) else {
                    continue;
                };
                match respond_local(&index, &settings, &replies, peer, query, false) {
                    Local::Reply(reply) => out.push((peer, reply)),
                    Local::Drop => {}
                    remote => {
                        let (query, udp, forwarder) =
                            (query.to_vec(), Arc::clone(&udp), Arc::clone(&forwarder));
                        tokio::spawn(async move {
                            let reply = respond_remote(remote, &forwarder, &query, false).await;
                            if let Some(reply) = reply {
                                let _ = udp.send_to(&reply, peer).await;
                            }
                        });
                    }
                }
            }
            send_all(&udp, &out).await;
        }
    }
}

/// Sends every reply of `out`, waiting while the socket's buffer is full.
async fn send_all(udp: &UdpSocket, out: &[(SocketAddr, Vec<u8>)]) {
    let fd = udp.as_raw_fd();
    let mut sent = 0;
    while sent < out.len() {
        match udp.try_io(Interest::WRITABLE, || batch::send(fd, &out[sent..])) {
            Ok(k) => sent += k.max(1),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if udp.writable().await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // One unreachable client must not cost the others their
                // replies: skip it.
                debug!(error = %e, peer = %out[sent].0, "cluster DNS: sending");
                sent += 1;
            }
        }
    }
}

/// One TCP client: length-prefixed queries until it closes or idles.
async fn serve_tcp(
    mut stream: TcpStream,
    peer: SocketAddr,
    index: &SharedIndex,
    settings: &DnsSettings,
    replies: &Replies,
    forwarder: &Forwarder,
) -> std::io::Result<()> {
    loop {
        let Ok(len) = tokio::time::timeout(TCP_READ_TIMEOUT, stream.read_u16()).await else {
            return Ok(());
        };
        let mut query = vec![0; usize::from(len?)];
        tokio::time::timeout(TCP_READ_TIMEOUT, stream.read_exact(&mut query))
            .await
            .map_err(std::io::Error::other)??;
        let Some(reply) = respond(index, settings, replies, forwarder, peer, &query, true).await
        else {
            return Ok(());
        };
        let len = u16::try_from(reply.len()).map_err(std::io::Error::other)?;
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(&reply).await?;
    }
}

/// The nameservers of the node's resolv.conf as socket addresses on port
/// 53, leaving out `exclude` (the cluster DNS address, which would loop).
pub fn upstreams(node_conf: &ResolvConf, exclude: &[IpAddr]) -> Vec<SocketAddr> {
    node_conf
        .nameservers
        .iter()
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .filter(|ip| !exclude.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Whether `bytes` are a response (QR set). Responses are never answered,
/// well-formed or not (CoreDNS and BIND drop them too): two servers
/// answering each other's errors would never stop.
fn is_response(bytes: &[u8]) -> bool {
    bytes.get(2).is_some_and(|flags| flags & 0x80 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clusters_pods_and_the_node_may_ask() {
        let index = DnsIndex::new(
            "cluster.local",
            None,
            vec!["10.244.1.0/24".parse().unwrap()],
        );
        let node: IpAddr = "192.168.77.10".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(may_ask(&index, node, ip("10.244.1.7")));
        assert!(may_ask(&index, node, node));
        assert!(may_ask(&index, node, ip("127.0.0.1")));
        assert!(
            !may_ask(&index, node, ip("192.168.77.1")),
            "another host of the underlay"
        );
        assert!(
            !may_ask(&index, node, ip("10.244.9.7")),
            "no node has that CIDR"
        );
        let query = [0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        let r = refused(&query).unwrap();
        assert_eq!(r.metadata.id, 0x1234);
        assert_eq!(
            r.metadata.response_code,
            hickory_proto::op::ResponseCode::Refused
        );
    }

    #[test]
    fn upstreams_come_from_the_nodes_resolv_conf() {
        let text = "search example\nnameserver 192.0.2.53\nnameserver 10.96.0.10\n# nameserver 1.1.1.1\noptions ndots:1\n";
        let dns: IpAddr = "10.96.0.10".parse().unwrap();
        assert_eq!(
            upstreams(&ResolvConf::parse(text), &[dns]),
            vec!["192.0.2.53:53".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn responses_are_never_answered() {
        let query = crate::dns::answer::query_for(
            7,
            "web.shop.svc.cluster.local",
            hickory_proto::rr::RecordType::A,
        )
        .expect("query");
        let bytes = query.to_vec().expect("encode");
        assert!(!is_response(&bytes));
        let mut response = bytes.clone();
        response[2] |= 0x80;
        assert!(is_response(&response), "a well-formed response");
        assert!(is_response(&[0, 1, 0x80]), "a response cut short");
        assert!(
            !is_response(&[0, 1]),
            "too short to tell: FORMERR's rules decide"
        );
    }
}
