#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, for the e2e suite, from binaries built from Go
# modules (e2e/controlplane/build.sh): etcd, kube-apiserver (RBAC, the default admission plugins,
# an audit log), kube-controller-manager, kube-scheduler, and kwok playing the kubelet of three
# fake nodes whose pods run without containers (their behaviour: e2e/kwok/stages.yaml).
#
#   e2e/cluster.sh up [VERSION]     build if needed, start everything, wait until nodes are Ready
#   e2e/cluster.sh down             stop everything it started (by PID) and remove its state
#   e2e/cluster.sh stop NAME        stop one component (etcd, apiserver, controller-manager, ...)
#   e2e/cluster.sh start NAME       start it again with the same command line
#   e2e/cluster.sh env              print the environment of the running cluster (KUBECONFIG, ...)
#
# Everything lives under .e2e/cluster/ (override with E2E_CLUSTER_DIR): certificates, etcd's data,
# logs, PIDs, the audit log and the admin kubeconfig. Nothing listens beyond 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
dir=${E2E_CLUSTER_DIR:-$root/.e2e/cluster}
log() { printf 'cluster: %s\n' "$*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts NAME in the background, keeping its command line (for `start`), log and PID.
launch() {
  local name=$1
  shift
  printf '%q ' "$@" >"$dir/cmd/$name"
  "$@" >>"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name"
}

running() { [ -f "$dir/pids/$1" ] && kill -0 "$(cat "$dir/pids/$1")" 2>/dev/null; }

stop_one() {
  local name=$1 pid
  [ -f "$dir/pids/$name" ] || return 0
  pid=$(cat "$dir/pids/$name")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pids/$name"
}

# Waits until `check` succeeds, or fails naming what did not come up and showing its log.
wait_for() {
  local what=$1 name=$2 seconds=$3
  shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! running "$name"; then
      log "$what exited; the end of its log:"
      tail -n 30 "$dir/logs/$name.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "$what is not up after ${seconds}s; the end of its log:"
      tail -n 30 "$dir/logs/$name.log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

certificates() {
  local pki=$dir/pki
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=modelcycle-e2e-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  # name, subject, extensions
  sign() {
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$pki/$1.ext"
    openssl x509 -req -sha256 -days 365 -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
      -CAcreateserial -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
  }
  sign apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth"
  sign admin "/O=system:masters/CN=kubernetes-admin" "extendedKeyUsage=clientAuth"
  sign controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
  sign scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
  sign kwok "/O=system:masters/CN=kwok" "extendedKeyUsage=clientAuth"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() {
  local user=$1 file=$dir/$1.kubeconfig
  "$bin/kubectl" config set-cluster e2e --server="https://127.0.0.1:$api_port" \
    --certificate-authority="$dir/pki/ca.crt" --embed-certs --kubeconfig="$file" >/dev/null
  "$bin/kubectl" config set-credentials "$user" --client-certificate="$dir/pki/$user.crt" \
    --client-key="$dir/pki/$user.key" --embed-certs --kubeconfig="$file" >/dev/null
  "$bin/kubectl" config set-context e2e --cluster=e2e --user="$user" --kubeconfig="$file" >/dev/null
  "$bin/kubectl" config use-context e2e --kubeconfig="$file" >/dev/null
}

fake_nodes() {
  local i
  for i in 0 1 2; do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "${E2E_NODE_PODS:-110}"}
  capacity: {cpu: "32", memory: 256Gi, pods: "${E2E_NODE_PODS:-110}"}
EOF
  done
}

up() {
  local version=${1:-${E2E_KUBERNETES_VERSION:-}}
  if [ -f "$dir/pids/apiserver" ]; then
    log "a cluster is already running from $dir; run e2e/cluster.sh down first"
    return 1
  fi
  local started=$SECONDS
  bin=$("$here/controlplane/build.sh" $version)
  rm -rf "$dir"
  mkdir -p "$dir"/{cmd,logs,pids,etcd}
  trap 'log "start failed; stopping what was started"; down_all; exit 1' ERR
  certificates
  local etcd_port etcd_peer_port kcm_port sched_port kwok_port
  etcd_port=$(free_port); etcd_peer_port=$(free_port); api_port=$(free_port)
  kcm_port=$(free_port); sched_port=$(free_port); kwok_port=$(free_port)
  for user in admin controller-manager scheduler kwok; do kubeconfig "$user"; done
  cp "$here/audit-policy.yaml" "$dir/audit-policy.yaml"

  launch etcd "$bin/etcd" --name e2e --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "e2e=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
  wait_for etcd etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  launch apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --endpoint-reconciler-type none \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC \
    --audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$dir/audit.log" \
    --audit-log-format json --audit-log-mode blocking --audit-log-maxsize 0 \
    --profiling=false
  wait_for kube-apiserver apiserver 120 \
    "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz

  launch controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false \
    --service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
    --use-service-account-credentials --concurrent-deployment-syncs 10 --concurrent-gc-syncs 40 \
    --kube-api-qps "${E2E_CONTROL_PLANE_QPS:-20}" --kube-api-burst "$((2 * ${E2E_CONTROL_PLANE_QPS:-20}))"
  launch scheduler "$bin/kube-scheduler" \
    --kubeconfig "$dir/scheduler.kubeconfig" \
    --authentication-kubeconfig "$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig "$dir/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false
  launch kwok "$bin/kwok" --kubeconfig "$dir/kwok.kubeconfig" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr 10.244.0.0/16 --node-ip 10.0.0.10 --server-address "127.0.0.1:$kwok_port" \
    --node-lease-duration-seconds 40 \
    --config "$here/kwok/stages.yaml"

  local k=("$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig")
  wait_for kube-controller-manager controller-manager 60 curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
  wait_for kube-scheduler scheduler 60 curl -fsSk "https://127.0.0.1:$sched_port/healthz"
  fake_nodes | "${k[@]}" apply -f - >/dev/null
  wait_for "the fake nodes" kwok 60 "${k[@]}" wait --for=condition=Ready node --all --timeout=1s
  wait_for "the default ServiceAccount" controller-manager 60 "${k[@]}" -n default get serviceaccount default

  cat >"$dir/env" <<EOF
export KUBECONFIG=$dir/admin.kubeconfig
export E2E_CLUSTER_DIR=$dir
export E2E_BIN=$bin
export E2E_API_PORT=$api_port
export E2E_AUDIT_LOG=$dir/audit.log
export E2E_KUBERNETES_VERSION=$(awk '/^kubernetes / {print $2}' "$bin/VERSIONS")
EOF
  trap - ERR
  log "up in $((SECONDS - started))s: Kubernetes $(awk '/^kubernetes / {print $2}' "$bin/VERSIONS") at https://127.0.0.1:$api_port; KUBECONFIG=$dir/admin.kubeconfig"
}

down_all() {
  local name
  # Reverse order of start, so nothing loses its API server while it still runs.
  for name in kwok scheduler controller-manager apiserver etcd; do stop_one "$name"; done
  # Anything else that registered a PID here (the e2e suite's controller processes).
  for pid_file in "$dir"/pids/*; do
    [ -e "$pid_file" ] && stop_one "$(basename "$pid_file")"
  done
  return 0
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down)
    [ -d "$dir" ] || exit 0
    down_all
    rm -rf "$dir"
    log "down"
    ;;
  stop) stop_one "$2" ;;
  start)
    [ -f "$dir/cmd/$2" ] || { log "no component $2"; exit 1; }
    running "$2" && { log "$2 runs already"; exit 1; }
    # exec: the PID written is the component's own, so `stop` stops it.
    bash -c "exec $(cat "$dir/cmd/$2")" >>"$dir/logs/$2.log" 2>&1 &
    echo $! >"$dir/pids/$2"
    ;;
  env) cat "$dir/env" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
