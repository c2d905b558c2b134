//! [`EtcdStore`]: the store on a real etcd (for several control planes).
//!
//! The same semantics mapped onto etcd's API: transactions with
//! `mod_revision` compares (0 = absent) for create and compare-and-swap,
//! prefix ranges, watches with `start_revision` and `prev_kv`, and physical
//! compaction. Every key is stored under a per-instance prefix, stripped on
//! the way out. Revisions are etcd's: global to the cluster, so they grow
//! monotonically but with gaps when other prefixes are written.
use std::{collections::VecDeque, fmt};

mod conn;

use etcd_client::{
    CompactionOptions, Compare as EtcdCompare, CompareOp, EventType, GetOptions, TxnOp,
    TxnOpResponse, WatchOptions as EtcdWatchOptions,
};

use conn::Conn;

use super::{
    EventKind, KeyValue, Op, Range, Revision, Store, StoreError, StoreResult, Txn, WatchEvent,
    WatchOptions, WatchStream,
};

/// The store on etcd, all keys under one prefix. Cheap to clone.
#[derive(Clone)]
pub struct EtcdStore {
    /// One member at a time, failing over ([`conn`]).
    conn: Conn,
    prefix: Vec<u8>,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("prefix", &self.prefix.escape_ascii().to_string())
            .finish_non_exhaustive()
    }
}

/// Client certificate material for etcd (PEM).
#[derive(Clone)]
pub struct EtcdTls {
    /// The CA that signed etcd's serving certificates.
    pub ca_pem: Vec<u8>,
    /// This control plane's client certificate.
    pub cert_pem: Vec<u8>,
    /// Its key.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EtcdTls { .. }")
    }
}

impl EtcdStore {
    /// Connects to the etcd `endpoints` (e.g. `http://127.0.0.1:2379`);
    /// this store's keys live under `prefix`.
    pub async fn connect(endpoints: &[String], prefix: &[u8]) -> StoreResult<Self> {
        Self::connect_with(endpoints, prefix, None).await
    }

    /// [`Self::connect`] with client certificates (`https://` endpoints).
    /// The client notices a dead member within seconds (HTTP/2 keepalive)
    /// and asks only members that see a leader, so a member cut off from
    /// the others never serves a stale read.
    pub async fn connect_with(
        endpoints: &[String],
        prefix: &[u8],
        tls: Option<&EtcdTls>,
    ) -> StoreResult<Self> {
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(std::time::Duration::from_secs(5))
            .with_keep_alive(
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(5),
            )
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let Some(tls) = tls {
            options = options.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(&tls.ca_pem))
                    .identity(etcd_client::Identity::from_pem(&tls.cert_pem, &tls.key_pem)),
            );
        }
        let conn = Conn::connect(endpoints, Some(options))
            .await
            .map_err(|e| StoreError::etcd("connect", prefix, e))?;
        tracing::info!(?endpoints, prefix = %prefix.escape_ascii(), tls = tls.is_some(), "connected to etcd");
        Ok(Self {
            conn,
            prefix: prefix.to_vec(),
        })
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    /// How many keys start with `prefix`, and the revision that says so.
    async fn count(&self, prefix: &[u8], op: &'static str) -> StoreResult<(i64, Revision)> {
        let full = self.full(prefix);
        let resp = self
            .conn
            .call(|mut c| {
                let full = full.clone();
                async move {
                    c.kv.get(
                        full,
                        Some(GetOptions::new().with_prefix().with_count_only()),
                    )
                    .await
                }
            })
            .await
            .map_err(|e| StoreError::etcd(op, prefix, e))?;
        Ok((resp.count(), header_revision(resp.header())))
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> StoreResult<KeyValue> {
        from_etcd(&self.prefix, kv)
    }
}

fn from_etcd(prefix: &[u8], kv: &etcd_client::KeyValue) -> StoreResult<KeyValue> {
    let key = kv.key().strip_prefix(prefix).ok_or_else(|| {
        StoreError::Internal(format!(
            "etcd returned key {} outside prefix {}",
            kv.key().escape_ascii(),
            prefix.escape_ascii()
        ))
    })?;
    Ok(KeyValue {
        key: key.to_vec(),
        value: kv.value().to_vec(),
        create_revision: rev(kv.create_revision()),
        mod_revision: rev(kv.mod_revision()),
        version: rev(kv.version()),
    })
}

/// etcd's revisions are non-negative `i64`s.
fn rev(r: i64) -> Revision {
    Revision::try_from(r).unwrap_or(0)
}

fn to_etcd(r: Revision) -> StoreResult<i64> {
    i64::try_from(r).map_err(|_| StoreError::InvalidArgument(format!("revision {r} is too large")))
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    h.map_or(0, |h| rev(h.revision()))
}

fn grpc_message(e: &etcd_client::Error) -> Option<&str> {
    match e {
        etcd_client::Error::GRpcStatus(s) => Some(s.message()),
        _ => None,
    }
}

impl Store for EtcdStore {
    async fn get(&self, key: &[u8]) -> StoreResult<Option<KeyValue>> {
        let full = self.full(key);
        let resp = self
            .conn
            .call(|mut c| {
                let full = full.clone();
                async move { c.kv.get(full, None).await }
            })
            .await
            .map_err(|e| StoreError::etcd("get", key, e))?;
        resp.kvs().first().map(|kv| self.kv(kv)).transpose()
    }

    async fn range(&self, prefix: &[u8], limit: Option<usize>) -> StoreResult<Range> {
        let mut opts = GetOptions::new().with_prefix();
        if let Some(l) = limit {
            if l == 0 {
                // etcd reads limit 0 as "no limit": count instead.
                let (count, revision) = self.count(prefix, "range").await?;
                return Ok(Range {
                    kvs: Vec::new(),
                    revision,
                    more: count > 0,
                });
            }
            opts = opts.with_limit(i64::try_from(l).unwrap_or(i64::MAX));
        }
        let full = self.full(prefix);
        let resp = self
            .conn
            .call(|mut c| {
                let (full, opts) = (full.clone(), opts.clone());
                async move { c.kv.get(full, Some(opts)).await }
            })
            .await
            .map_err(|e| StoreError::etcd("range", prefix, e))?;
        Ok(Range {
            kvs: resp
                .kvs()
                .iter()
                .map(|kv| self.kv(kv))
                .collect::<StoreResult<_>>()?,
            revision: header_revision(resp.header()),
            more: resp.more(),
        })
    }

    async fn txn(&self, txn: Txn) -> StoreResult<Option<Revision>> {
        txn.validate()?;
        let compares = txn
            .compares
            .iter()
            .map(|c| {
                Ok(EtcdCompare::mod_revision(
                    self.full(&c.key),
                    CompareOp::Equal,
                    to_etcd(c.mod_revision)?,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let ops: Vec<TxnOp> = txn
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value } => TxnOp::put(self.full(key), value.clone(), None),
                Op::Delete { key } => TxnOp::delete(self.full(key), None),
            })
            .collect();
        let reads: Vec<TxnOp> = txn
            .compares
            .iter()
            .map(|c| TxnOp::get(self.full(&c.key), None))
            .collect();
        let first_key = txn.ops.first().map(Op::key).unwrap_or_default();
        let request = etcd_client::Txn::new()
            .when(compares)
            .and_then(ops)
            .or_else(reads);
        let resp = self
            .conn
            .call(|mut c| {
                let request = request.clone();
                async move { c.kv.txn(request).await }
            })
            .await
            .map_err(|e| StoreError::etcd("txn", first_key, e))?;
        if resp.succeeded() {
            let changed = resp.op_responses().iter().any(|r| match r {
                TxnOpResponse::Delete(d) => d.deleted() > 0,
                _ => true,
            });
            return Ok(changed.then(|| header_revision(resp.header())));
        }
        // Report the first guard that failed, with the key's current revision.
        for (c, r) in txn.compares.iter().zip(resp.op_responses()) {
            let current = match r {
                TxnOpResponse::Get(g) => g.kvs().first().map(|kv| rev(kv.mod_revision())),
                _ => None,
            };
            if current.unwrap_or(0) != c.mod_revision {
                return Err(StoreError::Conflict {
                    key: c.key.clone(),
                    expected: c.mod_revision,
                    current,
                });
            }
        }
        Err(StoreError::Internal(
            "etcd refused a transaction whose guards all hold now; retry".into(),
        ))
    }

    async fn watch(&self, prefix: &[u8], options: WatchOptions) -> StoreResult<WatchStream> {
        let from = match options.from_revision {
            0 => self.current_revision().await? + 1,
            r => r,
        };
        let mut opts = EtcdWatchOptions::new()
            .with_prefix()
            .with_start_revision(to_etcd(from)?);
        if options.prev_kv {
            opts = opts.with_prev_key();
        }
        let full = self.full(prefix);
        let mut stream = self
            .conn
            .call(|mut c| {
                let (full, opts) = (full.clone(), opts.clone());
                async move { c.client.watch(full, Some(opts)).await }
            })
            .await
            .map_err(|e| StoreError::etcd("watch", prefix, e))?;
        // Wait until etcd has registered the watch, so nothing is missed.
        let first = stream
            .message()
            .await
            .map_err(|e| StoreError::etcd("watch", prefix, e))?;
        let mut state = WatchState {
            stream,
            pending: VecDeque::new(),
            prefix: self.prefix.clone(),
            resume_from: from,
            done: false,
        };
        match first {
            Some(resp) => state.absorb(resp),
            None => state.close(None),
        }
        // A start below the compaction point fails the call itself when
        // etcd says so at once (3.4 usually says it a moment later, as the
        // stream's first item).
        if let Some(Err(StoreError::Compacted { .. })) = state.pending.front()
            && let Some(Err(e)) = state.pending.pop_front()
        {
            return Err(e);
        }
        tracing::debug!(prefix = %prefix.escape_ascii(), from, "etcd watch started");
        Ok(Box::pin(futures::stream::unfold(state, WatchState::next)))
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        let to = to_etcd(revision)?;
        let r = self
            .conn
            .call(|mut c| async move {
                c.client
                    .compact(to, Some(CompactionOptions::new().with_physical()))
                    .await
            })
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if grpc_message(&e).is_some_and(|m| m.contains("has been compacted")) => Ok(()),
            Err(e) if grpc_message(&e).is_some_and(|m| m.contains("future revision")) => {
                Err(StoreError::FutureRevision {
                    requested: revision,
                    current: self.current_revision().await?,
                })
            }
            Err(e) => Err(StoreError::etcd("compact", &[], e)),
        }
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        Ok(self.count(b"", "get revision").await?.1)
    }
}

/// The adapter from etcd's watch responses to [`WatchEvent`]s.
struct WatchState {
    /// Kept whole: dropping its request half would end the watch.
    stream: etcd_client::WatchStream,
    pending: VecDeque<StoreResult<WatchEvent>>,
    prefix: Vec<u8>,
    resume_from: Revision,
    done: bool,
}

impl WatchState {
    fn absorb(&mut self, resp: etcd_client::WatchResponse) {
        if resp.compact_revision() > 0 {
            self.pending.push_back(Err(StoreError::Compacted {
                requested: self.resume_from,
                compact_revision: rev(resp.compact_revision()),
            }));
            self.done = true;
            return;
        }
        if resp.canceled() {
            self.pending.push_back(Err(StoreError::WatchCanceled {
                reason: resp.cancel_reason().to_string(),
                resume_from: self.resume_from,
            }));
            self.done = true;
            return;
        }
        for e in resp.events() {
            let Some(kv) = e.kv() else { continue };
            let event = from_etcd(&self.prefix, kv).and_then(|kv| {
                Ok(WatchEvent {
                    kind: match e.event_type() {
                        EventType::Put => EventKind::Put,
                        EventType::Delete => EventKind::Delete,
                    },
                    revision: kv.mod_revision,
                    prev_kv: e
                        .prev_kv()
                        .map(|p| from_etcd(&self.prefix, p))
                        .transpose()?,
                    kv,
                })
            });
            self.pending.push_back(event);
        }
    }

    fn close(&mut self, error: Option<etcd_client::Error>) {
        if let Some(e) = error {
            tracing::warn!(error = %e, "etcd watch stream failed");
        }
        self.pending.push_back(Err(StoreError::WatchClosed {
            resume_from: self.resume_from,
        }));
        self.done = true;
    }

    async fn next(mut self) -> Option<(StoreResult<WatchEvent>, Self)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                match &item {
                    Ok(e) => {
                        let next_same =
                            matches!(self.pending.front(), Some(Ok(n)) if n.revision == e.revision);
                        if !next_same {
                            self.resume_from = e.revision + 1;
                        }
                    }
                    Err(_) => self.pending.clear(),
                }
                return Some((item, self));
            }
            if self.done {
                return None;
            }
            match self.stream.message().await {
                Ok(Some(resp)) => self.absorb(resp),
                Ok(None) => self.close(None),
                Err(e) => self.close(Some(e)),
            }
        }
    }
}
