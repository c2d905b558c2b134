//! The content store: blobs written by digest (skipped when present) and
//! read back whole.

use std::collections::HashMap;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::{
    InfoRequest, ReadContentRequest, WriteAction, WriteContentRequest,
};
use futures::StreamExt as _;

use super::error::rpc;
use super::{Containerd, Result};

/// Bytes per write message.
const CHUNK: usize = 1 << 20;

impl Containerd {
    /// Whether the blob `digest` is in the content store.
    pub(crate) async fn has_blob(&self, digest: &str) -> Result<bool> {
        match ContentClient::new(self.channel())
            .info(self.req(InfoRequest {
                digest: digest.to_owned(),
            }))
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(rpc("content info", digest)(s)),
        }
    }

    /// Writes `data` as the blob `digest` with `labels`, unless present.
    pub(crate) async fn write_blob(
        &self,
        digest: &str,
        data: &[u8],
        labels: HashMap<String, String>,
        lease: &str,
    ) -> Result<()> {
        if self.has_blob(digest).await? {
            if !labels.is_empty() {
                self.label_blob(digest, labels).await?;
            }
            return Ok(());
        }
        let total = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let reference = format!("jotasu-import-{digest}");
        let mut messages = Vec::new();
        let mut offset = 0usize;
        for chunk in data.chunks(CHUNK) {
            messages.push(WriteContentRequest {
                action: WriteAction::Write.into(),
                r#ref: reference.clone(),
                total,
                expected: digest.to_owned(),
                offset: i64::try_from(offset).unwrap_or(i64::MAX),
                data: chunk.to_vec(),
                labels: HashMap::new(),
            });
            offset += chunk.len();
        }
        messages.push(WriteContentRequest {
            action: WriteAction::Commit.into(),
            r#ref: reference,
            total,
            expected: digest.to_owned(),
            offset: total,
            data: Vec::new(),
            labels,
        });
        let mut responses = ContentClient::new(self.channel())
            .write(self.leased(futures::stream::iter(messages), lease))
            .await
            .map_err(rpc("content write", digest))?
            .into_inner();
        while let Some(r) = responses.next().await {
            match r {
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::AlreadyExists => return Ok(()),
                Err(s) => return Err(rpc("content write", digest)(s)),
            }
        }
        Ok(())
    }

    async fn label_blob(&self, digest: &str, labels: HashMap<String, String>) -> Result<()> {
        use containerd_client::services::v1::{Info, UpdateRequest};
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        ContentClient::new(self.channel())
            .update(self.req(UpdateRequest {
                info: Some(Info {
                    digest: digest.to_owned(),
                    labels,
                    ..Info::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
            }))
            .await
            .map_err(rpc("content update", digest))?;
        Ok(())
    }

    /// Reads the whole blob `digest`.
    pub(crate) async fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut stream = ContentClient::new(self.channel())
            .read(self.req(ReadContentRequest {
                digest: digest.to_owned(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(rpc("content read", digest))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(rpc("content read", digest))?.data);
        }
        Ok(out)
    }
}
