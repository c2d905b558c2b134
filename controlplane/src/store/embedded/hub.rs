//! Watch fan-out: committed events are pushed to each subscriber's bounded
//! queue; a subscriber whose queue is full is dropped and its stream ends
//! with [`StoreError::Lagged`] once it has drained what it was given.
use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use futures::Stream;
use tokio::sync::mpsc;

use crate::store::{Revision, StoreError, WatchEvent};

/// The subscribers of one store, and the last revision published to them.
#[derive(Debug, Default)]
pub(super) struct Hub {
    subs: Vec<Subscriber>,
    /// Every revision up to this one has been published (and committed).
    pub last_published: Revision,
}

#[derive(Debug)]
struct Subscriber {
    prefix: Vec<u8>,
    from_revision: Revision,
    prev_kv: bool,
    tx: mpsc::Sender<Vec<WatchEvent>>,
    lagged: Arc<AtomicBool>,
}

impl Hub {
    /// A hub whose history ends at `revision`.
    pub fn new(revision: Revision) -> Self {
        Self {
            subs: Vec::new(),
            last_published: revision,
        }
    }

    /// Registers a subscriber for live events with revision `>= from_revision`.
    pub fn subscribe(
        &mut self,
        prefix: &[u8],
        from_revision: Revision,
        prev_kv: bool,
        capacity: usize,
    ) -> (mpsc::Receiver<Vec<WatchEvent>>, Arc<AtomicBool>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let lagged = Arc::new(AtomicBool::new(false));
        self.subs.push(Subscriber {
            prefix: prefix.to_vec(),
            from_revision,
            prev_kv,
            tx,
            lagged: lagged.clone(),
        });
        (rx, lagged)
    }

    /// Pushes the committed events of `revision` to every interested
    /// subscriber, never waiting: a full queue drops the subscriber.
    pub fn publish(&mut self, revision: Revision, events: &[WatchEvent]) {
        self.last_published = revision;
        self.subs.retain(|sub| {
            if revision < sub.from_revision {
                return !sub.tx.is_closed();
            }
            let batch = filter(events, &sub.prefix, sub.prev_kv);
            if batch.is_empty() {
                return !sub.tx.is_closed();
            }
            match sub.tx.try_send(batch) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(
                        prefix = %sub.prefix.escape_ascii(),
                        revision,
                        "watcher fell behind; dropping it (it will resume)"
                    );
                    sub.lagged.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// How many watchers are registered.
    pub fn len(&self) -> usize {
        self.subs.len()
    }
}

/// The events of `events` under `prefix`, without prev_kv unless wanted.
pub(super) fn filter(events: &[WatchEvent], prefix: &[u8], prev_kv: bool) -> Vec<WatchEvent> {
    events
        .iter()
        .filter(|e| e.kv.key.starts_with(prefix))
        .map(|e| {
            let mut e = e.clone();
            if !prev_kv {
                e.prev_kv = None;
            }
            e
        })
        .collect()
}

/// A watch's stream: the replayed history first, then live batches.
#[derive(Debug)]
pub(super) struct Receiver {
    pending: VecDeque<WatchEvent>,
    rx: mpsc::Receiver<Vec<WatchEvent>>,
    lagged: Arc<AtomicBool>,
    /// The first revision not yet fully delivered.
    resume_from: Revision,
    done: bool,
}

impl Receiver {
    pub fn new(
        replay: Vec<WatchEvent>,
        rx: mpsc::Receiver<Vec<WatchEvent>>,
        lagged: Arc<AtomicBool>,
        from_revision: Revision,
    ) -> Self {
        Self {
            pending: replay.into(),
            rx,
            lagged,
            resume_from: from_revision,
            done: false,
        }
    }

    fn yield_event(&mut self, e: WatchEvent) -> Poll<Option<Result<WatchEvent, StoreError>>> {
        // Only past a revision once its last event is handed out.
        if self
            .pending
            .front()
            .is_none_or(|next| next.revision != e.revision)
        {
            self.resume_from = e.revision + 1;
        }
        Poll::Ready(Some(Ok(e)))
    }
}

impl Stream for Receiver {
    type Item = Result<WatchEvent, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(e) = this.pending.pop_front() {
            return this.yield_event(e);
        }
        loop {
            match this.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(batch)) => {
                    this.pending.extend(batch);
                    if let Some(e) = this.pending.pop_front() {
                        return this.yield_event(e);
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    let resume_from = this.resume_from;
                    let err = if this.lagged.load(Ordering::Acquire) {
                        StoreError::Lagged { resume_from }
                    } else {
                        StoreError::WatchClosed { resume_from }
                    };
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }
}
