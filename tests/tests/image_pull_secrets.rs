//! `imagePullSecrets`: an image in a registry that wants a login (Debian's
//! docker-registry with htpasswd, on the node's loopback) runs for the pod
//! that names a `kubernetes.io/dockerconfigjson` Secret holding it, and is
//! refused, unauthorized, to the pod that names none.

use jotasu_api::bytes::encode_base64;
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, ready};
use jotasu_tests::privilege::require_root;
use jotasu_tests::registry::{ADDRESS, Registry};
use jotasu_tests::wait::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_secret_logs_in_to_the_registry() {
    if !require_root("a_pull_secret_logs_in_to_the_registry") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    let registry = Registry::start_with_login(h.cluster.nodes()[0].netns(), "puller", "s3cret")
        .expect("docker-registry starts");
    let archive = h.cluster.demo_image().expect("the demo image");
    let (reference, _) = registry
        .push(&archive, "private/busybox:1")
        .expect("the push");
    let config = serde_json::json!({"auths": {ADDRESS: {
        "auth": encode_base64(b"puller:s3cret")}}})
    .to_string();
    h.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n",
        encode_base64(config.as_bytes())
    ));
    let pod = |name: &str, secrets: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 0\n{secrets}  containers:\n  - {{name: main, image: \"{reference}\", command: [sleep, \"3600\"]}}\n"
        )
    };
    // Without the secret first, so the image is not on the node yet.
    h.apply(&pod("anonymous", ""));
    let refused = eventually("the anonymous pull refused", SETTLE, || async {
        let p = h.pod("anonymous").await?;
        let waiting = p
            .status?
            .container_statuses
            .first()?
            .state
            .clone()?
            .waiting?;
        matches!(
            waiting.reason.as_deref(),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
        .then_some(waiting.message.unwrap_or_default())
    })
    .await;
    assert!(refused.contains("Not authorized"), "{refused}");
    h.apply(&pod(
        "with-secret",
        "  imagePullSecrets: [{name: regcred}]\n",
    ));
    eventually("the pod with the pull secret running", SETTLE, || async {
        h.pod("with-secret").await.filter(ready)
    })
    .await;
    drop(registry);
}
