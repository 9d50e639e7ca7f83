#!/usr/bin/env bash
# Builds the real control plane of the e2e suite from Go modules: kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl of one Kubernetes release, the etcd server
# that release is tested with, and the kwok controller that plays the kubelet of fake nodes.
#
#   e2e/controlplane/build.sh [VERSION]     e.g. 1.33.13 (default: the release pinned in go.mod)
#
# Prints the folder that holds the binaries (.e2e/bin/v<VERSION>/). A folder that was built
# completely is reused as it is, so only the first build costs time; Go's module and build caches
# (GOMODCACHE, GOCACHE) make a rebuild of another version cheaper too. The pinned release builds
# from this folder's go.mod and go.sum; another release gets a generated wrapper module under
# .e2e/build/ (a replace line for every k8s.io staging module at the matching v0.X.Y). kwok builds
# in the same module, on the release's dependency graph: every module kwok would raise is held at
# the release's version (hold_for_kwok below made the pinned go.mod's second replace block), so the
# apiserver is the release as published and kwok adds only its own packages to the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
log() { printf 'controlplane: %s\n' "$*" >&2; }

required() { awk -v m="$1" '$1 == "require" && $2 == m {print $3} $1 == m {print $2}' "$here/go.mod" | head -n 1; }
pinned=$(required k8s.io/kubernetes)
kwok_version=$(required sigs.k8s.io/kwok)
version=${1:-${E2E_KUBERNETES_VERSION:-$pinned}}
version=v${version#v}
out=$root/.e2e/bin/$version
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi

case "$version" in
  v1.[0-9]*.[0-9]*) ;;
  *) log "not a Kubernetes release: $version (want e.g. 1.33.13)"; exit 2 ;;
esac
minor=$(echo "$version" | cut -d. -f2)

# In the module of the working directory: require kwok, and replace every module that raises to
# the version it had before (the k8s.io staging modules are replaced already).
hold_for_kwok() {
  local mod old held=()
  while read -r _ _ mod old _; do
    grep -q "^[[:space:]]*$mod => " go.mod || held+=(-replace "$mod=$mod@$old")
  done < <(GOFLAGS=-mod=mod go get "sigs.k8s.io/kwok@$kwok_version" 2>&1 | grep '^go: upgraded ')
  if [ ${#held[@]} -gt 0 ]; then go mod edit "${held[@]}"; fi
}

if [ "$version" = "$pinned" ]; then
  module=$here
else
  # A wrapper module for another release: the same commands, replace lines read off that
  # release's own go.mod (each staging module at v0.<minor>.<patch>).
  module=$root/.e2e/build/$version
  mkdir -p "$module/etcd"
  grep -v 'sigs.k8s.io/kwok' "$here/tools.go" >"$module/tools.go"
  cp "$here/etcd/main.go" "$module/etcd/main.go"
  log "resolving k8s.io/kubernetes@$version from the Go module proxy"
  gomod=$(cd "$module" && go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { log "the Go module proxy did not serve k8s.io/kubernetes@$version"; exit 1; }
  staging=v0.${version#v1.}
  {
    printf 'module modelcycle.io/e2e/controlplane\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$version"
    awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod" | sort -u | while read -r m; do
      printf '\t%s => %s %s\n' "$m" "$m" "$staging"
    done
    printf ')\n'
  } >"$module/go.mod"
  (cd "$module" && go mod tidy && hold_for_kwok && cp "$here/tools.go" tools.go && go mod tidy) >&2
fi

started=$SECONDS
ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v}"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
tmp=$out.partial
rm -rf "$tmp"
mkdir -p "$tmp"
log "building Kubernetes $version (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl), etcd and kwok $kwok_version"
(cd "$module" && go build -trimpath -gcflags=all=-dwarf=false -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./etcd sigs.k8s.io/kwok/cmd/kwok)
{
  echo "kubernetes $version"
  echo "etcd $("$tmp/etcd" --version | awk '/etcd Version/ {print $3}')"
  echo "kwok $kwok_version"
  echo "go $(go env GOVERSION)"
  echo "build_seconds $((SECONDS - started))"
} >"$tmp/VERSIONS"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
log "built in $((SECONDS - started))s: $(tr '\n' ' ' <"$out/VERSIONS")"
echo "$out"
