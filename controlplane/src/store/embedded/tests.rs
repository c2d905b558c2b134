//! Embedded-only behavior: reopening, crash safety, bounded file, lag.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
    time::Duration,
};

use futures::StreamExt as _;

use super::{EmbeddedOptions, EmbeddedStore};
use crate::store::{Store, StoreError, WatchOptions};

const CRASH_ENV: &str = "JOTASU_STORE_CRASH_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_finds_everything_and_revision_continues() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.redb");
    let s = EmbeddedStore::open(&path, EmbeddedOptions::default()).await?;
    s.put(b"/r/a", b"1").await?;
    let rb = s.put(b"/r/b", b"2").await?;
    s.delete(b"/r/a").await?;
    s.compact(rb).await?;
    let last = s.current_revision().await?;
    s.close().await?;

    let s = EmbeddedStore::open(&path, EmbeddedOptions::default()).await?;
    assert_eq!(s.current_revision().await?, last);
    assert_eq!(s.compact_revision().await?, rb);
    assert!(s.get(b"/r/a").await?.is_none());
    assert_eq!(
        s.get(b"/r/b").await?.map(|kv| kv.value),
        Some(b"2".to_vec())
    );
    // History kept across the restart: a watch replays it.
    let mut w = s.watch(b"/r/", WatchOptions::from_revision(rb)).await?;
    assert_eq!(w.next().await.transpose()?.map(|e| e.revision), Some(rb));
    assert_eq!(s.put(b"/r/c", b"3").await?, last + 1);
    Ok(())
}

/// The child half of [`acknowledged_writes_survive_kill_9`]: writes until
/// killed, printing each key once its write returned Ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() -> anyhow::Result<()> {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return Ok(()); // only runs as the crash test's child
    };
    let s = EmbeddedStore::open(&path, EmbeddedOptions::default()).await?;
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let key = format!("/crash/{i:08}");
        s.put(key.as_bytes(), &[7u8; 512]).await?;
        writeln!(out, "ACK {key}")?;
        out.flush()?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("crash.redb");
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "store::embedded::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let mut acked = Vec::new();
    while acked.len() < 300 {
        let Some(line) = lines.next().transpose()? else {
            anyhow::bail!("child ended after {} acks", acked.len());
        };
        if let Some(key) = line.strip_prefix("ACK ") {
            acked.push(key.to_string());
        }
    }
    child.kill()?; // SIGKILL, midway through writing
    child.wait()?;
    // Whatever the child printed before dying was acknowledged too.
    for line in lines {
        if let Some(key) = line?.strip_prefix("ACK ") {
            acked.push(key.to_string());
        }
    }
    let s = EmbeddedStore::open(&path, EmbeddedOptions::default()).await?;
    for key in &acked {
        assert!(
            s.get(key.as_bytes()).await?.is_some(),
            "acknowledged {key} lost"
        );
    }
    let stored = s.range(b"/crash/", None).await?.kvs.len();
    assert!(
        stored >= acked.len(),
        "{stored} stored < {} acked",
        acked.len()
    );
    eprintln!(
        "{} acknowledged writes survived kill -9 ({stored} stored)",
        acked.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_stays_bounded_under_compaction() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bounded.redb");
    let options = EmbeddedOptions {
        retention: 1_000,
        file_compaction_every: 4,
        ..EmbeddedOptions::default()
    };
    let s = EmbeddedStore::open(&path, options).await?;
    let value = vec![1u8; 256];
    let mut sizes = Vec::new();
    for round in 0..20 {
        // 1000 revisions per round over a working set of 100 keys; writes
        // run concurrently so they are group-committed.
        let mut tasks = Vec::new();
        for t in 0..10 {
            let (s, value) = (s.clone(), value.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    s.put(format!("/b/{t}/{}", i % 10).as_bytes(), &value)
                        .await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        sizes.push(std::fs::metadata(&path)?.len());
        if round == 19 {
            assert_eq!(s.current_revision().await?, 20_000);
        }
    }
    let compact = s.compact_revision().await?;
    assert!(
        compact >= 20_000 - 1_000 - 1_000 / 8,
        "compacted to {compact}"
    );
    let max = sizes.iter().copied().max().unwrap_or(0);
    let last = sizes.last().copied().unwrap_or(0);
    eprintln!("file sizes per 1000 revisions: {sizes:?}");
    // 1000 retained events of ~600 bytes plus 100 keys: a few MiB at most.
    assert!(max < 16 << 20, "file grew to {max} bytes");
    assert!(
        last <= sizes[4].max(4 << 20),
        "file still growing: {sizes:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_lags_then_resumes_without_loss() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = EmbeddedOptions {
        watch_buffer: 8,
        ..EmbeddedOptions::default()
    };
    let s = EmbeddedStore::open(dir.path().join("lag.redb"), options).await?;
    let mut w = s.watch(b"/l/", WatchOptions::default()).await?;
    let mut written = Vec::new();
    for i in 0..50 {
        written.push(s.put(format!("/l/{i}").as_bytes(), b"v").await?);
    }
    let mut seen = Vec::new();
    let resume_from = loop {
        match tokio::time::timeout(Duration::from_secs(5), w.next()).await? {
            Some(Ok(e)) => seen.push(e.revision),
            Some(Err(StoreError::Lagged { resume_from })) => break resume_from,
            other => anyhow::bail!("expected Lagged, got {other:?}"),
        }
    };
    assert_eq!(seen.len(), 8, "the buffer is delivered before the error");
    assert!(w.next().await.is_none(), "an error ends the stream");
    assert_eq!(s.watcher_count(), 0, "the lagged watcher was dropped");
    let mut w = s
        .watch(b"/l/", WatchOptions::from_revision(resume_from))
        .await?;
    while seen.len() < written.len() {
        let e = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("ended"))??;
        seen.push(e.revision);
    }
    assert_eq!(seen, written, "no event lost or repeated across the resume");
    Ok(())
}

#[tokio::test]
async fn rejects_bad_requests() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let s = EmbeddedStore::open(dir.path().join("bad.redb"), EmbeddedOptions::default()).await?;
    assert!(matches!(
        s.put(b"", b"v").await,
        Err(StoreError::InvalidArgument(_))
    ));
    let r = s.put(b"/k", b"v").await?;
    assert!(matches!(
        s.compact(r + 1).await,
        Err(StoreError::FutureRevision { .. })
    ));
    // Watching a future revision waits for it.
    let mut w = s.watch(b"/", WatchOptions::from_revision(r + 2)).await?;
    s.put(b"/k", b"1").await?;
    let r2 = s.put(b"/k", b"2").await?;
    assert_eq!(w.next().await.transpose()?.map(|e| e.revision), Some(r2));
    Ok(())
}
