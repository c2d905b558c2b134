//! The way out of the cluster's zones: queries for other names go to the
//! node's upstream resolvers through a [`DnsCache`] of their answers, and
//! aliases that leave the cluster domain (ExternalName Services) are
//! chased through the same path, as CoreDNS's `upstream` does, so a pod
//! asking for the Service gets the CNAME and the target's records at once.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tracing::debug;

use super::answer::{Answer, EDNS_PAYLOAD, answer};
use super::cache::{DnsCache, Limits};
use super::index::DnsIndex;
use crate::metrics::DnsCacheMetrics;

/// How long a forwarded query waits for its upstream.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest DNS message (TCP's 16-bit length).
const MAX_MESSAGE: usize = 65_535;
/// Aliases followed at most when chasing a name out of the cluster.
pub const MAX_CHASE: usize = 8;

/// A forwarded query's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    /// From the cache (to be encoded for the client's transport).
    Cached(Message),
    /// An upstream's reply, byte for byte.
    Fresh(Vec<u8>),
}

/// The upstream resolvers and the cache of their answers.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    cache: Mutex<DnsCache>,
    metrics: DnsCacheMetrics,
}

impl Forwarder {
    /// Forwards to `upstreams` (in turn, the first to answer wins),
    /// caching within `limits`.
    pub fn new(upstreams: Vec<SocketAddr>, limits: Limits) -> Self {
        Self {
            upstreams,
            cache: Mutex::new(DnsCache::new(limits)),
            metrics: DnsCacheMetrics::default(),
        }
    }

    /// Counts hits, misses and entries in these series.
    pub fn with_metrics(mut self, metrics: DnsCacheMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The upstreams.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    fn cached(&self, query: &Message) -> Option<Message> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = cache.get(query, Instant::now());
        match hit {
            Some(_) => self.metrics.hits.inc(),
            None => self.metrics.misses.inc(),
        };
        // A lookup drops an expired entry.
        self.count_entries(&cache);
        hit
    }

    fn keep(&self, query: &Message, reply: &Message, wire_len: usize) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(why) = cache.put(query, reply, wire_len, Instant::now()) {
            debug!(?why, "cluster DNS: an upstream answer not cached");
        }
        self.count_entries(&cache);
    }

    fn count_entries(&self, cache: &DnsCache) {
        self.metrics
            .entries
            .set(i64::try_from(cache.len()).unwrap_or(i64::MAX));
    }

    /// The answer to `query` (`bytes` as the client sent it over TCP or
    /// UDP): from the cache, else from an upstream, kept for the next
    /// asker. `None` when no upstream answers (the client retries).
    pub async fn forward(&self, query: &Message, bytes: &[u8], tcp: bool) -> Option<Forwarded> {
        if let Some(hit) = self.cached(query) {
            return Some(Forwarded::Cached(hit));
        }
        let reply = exchange(&self.upstreams, bytes, tcp).await?;
        if let Ok(parsed) = Message::from_vec(&reply) {
            self.keep(query, &parsed, reply.len());
        }
        Some(Forwarded::Fresh(reply))
    }

    /// The answer to a query the resolver makes itself (a chased alias):
    /// cached, else over UDP (TCP when truncated); only a reply to this
    /// very query counts.
    async fn resolve(&self, query: &Message) -> Option<Message> {
        if let Some(hit) = self.cached(query) {
            return Some(hit);
        }
        let bytes = query.to_vec().ok()?;
        let mut wire = exchange(&self.upstreams, &bytes, false).await?;
        let mut reply = Message::from_vec(&wire).ok()?;
        if reply.metadata.truncation {
            wire = exchange(&self.upstreams, &bytes, true).await?;
            reply = Message::from_vec(&wire).ok()?;
        }
        if reply.metadata.id != query.metadata.id || reply.queries != query.queries {
            return None;
        }
        self.keep(query, &reply, wire.len());
        Some(reply)
    }

    /// Whether `reply` (to `query`) has an alias chain [`Self::chase`]
    /// would follow: decided without I/O, so replies without one are sent
    /// at once.
    pub fn must_chase(query: &Message, reply: &Message) -> bool {
        let Some(question) = query.queries.first() else {
            return false;
        };
        let qtype = question.query_type();
        !matches!(qtype, RecordType::CNAME | RecordType::ANY)
            && reply.metadata.response_code == ResponseCode::NoError
            && dangling(&reply.answers, question.name(), qtype).is_some()
    }

    /// Completes `reply` (to `query`, answered from `index`) whose alias
    /// chain ends outside what the index knows: the target's records are
    /// looked up (the index for cluster names, else the upstreams through
    /// the cache) and appended, alias after alias up to [`MAX_CHASE`]. An
    /// unanswerable target leaves the reply as it is (the alias alone,
    /// NOERROR), as CoreDNS answers.
    pub async fn chase(&self, index: &DnsIndex, query: &Message, reply: &mut Message) {
        let Some(question) = query.queries.first() else {
            return;
        };
        let qtype = question.query_type();
        if !Self::must_chase(query, reply) {
            return;
        }
        for _ in 0..MAX_CHASE {
            let Some(target) = dangling(&reply.answers, question.name(), qtype) else {
                return;
            };
            let sub = sub_query(query, &target, qtype);
            let more = match answer(index, &sub) {
                Answer::Reply(local) => local,
                Answer::Forward => match self.resolve(&sub).await {
                    Some(remote) => remote,
                    None => return,
                },
            };
            let before = reply.answers.len();
            for record in more.answers {
                let known = reply
                    .answers
                    .iter()
                    .any(|r| r.name == record.name && r.data == record.data);
                if !known {
                    reply.answers.push(record);
                }
            }
            if reply.answers.len() == before {
                return;
            }
        }
    }
}

/// The query the resolver makes for `target`: a fresh id, recursion
/// desired, the client's CD bit, EDNS for replies up to our payload size.
fn sub_query(query: &Message, target: &Name, qtype: RecordType) -> Message {
    let mut sub = Message::query();
    sub.metadata.op_code = OpCode::Query;
    sub.metadata.message_type = MessageType::Query;
    sub.metadata.recursion_desired = true;
    sub.metadata.checking_disabled = query.metadata.checking_disabled;
    sub.add_query(Query::query(target.clone(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    sub.edns = Some(edns);
    sub
}

/// Where the alias chain from `qname` in `answers` ends, when it ends
/// without a record of `qtype`: the name still to look up. `None` when the
/// question is answered, no alias starts at `qname`, or the aliases loop.
pub fn dangling(answers: &[Record], qname: &Name, qtype: RecordType) -> Option<Name> {
    let mut current = qname.clone();
    let mut followed = false;
    // More steps than records means a loop.
    for _ in 0..=answers.len() {
        if answers
            .iter()
            .any(|r| r.name == current && r.record_type() == qtype)
        {
            return None;
        }
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == current => Some(target.0.clone()),
            _ => None,
        });
        match next {
            Some(next) => {
                current = next;
                followed = true;
            }
            None => return followed.then_some(current),
        }
    }
    None
}

/// Sends `bytes` to the upstreams in turn; the first answer (`None` when
/// none answers: the client times out and retries, as with any resolver).
/// Over UDP only a datagram with the query's id is an answer.
pub async fn exchange(upstreams: &[SocketAddr], bytes: &[u8], tcp: bool) -> Option<Vec<u8>> {
    let id = bytes.get(..2)?;
    for upstream in upstreams {
        let got = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            if tcp {
                let mut s = TcpStream::connect(upstream).await?;
                let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
                s.write_all(&len.to_be_bytes()).await?;
                s.write_all(bytes).await?;
                let n = usize::from(s.read_u16().await?);
                let mut buf = vec![0; n];
                s.read_exact(&mut buf).await?;
                Ok::<_, std::io::Error>(buf)
            } else {
                let bind: SocketAddr = if upstream.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let s = UdpSocket::bind(bind).await?;
                s.connect(upstream).await?;
                s.send(bytes).await?;
                let mut buf = vec![0; MAX_MESSAGE];
                loop {
                    let n = s.recv(&mut buf).await?;
                    if buf[..n].get(..2) == Some(id) {
                        buf.truncate(n);
                        return Ok(buf);
                    }
                }
            }
        })
        .await;
        match got {
            Ok(Ok(reply)) => return Some(reply),
            Ok(Err(e)) => debug!(%upstream, error = %e, "upstream resolver failed"),
            Err(_) => debug!(%upstream, "upstream resolver timed out"),
        }
    }
    None
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
