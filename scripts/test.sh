#!/usr/bin/env bash
# Installs what jotasu needs (Debian packages, bpffs) and runs every test:
# lints, unit tests, eBPF packet tests and real-traffic tests in network
# namespaces. Run as root: privileged tests fail in CI (CI=true) and announce
# themselves as SKIPPED elsewhere when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh
# kubectl (with kustomize) and helm, which the compatibility tests compare with.
scripts/k8s-clients.sh >/dev/null
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A CI run builds once: incremental caches would only take disk.
if [[ "${CI:-}" == true ]]; then export CARGO_INCREMENTAL=0; fi
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build --workspace --bins --locked
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line over all test binaries, in the plain form CI reads.
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
