#!/usr/bin/env bash
# Installs what jotasu needs and runs the main demo: a node with three backend
# pods and a client pod (network namespaces), a service VIP balanced
# round-robin by jotasu's eBPF data plane. Everything it creates is removed
# when it ends (Ctrl-C included). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
cargo build --release --locked --workspace --bins
exec target/release/jotasu-demo "$@"
