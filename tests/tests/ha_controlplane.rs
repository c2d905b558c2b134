//! Several control planes on a real 3-member etcd cluster, as processes:
//! exactly one leads (the Lease kube-system/jotasu-controlplane) and runs
//! the controllers; kill -9 of the leader hands the work to another with
//! nothing done twice; a paused leader (SIGSTOP) that wakes after another
//! took over lands none of its writes; one etcd member killed, the API
//! keeps serving.
//!
//! No nodes: the Deployment's pods stay Pending, which is all the
//! controllers' writes this needs (ReplicaSets and Pods created, scaled,
//! deleted).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jotasu_api::client::Client;
use jotasu_api::{Kind, Object, ObjectRef};
use jotasu_tests::ha::{HaPlanes, etcd_or_skip};
use jotasu_tests::objects::config_map;
use jotasu_tests::process::ProcessRecord;
use jotasu_tests::wait::eventually;

const NS: &str = "default";

fn deployment(replicas: i32) -> Object {
    let mut o: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": replicas,
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:latest",
                                                       "command": ["sleep", "3600"]}]}}}
    }))
    .expect("a valid Deployment");
    o.apply_defaults();
    o
}

fn web() -> ObjectRef {
    ObjectRef {
        kind: Kind::Deployment,
        namespace: Some(NS.into()),
        name: "web".into(),
    }
}

/// The names of the live (not terminating) pods of `web`.
async fn pods(client: &Client) -> Option<BTreeSet<String>> {
    let list = client.list(Kind::Pod, Some(NS), "app=web").await.ok()?;
    Some(
        list.items
            .iter()
            .filter(|o| o.metadata().deletion_timestamp.is_none())
            .map(|o| o.metadata().name().to_owned())
            .collect(),
    )
}

/// Waits until exactly `n` pods exist and stay so for `settle`.
async fn settles_at(ha: &HaPlanes, n: usize, settle: Duration) -> BTreeSet<String> {
    let what = format!("{n} pods of web, steady for {settle:?}");
    eventually(&what, Duration::from_secs(60), || async {
        let client = ha.client().await.ok()?;
        let first = pods(&client).await.filter(|p| p.len() == n)?;
        tokio::time::sleep(settle).await;
        let again = pods(&client).await?;
        (again == first).then_some(first)
    })
    .await
}

async fn replica_sets(client: &Client) -> usize {
    client
        .list(Kind::ReplicaSet, Some(NS), "")
        .await
        .map_or(0, |l| l.items.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_fails_over_and_a_paused_one_writes_nothing() {
    if !etcd_or_skip().expect("etcd present (CI)") {
        return;
    }
    let mut ha = HaPlanes::start(3, 3, &[])
        .await
        .expect("etcd and control planes");
    let first = ha
        .new_leader(None, Duration::from_secs(20))
        .await
        .expect("a leader");
    eprintln!("control plane {first} leads");

    let client = ha.client().await.unwrap();
    client
        .apply(&[deployment(3)], false)
        .await
        .expect("apply web");
    let before = settles_at(&ha, 3, Duration::from_secs(1)).await;

    // kill -9 the leader: another takes over and carries on.
    let killed_at = Instant::now();
    ha.planes[first].kill9().unwrap();
    let second = ha
        .new_leader(Some(first), Duration::from_secs(15))
        .await
        .expect("a new leader after kill -9");
    eprintln!(
        "control plane {second} leads {:.2} s after kill -9 of {first}",
        killed_at.elapsed().as_secs_f64()
    );
    let client = ha.client().await.unwrap();
    client.scale(&web(), 5).await.expect("scale to 5");
    let after = settles_at(&ha, 5, Duration::from_secs(2)).await;
    assert!(
        before.is_subset(&after),
        "the pods made before the failover were kept: {before:?} vs {after:?}"
    );
    assert_eq!(
        replica_sets(&client).await,
        1,
        "one ReplicaSet, not one per leader"
    );

    // SIGSTOP the leader until another leads, change the desired state,
    // then SIGCONT: its caches are stale, its writes must all be refused.
    let paused = second;
    let pid = ha.planes[paused].pid().unwrap();
    let record = ProcessRecord::of(pid).unwrap();
    assert!(record.signal(libc::SIGSTOP), "SIGSTOP the leader");
    let third = ha
        .new_leader(Some(paused), Duration::from_secs(15))
        .await
        .expect("a new leader while the old one is paused");
    eprintln!("control plane {third} leads while {paused} is paused");
    let client = ha.client().await.unwrap();
    // The paused leader's caches hold 5 replicas and 5 pods; now 1.
    client.scale(&web(), 1).await.expect("scale to 1");
    let one = settles_at(&ha, 1, Duration::from_secs(1)).await;
    assert!(record.signal(libc::SIGCONT), "SIGCONT the old leader");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let now = pods(&client).await.unwrap();
    assert_eq!(now, one, "the woken leader created or deleted nothing");
    assert_eq!(
        ha.leader().await,
        Some(third),
        "the woken leader did not take the Lease back"
    );
    let Object::Deployment(d) = client.get(&web()).await.unwrap() else {
        panic!("web is a Deployment")
    };
    assert_eq!(d.spec.replicas, Some(1));

    // The killed control plane comes back as a follower.
    ha.planes[first].restart().await.expect("restart");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        ha.leader().await,
        Some(third),
        "a returning control plane follows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_serving_when_an_etcd_member_dies() {
    if !etcd_or_skip().expect("etcd present (CI)") {
        return;
    }
    let mut ha = HaPlanes::start(3, 2, &[])
        .await
        .expect("etcd and control planes");
    ha.new_leader(None, Duration::from_secs(20))
        .await
        .expect("a leader");
    let clients = [
        ha.planes[0].client().await.unwrap(),
        ha.planes[1].client().await.unwrap(),
    ];
    let mut i = 0usize;
    let mut write = |clients: &[Client; 2]| {
        i += 1;
        let c = clients[i % 2].clone();
        let cm = config_map(NS, &format!("cm-{}", i % 50), i).unwrap();
        async move { c.apply(&[cm], false).await.map(|_| ()) }
    };
    for _ in 0..20 {
        write(&clients).await.expect("writes before the kill");
    }
    ha.etcd.kill(0);
    let killed = Instant::now();
    // Within a few seconds every write succeeds again (an etcd election
    // may be under way if the killed member led); count what failed.
    let mut failed = 0;
    let mut streak = 0;
    while streak < 100 {
        match write(&clients).await {
            Ok(()) => streak += 1,
            Err(e) => {
                failed += 1;
                streak = 0;
                assert!(
                    killed.elapsed() < Duration::from_secs(15),
                    "writes still fail 15 s after an etcd member died: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    eprintln!(
        "100 writes in a row through both control planes {:.1} s after the kill; {failed} failed before",
        killed.elapsed().as_secs_f64()
    );
    // Reads too, and the leader stays (or another takes over).
    let list = clients[0]
        .list(Kind::ConfigMap, Some(NS), "")
        .await
        .expect("list");
    assert_eq!(list.items.len(), 50);
    ha.new_leader(None, Duration::from_secs(15))
        .await
        .expect("a leader with one etcd member dead");
}
