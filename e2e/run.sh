#!/usr/bin/env bash
# The e2e suite on a real control plane: builds it from Go modules if needed (cached), brings it
# up on loopback (e2e/cluster.sh), runs the real `modelcycle` binary and chart through every story
# of tests/e2e/ against it, and brings it down again, also when a step fails.
#
#   e2e/run.sh [KUBERNETES_VERSION]        default: the release pinned in e2e/controlplane/go.mod
#
# E2E_ONLY=admission,stories,steady,engines,scale,faults,rbac runs only those phases; E2E_KEEP=1 leaves the
# control plane up afterwards (e2e/cluster.sh down stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"

for tool in go openssl curl python3 helm; do
  command -v "$tool" >/dev/null || { echo "e2e: needs $tool (scripts/install-tools.sh installs Helm)" >&2; exit 1; }
done

started=$SECONDS
e2e/cluster.sh down >/dev/null 2>&1 || true
if [ "${E2E_KEEP:-}" != 1 ]; then
  trap 'e2e/cluster.sh down' EXIT
fi
e2e/cluster.sh up "$@"
# shellcheck disable=SC1091
source .e2e/cluster/env
# Gateway API's CRDs come with its Go module; the e2e suite installs the standard channel.
GATEWAY_API_VERSION=v1.4.1
gateway_api_dir=$(go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
export E2E_GATEWAY_API_CRDS="$gateway_api_dir/config/crd/standard"
# KServe's InferenceService CRD likewise, from its Go module.
KSERVE_VERSION=v0.16.0
kserve_dir=$(go mod download -json "github.com/kserve/kserve@$KSERVE_VERSION" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
export E2E_KSERVE_CRD="$kserve_dir/config/crd/full/serving.kserve.io_inferenceservices.yaml"
# The training engines' CRDs likewise: Kubeflow Trainer's TrainJob and KubeRay's RayJob.
TRAINER_VERSION=v2.2.0
trainer_dir=$(go mod download -json "github.com/kubeflow/trainer/v2@$TRAINER_VERSION" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
export E2E_TRAINJOB_CRD="$trainer_dir/manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml"
KUBERAY_VERSION=v1.5.0
kuberay_dir=$(go mod download -json "github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
export E2E_RAYJOB_CRD="$kuberay_dir/config/crd/bases/ray.io_rayjobs.yaml"
# The judge (Flux's kstatus, upstream kstatus and Argo CD's Lua engine on our objects) and a Git
# server for Flux, from e2e/gitops.
mkdir -p .e2e/gitops
(cd e2e/gitops && go test ./...)
go build -C e2e/gitops -o "$PWD/.e2e/gitops/judge" ./judge
go build -C e2e/gitops -o "$PWD/.e2e/gitops/gitserver" ./gitserver
export E2E_JUDGE="$PWD/.e2e/gitops/judge" E2E_GITSERVER="$PWD/.e2e/gitops/gitserver"
# Flux's source-controller and kustomize-controller, built from their Go modules (cached).
E2E_FLUX=$(e2e/flux/build.sh)
export E2E_FLUX
# JobSet's and Kubeflow Trainer's controllers, built from their Go modules (cached).
E2E_ENGINES=$(e2e/engines/build.sh)
export E2E_ENGINES
echo "e2e: Kubernetes $E2E_KUBERNETES_VERSION ($(tr '\n' ' ' <"$E2E_BIN/VERSIONS")); Flux $(grep controller "$E2E_FLUX/VERSIONS" | tr '\n' ' '); engines $(grep -v build "$E2E_ENGINES/VERSIONS" | tr '\n' ' ')"
status=0
# E2E_FEATURES=heap-profile profiles the controllers the suite starts (dhat-heap-<pid>.json).
cargo test --locked --test e2e ${E2E_FEATURES:+--features "$E2E_FEATURES"} || status=$?
if [ $status -ne 0 ]; then
  echo "e2e: the control plane's logs are in $E2E_CLUSTER_DIR/logs" >&2
  for component in apiserver controller-manager kwok; do
    echo "--- the end of $component's log" >&2
    tail -n 15 "$E2E_CLUSTER_DIR/logs/$component.log" >&2 || true
  done
fi
echo "e2e: finished in $((SECONDS - started))s"
exit $status
