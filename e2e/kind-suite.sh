#!/usr/bin/env bash
# The kind suite (real containers, the example images built by e2e/kind.sh): installs the CRDs and the chart, applies the example Model and checks
# that v1 trains and serves, a dataset bump trains v2 and rolls it forward, a broken version is
# rolled back, and `kubectl get modelversions` shows the history. Without a reachable cluster it
# says so in one line and exits 0 without running anything.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/bin:$PATH"

if ! reason=$(kubectl cluster-info --request-timeout=5s 2>&1 >/dev/null) || ! kubectl get --raw /readyz --request-timeout=5s >/dev/null 2>&1; then
  reason=$(printf '%s\n' "$reason" | grep -v '^\s*$' | tail -n 1)
  echo "e2e: SKIPPED, no Kubernetes cluster is reachable (${reason:-kubectl cluster-info failed}); create one with e2e/kind.sh"
  exit 0
fi

ns=ml
timeout=${E2E_TIMEOUT:-600s}
step() { printf '\n==> e2e: %s\n' "$*"; }
fail() { echo "e2e: FAILED: $*" >&2; kubectl -n "$ns" get modelcycle,jobs,deploy,pods -o wide >&2 || true; exit 1; }
version_phase() { kubectl -n "$ns" get modelversion "cancer-v$1" -o jsonpath='{.status.phase}' 2>/dev/null || true; }
wait_phase() {
  local version=$1 phase=$2 deadline=$((SECONDS + ${3:-600}))
  until [ "$(version_phase "$version")" = "$phase" ]; do
    [ $SECONDS -lt $deadline ] || fail "v$version did not reach $phase (it is '$(version_phase "$version")')"
    sleep 5
  done
  echo "v$version is $phase"
}

step "install the CRDs and the controller"
kubectl apply --server-side -f crds/
helm upgrade --install modelcycle charts/modelcycle -n modelcycle-system --create-namespace \
  --set image.tag=e2e --set image.pullPolicy=Never --wait --timeout 180s

step "v1 trains and serves"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f examples/sklearn/model.yaml
kubectl -n "$ns" patch model cancer --type merge -p '{"spec":{"serving":{"progressDeadlineSeconds":60}}}'
wait_phase 1 Serving
kubectl -n "$ns" wait --for=condition=Ready model/cancer --timeout="$timeout"

step "new data trains v2, which rolls forward"
kubectl -n "$ns" patch model cancer --type merge -p '{"spec":{"training":{"dataset":{"version":"2026-12-01"}}}}'
wait_phase 2 Serving
wait_phase 1 Retired 60

step "a broken v3 is rolled back to v2"
kubectl -n "$ns" patch model cancer --type merge -p '{"spec":{"training":{"dataset":{"version":"2026-12-02"},"parameters":{"broken":"true"}}}}'
wait_phase 3 RolledBack
[ "$(version_phase 2)" = Serving ] || fail "v2 should serve after the rollback"
[ "$(kubectl -n "$ns" get model cancer -o jsonpath='{.status.conditions[?(@.type=="Degraded")].status}')" = True ] || fail "the Model should be Degraded"

step "the history"
kubectl -n "$ns" get modelversions
echo "e2e: PASSED"
