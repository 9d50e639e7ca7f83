#!/usr/bin/env bash
# The whole test suite, as the README gives it: formatting, lints, every test, CRD freshness
# and validity, and the e2e suite on a real control plane built from Go modules. Run from
# anywhere; needs cargo, Go (1.24 or newer) and what scripts/install-tools.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

mkdir -p .e2e
export PATH="$PWD/.tools/bin:$PATH"

# The tools are downloads (on a fresh machine minutes of apt and pip, waiting on the network), and
# only running the tests needs them: install them beside the builds, and wait before the tests.
step "tools (Helm, Lua, Prometheus, Python packages): scripts/install-tools.sh, beside the builds"
./scripts/install-tools.sh >.e2e/install-tools.log 2>&1 &
tools=$!

# The control plane's, Flux's and the training engines' first builds take minutes: start them now, beside the Rust
# build; the e2e step waits for them. Later runs find them built.
(e2e/controlplane/build.sh && e2e/flux/build.sh && e2e/engines/build.sh) >.e2e/controlplane-build.log 2>&1 &
controlplane_build=$!

step "cargo fmt --check"
if [ "${MODELCYCLE_SKIP_FMT:-}" = 1 ]; then echo "SKIPPED: rustfmt is not available"; else cargo fmt --all -- --check; fi

step "cargo clippy (all targets, warnings are errors)"
# Its own step over a check build: run as the compiler of the test build instead (what cargo
# clippy does over the check), clippy's driver leaves our crate's MIR unoptimised, and the cold
# build of the crate and its tests took longer than the check it saved.
if [ "${MODELCYCLE_SKIP_CLIPPY:-}" = 1 ]; then
  echo "SKIPPED: clippy is not available"
else
  cargo clippy --all-targets --locked -- -D warnings
fi

step "cargo test: build"
cargo test --all-targets --locked --no-run

step "the tools the tests run (scripts/install-tools.sh, started above)"
if ! wait "$tools"; then
  cat .e2e/install-tools.log >&2
  echo "the tools did not install (above)" >&2
  exit 1
fi
cat .e2e/install-tools.log

step "cargo test"
cargo test --all-targets --locked
# The binary the tests ran: `cargo run` would compile it and much of what it depends on a second
# time, since a test build's dependencies have the features the dev-dependencies add (tokio's
# test-util) and a plain build's have not.
modelcycle=${CARGO_TARGET_DIR:-target}/debug/modelcycle

step "the README's first command: modelcycle simulate examples/quickstart"
"$modelcycle" simulate examples/quickstart | tail -8
"$modelcycle" simulate examples/quickstart --output json >/dev/null

step "crds/ matches 'modelcycle crd'"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$modelcycle" crd --dir "$tmp"
diff -r "$tmp" crds || { echo "crds/ is stale: run 'cargo run -- crd --dir crds' and commit" >&2; exit 1; }
diff -r crds charts/modelcycle/crds || { echo "the chart's crds/ differs: cp crds/*.yaml charts/modelcycle/crds/" >&2; exit 1; }
diff <("$modelcycle" crd | grep -v '^---$') <(cat crds/*.yaml) \
  || { echo "'modelcycle crd' differs from crds/" >&2; exit 1; }

step "CRDs pass kubernetes-validate --strict (oldest and newest supported Kubernetes)"
for version in 1.33.0 1.37.0; do
  kubernetes-validate --strict --quiet -k "$version" crds/*.yaml
done

step "the real control plane, Flux and the engines (from Go modules): e2e/controlplane/build.sh, e2e/flux/build.sh, e2e/engines/build.sh"
if ! wait "$controlplane_build"; then
  cat .e2e/controlplane-build.log >&2
  echo "the control plane did not build (above)" >&2
  exit 1
fi
tail -n 2 .e2e/controlplane-build.log
# CI (.ci/run) sets this: a fresh machine never rebuilds those binaries, and their Go build cache
# (6.9 GB in a cold run) would only fill its disk for the rest of the run.
if [ "${MODELCYCLE_DROP_GO_BUILD_CACHE:-}" = 1 ]; then
  go clean -cache
  echo "dropped Go's build cache (MODELCYCLE_DROP_GO_BUILD_CACHE=1)"
fi

step "e2e suite: the real modelcycle binary and chart on a real kube-apiserver with kwok nodes"
./e2e/run.sh

echo
echo "all checks passed"
