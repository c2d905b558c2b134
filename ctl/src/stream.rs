//! Byte streams between blocking readers (stdin, a file) and the client's
//! async streams: a reader thread sends chunks through a channel that the
//! client consumes as a [`Stream`].

use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use jotasu_api::client::Stream;
use tokio::sync::mpsc;

/// Chunks sent by a reader thread; ends when the reader does.
#[derive(Debug)]
pub struct Chunks(mpsc::Receiver<Vec<u8>>);

impl Chunks {
    /// A stream with nothing in it.
    pub fn empty() -> Self {
        let (_, rx) = mpsc::channel(1);
        Self(rx)
    }
}

impl Stream for Chunks {
    type Item = Vec<u8>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        self.0.poll_recv(cx)
    }
}

/// Where a reader thread leaves the error that stopped it.
pub type ReadError = Arc<Mutex<Option<std::io::Error>>>;

/// Reads `reader` on a thread of its own (a plain thread: a blocked read
/// of stdin must not hold the process when the command is done), in
/// chunks of at most `size` bytes; `sent(total)` runs after each chunk is
/// handed over. A read error ends the stream and is left in the returned
/// slot.
pub fn read_chunks<R>(
    mut reader: R,
    size: usize,
    mut sent: impl FnMut(u64) + Send + 'static,
) -> (Chunks, ReadError)
where
    R: Read + Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    let error: ReadError = Arc::default();
    let slot = Arc::clone(&error);
    std::thread::spawn(move || {
        let mut total = 0u64;
        loop {
            let mut buf = vec![0; size];
            let n = match read_once(&mut reader, &mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    *slot
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    return;
                }
            };
            buf.truncate(n);
            if tx.blocking_send(buf).is_err() {
                return;
            }
            total += n as u64;
            sent(total);
        }
    });
    (Chunks(rx), error)
}

/// One read, retried when interrupted (a short read is passed on at once:
/// stdin's input must not wait for a full chunk).
fn read_once(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The next item of a stream.
pub async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// Takes the error a reader thread left, if any.
pub fn take_error(slot: &ReadError) -> Option<std::io::Error> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_of_a_reader_in_order() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let (mut chunks, error) = read_chunks(std::io::Cursor::new(data.clone()), 4096, |_| {});
        let got = runtime.block_on(async {
            let mut got = Vec::new();
            while let Some(c) = next(&mut chunks).await {
                assert!(c.len() <= 4096);
                got.extend(c);
            }
            got
        });
        assert_eq!(got, data);
        assert!(take_error(&error).is_none());
        let mut empty = Chunks::empty();
        assert!(runtime.block_on(next(&mut empty)).is_none());
    }
}
