//! The allocator against a temporary directory: round-robin, idempotence,
//! release, exhaustion, GC, crash leftovers, threads and a foreign lock.
use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::Arc,
    thread,
};

use super::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn range(a: &str, b: &str) -> Range {
    Range::new(ip(a), ip(b)).unwrap()
}

fn open(root: &Path, r: Range) -> Allocator {
    Allocator::open(root, "pods", r).unwrap()
}

#[test]
fn allocates_round_robin_and_idempotently() {
    let root = tempfile::tempdir().unwrap();
    let a = open(root.path(), range("10.244.0.2", "10.244.0.254"));
    assert_eq!(a.allocate("c1", "eth0").unwrap(), ip("10.244.0.2"));
    assert_eq!(a.allocate("c2", "eth0").unwrap(), ip("10.244.0.3"));
    // Same attachment, same address; another ifname is another attachment.
    assert_eq!(a.allocate("c1", "eth0").unwrap(), ip("10.244.0.2"));
    assert_eq!(a.allocate("c1", "net1").unwrap(), ip("10.244.0.4"));
    assert_eq!(a.lookup("c1", "eth0").unwrap(), Some(ip("10.244.0.2")));
    assert_eq!(a.lookup("c9", "eth0").unwrap(), None);
    let dir = root.path().join("pods");
    assert_eq!(a.dir(), dir);
    assert_eq!(
        fs::read_to_string(dir.join("10.244.0.3")).unwrap(),
        "c2\neth0\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("last_reserved")).unwrap(),
        "10.244.0.4\n"
    );
    assert_eq!(a.free().unwrap(), 250);
    let listed = a.allocations().unwrap();
    let want = [
        ("10.244.0.2", "c1", "eth0"),
        ("10.244.0.3", "c2", "eth0"),
        ("10.244.0.4", "c1", "net1"),
    ];
    assert_eq!(listed.len(), 3);
    for (got, (i, c, f)) in listed.iter().zip(want) {
        assert_eq!(
            (got.ip, got.container_id.as_str(), got.ifname.as_str()),
            (ip(i), c, f)
        );
    }
}

#[test]
fn release_then_reallocate_goes_round_the_range_first() {
    let root = tempfile::tempdir().unwrap();
    let a = open(root.path(), range("10.0.0.2", "10.0.0.4"));
    assert_eq!(a.allocate("c1", "eth0").unwrap(), ip("10.0.0.2"));
    assert_eq!(a.release("c1", "eth0").unwrap(), vec![ip("10.0.0.2")]);
    let twice = a.release("c1", "eth0").unwrap();
    assert!(twice.is_empty(), "DEL twice succeeds: {twice:?}");
    assert!(a.release("never", "eth0").unwrap().is_empty());
    assert_eq!(a.lookup("c1", "eth0").unwrap(), None);
    // The released .2 comes back only after the rest of the range.
    assert_eq!(a.allocate("c2", "eth0").unwrap(), ip("10.0.0.3"));
    assert_eq!(a.allocate("c3", "eth0").unwrap(), ip("10.0.0.4"));
    assert_eq!(a.allocate("c1", "eth0").unwrap(), ip("10.0.0.2"));
    assert_eq!(a.free().unwrap(), 0);
    // The search resumes after .2 (the last reserved): .3 is held, .4 freed.
    assert_eq!(a.release("c3", "eth0").unwrap(), vec![ip("10.0.0.4")]);
    assert_eq!(a.free().unwrap(), 1);
    assert_eq!(a.allocate("c5", "eth0").unwrap(), ip("10.0.0.4"));
}

#[test]
fn round_robin_survives_reopening() {
    let root = tempfile::tempdir().unwrap();
    let r = range("10.0.0.2", "10.0.0.9");
    open(root.path(), r).allocate("c1", "eth0").unwrap();
    open(root.path(), r).release("c1", "eth0").unwrap();
    assert_eq!(
        open(root.path(), r).allocate("c2", "eth0").unwrap(),
        ip("10.0.0.3")
    );
}

#[test]
fn an_exhausted_range_is_code_102_naming_network_and_size() {
    let root = tempfile::tempdir().unwrap();
    let a = open(root.path(), range("10.0.0.2", "10.0.0.3"));
    a.allocate("c1", "eth0").unwrap();
    a.allocate("c2", "eth0").unwrap();
    let e = a.allocate("c3", "eth0").unwrap_err();
    assert_eq!(e.code, Code::RangeExhausted);
    for part in [
        "\"pods\"",
        "all 2 addresses",
        "10.0.0.2-10.0.0.3",
        "larger subnet",
        "GC",
    ] {
        assert!(e.msg.contains(part), "{part:?} not in {e}");
    }
    assert_eq!(a.free().unwrap(), 0);
    // The holders keep theirs.
    assert_eq!(a.allocate("c2", "eth0").unwrap(), ip("10.0.0.3"));
}

#[test]
fn gc_keeps_only_valid_attachments_and_crash_leftovers() {
    let root = tempfile::tempdir().unwrap();
    let a = open(root.path(), range("10.0.0.2", "10.0.0.20"));
    for c in ["c1", "c2", "c3"] {
        a.allocate(c, "eth0").unwrap();
    }
    let tmp = a.dir().join(".tmp-10.0.0.9-4242");
    fs::write(&tmp, "c9\neth").unwrap();
    let valid = vec![
        ("c2".to_owned(), "eth0".to_owned()),
        ("c3".to_owned(), "net1".to_owned()),
    ];
    let released = a.gc(&valid).unwrap();
    let released: Vec<(Ipv4Addr, &str)> = released
        .iter()
        .map(|r| (r.ip, r.container_id.as_str()))
        .collect();
    assert_eq!(
        released,
        vec![(ip("10.0.0.2"), "c1"), (ip("10.0.0.4"), "c3")]
    );
    let left: Vec<Ipv4Addr> = a.allocations().unwrap().iter().map(|r| r.ip).collect();
    assert_eq!(left, vec![ip("10.0.0.3")]);
    assert!(!tmp.exists(), "GC removes temporary files");
    assert_eq!(a.gc(&valid).unwrap(), vec![]);
}

#[test]
fn only_files_named_by_an_address_are_allocations() {
    let root = tempfile::tempdir().unwrap();
    let a = open(root.path(), range("10.0.0.2", "10.0.0.3"));
    // A crash between writing and renaming leaves a dot-file; other names
    // (lock, last_reserved, notes) are not addresses.
    fs::write(a.dir().join(".tmp-10.0.0.2-77"), "dead\neth0\n").unwrap();
    fs::write(a.dir().join("README"), "x").unwrap();
    fs::create_dir(a.dir().join("10.0.0.250")).unwrap();
    assert_eq!(a.allocations().unwrap(), vec![]);
    assert_eq!(a.free().unwrap(), 2);
    assert_eq!(a.allocate("c1", "eth0").unwrap(), ip("10.0.0.2"));
}

#[test]
fn an_address_outside_the_range_stays_used_and_listed() {
    let root = tempfile::tempdir().unwrap();
    let wide = open(root.path(), range("10.0.0.2", "10.0.0.9"));
    for c in ["c1", "c2", "c3"] {
        wide.allocate(c, "eth0").unwrap();
    }
    // Range narrowed to .3-.5 while .2 (now outside) is still held; a
    // host-local style file (CRLF, no trailing newline) is read too.
    fs::write(wide.dir().join("10.0.0.5"), "hl\r\neth0").unwrap();
    let narrow = open(root.path(), range("10.0.0.3", "10.0.0.5"));
    let all = narrow.allocations().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        (all[0].ip, all[0].container_id.as_str()),
        (ip("10.0.0.2"), "c1")
    );
    assert_eq!(
        (all[3].container_id.as_str(), all[3].ifname.as_str()),
        ("hl", "eth0")
    );
    assert_eq!(narrow.free().unwrap(), 0);
    assert_eq!(
        narrow.allocate("c9", "eth0").unwrap_err().code,
        Code::RangeExhausted
    );
    assert_eq!(
        narrow.allocate("c1", "eth0").unwrap(),
        ip("10.0.0.2"),
        "still idempotent"
    );
    assert_eq!(narrow.release("c1", "eth0").unwrap(), vec![ip("10.0.0.2")]);
}

#[test]
fn bad_network_names_and_attachments_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let r = range("10.0.0.2", "10.0.0.3");
    for name in ["", "a/b", ".", "..", ".hidden"] {
        let e = Allocator::open(root.path(), name, r).unwrap_err();
        assert_eq!(e.code, Code::InvalidConfig, "{name:?}");
    }
    let a = open(root.path(), r);
    for (c, i) in [
        ("", "eth0"),
        ("c1", ""),
        ("c1\nx", "eth0"),
        ("c1", "eth0\r"),
    ] {
        assert_eq!(
            a.allocate(c, i).unwrap_err().code,
            Code::InvalidEnvironment,
            "{c:?} {i:?}"
        );
    }
    assert_eq!(a.allocations().unwrap(), vec![]);
}

#[test]
fn an_unwritable_directory_is_an_io_error_naming_the_path() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("file");
    fs::write(&file, "").unwrap();
    let e = Allocator::open(&file, "pods", range("10.0.0.2", "10.0.0.3")).unwrap_err();
    assert_eq!(e.code, Code::Io);
    assert!(
        e.msg.contains(&file.display().to_string()) && !e.details.is_empty(),
        "{e}"
    );
}

#[test]
fn twenty_threads_get_twenty_distinct_addresses() {
    let root = Arc::new(tempfile::tempdir().unwrap());
    let r = range("10.244.0.2", "10.244.0.254");
    let threads: Vec<_> = (0..20)
        .map(|n| {
            let root = Arc::clone(&root);
            thread::spawn(move || {
                open(root.path(), r)
                    .allocate(&format!("c{n}"), "eth0")
                    .unwrap()
            })
        })
        .collect();
    let got: BTreeSet<Ipv4Addr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(got.len(), 20, "{got:?}");
    let a = open(root.path(), r);
    assert_eq!(a.allocations().unwrap().len(), 20);
    assert_eq!(a.free().unwrap(), 253 - 20);
    for n in 0..20 {
        assert!(got.contains(&a.lookup(&format!("c{n}"), "eth0").unwrap().unwrap()));
    }
}

#[test]
fn a_lock_held_by_another_process_is_try_again_later() {
    if Command::new("flock").arg("--version").output().is_err() {
        println!(
            "SKIPPED a_lock_held_by_another_process_is_try_again_later: no flock(1) (util-linux)"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let a = open(root.path(), range("10.0.0.2", "10.0.0.3"))
        .with_lock_timeout(Duration::from_millis(200));
    let lock = a.dir().join("lock");
    // flock holds the lock (its own descriptor: -o keeps it from the
    // shell) until killed; the shell says when it is held and waits on
    // stdin, so it ends when the test drops its end.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sh", "-c", "echo held; read x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "held\n");
    let e = a.allocate("c1", "eth0").unwrap_err();
    assert_eq!(e.code, Code::TryAgainLater);
    assert!(e.msg.contains(&lock.display().to_string()), "{e}");
    assert_eq!(
        a.allocations().unwrap_err().code,
        Code::TryAgainLater,
        "readers wait too"
    );
    // A killed holder's lock is released by the kernel.
    holder.kill().unwrap();
    holder.wait().unwrap();
    drop(holder.stdin.take());
    assert_eq!(a.allocate("c1", "eth0").unwrap(), ip("10.0.0.2"));
}
