//! Realistic objects for tests and benchmarks, shaped as teams write them:
//! [`deployment`], [`pod`], [`config_map`], [`service`], and the
//! [`namespace`] they must be created in. `i` makes each one distinct
//! (image tags, env values, data).
use anyhow::Context as _;
use jotasu_api::Object;
use serde_json::json;

/// [`pod`]s carry `shard=i % SHARDS`, so `shard=7` selects 1% of them.
pub const SHARDS: usize = 100;

fn object(value: serde_json::Value) -> anyhow::Result<Object> {
    serde_json::from_value(value).context("building a manifest")
}

/// A Namespace: objects are created only in one that exists (apply it
/// first, or in the same request).
pub fn namespace(name: &str) -> anyhow::Result<Object> {
    object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
}

/// A Deployment the way teams write them (about 2 KB of JSON): an app
/// container with env, ports, resources and probes, a log sidecar, a
/// ConfigMap volume. `replicas: 0`, so that controllers add no Pods while
/// the API is measured; `i` makes the image and env distinct.
pub fn deployment(namespace: &str, name: &str, i: usize) -> anyhow::Result<Object> {
    object(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": name, "team": "payments", "tier": "backend"},
            "annotations": {"example.com/owner": "payments-oncall@example.com"},
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name, "team": "payments", "tier": "backend"}},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "app",
                            "image": format!("registry.example.com/payments/{name}:1.{i}.0"),
                            "args": ["--listen=:8080", "--metrics=:9090", "--log-format=json"],
                            "env": [
                                {"name": "APP_ENV", "value": "production"},
                                {"name": "APP_INSTANCE", "value": format!("{i}")},
                                {"name": "DB_HOST", "value": "postgres.payments.svc.cluster.local"},
                                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                                {"name": "FEATURE_FLAGS", "valueFrom": {"configMapKeyRef": {"name": format!("{name}-config"), "key": "flags"}}},
                            ],
                            "ports": [
                                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                            ],
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "256Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 15, "failureThreshold": 3},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/app", "readOnly": true}],
                        },
                        {
                            "name": "log-shipper",
                            "image": "registry.example.com/infra/log-shipper:3.2.1",
                            "args": ["--source=/var/log/app", "--sink=tcp://logs.infra:5170"],
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "128Mi"},
                            },
                        },
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": format!("{name}-config")}}],
                },
            },
        },
    }))
}

/// A Pod of about 1 KB of JSON (one container with env, resources, probes
/// and a ConfigMap volume), labelled `shard=<i % 100>`.
pub fn pod(namespace: &str, name: &str, i: usize) -> anyhow::Result<Object> {
    object(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "checkout", "shard": format!("{}", i % SHARDS), "tier": "frontend"},
            "annotations": {"example.com/build": format!("checkout-2.14.3-{i}"), "example.com/owner": "shop-oncall@example.com"},
        },
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "checkout",
                "image": "registry.example.com/shop/checkout:2.14.3",
                "args": ["--listen=:8080", "--upstream=http://cart.shop.svc.cluster.local"],
                "env": [
                    {"name": "SHOP_ENV", "value": "production"},
                    {"name": "SHOP_INSTANCE", "value": format!("{i}")},
                    {"name": "CART_TIMEOUT", "value": "2s"},
                ],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 10},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/checkout", "readOnly": true}],
            }],
            "volumes": [{"name": "config", "configMap": {"name": "checkout-config"}}],
        },
    }))
}

/// A ConfigMap whose content is unique to `i`.
pub fn config_map(namespace: &str, name: &str, i: usize) -> anyhow::Result<Object> {
    object(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "settings"}},
        "data": {
            "sequence": format!("{i}"),
            "settings.properties": format!("instance={i}\ncache.size={}\nlog.level=info\n", i * 7 % 1000),
        },
    }))
}

/// A Service in front of the Deployment called `name`.
pub fn service(namespace: &str, name: &str, i: usize) -> anyhow::Result<Object> {
    object(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "selector": {"app": name},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": 9000 + (i % 1000), "targetPort": 9090, "protocol": "TCP"},
            ],
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_about_their_size() {
        for (o, lo, hi) in [
            (deployment("ns", "web-0001", 1), 1500, 2500),
            (pod("ns", "pod-00001", 1), 900, 1300),
            (config_map("ns", "w0-001", 1), 100, 400),
            (service("ns", "web-0001", 1), 100, 400),
        ] {
            let mut o = o.expect("decodes");
            let len = serde_json::to_vec(&o).expect("encodes").len();
            assert!((lo..hi).contains(&len), "{}: {len} B", o.object_ref());
            o.apply_defaults();
            o.validate().expect("valid");
        }
    }
}
