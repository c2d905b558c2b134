//! A watch that survives losing its server: on a transport failure or
//! `Unavailable` (a control plane shutting down) it opens the same watch on
//! the next server from the revision of the last event it delivered,
//! skipping the events of that revision it already delivered, so the
//! caller sees neither a gap nor a repeat. When no server takes it again,
//! the stream ends with the error that ended it (a control plane shutting
//! down says from which revision to resume).

use futures_util::StreamExt as _;

use super::{Client, ClientError, Event, EventStream, EventType, WatchFilter, decode, failover};
use crate::grpc::v1;

/// Where a resumed watch starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    /// The revision of the last event delivered (0: none yet).
    revision: i64,
    /// How many events of that revision were delivered.
    delivered: usize,
}

impl Position {
    fn advance(&mut self, revision: i64) {
        if revision == self.revision {
            self.delivered += 1;
        } else {
            *self = Position {
                revision,
                delivered: 1,
            };
        }
    }

    /// The filter to resume `original` with, and how many events of the
    /// resumed revision to skip.
    fn resume(&self, original: &WatchFilter) -> (WatchFilter, usize) {
        if self.revision == 0 {
            return (original.clone(), 0);
        }
        let filter = WatchFilter {
            from_revision: self.revision,
            ..original.clone()
        };
        (filter, self.delivered)
    }
}

struct Resumable {
    client: Client,
    filter: WatchFilter,
    stream: Option<(tonic::Streaming<v1::WatchEvent>, u64)>,
    position: Position,
    /// Events of `position.revision` still to skip after a resume.
    skip: usize,
    /// Reopened without an event since.
    reopened: usize,
    /// What ended the last stream: the answer when no server takes the
    /// watch again (a lone control plane shutting down says where to resume).
    ended: Option<ClientError>,
    done: bool,
}

fn event(raw: v1::WatchEvent) -> Result<Event, ClientError> {
    let kind = match v1::EventType::try_from(raw.r#type) {
        Ok(v1::EventType::Added) => EventType::Added,
        Ok(v1::EventType::Modified) => EventType::Modified,
        Ok(v1::EventType::Deleted) => EventType::Deleted,
        _ => {
            return Err(ClientError::Decode(format!(
                "unknown event type {}",
                raw.r#type
            )));
        }
    };
    Ok(Event {
        kind,
        object: decode(raw.object)?,
        revision: raw.revision,
    })
}

/// Opens the watch `filter` on `client`, resuming on another server when
/// its server is lost.
pub(super) async fn open(client: Client, filter: WatchFilter) -> Result<EventStream, ClientError> {
    let first = client.watch_once(&filter).await?;
    let state = Resumable {
        client,
        filter,
        stream: Some(first),
        position: Position::default(),
        skip: 0,
        reopened: 0,
        ended: None,
        done: false,
    };
    Ok(Box::pin(futures_util::stream::unfold(state, next)))
}

async fn next(mut s: Resumable) -> Option<(Result<Event, ClientError>, Resumable)> {
    loop {
        if s.done {
            return None;
        }
        let Some((stream, generation)) = s.stream.as_mut() else {
            let (filter, skip) = s.position.resume(&s.filter);
            match s.client.watch_once(&filter).await {
                Ok(opened) => {
                    s.stream = Some(opened);
                    s.skip = skip;
                    s.ended = None;
                    continue;
                }
                Err(e) => {
                    s.done = true;
                    let e = s.ended.take().unwrap_or(e);
                    return Some((Err(e), s));
                }
            }
        };
        let generation = *generation;
        match stream.next().await {
            None => return None,
            Some(Ok(raw)) => {
                if s.skip > 0 && raw.revision == s.position.revision {
                    s.skip -= 1;
                    continue;
                }
                s.skip = 0;
                s.reopened = 0;
                s.position.advance(raw.revision);
                return Some((event(raw), s));
            }
            Some(Err(status)) => {
                let servers = s.client.servers.len().await;
                if failover::lost_server(&status) && s.reopened < servers {
                    tracing::debug!(error = %status, revision = s.position.revision, "watch lost its server; resuming");
                    s.client.lost(generation, &status).await;
                    s.stream = None;
                    s.reopened += 1;
                    s.ended = Some(status.into());
                    continue;
                }
                s.done = true;
                return Some((Err(status.into()), s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_at_the_last_revision_skipping_what_was_delivered() {
        let original = WatchFilter {
            from_revision: 7,
            ..WatchFilter::default()
        };
        let mut p = Position::default();
        let (f, skip) = p.resume(&original);
        assert_eq!((f.from_revision, skip), (7, 0));
        p.advance(9);
        p.advance(9);
        let (f, skip) = p.resume(&original);
        assert_eq!((f.from_revision, skip), (9, 2));
        p.advance(12);
        let (f, skip) = p.resume(&original);
        assert_eq!((f.from_revision, skip), (12, 1));
    }
}
