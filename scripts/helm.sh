#!/usr/bin/env bash
# Builds helm from the Go module proxy once and caches it; prints the helm binary's path.
#
#   scripts/helm.sh                 build if needed, print the path of helm on stdout
#   scripts/helm.sh ARGS...         build if needed, then run `helm ARGS...`
#   scripts/helm.sh --cached-only   print the path only if it is already built (exit 3 if not)
#
# Cache: ${MMS_HELM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mms-connector/helm}/<version>/bin/helm,
# reused by later runs (CI and developers alike). Progress goes to stderr, so stdout is only
# the path (or helm's own output). Needs Go (>= the version helm's go.mod asks for).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${MMS_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mms-connector/helm}"
DIR="$CACHE_ROOT/$HELM_VERSION"
HELM="$DIR/bin/helm"
# Bump when the build below changes, so a binary cached by an older recipe is rebuilt.
RECIPE="2: CGO_ENABLED=0 -trimpath; version and Kubernetes version set by -ldflags"

say() { printf 'helm.sh: %s\n' "$*" >&2; }

works() {
  [[ -x "$HELM" && "$(cat "$HELM.recipe" 2>/dev/null)" == "$RECIPE" ]] \
    && "$HELM" version --short >/dev/null 2>&1
}

build() {
  if ! command -v go >/dev/null 2>&1; then
    say "cannot build helm $HELM_VERSION: no 'go' on PATH"
    return 4
  fi
  mkdir -p "$DIR"
  # One build at a time (CI and a test session may ask together); the loser reuses the result.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$DIR/.lock"
    flock 9
  fi
  if works; then exec 9>&-; return 0; fi
  local tmp started gomod client_go k8s_minor
  tmp="$(mktemp -d "$DIR/build.XXXXXX")"
  started=$SECONDS
  say "building helm $HELM_VERSION with $(go version | cut -d' ' -f3) (first time: a few minutes)"
  # The Kubernetes version helm assumes without a cluster (Capabilities.KubeVersion, lint's
  # deprecation checks) is set at link time, as helm's own Makefile does: client-go v0.N -> 1.N.
  if ! gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
      sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')" || [[ ! -f "$gomod" ]]; then
    rm -rf "$tmp"
    say "cannot download helm.sh/helm/v3@$HELM_VERSION from the Go module proxy"
    return 5
  fi
  client_go="$(awk '$1 == "k8s.io/client-go" { print $2 }' "$gomod")"
  k8s_minor="$(cut -d. -f2 <<<"$client_go")"
  if [[ ! "$k8s_minor" =~ ^[0-9]+$ ]]; then
    rm -rf "$tmp"
    say "cannot tell helm's Kubernetes version from $gomod (client-go '$client_go')"
    return 5
  fi
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
  if ! CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -trimpath" go install -ldflags "$ldflags" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2; then
    rm -rf "$tmp"
    say "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
    return 5
  fi
  mkdir -p "$DIR/bin"
  mv -f "$tmp/helm" "$HELM"
  printf '%s\n' "$RECIPE" >"$HELM.recipe"
  rm -rf "$tmp"
  exec 9>&-
  say "built in $((SECONDS - started)) s (Kubernetes 1.$k8s_minor assumed offline)"
}

cached_only=0
if [[ "${1:-}" == "--cached-only" ]]; then
  cached_only=1
  shift
fi

if works; then
  say "using cached $HELM"
elif ((cached_only)); then
  say "helm $HELM_VERSION is not built yet (run scripts/helm.sh)"
  exit 3
else
  build
  works || { say "built helm does not run: $HELM"; exit 5; }
  say "cached at $HELM"
fi

if (($# == 0)); then
  printf '%s\n' "$HELM"
else
  exec "$HELM" "$@"
fi
