#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from their Go modules (the releases
# pinned in e2e/controllers/go.mod, which JobSet's controller shares so that what they have in
# common compiles once) and takes their CRDs from the same modules, for the e2e suite's Flux story.
#
#   e2e/flux/build.sh        prints the folder that holds them (.e2e/flux/<versions>/)
#
# A folder that was built completely is reused as it is. source-controller v1.9.6 wants
# github.com/fluxcd/pkg/artifact v0.18.3, which the Go module proxy does not serve; the go.mod
# replaces it with v0.18.1, the newest it serves (same API).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
module=$root/e2e/controllers
log() { printf 'flux: %s\n' "$*" >&2; }

required() { awk -v m="$1" '$1 == m {print $2} $1 == "require" && $2 == m {print $3}' "$module/go.mod" | head -n 1; }
source_version=$(required github.com/fluxcd/source-controller)
kustomize_version=$(required github.com/fluxcd/kustomize-controller)
out=$root/.e2e/flux/source-$source_version-kustomize-$kustomize_version
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi
started=$SECONDS
tmp=$out.partial
rm -rf "$tmp"
mkdir -p "$tmp/crds"
log "building source-controller $source_version and kustomize-controller $kustomize_version"
(cd "$module" && go build -mod=mod -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$tmp/" \
  github.com/fluxcd/source-controller github.com/fluxcd/kustomize-controller)
for controller in source kustomize; do
  version=$(required "github.com/fluxcd/$controller-controller")
  # go mod download, not go list -m: the latter names a module's folder only once it is downloaded.
  dir=$(go mod download -json "github.com/fluxcd/$controller-controller@$version" | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  cp "$dir"/config/crd/bases/*.yaml "$tmp/crds/"
done
{
  echo "source-controller $source_version"
  echo "kustomize-controller $kustomize_version"
  echo "go $(go env GOVERSION)"
  echo "build_seconds $((SECONDS - started))"
} >"$tmp/VERSIONS"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
echo "$out"
