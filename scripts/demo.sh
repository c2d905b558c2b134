#!/usr/bin/env bash
# Installs what jotasu needs and runs the main demo: `jotactl dev up` starts a
# three-node cluster in network namespaces, then an app is spread over the
# nodes, its requests balanced round-robin across nodes by jotasu's eBPF data
# plane and overlay, scaled out and in, and one node is stopped while the app
# heals onto the others. `jotactl dev down` removes everything at the end
# (Ctrl-C included). Run as root.
#
#   scripts/demo.sh [--replicas R] [--requests Q]     (JOTASU_DEMO_NODES=N: nodes)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
cargo build --release --locked --workspace --bins
export PATH="$PWD/target/release:$PATH"

name=demo
nodes="${JOTASU_DEMO_NODES:-3}"
trap 'jotactl dev down --name "$name" >/dev/null 2>&1 || true' EXIT

echo "== \$ jotactl dev up --nodes $nodes --name $name"
jotactl dev up --nodes "$nodes" --name "$name"
jotasu-demo --cluster "$name" "$@"
echo
echo "== \$ jotactl dev down --name $name"
jotactl dev down --name "$name"
trap - EXIT
