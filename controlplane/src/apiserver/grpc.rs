//! The gRPC surface of [`ApiServer`]: message translation only.

use std::pin::Pin;

use futures::Stream;
use jotasu_api::grpc::v1::{self, api_server::Api};
use jotasu_api::{Kind, LabelSelector, ObjectRef};
use tonic::{Request, Response, Status};
use tracing::debug;

use super::ApiServer;
use super::bind::{BindOutcome, Binding, Refusal};
use super::error::ApiServerError;
use super::heartbeat::Usage;
use super::proxy::Forwarded;
use super::watch::WatchSpec;
use crate::store::Store;

/// The tonic service: `ApiServer<S>` behind `jotasu.v1.Api`.
#[derive(Debug)]
pub struct GrpcApi<S>(pub ApiServer<S>);

impl<S> GrpcApi<S> {
    /// Wraps a server.
    pub fn new(server: ApiServer<S>) -> Self {
        Self(server)
    }
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

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl<S: Store> Api for GrpcApi<S> {
    async fn apply(
        &self,
        request: Request<v1::ApplyRequest>,
    ) -> Result<Response<v1::ApplyResponse>, Status> {
        let request = request.into_inner();
        let objects: Vec<String> = request.objects.into_iter().map(|o| o.json).collect();
        let applied = self.0.apply(&objects, request.dry_run).await?;
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
        let r = typed(request.into_inner().r#ref)?;
        let json = self.0.get(&r).await?;
        Ok(Response::new(v1::Object { json }))
    }

    async fn list(
        &self,
        request: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ListResponse>, Status> {
        let request = request.into_inner();
        let kind = kind(&request.kind)?;
        let selector = selector(&request.label_selector)?;
        let ns = namespace(&request.namespace);
        let (items, revision) = match request.node.as_str() {
            "" => self.0.list(kind, ns, &selector).await?,
            node => self.0.list_for_node(kind, ns, &selector, node).await?,
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
        let request = request.into_inner();
        let r = typed(request.r#ref)?;
        let deleted = self
            .0
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
        let request = request.into_inner();
        let kinds = request
            .kinds
            .iter()
            .map(|k| kind(k))
            .collect::<Result<Vec<_>, _>>()?;
        let spec = WatchSpec {
            kinds,
            namespace: namespace(&request.namespace).map(str::to_owned),
            selector: selector(&request.label_selector)?,
            from_revision: u64::try_from(request.from_revision)
                .map_err(|_| Status::invalid_argument("from_revision must not be negative"))?,
            node: Some(request.node).filter(|n| !n.is_empty()),
        };
        debug!(?spec, "watch");
        let rx = self.0.watch(spec).await?;
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
        let object = request
            .into_inner()
            .object
            .ok_or_else(|| Status::invalid_argument("missing object"))?;
        let updated = self.0.update_status(&object.json).await?;
        Ok(Response::new(v1::Object::encode(&updated)))
    }

    async fn scale(
        &self,
        request: Request<v1::ScaleRequest>,
    ) -> Result<Response<v1::Object>, Status> {
        let request = request.into_inner();
        let r = typed(request.r#ref)?;
        let object = self.0.scale(&r, request.replicas).await?;
        Ok(Response::new(v1::Object::encode(&object)))
    }

    async fn bind(
        &self,
        request: Request<v1::BindRequest>,
    ) -> Result<Response<v1::BindResponse>, Status> {
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
        let outcomes = self.0.bind(&bindings).await?;
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
        let request = request.into_inner();
        let pods = request.pods.into_iter().map(|p| {
            (
                (p.namespace, p.name),
                Usage {
                    cpu_millicores: p.cpu_millicores,
                    memory_bytes: p.memory_bytes,
                },
            )
        });
        self.0.heartbeat(&request.node, pods).await?;
        Ok(Response::new(v1::HeartbeatResponse {}))
    }

    type LogsStream = Forwarded<v1::LogChunk>;

    async fn logs(
        &self,
        request: Request<v1::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let request = request.into_inner();
        debug!(namespace = %request.namespace, pod = %request.name, follow = request.follow, "logs");
        Ok(Response::new(self.0.logs(request).await?))
    }

    type ExecStream = Forwarded<v1::ExecOutput>;

    async fn exec(
        &self,
        request: Request<tonic::Streaming<v1::ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        Ok(Response::new(self.0.exec(request.into_inner()).await?))
    }

    async fn import_image(
        &self,
        request: Request<tonic::Streaming<v1::ImageChunk>>,
    ) -> Result<Response<v1::ImportImageResponse>, Status> {
        let images = self.0.import_image(request.into_inner()).await?;
        Ok(Response::new(v1::ImportImageResponse { images }))
    }

    async fn access_review(
        &self,
        _request: Request<v1::AccessReviewRequest>,
    ) -> Result<Response<v1::AccessReviewResponse>, Status> {
        Err(Status::unimplemented("access reviews are not served yet"))
    }

    async fn who_am_i(
        &self,
        _request: Request<v1::WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIResponse>, Status> {
        Err(Status::unimplemented("whoami is not served yet"))
    }

    async fn request_node_certificate(
        &self,
        _request: Request<v1::NodeCertificateRequest>,
    ) -> Result<Response<v1::NodeCertificateResponse>, Status> {
        Err(Status::unimplemented(
            "node certificates are not issued yet",
        ))
    }
}
