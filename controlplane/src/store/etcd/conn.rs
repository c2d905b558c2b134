//! [`Conn`]: the connection to an etcd cluster, to one member at a time,
//! moving on to the next when that member dies, is cut off from a
//! quorum (etcd says "no leader": every request requires one) or times
//! out. etcd-client's own balancing keeps sending to a member whose port
//! refuses connections; this does not.
//!
//! A request that fails for such a reason is retried (on the next member)
//! for up to [`RETRY_FOR`]. That is safe for reads and watches; a write
//! that timed out may have been applied, and every write here is guarded
//! by mod revisions (or is a lease renewal), so its retry fails with a
//! conflict the caller already handles rather than applying twice.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions, KvClient};
use tracing::{info, warn};

/// How long one request keeps trying other members.
pub const RETRY_FOR: Duration = Duration::from_secs(15);

/// How long a member may take to answer the probe of a new connection.
const PROBE: Duration = Duration::from_secs(3);

/// Largest etcd response accepted (a range of every object of a kind).
const MAX_RESPONSE: usize = 1 << 30;

/// The member in use.
#[derive(Clone)]
pub struct Current {
    /// Its index in the endpoint list.
    pub index: usize,
    /// The client (watches, compaction).
    pub client: Client,
    /// The KV client with a response limit fit for large ranges (tonic's
    /// default 4 MiB would fail a list of a few thousand pods).
    pub kv: KvClient,
}

/// A connection that fails over between members.
#[derive(Clone)]
pub struct Conn {
    endpoints: Arc<Vec<String>>,
    options: Option<ConnectOptions>,
    current: Arc<RwLock<Current>>,
}

fn current_of(index: usize, client: Client) -> Current {
    let kv = client
        .kv_client()
        .max_decoding_message_size(MAX_RESPONSE)
        .max_encoding_message_size(MAX_RESPONSE);
    Current { index, client, kv }
}

/// Whether `e` says the member could not serve the request (dead,
/// unreachable, without a leader, timed out), not that the request was
/// refused on its merits.
pub fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
        ),
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

async fn connect_one(
    endpoint: &str,
    options: Option<&ConnectOptions>,
) -> Result<Client, etcd_client::Error> {
    let client = Client::connect([endpoint], options.cloned()).await?;
    // The channel connects lazily: ask something to know the member serves.
    let mut kv = client.kv_client();
    let probe = kv.get("/", Some(GetOptions::new().with_count_only()));
    match tokio::time::timeout(PROBE, probe).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(etcd_client::Error::InvalidArgs(format!(
            "{endpoint} did not answer within {PROBE:?}"
        ))),
    }
}

impl Conn {
    /// Connects to the first member of `endpoints` that serves.
    pub async fn connect(
        endpoints: &[String],
        options: Option<ConnectOptions>,
    ) -> Result<Self, etcd_client::Error> {
        let mut last = None;
        for (i, ep) in endpoints.iter().enumerate() {
            match connect_one(ep, options.as_ref()).await {
                Ok(client) => {
                    return Ok(Self {
                        endpoints: Arc::new(endpoints.to_vec()),
                        options,
                        current: Arc::new(RwLock::new(current_of(i, client))),
                    });
                }
                Err(e) => {
                    warn!(endpoint = %ep, error = %e, "etcd member does not serve; trying the next");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| etcd_client::Error::InvalidArgs("no etcd endpoints".into())))
    }

    /// The member in use.
    pub fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Moves off member `failed` (unless another request already did): to
    /// the next member that serves, in list order.
    async fn failover(&self, failed: usize) {
        let n = self.endpoints.len();
        if n < 2 || self.current().index != failed {
            return;
        }
        for k in 1..n {
            let j = (failed + k) % n;
            let ep = &self.endpoints[j];
            match connect_one(ep, self.options.as_ref()).await {
                Ok(client) => {
                    let mut cur = self.current.write().unwrap_or_else(PoisonError::into_inner);
                    if cur.index == failed {
                        info!(from = %self.endpoints[failed], to = %ep, "etcd: moved to another member");
                        *cur = current_of(j, client);
                    }
                    return;
                }
                Err(e) => warn!(endpoint = %ep, error = %e, "etcd member does not serve either"),
            }
        }
    }

    /// Runs `f` on the member in use; on a [`transient`] failure moves on
    /// and tries again, for up to [`RETRY_FOR`].
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, etcd_client::Error>
    where
        F: FnMut(Current) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(50);
        loop {
            let cur = self.current();
            let index = cur.index;
            match f(cur).await {
                Ok(v) => return Ok(v),
                Err(e) if transient(&e) && Instant::now() < deadline => {
                    self.failover(index).await;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
