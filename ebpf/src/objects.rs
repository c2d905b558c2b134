//! The compiled eBPF objects, embedded in every binary that drives the data plane.

/// `bpf/tc.bpf.c`: the tc programs (`from_pod`, `from_overlay`) and the maps they share.
pub static TC: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tc.bpf.o"));

/// `bpf/sock.bpf.c`: the cgroup sock_addr programs.
pub static SOCK: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sock.bpf.o"));

/// Names of the socket programs, in the order they are attached.
pub const SOCK_PROGRAMS: [&str; 4] = [
    "sock_connect4",
    "sock_sendmsg4",
    "sock_recvmsg4",
    "sock_getpeername4",
];
