#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from their Go modules (the releases
# pinned in e2e/flux/source/go.mod and e2e/flux/kustomize/go.mod, built as Flux builds them) and
# takes their CRDs from the same modules, for the e2e suite's Flux story.
#
#   e2e/flux/build.sh        prints the folder that holds them (.e2e/flux/<versions>/)
#
# A folder that was built completely is reused as it is. source-controller v1.9.6 wants
# github.com/fluxcd/pkg/artifact v0.18.3, which the Go module proxy does not serve; its go.mod
# here replaces it with v0.18.1, the newest it serves (same API). `go mod tidy` cannot run on
# source/ (it wants the test-only github.com/fluxcd/pkg/helmtestserver, not served either): its
# go.mod and go.sum come from `go get` and `go build -mod=mod`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { printf 'flux: %s\n' "$*" >&2; }

required() { awk -v m="$2" '$1 == m {print $2} $1 == "require" && $2 == m {print $3}' "$here/$1/go.mod" | head -n 1; }
source_version=$(required source github.com/fluxcd/source-controller)
kustomize_version=$(required kustomize github.com/fluxcd/kustomize-controller)
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
(cd "$here/source" && go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$tmp/" github.com/fluxcd/source-controller)
(cd "$here/kustomize" && go build -trimpath -gcflags=all=-dwarf=false -ldflags "-s -w" -o "$tmp/" github.com/fluxcd/kustomize-controller)
for controller in source kustomize; do
  dir=$(cd "$here/$controller" && go list -m -f '{{.Dir}}' "github.com/fluxcd/$controller-controller")
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
