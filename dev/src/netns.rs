//! [`NetNs`]: a named network namespace that is deleted on drop; [`enter`]
//! runs a program in a named namespace; [`veth_to_bridge`] plugs one into a
//! bridge.
use std::{ffi::OsStr, fs::File, net::Ipv4Addr, os::fd::AsRawFd as _, process::Command};

use crate::cmd;
use crate::error::{DevError, Result};

/// A network namespace made with `ip netns add`, deleted (with every interface
/// inside it) when dropped.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates namespace `name` with `lo` up.
    pub fn new(name: &str) -> Result<Self> {
        cmd::ip(&["netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        cmd::ip(&full)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        cmd::run(
            self.command("sysctl")
                .args(["-qw", &format!("{key}={value}")]),
        )?;
        Ok(())
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `f` on a dedicated thread that has entered the namespace, so the
    /// caller's own thread never changes namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        run_in(&self.name, f)
    }
}

/// Runs `f` on a dedicated thread inside the named namespace (`/run/netns/NAME`).
///
/// Unlike `ip netns exec`, this keeps the caller's mounts: `ip netns exec`
/// remounts `/sys` for the namespace, which hides `/sys/fs/bpf`, so anything
/// that opens pinned maps must enter the namespace this way. A panic in `f`
/// goes on in the caller's thread.
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).map_err(DevError::io("opening", &path))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a namespace fd we hold; affects only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(DevError::io("entering", &path)(
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A command that runs `program` in the network namespace `name`
/// (`/run/netns/NAME`) through nsenter: only the network namespace is
/// entered (`ip netns exec` would also remount /sys, hiding bpffs) and the
/// program is exec'd, so the child's PID is the program's.
pub fn enter(name: &str, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{name}"))
        .arg("--")
        .arg(program);
    c
}

/// A veth pair, `a_if` in namespace `a` and `b_if` in `b`. Both ends are
/// made in their namespaces: nothing ever appears in the root namespace
/// (which may have an `eth0` of its own).
pub fn veth_pair(a: &NetNs, a_if: &str, b: &NetNs, b_if: &str) -> Result<()> {
    cmd::ip(&[
        "link",
        "add",
        "name",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    Ok(())
}

/// Plugs namespace `ns` into the bridge `br0` of namespace `underlay`: a
/// veth pair, `host` in `ns` with address `ip`/24, `<host>b` on the bridge.
pub fn veth_to_bridge(underlay: &NetNs, ns: &NetNs, host: &str, ip: Ipv4Addr) -> Result<()> {
    let peer = format!("{host}b");
    veth_pair(ns, host, underlay, &peer)?;
    underlay.ip(&["link", "set", &peer, "master", "br0", "up"])?;
    ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", host])?;
    ns.ip(&["link", "set", host, "up"])?;
    Ok(())
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = cmd::ip(&["netns", "del", &self.name]) {
            eprintln!("cleanup: deleting netns {}: {e:#}", self.name);
        }
    }
}
