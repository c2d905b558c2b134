//! The compiled eBPF objects, embedded in every binary that drives the data plane.

/// `bpf/from_pod.bpf.c`: the tc program and the maps it shares.
pub static FROM_POD: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/from_pod.bpf.o"));

/// `bpf/sock.bpf.c`: the cgroup sock_addr programs.
pub static SOCK: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sock.bpf.o"));

/// Names of the socket programs, in the order they are attached.
pub const SOCK_PROGRAMS: [&str; 4] = [
    "sock_connect4",
    "sock_sendmsg4",
    "sock_recvmsg4",
    "sock_getpeername4",
];
