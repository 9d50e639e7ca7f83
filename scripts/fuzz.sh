#!/usr/bin/env bash
# Fuzzes the parsers that read what users and trainers write, each for a fixed time:
# scenario files (and the simulation they drive), trainer termination messages, and watched
# objects (decoding and durations). Not part of the default test run.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     default 60
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz`). Findings are kept in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
mkdir -p fuzz/corpus/scenario fuzz/corpus/termination_message fuzz/corpus/objects
# Seed the corpora with what the project already has.
for f in examples/*/scenario.yaml; do cp "$f" "fuzz/corpus/scenario/$(basename "$(dirname "$f")").yaml"; done
printf '%s' '{"metrics": {"auc": 0.91}, "reference": {"predictions": {"bounds": [0.5, 1.0], "counts": [3, 4]}}}' \
  >fuzz/corpus/termination_message/ok.json
printf '%s' '{"apiVersion":"modelcycle.io/v1alpha1","kind":"RetrainPolicy","metadata":{"name":"p"},"spec":{"modelRef":{"name":"m"},"cooldown":"1h"}}' \
  >fuzz/corpus/objects/policy.json
status=0
for target in scenario termination_message objects; do
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -max_len=4096 \
    || status=$?
done
findings=$(find fuzz/artifacts -type f 2>/dev/null)
if [ -n "$findings" ]; then
  echo "fuzz: findings (reproduce with: cargo +nightly fuzz run --fuzz-dir fuzz TARGET FILE):"
  echo "$findings"
  status=1
else
  echo "fuzz: no findings"
fi
exit $status
