#!/usr/bin/env bash
# Creates a kind cluster named modelcycle and loads the controller and example images into it.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=${KIND_CLUSTER:-modelcycle}
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
docker build -t ghcr.io/modelcycle/modelcycle:e2e .
docker build -t ghcr.io/modelcycle/example-trainer:0.1.0 -f examples/sklearn/Dockerfile.trainer examples/sklearn
docker build -t ghcr.io/modelcycle/example-server:0.1.0 -f examples/sklearn/Dockerfile.server examples/sklearn
for image in ghcr.io/modelcycle/modelcycle:e2e ghcr.io/modelcycle/example-trainer:0.1.0 ghcr.io/modelcycle/example-server:0.1.0; do
  kind load docker-image --name "$cluster" "$image"
done
echo "kind cluster $cluster is ready: e2e/kind-suite.sh runs the suite on it"
