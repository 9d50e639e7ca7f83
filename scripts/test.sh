#!/usr/bin/env bash
# The whole test suite, as the README gives it: formatting, lints, every test, CRD freshness
# and validity. Run from anywhere; needs cargo and kubernetes-validate (pip).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "tools (Helm, Lua, Prometheus, Python packages): scripts/install-tools.sh"
./scripts/install-tools.sh
export PATH="$PWD/.tools/bin:$PATH"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --all-targets --locked -- -D warnings

step "cargo test"
cargo test --all-targets --locked

step "the README's first command: modelcycle simulate examples/quickstart"
cargo run --quiet --locked -- simulate examples/quickstart | tail -8
cargo run --quiet --locked -- simulate examples/quickstart --output json >/dev/null

step "crds/ matches 'modelcycle crd'"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run --quiet --locked -- crd --dir "$tmp"
diff -r "$tmp" crds || { echo "crds/ is stale: run 'cargo run -- crd --dir crds' and commit" >&2; exit 1; }
diff -r crds charts/modelcycle/crds || { echo "the chart's crds/ differs: cp crds/*.yaml charts/modelcycle/crds/" >&2; exit 1; }
diff <(cargo run --quiet --locked -- crd | grep -v '^---$') <(cat crds/*.yaml) \
  || { echo "'modelcycle crd' differs from crds/" >&2; exit 1; }

step "CRDs pass kubernetes-validate --strict (oldest and newest supported Kubernetes)"
for version in 1.33.0 1.37.0; do
  kubernetes-validate --strict --quiet -k "$version" crds/*.yaml
done

step "e2e suite (skips when no cluster is reachable)"
./e2e/run.sh

echo
echo "all checks passed"
