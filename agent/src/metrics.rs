//! The agent's Prometheus endpoint (`/metrics`, plus `/healthz`): new
//! connections per service from the data plane's counters, its drops by
//! reason, pods by phase,
//! reconcile durations, the watch stream's state, the node resolver's
//! cache of forwarded answers, and flow events (written, lost, streamed).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::datapath::SharedDatapath;
use crate::watch::{SharedView, WatchStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoopLabels {
    r#loop: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    namespace: String,
    service: String,
    frontend: String,
    path: String,
}

/// The metrics other parts of the agent record.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    reconcile: Family<LoopLabels, Histogram>,
    dns_cache: DnsCacheMetrics,
}

/// The node resolver's cache of forwarded answers (handles share the
/// registered series: clone them into the resolver).
#[derive(Debug, Clone, Default)]
pub struct DnsCacheMetrics {
    /// Queries answered from the cache.
    pub hits: Counter,
    /// Queries the cache could not answer (forwarded upstream).
    pub misses: Counter,
    /// Answers held.
    pub entries: Gauge,
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

impl Metrics {
    /// A registry with the agent's metrics; the collectors read the data
    /// plane, the view and the watch status at scrape time.
    pub fn new(
        datapath: Option<SharedDatapath>,
        view: SharedView,
        watch: watch::Receiver<WatchStatus>,
        pods: Arc<crate::pods::Registry>,
    ) -> Arc<Self> {
        let mut registry = Registry::with_prefix("jotasu_agent");
        registry.register_collector(Box::new(PodsCollector(pods)));
        let reconcile = Family::<LoopLabels, Histogram>::new_with_constructor(
            reconcile_histogram as fn() -> Histogram,
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile pass took, by loop (pods, datapath)",
            reconcile.clone(),
        );
        registry.register_collector(Box::new(WatchCollector(watch)));
        if let Some(dp) = datapath {
            registry.register_collector(Box::new(ServiceCollector { datapath: dp, view }));
        }
        let dns_cache = DnsCacheMetrics::default();
        registry.register(
            "dns_cache_hits",
            "Forwarded DNS queries the node's resolver answered from its cache",
            dns_cache.hits.clone(),
        );
        registry.register(
            "dns_cache_misses",
            "Forwarded DNS queries the node's resolver's cache could not answer",
            dns_cache.misses.clone(),
        );
        registry.register(
            "dns_cache_entries",
            "Answers held in the node's resolver's cache",
            dns_cache.entries.clone(),
        );
        Arc::new(Self {
            registry: Mutex::new(registry),
            reconcile,
            dns_cache,
        })
    }

    /// Exports the flow stream's counters (`flow_stream_events_total`).
    pub fn watch_flows(&self, hub: Arc<crate::views::flows::FlowHub>) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register_collector(Box::new(FlowHubCollector(hub)));
    }

    /// The resolver cache's series.
    pub fn dns_cache(&self) -> DnsCacheMetrics {
        self.dns_cache.clone()
    }

    /// Records one reconcile pass of `name`.
    pub fn observe_reconcile(&self, name: &str, took: Duration) {
        self.reconcile
            .get_or_create(&LoopLabels {
                r#loop: name.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[derive(Debug)]
struct FlowHubCollector(Arc<crate::views::flows::FlowHub>);

impl Collector for FlowHubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering;
        let hub = &self.0;
        let mut metric = encoder.encode_descriptor(
            "flow_stream_events",
            "Flow events the agent handled: received from the ring buffer, lost by subscribers too slow to keep up (summed over them), malformed records",
            None,
            MetricType::Counter,
        )?;
        for (outcome, v) in [
            ("received", hub.received.load(Ordering::Relaxed)),
            ("subscriber_lost", hub.stream_lost.load(Ordering::Relaxed)),
            ("malformed", hub.malformed.load(Ordering::Relaxed)),
        ] {
            ConstCounter::new(v).encode(metric.encode_family(&OutcomeLabels { outcome })?)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct PodsCollector(Arc<crate::pods::Registry>);

impl Collector for PodsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let phases = self.0.phases();
        let mut metric = encoder.encode_descriptor(
            "pods",
            "Pods on this node by phase",
            None,
            MetricType::Gauge,
        )?;
        for phase in ["Pending", "Running", "Succeeded", "Failed", "Unknown"] {
            let n = phases.get(phase).copied().unwrap_or(0);
            ConstGauge::new(n).encode(metric.encode_family(&PhaseLabels { phase })?)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct WatchCollector(watch::Receiver<WatchStatus>);

impl Collector for WatchCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = *self.0.borrow();
        let gauge =
            |e: &mut DescriptorEncoder, name, help, v: f64| -> Result<(), std::fmt::Error> {
                let m = ConstGauge::new(v);
                m.encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
            };
        gauge(
            &mut encoder,
            "watch_connected",
            "1 while the node's watch stream is connected",
            f64::from(u8::from(s.connected)),
        )?;
        gauge(
            &mut encoder,
            "watch_revision",
            "The last store revision applied to the node's view",
            s.revision as f64,
        )?;
        gauge(
            &mut encoder,
            "watch_lag_seconds",
            "How long the node's view has not been known current (0 while the stream is connected)",
            s.stale_since.map_or(0.0, |t| t.elapsed().as_secs_f64()),
        )?;
        let events = ConstCounter::new(s.events);
        events.encode(encoder.encode_descriptor(
            "watch_events",
            "Watch events applied to the node's view",
            None,
            MetricType::Counter,
        )?)
    }
}

#[derive(Debug)]
struct ServiceCollector {
    datapath: SharedDatapath,
    view: SharedView,
}

impl Collector for ServiceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let statuses = {
            let dp = self.datapath.lock().unwrap_or_else(PoisonError::into_inner);
            match dp.services() {
                Ok(s) => s,
                Err(e) => {
                    debug!(error = %e, "reading service counters failed");
                    return Ok(());
                }
            }
        };
        // Which Service each frontend belongs to.
        let names: Vec<(jotasu_ebpf::Frontend, String, String)> = {
            let v = self.view.read().unwrap_or_else(PoisonError::into_inner);
            v.services
                .iter()
                .flat_map(|((ns, name), svc)| {
                    crate::datapath::services_of(svc, None, None)
                        .into_iter()
                        .map(move |s| (s.frontend, ns.clone(), name.clone()))
                })
                .collect()
        };
        let mut metric = encoder.encode_descriptor(
            "service_new_connections",
            "New connections balanced per service, by path (tc: pods; socket: processes in the node's cgroup); rejected: refused for want of a backend",
            None,
            MetricType::Counter,
        )?;
        for st in statuses {
            let (ns, name) = names
                .iter()
                .find(|(f, _, _)| *f == st.service.frontend)
                .map_or((String::new(), String::new()), |(_, n, s)| {
                    (n.clone(), s.clone())
                });
            for (path, v) in [
                ("tc", st.counters.tc_new_flows),
                ("socket", st.counters.sock_new_flows),
                ("rejected", st.counters.rejected),
            ] {
                let labels = ServiceLabels {
                    namespace: ns.clone(),
                    service: name.clone(),
                    frontend: st.service.frontend.to_string(),
                    path: path.to_owned(),
                };
                ConstCounter::new(v).encode(metric.encode_family(&labels)?)?;
            }
        }
        let (events, tunnels, dns, dns_names, drops, flow_events) = {
            let dp = self.datapath.lock().unwrap_or_else(PoisonError::into_inner);
            (
                dp.node_counters(),
                dp.overlay().tunnels().map(|t| t.len()),
                dp.dns().counters(),
                dp.dns().names().len(),
                dp.drop_counters(),
                dp.flow_events().counters(),
            )
        };
        if let Ok(c) = flow_events {
            let mut metric = encoder.encode_descriptor(
                "datapath_flow_events",
                "Flow events of the data plane's programs by outcome: emitted into the ring buffer, lost (ring buffer full), rate_limited (over the per-CPU budget), sampled_out",
                None,
                MetricType::Counter,
            )?;
            for (outcome, v) in [
                ("emitted", c.emitted),
                ("lost", c.lost),
                ("rate_limited", c.rate_limited),
                ("sampled_out", c.sampled_out),
            ] {
                ConstCounter::new(v).encode(metric.encode_family(&OutcomeLabels { outcome })?)?;
            }
        }
        match drops {
            Ok(drops) => encode_drops(&mut encoder, &drops)?,
            Err(e) => debug!(error = %e, "reading drop counters failed"),
        }
        if let Ok(dns) = dns {
            let mut metric = encoder.encode_descriptor(
                "dns_fast_path_queries",
                "Queries to the node's DNS addresses seen by from_pod: answered in the kernel, or passed on to the resolver",
                None,
                MetricType::Counter,
            )?;
            for (outcome, v) in [("answered", dns.answered), ("passed", dns.passed)] {
                ConstCounter::new(v).encode(metric.encode_family(&OutcomeLabels { outcome })?)?;
            }
            let metric = encoder.encode_descriptor(
                "dns_fast_path_names",
                "Names the kernel answers A queries for",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(dns_names).unwrap_or(i64::MAX)).encode(metric)?;
        }
        if let Ok(events) = events {
            let mut metric = encoder.encode_descriptor(
                "datapath_events",
                "Node-wide data-plane counters: packets seen by from_pod, conntrack hits, local deliveries, packets encapsulated into the overlay and received from it",
                None,
                MetricType::Counter,
            )?;
            for (event, v) in events {
                ConstCounter::new(v).encode(metric.encode_family(&EventLabels { event })?)?;
            }
        }
        if let Ok(n) = tunnels {
            let metric = encoder.encode_descriptor(
                "overlay_tunnels",
                "Remote pod CIDRs the tunnel map routes to other nodes",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)).encode(metric)?;
        }
        Ok(())
    }
}

/// `datapath_drops{reason}`: every reason, zeros included, so a rate
/// query finds the series before the first drop.
fn encode_drops(
    encoder: &mut DescriptorEncoder,
    drops: &jotasu_ebpf::DropCounters,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        "datapath_drops",
        "Packets the data plane dropped, and connections it refused, by reason (docs/datapath.md lists them)",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in drops {
        let labels = ReasonLabels {
            reason: reason.as_str(),
        };
        ConstCounter::new(*n).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Serves `/metrics` and `/healthz` on `addr` until `stop`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => r?,
            () = crate::stopped(&mut stop) => return Ok(()),
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = Arc::clone(&metrics);
                async move { Ok::<_, Infallible>(respond(&req, &metrics)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

fn respond(req: &Request<hyper::body::Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match req.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Drops(jotasu_ebpf::DropCounters);

    impl Collector for Drops {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode_drops(&mut encoder, &self.0)
        }
    }

    #[test]
    fn drops_are_exported_by_reason_with_zeros() {
        let mut registry = Registry::with_prefix("jotasu_agent");
        let drops = jotasu_ebpf::drops::sum_slots([(2, 3), (7, 1)]);
        registry.register_collector(Box::new(Drops(drops)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for line in [
            "# TYPE jotasu_agent_datapath_drops counter",
            "jotasu_agent_datapath_drops_total{reason=\"spoofed_source\"} 3",
            "jotasu_agent_datapath_drops_total{reason=\"unknown_overlay_peer\"} 1",
            "jotasu_agent_datapath_drops_total{reason=\"malformed\"} 0",
            "jotasu_agent_datapath_drops_total{reason=\"policy\"} 0",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line:?} missing from\n{out}"
            );
        }
    }
}
