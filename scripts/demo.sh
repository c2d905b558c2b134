#!/usr/bin/env bash
# Installs what jotasu needs and runs the main demo: a three-node cluster in
# network namespaces, an app spread over the nodes, requests balanced
# round-robin across nodes by jotasu's eBPF data plane and overlay, scaling
# out and in, and a node stopped while the app heals onto the others.
# Everything it creates is removed when it ends (Ctrl-C included). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
cargo build --release --locked --workspace --bins
exec target/release/jotasu-demo "$@"
