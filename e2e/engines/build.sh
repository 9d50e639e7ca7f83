#!/usr/bin/env bash
# Builds the training engines' controllers the e2e suite runs for real — JobSet's and Kubeflow
# Trainer's — from their Go modules, each with its own go.mod and go.sum (built as the projects
# build them), and takes their CRDs and Trainer's torch-distributed runtime from the same modules.
#
#   e2e/engines/build.sh        prints the folder that holds them (.e2e/engines/<versions>/)
#
# A folder that was built completely is reused as it is. KubeRay's operator is not built: a
# RayJob's outcome comes from the Ray dashboard's job API on the head pod, which kwok's pods
# without containers cannot serve, so the suite plays KubeRay's part instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { printf 'engines: %s\n' "$*" >&2; }

JOBSET_VERSION=v0.11.1
TRAINER_VERSION=v2.2.0
out=$root/.e2e/engines/jobset-$JOBSET_VERSION-trainer-$TRAINER_VERSION
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi
started=$SECONDS
dir_of() { go mod download -json "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'; }
jobset=$(dir_of "sigs.k8s.io/jobset@$JOBSET_VERSION")
trainer=$(dir_of "github.com/kubeflow/trainer/v2@$TRAINER_VERSION")
tmp=$out.partial
rm -rf "$tmp"
mkdir -p "$tmp/crds"
log "building the JobSet controller $JOBSET_VERSION and Kubeflow Trainer's controller manager $TRAINER_VERSION"
(cd "$jobset" && go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$tmp/jobset-controller" .)
(cd "$trainer" && go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$tmp/trainer-controller-manager" ./cmd/trainer-controller-manager)
cp "$jobset"/config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml "$tmp/crds/"
cp "$trainer"/manifests/base/crds/trainer.kubeflow.org_*.yaml "$tmp/crds/"
cp "$trainer"/manifests/base/runtimes/torch_distributed.yaml "$tmp/"
{
  echo "jobset $JOBSET_VERSION"
  echo "trainer $TRAINER_VERSION"
  echo "go $(go env GOVERSION)"
  echo "build_seconds $((SECONDS - started))"
} >"$tmp/VERSIONS"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
echo "$out"
