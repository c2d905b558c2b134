//! The node lifecycle runner against an in-process API server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jotasu_api::ConditionStatus;
use jotasu_api::Pod;

use super::testkit::Cluster;
use super::*;
use crate::runtime::status::{condition, is_node_ready, is_ready};

const LIMIT: Duration = Duration::from_secs(10);

fn bound_pod(name: &str, node: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1"}]}})
}

fn ready_condition(c: &Cluster, node: &str) -> Option<ConditionStatus> {
    let n = c.ctx.informers.nodes.get("", node)?;
    condition(&n.status.as_ref()?.conditions, "Ready").map(|c| c.status)
}

fn pod(c: &Cluster, name: &str) -> Option<Arc<Pod>> {
    c.ctx.informers.pods.get("default", name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_turn_ready_then_lost_and_their_pods_are_evicted() {
    let c = Cluster::start(&["n1", "n2"]).await;
    let config = Config {
        grace: Duration::from_millis(800),
        eviction_delay: Duration::from_millis(1500),
        eviction_rate: super::rate::DEFAULT_EVICTION_RATE,
    };
    // The agents speak before the controller judges them.
    let n2_alive = Arc::new(AtomicBool::new(true));
    let beating = {
        let ctx = c.ctx.clone();
        let alive = Arc::clone(&n2_alive);
        tokio::spawn(async move {
            loop {
                ctx.api.heartbeats().record("n1", []);
                if alive.load(Ordering::SeqCst) {
                    ctx.api.heartbeats().record("n2", []);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::spawn(run(c.ctx.clone(), config));
    c.apply(vec![
        bound_pod("a", "n2"),
        bound_pod("b", "n1"),
        bound_pod("ghost", "nowhere"),
    ])
    .await;
    c.agent("n1").await;
    c.agent("n2").await;

    c.eventually("both nodes Ready", LIMIT, || async {
        let nodes = c.ctx.informers.nodes.list();
        (nodes.len() == 2 && nodes.iter().all(|n| is_node_ready(n))).then_some(())
    })
    .await;
    c.eventually("the pod on no node is collected", LIMIT, || async {
        pod(&c, "ghost").is_none().then_some(())
    })
    .await;

    n2_alive.store(false, Ordering::SeqCst);
    c.eventually("n2 Unknown and its pod unready", LIMIT, || async {
        let unknown = ready_condition(&c, "n2") == Some(ConditionStatus::Unknown);
        let unready = pod(&c, "a").is_some_and(|p| !is_ready(&p));
        (unknown && unready).then_some(())
    })
    .await;
    assert!(
        pod(&c, "b").is_some_and(|p| is_ready(&p)),
        "n1's pod is untouched"
    );
    c.eventually("n2's pod evicted", LIMIT, || async {
        pod(&c, "a").is_none().then_some(())
    })
    .await;
    assert_eq!(ready_condition(&c, "n1"), Some(ConditionStatus::True));

    n2_alive.store(true, Ordering::SeqCst);
    c.eventually("n2 Ready again", LIMIT, || async {
        (ready_condition(&c, "n2") == Some(ConditionStatus::True)).then_some(())
    })
    .await;
    beating.abort();
}

#[test]
fn ticks_are_a_fifth_of_the_grace_at_most_a_second() {
    let config = |g| Config {
        grace: Duration::from_millis(g),
        eviction_delay: Duration::ZERO,
        eviction_rate: super::rate::DEFAULT_EVICTION_RATE,
    };
    assert_eq!(tick_period(&config(2000)), Duration::from_millis(400));
    assert_eq!(tick_period(&config(40_000)), Duration::from_secs(1));
    assert_eq!(tick_period(&config(10)), Duration::from_millis(50));
}
