#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, for tests/cluster: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kwok (fake nodes: no kubelet, no containers run).
#
#   scripts/cluster.sh build    build the binaries if needed, print their directory
#   scripts/cluster.sh up       build if needed, start everything, print the KUBECONFIG path
#   scripts/cluster.sh status   say what runs (stderr), print the KUBECONFIG path if the API is ready
#   scripts/cluster.sh down     stop what `up` started, by the PIDs it recorded
#   scripts/cluster.sh kubectl ARGS...   run the cached kubectl against the cluster
#
# Binaries: one pinned Kubernetes release through the wrapper module scripts/cluster/go.mod
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl), etcd through
# scripts/cluster/etcd/go.mod, kwok by `go install` at KWOK_VERSION. Built once into
#   ${MMS_CLUSTER_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mms-connector/cluster}/bin-<key>/
# where <key> hashes the wrapper modules, KWOK_VERSION and the recipe below, so a change to any
# of them rebuilds. State of a running cluster (certs, etcd data, logs, PIDs, kubeconfig):
#   ${MMS_CLUSTER_HOME:-<cache>/run}/
# Ports on 127.0.0.1: MMS_CLUSTER_PORT (API, 16443); etcd, controller-manager, scheduler and kwok
# on the next ports up from MMS_CLUSTER_PORT_BASE (16380). Progress goes to stderr; stdout is only
# the path asked for. MMS_CLUSTER_BUILD=0: never build (exit 3 if not built). Needs Go (>= the
# wrapper modules' go line), openssl and curl.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
MOD="$HERE/cluster"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
KWOK_NODES="${MMS_CLUSTER_NODES:-3}"
# Bump when the build below changes, so binaries cached by an older recipe are rebuilt.
RECIPE="1: CGO_ENABLED=0 -trimpath -s -w; component-base version set by -ldflags"
CACHE_ROOT="${MMS_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mms-connector/cluster}"
RUN="${MMS_CLUSTER_HOME:-$CACHE_ROOT/run}"
API_PORT="${MMS_CLUSTER_PORT:-16443}"
BASE="${MMS_CLUSTER_PORT_BASE:-16380}"
ETCD_PORT=$((BASE)) ETCD_PEER_PORT=$((BASE + 1)) KCM_PORT=$((BASE + 2)) SCHED_PORT=$((BASE + 3))
KWOK_PORT=$((BASE + 4))
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

say() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { say "$1"; exit "${2:-1}"; }

k8s_version() { awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$MOD/go.mod"; }

key() {
  cat "$MOD/go.mod" "$MOD/go.sum" "$MOD/tools.go" "$MOD/etcd/go.mod" "$MOD/etcd/go.sum" \
      "$MOD/etcd/main.go" | { cat; printf '%s\n%s\n' "$KWOK_VERSION" "$RECIPE"; } |
    sha256sum | cut -c1-12
}
BIN="$CACHE_ROOT/bin-$(key)"

built() {
  local c
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
    [[ -x "$BIN/$c" ]] || return 1
  done
}

timed_build() { # name, then the command; logs to $BIN/build-<name>.log, records seconds
  local name="$1" started=$SECONDS
  shift
  say "building $name"
  if ! "$@" >"$tmp/build-$name.log" 2>&1; then
    tail -n 30 "$tmp/build-$name.log" >&2
    say "building $name failed (log: $tmp/build-$name.log)"
    return 5
  fi
  printf '%s %d s\n' "$name" "$((SECONDS - started))" | tee -a "$tmp/build-times" >&2
}

# kwok's own Stage manifests (its module, downloaded by `go install`): nodes become Ready and
# keep a heartbeat, pods on them are Running and Ready at once, and are deleted when asked.
KWOK_STAGES=(node/fast/node-initialize node/heartbeat/node-heartbeat pod/general/pod-create
  pod/general/pod-ready pod/general/pod-complete pod/general/pod-delete)
stages() {
  [[ -s "$BIN/kwok-stages.yaml" ]] && return 0
  local dir s
  dir="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$dir/kustomize/stage" ]] || die "no kwok stages in the module sigs.k8s.io/kwok@$KWOK_VERSION ('$dir')" 5
  for s in "${KWOK_STAGES[@]}"; do
    printf -- '---\n'
    cat "$dir/kustomize/stage/$s.yaml"
  done >"$BIN/kwok-stages.yaml.tmp"
  mv "$BIN/kwok-stages.yaml.tmp" "$BIN/kwok-stages.yaml"
}

build() {
  if built; then stages; return 0; fi
  if [[ "${MMS_CLUSTER_BUILD:-1}" == 0 ]]; then
    die "the cluster binaries are not built yet (MMS_CLUSTER_BUILD=0; run scripts/cluster.sh build)" 3
  fi
  command -v go >/dev/null 2>&1 || die "cannot build: no 'go' on PATH" 4
  mkdir -p "$CACHE_ROOT"
  # One build at a time (CI and a test session may ask together); the loser reuses the result.
  exec 9>"$CACHE_ROOT/.lock"
  flock 9
  if built; then stages; exec 9>&-; return 0; fi
  local tmp version started=$SECONDS
  version="$(k8s_version)"
  [[ "$version" =~ ^v1\.([0-9]+)\. ]] || die "cannot read the k8s.io/kubernetes version in $MOD/go.mod" 5
  tmp="$(mktemp -d "$CACHE_ROOT/build.XXXXXX")"
  say "building Kubernetes $version, etcd and kwok $KWOK_VERSION with $(go version | cut -d' ' -f3)" \
      "(first time: about 10 minutes on 2 cores)"
  local v=k8s.io/component-base/version
  local ld="-s -w -X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=${BASH_REMATCH[1]}"
  ld+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
  export CGO_ENABLED=0
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    timed_build "$c" env -C "$MOD" go build -trimpath -ldflags "$ld" -o "$tmp/$c" \
      "k8s.io/kubernetes/cmd/$c" || { rm -rf "$tmp"; exit 5; }
  done
  timed_build etcd env -C "$MOD/etcd" go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" . \
    || { rm -rf "$tmp"; exit 5; }
  timed_build kwok env GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" || { rm -rf "$tmp"; exit 5; }
  chmod 755 "$tmp"
  rm -rf "$BIN"
  mv "$tmp" "$BIN"
  stages
  exec 9>&-
  say "built in $((SECONDS - started)) s into $BIN"
}

# --- certificates --------------------------------------------------------------------------
certs() {
  local d="$RUN/pki"
  [[ -f "$d/admin.crt" ]] && return 0
  mkdir -p "$d"
  (
    cd "$d"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mms-connector-cluster-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    cat >server.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key \
      -out apiserver.csr 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out apiserver.crt 2>/dev/null
    # One client identity for helm, kubectl and the controllers: cluster-admin through its group.
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" -keyout admin.key \
      -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ca.srl
  )
  cat >"$RUN/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: mms-connector
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $d/ca.crt
users:
- name: admin
  user:
    client-certificate: $d/admin.crt
    client-key: $d/admin.key
contexts:
- name: mms-connector
  context: {cluster: mms-connector, user: admin}
current-context: mms-connector
EOF
}

# --- processes -----------------------------------------------------------------------------
pid_of() { # prints the PID if the recorded process still runs our binary
  local f="$RUN/pids/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  # Just started, it may still be setsid about to exec the binary.
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE "^(setsid )?$BIN/$1 " || return 1
  printf '%s\n' "$pid"
}

start() { # name, then arguments
  local name="$1"
  shift
  if pid_of "$name" >/dev/null; then return 0; fi
  mkdir -p "$RUN/pids" "$RUN/logs"
  setsid "$BIN/$name" "$@" >"$RUN/logs/$name.log" 2>&1 </dev/null &
  local pid=$! n state
  echo "$pid" >"$RUN/pids/$name.pid"
  # Until it has exec'd the binary the child is a copy of this shell, which pid_of does not take
  # for ours (CI, on a loaded box: etcd taken for exited, and stopped, before it had run). Wait up
  # to 10 s for the exec, or for the child to have exited or become a zombie (then wait_for says
  # so, with its log).
  for ((n = 0; n < 100; n++)); do
    pid_of "$name" >/dev/null && return 0
    state="$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" || return 0
    [[ -n "$state" && "$state" != Z ]] || return 0
    sleep 0.1
  done
}

wait_for() { # what, seconds, then the check command
  local what="$1" limit="$2" t0=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - t0 >= limit)); then
      say "$what not ready after $limit s; last log lines:"
      tail -n 20 "$RUN/logs/$what.log" >&2 || true
      return 1
    fi
    pid_of "$what" >/dev/null || { say "$what exited:"; tail -n 20 "$RUN/logs/$what.log" >&2; return 1; }
    sleep 0.2
  done
}

api() { # path
  curl -fsS --max-time 5 --cacert "$RUN/pki/ca.crt" --cert "$RUN/pki/admin.crt" \
    --key "$RUN/pki/admin.key" "https://127.0.0.1:$API_PORT$1"
}

kubectl() { "$BIN/kubectl" --kubeconfig "$RUN/kubeconfig" "$@"; }

fake_nodes() {
  local i
  for ((i = 0; i < KWOK_NODES; i++)); do
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
    topology.kubernetes.io/zone: zone-$((i % 2))
status:
  allocatable: {cpu: "8", memory: 32Gi, pods: "110", ephemeral-storage: 100Gi}
  capacity: {cpu: "8", memory: 32Gi, pods: "110", ephemeral-storage: 100Gi}
EOF
  done
}

up() {
  build
  certs
  local t0=$SECONDS p="$RUN/pki"
  # Half a cluster is no use: whatever fails below stops what was started.
  trap 'say "up failed: stopping what was started (logs: $RUN/logs)"; down' ERR
  start etcd --name mms-connector --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "mms-connector=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes 1073741824
  wait_for etcd 30 curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
  start kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --endpoint-reconciler-type none \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.96.0.0/16 --authorization-mode Node,RBAC \
    --profiling=false
  wait_for kube-apiserver 120 api /readyz
  say "API server ready $((SECONDS - t0)) s after start"
  start kube-controller-manager --kubeconfig "$RUN/kubeconfig" \
    --authentication-kubeconfig "$RUN/kubeconfig" --authorization-kubeconfig "$RUN/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
    --use-service-account-credentials=false \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --profiling=false
  start kube-scheduler --kubeconfig "$RUN/kubeconfig" \
    --authentication-kubeconfig "$RUN/kubeconfig" --authorization-kubeconfig "$RUN/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --profiling=false
  start kwok --kubeconfig "$RUN/kubeconfig" --config "$BIN/kwok-stages.yaml" \
    --config "$MOD/helm-test-stage.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --server-address "127.0.0.1:$KWOK_PORT"
  fake_nodes | kubectl apply -f - >/dev/null
  wait_for kube-controller-manager 60 kubectl -n default get serviceaccount default
  wait_for kwok 60 kubectl wait --for=condition=Ready node --all --timeout=1s
  trap - ERR
  say "cluster up in $((SECONDS - t0)) s ($KWOK_NODES kwok nodes); stop with scripts/cluster.sh down"
  printf '%s\n' "$RUN/kubeconfig"
}

status() {
  local c pid ok=0
  for c in "${COMPONENTS[@]}"; do
    if pid="$(pid_of "$c")"; then say "$c running (pid $pid)"; else say "$c not running"; fi
  done
  if [[ -f "$RUN/pki/ca.crt" ]] && api /readyz >/dev/null 2>&1; then
    say "API server ready at https://127.0.0.1:$API_PORT"
    printf '%s\n' "$RUN/kubeconfig"
  else
    say "API server not ready"
    ok=1
  fi
  return "$ok"
}

down() {
  local i c pid n
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    c="${COMPONENTS[i]}"
    if pid="$(pid_of "$c")"; then
      kill -TERM "$pid" 2>/dev/null || true
      for ((n = 0; n < 100; n++)); do [[ -d "/proc/$pid" ]] || break; sleep 0.1; done
      if [[ -d "/proc/$pid" ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
      say "stopped $c (pid $pid)"
    fi
    rm -f "$RUN/pids/$c.pid"
  done
  # Fresh state next time: a test run must not see the objects of the one before.
  rm -rf "$RUN/etcd"
}

case "${1:-}" in
  build) build; printf '%s\n' "$BIN" ;;
  up) up ;;
  status) status ;;
  down) down ;;
  kubectl) shift; kubectl "$@" ;;
  *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
