#!/usr/bin/env bash
# What modelcycle costs at N Models on the real control plane (tests/e2e/scale.rs): memory, time
# to serve, API requests per Model, reconcile duration and CPU, a restart. One row per size, as a
# table on stdout and as JSON in target/scale.json (E2E_SCALE_OUT).
#
#   e2e/scale.sh [N ...]                   default: 100 1000 10000
#
# E2E_SCALE_TIMEOUT_SECONDS (default 120 + 3N/5) bounds each wait for N Models (to serve, to
# retrain); on 2 cores 10,000 Models need more than an hour, set by the control plane's own
# controllers.
# E2E_MODELCYCLE_BIN runs another build of the controller than the test build, e.g. what the
# image ships (cargo build --release --target x86_64-unknown-linux-musl --bin modelcycle).
# E2E_SCALE_RUN_HISTORY_LIMIT sets the Models' runHistoryLimit (the CRD's default of 3 else).
# E2E_SCALE_STEADY_SECONDS (default 600) is the steady window; the fake nodes get room for the
# pods of the largest size, and the control plane's own controllers a higher request rate, so
# that the figures are the controller's and not the Job and Deployment controllers' rate limits.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 1000 10000)
largest=0
for n in "${sizes[@]}"; do [ "$n" -gt "$largest" ] && largest=$n; done
export E2E_SCALE_MODELS
E2E_SCALE_MODELS=$(IFS=,; echo "${sizes[*]}")
export E2E_SCALE_STEADY_SECONDS=${E2E_SCALE_STEADY_SECONDS:-600}
export E2E_NODE_PODS=$(( largest < 110 ? 110 : largest ))
export E2E_CONTROL_PLANE_QPS=${E2E_CONTROL_PLANE_QPS:-200}
export E2E_ONLY=scale
exec e2e/run.sh
