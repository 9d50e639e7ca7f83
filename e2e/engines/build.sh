#!/usr/bin/env bash
# Builds the training engines' controllers the e2e suite runs for real — JobSet's and Kubeflow
# Trainer's — from their Go modules, and takes their CRDs and Trainer's torch-distributed runtime
# from the same modules. JobSet's controller builds in e2e/controllers (the release pinned there), on
# the dependency graph of Flux's controllers, so that what they share compiles once; Trainer's with
# its own go.mod and go.sum (as the project builds it): it needs an older Kubernetes API than Flux.
#
#   e2e/engines/build.sh        prints the folder that holds them (.e2e/engines/<versions>/)
#
# A folder that was built completely is reused as it is. KubeRay's operator is not built: a
# RayJob's outcome comes from the Ray dashboard's job API on the head pod, which kwok's pods
# without containers cannot serve, so the suite plays KubeRay's part instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
module=$root/e2e/controllers
log() { printf 'engines: %s\n' "$*" >&2; }

JOBSET_VERSION=$(awk '$1 == "sigs.k8s.io/jobset" {print $2}' "$module/go.mod" | head -n 1)
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
(cd "$module" && go build -mod=mod -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$tmp/jobset-controller" sigs.k8s.io/jobset)
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
