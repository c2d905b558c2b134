//! The gRPC surface of [`ApiServer`]: every call is authenticated and
//! authorized by the [`Guard`] (as Kubernetes names its verbs and
//! resources), then translated into the server's own calls.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use jotasu_api::grpc::v1::{self, api_server::Api, exec_input::Input};
use jotasu_api::{Kind, LabelSelector, ObjectRef};
use tonic::{Request, Response, Status};
use tracing::debug;

use super::ApiServer;
use super::bind::{BindOutcome, Binding, Refusal};
use super::error::ApiServerError;
use super::guard::Guard;
use super::heartbeat::Usage;
use super::proxy::Forwarded;
use super::watch::WatchSpec;
use crate::auth::attributes::{Attributes, UserInfo, verbs};
use crate::auth::authenticate::presented;
use crate::store::Store;

/// The tonic service: `ApiServer<S>` behind `jotasu.v1.Api`, guarded.
#[derive(Debug)]
pub struct GrpcApi<S> {
    server: ApiServer<S>,
    guard: Arc<Guard<S>>,
}

impl<S: Store> GrpcApi<S> {
    /// Serves `server`, every call passing `guard`.
    pub fn new(server: ApiServer<S>, guard: Arc<Guard<S>>) -> Self {
        Self { server, guard }
    }

    /// The caller of `request`.
    async fn caller<T>(&self, request: &Request<T>) -> Result<UserInfo, Status> {
        Ok(self.guard.authenticate(presented(request)).await?)
    }

    /// `Ok` if `user` may do `attributes`.
    async fn allow(
        &self,
        user: &UserInfo,
        attributes: Attributes,
        scope: Option<&str>,
    ) -> Result<(), Status> {
        Ok(self.guard.check(user, attributes, scope).await?)
    }
}

fn on(verb: &str, r: &ObjectRef) -> Attributes {
    Attributes::of_kind(verb, r.kind, r.namespace.as_deref(), Some(r.name.as_str()))
}

fn typed(r: Option<v1::ObjectRef>) -> Result<ObjectRef, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("missing ref"))?;
    let typed = r.typed().map_err(Status::invalid_argument)?;
    if typed.name.is_empty() {
        return Err(Status::invalid_argument("resource name may not be empty"));
    }
    Ok(typed)
}

fn kind(name: &str) -> Result<Kind, Status> {
    Kind::from_name(name).ok_or_else(|| ApiServerError::unknown_kind(name).into())
}

fn selector(text: &str) -> Result<LabelSelector, Status> {
    LabelSelector::parse(text)
        .map_err(|e| Status::invalid_argument(format!("label selector {text:?}: {e}")))
}

fn namespace(ns: &str) -> Option<&str> {
    Some(ns).filter(|n| !n.is_empty())
}

/// `verb` on the pod `namespace/name` (`default` when no namespace is given).
fn pod_attributes(verb: &str, ns: &str, name: &str) -> Attributes {
    let ns = namespace(ns).unwrap_or(jotasu_api::meta::DEFAULT_NAMESPACE);
    Attributes::of_kind(verb, Kind::Pod, Some(ns), Some(name))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl<S: Store> Api for GrpcApi<S> {
    async fn apply(
        &self,
        request: Request<v1::ApplyRequest>,
    ) -> Result<Response<v1::ApplyResponse>, Status> {
        let user = self.caller(&request).await?;
        let request = request.into_inner();
        let objects: Vec<String> = request.objects.into_iter().map(|o| o.json).collect();
        let applied = self
            .server
            .apply_checked(&objects, request.dry_run, &self.guard.writes(&user))
            .await?;
        let results = applied
            .iter()
            .map(|a| v1::ApplyResult {
                r#ref: Some((&a.object_ref).into()),
                outcome: v1::ApplyOutcome::from(a.outcome).into(),
                resource_version: a.resource_version.to_string(),
            })
            .collect();
        Ok(Response::new(v1::ApplyResponse { results }))
    }

    async fn get(&self, request: Request<v1::GetRequest>) -> Result<Response<v1::Object>, Status> {
        let user = self.caller(&request).await?;
        let r = typed(request.into_inner().r#ref)?;
        self.allow(&user, on(verbs::GET, &r), None).await?;
        let json = self.server.get(&r).await?;
        Ok(Response::new(v1::Object { json }))
    }

    async fn list(
        &self,
        request: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ListResponse>, Status> {
        let user = self.caller(&request).await?;
        let request = request.into_inner();
        let kind = kind(&request.kind)?;
        let selector = selector(&request.label_selector)?;
        let ns = namespace(&request.namespace);
        let scope = namespace(&request.node);
        self.allow(
            &user,
            Attributes::of_kind(verbs::LIST, kind, ns, None),
            scope,
        )
        .await?;
        let any_recent = match request.resource_version.as_str() {
            "" => false,
            "0" => true,
            v if v.parse::<u64>().is_ok() => false,
            v => {
                return Err(Status::invalid_argument(format!(
                    "resourceVersion: Invalid value: {v:?}: must be a resourceVersion the server returned"
                )));
            }
        };
        let (items, revision) = match scope {
            None if any_recent => self.server.list_cached(kind, ns, &selector).await?,
            None => self.server.list(kind, ns, &selector).await?,
            Some(node) => self.server.list_for_node(kind, ns, &selector, node).await?,
        };
        Ok(Response::new(v1::ListResponse {
            items: items.into_iter().map(|json| v1::Object { json }).collect(),
            revision: i64::try_from(revision).unwrap_or(i64::MAX),
        }))
    }

    async fn delete(
        &self,
        request: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        let user = self.caller(&request).await?;
        let request = request.into_inner();
        let r = typed(request.r#ref)?;
        self.allow(&user, on(verbs::DELETE, &r), None).await?;
        let deleted = self
            .server
            .delete_graceful(
                &r,
                Some(request.resource_version.as_str()),
                request.grace_period_seconds,
            )
            .await?;
        Ok(Response::new(v1::DeleteResponse {
            deleted: deleted.iter().map(Into::into).collect(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        use futures::StreamExt as _;
        let user = self.caller(&request).await?;
        let request = request.into_inner();
        let kinds = request
            .kinds
            .iter()
            .map(|k| kind(k))
            .collect::<Result<Vec<_>, _>>()?;
        let ns = namespace(&request.namespace);
        let scope = namespace(&request.node);
        let watched = if kinds.is_empty() {
            Kind::ALL
        } else {
            kinds.as_slice()
        };
        for kind in watched {
            self.allow(
                &user,
                Attributes::of_kind(verbs::WATCH, *kind, ns, None),
                scope,
            )
            .await?;
        }
        let spec = WatchSpec {
            kinds,
            namespace: namespace(&request.namespace).map(str::to_owned),
            selector: selector(&request.label_selector)?,
            from_revision: u64::try_from(request.from_revision)
                .map_err(|_| Status::invalid_argument("from_revision must not be negative"))?,
            node: Some(request.node).filter(|n| !n.is_empty()),
        };
        debug!(?spec, "watch");
        let rx = self.server.watch(spec).await?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|item| {
            let event = item?;
            Ok(v1::WatchEvent {
                r#type: v1::EventType::from(event.kind).into(),
                object: Some(v1::Object { json: event.json }),
                revision: i64::try_from(event.revision).unwrap_or(i64::MAX),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn update_status(
        &self,
        request: Request<v1::UpdateStatusRequest>,
    ) -> Result<Response<v1::Object>, Status> {
        let user = self.caller(&request).await?;
        let object = request
            .into_inner()
            .object
            .ok_or_else(|| Status::invalid_argument("missing object"))?;
        let updated = self
            .server
            .update_status_checked(&object.json, &self.guard.writes(&user))
            .await?;
        Ok(Response::new(v1::Object::encode(&updated)))
    }

    async fn scale(
        &self,
        request: Request<v1::ScaleRequest>,
    ) -> Result<Response<v1::Object>, Status> {
        let user = self.caller(&request).await?;
        let request = request.into_inner();
        let r = typed(request.r#ref)?;
        self.allow(&user, on(verbs::UPDATE, &r).on_subresource("scale"), None)
            .await?;
        let object = self.server.scale(&r, request.replicas).await?;
        Ok(Response::new(v1::Object::encode(&object)))
    }

    async fn evict(
        &self,
        request: Request<v1::EvictRequest>,
    ) -> Result<Response<v1::EvictResponse>, Status> {
        let user = self.caller(&request).await?;
        let request = request.into_inner();
        let r = typed(request.r#ref)?;
        if r.kind != jotasu_api::Kind::Pod {
            return Err(ApiServerError::Invalid(format!(
                "only pods can be evicted, not {}",
                r.kind.resource_name()
            ))
            .into());
        }
        self.allow(
            &user,
            on(verbs::CREATE, &r).on_subresource("eviction"),
            None,
        )
        .await?;
        self.server.evict(&r, request.grace_period_seconds).await?;
        Ok(Response::new(v1::EvictResponse {}))
    }

    async fn bind(
        &self,
        request: Request<v1::BindRequest>,
    ) -> Result<Response<v1::BindResponse>, Status> {
        let user = self.caller(&request).await?;
        let bindings = request
            .into_inner()
            .bindings
            .into_iter()
            .map(|b| {
                let resource_version = match b.resource_version.as_str() {
                    "" => None,
                    v => Some(v.parse().map_err(|_| {
                        Status::invalid_argument(format!(
                            "binding of pod {}/{}: resourceVersion {v:?} is not one the server returned",
                            b.namespace, b.name
                        ))
                    })?),
                };
                Ok(Binding {
                    namespace: b.namespace,
                    name: b.name,
                    node: b.node,
                    resource_version,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        for b in &bindings {
            let pod = ObjectRef {
                kind: Kind::Pod,
                namespace: Some(b.namespace.clone()),
                name: b.name.clone(),
            };
            self.allow(
                &user,
                on(verbs::CREATE, &pod).on_subresource("binding"),
                None,
            )
            .await?;
        }
        let outcomes = self.server.bind(&bindings).await?;
        let results = bindings
            .into_iter()
            .zip(outcomes)
            .map(|(b, outcome)| {
                let (refusal, rev) = match outcome {
                    BindOutcome::Bound(rev) => (v1::BindRefusal::None, rev.to_string()),
                    BindOutcome::Refused(r) => (
                        match r {
                            Refusal::NotFound => v1::BindRefusal::NotFound,
                            Refusal::Conflict => v1::BindRefusal::Conflict,
                            Refusal::AlreadyBound => v1::BindRefusal::AlreadyBound,
                            Refusal::Terminating => v1::BindRefusal::Terminating,
                        },
                        String::new(),
                    ),
                };
                v1::BindResult {
                    namespace: b.namespace,
                    name: b.name,
                    refusal: refusal.into(),
                    resource_version: rev,
                }
            })
            .collect();
        Ok(Response::new(v1::BindResponse { results }))
    }

    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        let user = self.caller(&request).await?;
        let request = request.into_inner();
        let node = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: request.node.clone(),
        };
        self.allow(
            &user,
            on(verbs::UPDATE, &node).on_subresource("status"),
            None,
        )
        .await?;
        let pods = request.pods.into_iter().map(|p| {
            (
                (p.namespace, p.name),
                Usage {
                    cpu_millicores: p.cpu_millicores,
                    memory_bytes: p.memory_bytes,
                },
            )
        });
        self.server
            .heartbeat(&request.node, pods, request.programmed_revision)
            .await?;
        Ok(Response::new(v1::HeartbeatResponse {}))
    }

    async fn wait_endpoints_programmed(
        &self,
        request: Request<v1::WaitEndpointsProgrammedRequest>,
    ) -> Result<Response<v1::WaitEndpointsProgrammedResponse>, Status> {
        let user = self.caller(&request).await?;
        // A node asks as the writer of its own Node's status (the node
        // authorizer allows it); anyone else must be allowed to update
        // every node's status (administrators).
        let node = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: user.node().unwrap_or_default().to_owned(),
        };
        let attributes = if node.name.is_empty() {
            Attributes::of_kind(verbs::UPDATE, Kind::Node, None, None)
        } else {
            on(verbs::UPDATE, &node)
        };
        self.allow(&user, attributes.on_subresource("status"), None)
            .await?;
        let request = request.into_inner();
        let timeout =
            std::time::Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
        let lagging = self
            .server
            .wait_endpoints_programmed(request.revision, timeout)
            .await?;
        Ok(Response::new(v1::WaitEndpointsProgrammedResponse {
            programmed: lagging.is_empty(),
            lagging,
        }))
    }

    type LogsStream = Forwarded<v1::LogChunk>;

    async fn logs(
        &self,
        request: Request<v1::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let user = self.caller(&request).await?;
        let request = request.into_inner();
        debug!(namespace = %request.namespace, pod = %request.name, follow = request.follow, "logs");
        self.allow(
            &user,
            pod_attributes(verbs::GET, &request.namespace, &request.name).on_subresource("log"),
            None,
        )
        .await?;
        Ok(Response::new(self.server.logs(request).await?))
    }

    type ExecStream = Forwarded<v1::ExecOutput>;

    async fn exec(
        &self,
        request: Request<tonic::Streaming<v1::ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        use futures::StreamExt as _;
        let user = self.caller(&request).await?;
        let mut input = request.into_inner();
        let Some(v1::ExecInput {
            input: Some(Input::Start(start)),
        }) = input.message().await?
        else {
            return Err(Status::invalid_argument(
                "the first exec message must be the start (pod, container, command)",
            ));
        };
        self.allow(
            &user,
            pod_attributes(verbs::CREATE, &start.namespace, &start.name).on_subresource("exec"),
            None,
        )
        .await?;
        // Stdin until the caller closes it or leaves.
        let stdin = input
            .take_while(|item| futures::future::ready(item.is_ok()))
            .filter_map(|item| futures::future::ready(item.ok()));
        Ok(Response::new(self.server.exec(start, stdin).await?))
    }

    async fn import_image(
        &self,
        request: Request<tonic::Streaming<v1::ImageChunk>>,
    ) -> Result<Response<v1::ImportImageResponse>, Status> {
        let user = self.caller(&request).await?;
        let import = Attributes {
            verb: verbs::CREATE.into(),
            resource: "nodes".into(),
            subresource: "images".into(),
            ..Attributes::default()
        };
        self.allow(&user, import, None).await?;
        let images = self.server.import_image(request.into_inner()).await?;
        Ok(Response::new(v1::ImportImageResponse { images }))
    }

    async fn access_review(
        &self,
        request: Request<v1::AccessReviewRequest>,
    ) -> Result<Response<v1::AccessReviewResponse>, Status> {
        let caller = self.caller(&request).await?;
        let request = request.into_inner();
        let a = request.attributes.ok_or_else(|| {
            Status::invalid_argument("an access review names the attributes to check")
        })?;
        if a.verb.is_empty() || a.resource.is_empty() {
            return Err(Status::invalid_argument(
                "an access review needs a verb and a resource (e.g. list pods)",
            ));
        }
        let subject = if request.user.is_empty() {
            if !request.groups.is_empty() {
                return Err(Status::invalid_argument(
                    "groups are given only with a user",
                ));
            }
            caller
        } else {
            let review = Attributes {
                verb: verbs::CREATE.into(),
                api_group: "authorization.k8s.io".into(),
                resource: "subjectaccessreviews".into(),
                ..Attributes::default()
            };
            self.allow(&caller, review, None).await?;
            UserInfo::new(request.user, request.groups)
        };
        let attributes = Attributes {
            verb: a.verb,
            api_group: a.group,
            resource: a.resource,
            subresource: a.subresource,
            namespace: Some(a.namespace).filter(|n| !n.is_empty()),
            name: Some(a.name).filter(|n| !n.is_empty()),
        };
        let decision = self.guard.decide(&subject, &attributes, None).await?;
        let (allowed, reason) = match decision {
            crate::auth::Decision::Allow(r) => (true, r),
            crate::auth::Decision::Deny(r) | crate::auth::Decision::NoOpinion(r) => (false, r),
        };
        Ok(Response::new(v1::AccessReviewResponse { allowed, reason }))
    }

    async fn who_am_i(
        &self,
        request: Request<v1::WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIResponse>, Status> {
        let user = self.caller(&request).await?;
        Ok(Response::new(v1::WhoAmIResponse {
            username: user.name,
            groups: user.groups,
        }))
    }

    async fn request_node_certificate(
        &self,
        request: Request<v1::NodeCertificateRequest>,
    ) -> Result<Response<v1::NodeCertificateResponse>, Status> {
        let user = self.caller(&request).await?;
        let request = request.into_inner();
        let issued = self
            .guard
            .node_certificate(&user, &request.node, &request.csr_pem)
            .await?;
        tracing::info!(node = %request.node, by = %user.name, "issued a node certificate");
        Ok(Response::new(v1::NodeCertificateResponse {
            certificate_pem: issued.certificate_pem,
            ca_pem: issued.ca_pem,
        }))
    }
}
