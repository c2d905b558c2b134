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
  # The overlay benchmark: TCP throughput and request/response rate between pods.
  iperf3 sockperf
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
fi

# bpffs: pinned maps and links live here.
if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
  echo "bootstrap: mounting bpffs on /sys/fs/bpf"
  $SUDO mkdir -p /sys/fs/bpf
  $SUDO mount -t bpf bpf /sys/fs/bpf
fi

# Rust toolchain: the machine's own rustup toolchain is expected.
if ! command -v cargo >/dev/null 2>&1; then
  echo "bootstrap: cargo not found; install the Rust toolchain (rustup) first" >&2
  exit 1
fi
