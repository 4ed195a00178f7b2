#!/usr/bin/env bash
# Builds the project's Dockerfile, unchanged, with podman, without Docker and without a registry;
# caches the result keyed on its inputs; prints the image's reference.
#
#   scripts/image.sh                  build if needed, print the image reference on stdout
#   scripts/image.sh --cached-only    print it only if that exact image is built (exit 3 if not)
#   scripts/image.sh base             make the stand-in base if needed, print its reference
#   scripts/image.sh podman ARGS...   run podman with this script's configuration (storage,
#                                     runtime, ulimits), e.g. `podman run --rm IMAGE --help`
#   scripts/image.sh env              print the environment podman needs (eval-able)
#
# No base image can be pulled here, so a stand-in for python:3.11-slim-bookworm is made once:
# `mmdebstrap --variant=minbase` from the Debian mirror apt is configured with, `podman import`,
# Debian's python3 (3.11) and a venv at /opt/python that puts python/pip on PATH. The Dockerfile
# gets it through its PYTHON_IMAGE build argument; users build with the official base.
#
# Found on the way: podman's default ulimits need CAP_SYS_RESOURCE
# (default_ulimits from `ulimit -Hn` in a containers.conf given by CONTAINERS_CONF), crun refuses
# hybrid cgroups (runc), and pip in the build needs this machine's CA bundle (mounted for the
# build only, with a pip.conf naming it; neither ends up in the image).
#
# Cache: ${MMS_IMAGE_CACHE:-${XDG_CACHE_HOME:-~/.cache}/mms-connector/image}: podman's storage,
# the stand-in base, and localhost/mms-connector:<key>, where <key> hashes the Dockerfile,
# pyproject.toml, setup.py, connector/, schemas/, the base and this recipe. Progress goes to stderr.
# Needs Debian's podman runc fuse-overlayfs mmdebstrap (apt-get installs them when run as root).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$REPO/scripts/image"
CACHE_ROOT="${MMS_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mms-connector/image}"
CODENAME="${MMS_IMAGE_CODENAME:-bookworm}"
IMAGE_REPO="localhost/mms-connector"
BASE_REPO="localhost/mms-standin-python"
# Bump when the recipes below change, so images built by an older recipe are rebuilt.
BASE_RECIPE="2: mmdebstrap minbase $CODENAME + python3 python3-venv ca-certificates; venv /opt/python on PATH"
IMAGE_RECIPE="2: podman build --network host, runc, CA bundle mounted over the base's, staged context"

say() { printf 'image.sh: %s\n' "$*" >&2; }
die() { local rc=$1; shift; say "$*"; exit "$rc"; }

# --- podman's configuration: its own storage under the cache, runc, ulimits it may set --------
CONF_DIR="$CACHE_ROOT/conf"
configure() {
  mkdir -p "$CONF_DIR" "$CACHE_ROOT/storage" "$CACHE_ROOT/run" "$CACHE_ROOT/tmp"
  local nofile nproc
  nofile="$(ulimit -Hn)"
  [[ "$nofile" == unlimited ]] && nofile=1048576
  nproc="$(ulimit -Hu)"
  [[ "$nproc" == unlimited ]] || ((nproc > 32768)) && nproc=32768
  # podman's default ulimits (nofile=1048576) are above this machine's hard limit; raising them
  # needs CAP_SYS_RESOURCE, which we do not have: "setrlimit RLIMIT_NOFILE: operation not
  # permitted" (type 7). The hard limit we do have is allowed. nproc: `podman run` as root
  # defaults it to 1048576 too, and here anything from 65536 up (even `ulimit -Hu`, 96364)
  # fails the same way ("rlimit type 6"); 32768, buildah's own default, works.
  cat >"$CONF_DIR/containers.conf.new" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$CACHE_ROOT/tmp"
EOF
  local driver="overlay" options=""
  if [[ "${MMS_IMAGE_STORAGE_DRIVER:-}" ]]; then
    driver="$MMS_IMAGE_STORAGE_DRIVER"
  fi
  if [[ "$driver" == fuse-overlayfs ]]; then
    driver="overlay"
    options=$'[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"'
  fi
  cat >"$CONF_DIR/storage.conf.new" <<EOF
[storage]
driver = "$driver"
graphroot = "$CACHE_ROOT/storage"
runroot = "$CACHE_ROOT/run"
$options
EOF
  mv -f "$CONF_DIR/containers.conf.new" "$CONF_DIR/containers.conf"
  mv -f "$CONF_DIR/storage.conf.new" "$CONF_DIR/storage.conf"
  export CONTAINERS_CONF="$CONF_DIR/containers.conf"
  export CONTAINERS_STORAGE_CONF="$CONF_DIR/storage.conf"
}

pm() { podman --runtime runc "$@"; }

# Debian's packages for all of it; installed here on a fresh machine when we are root.
PACKAGES=(podman runc fuse-overlayfs mmdebstrap uidmap slirp4netns)
need() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  ((${#missing[@]} == 0)) && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2 ||
      { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2; } ||
      die 4 "apt-get install ${PACKAGES[*]} failed"
    return 0
  fi
  die 4 "missing ${missing[*]} (as root: apt-get install ${PACKAGES[*]})"
}

lock() {
  mkdir -p "$CACHE_ROOT"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE_ROOT/.lock"
    flock 9
  fi
}

# --- the stand-in base --------------------------------------------------------------------------
mirrors() { python3 "$HERE/apt_mirrors.py" "$CODENAME"; }

base_key() {
  { printf '%s\n' "$BASE_RECIPE"; mirrors; } | sha256sum | cut -c1-16
}

base_ref() { printf '%s:3.11-%s-%s' "$BASE_REPO" "$CODENAME" "$(base_key)"; }

make_base() {
  local ref="$1"
  if pm image exists "$ref"; then return 0; fi
  need mmdebstrap
  local tmp started lines=()
  tmp="$(mktemp -d "$CACHE_ROOT/tmp/base.XXXXXX")"
  started=$SECONDS
  mapfile -t lines < <(mirrors) || true
  ((${#lines[@]})) || die 5 "no Debian $CODENAME entry in apt's sources (/etc/apt/sources.list*)"
  say "stand-in base $ref: mmdebstrap --variant=minbase $CODENAME from ${lines[0]#deb }"
  # The venv (with pip and setuptools from Debian's ensurepip wheels) stands for the official
  # image's python/pip on PATH; the Dockerfile's build stage makes its own venv from it.
  if ! mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      --customize-hook='chroot "$1" python3 -m venv /opt/python' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
      "$CODENAME" "$tmp/rootfs.tar" "${lines[@]}" >&2 2>"$tmp/mmdebstrap.log"; then
    tail -20 "$tmp/mmdebstrap.log" >&2
    rm -rf "$tmp"
    die 5 "mmdebstrap failed"
  fi
  local path="/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  pm import --change "ENV PATH=$path" --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$tmp/rootfs.tar" "$ref" >/dev/null
  rm -rf "$tmp"
  say "stand-in base made in $((SECONDS - started)) s"
}

# --- the image ----------------------------------------------------------------------------------
# The build context is staged: only what the Dockerfile copies (the repository holds .venv and
# .devstack, which podman would otherwise send as context on every build).
context_files() {
  cd "$REPO"
  printf '%s\n' Dockerfile pyproject.toml setup.py
  find connector schemas -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort
}

image_key() {
  local base_id="$1"
  {
    printf '%s\n%s\n' "$IMAGE_RECIPE" "$base_id"
    (cd "$REPO" && context_files | while IFS= read -r f; do sha256sum "$f"; done)
  } | sha256sum | cut -c1-16
}

build_image() {
  local ref="$1" base="$2"
  local tmp started
  tmp="$(mktemp -d "$CACHE_ROOT/tmp/context.XXXXXX")"
  (cd "$REPO" && context_files | while IFS= read -r f; do
    mkdir -p "$tmp/ctx/$(dirname "$f")"
    cp -p "$f" "$tmp/ctx/$f"
  done)
  # This machine's CA bundle (TLS to the package index may be intercepted) is mounted over the
  # base's own /etc/ssl/certs/ca-certificates.crt during RUN steps only; Debian's pip reads that
  # file. A mount onto a path the base lacks (a pip.conf, a directory under /run) would leave an
  # empty mount point in the image, so the base carries ca-certificates, as the official one does.
  local ca="${MMS_IMAGE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" mounts=()
  if [[ -f "$ca" ]]; then
    cp "$ca" "$tmp/ca.crt"
    mounts=(-v "$tmp/ca.crt:/etc/ssl/certs/ca-certificates.crt:ro")
  fi
  started=$SECONDS
  say "building $ref from the Dockerfile on $base"
  if ! pm build --network host --pull=never --build-arg "PYTHON_IMAGE=$base" "${mounts[@]}" \
      --label "org.opencontainers.image.source.key=${ref##*:}" \
      -t "$ref" -f "$tmp/ctx/Dockerfile" "$tmp/ctx" >&2; then
    rm -rf "$tmp"
    die 5 "podman build failed"
  fi
  rm -rf "$tmp"
  say "built in $((SECONDS - started)) s"
}

# --- main ---------------------------------------------------------------------------------------
cmd="${1:-build}"
[[ "$cmd" == --* && "$cmd" != --cached-only ]] && die 2 "unknown option $cmd"
need podman runc python3
configure

case "$cmd" in
  env)
    printf 'export CONTAINERS_CONF=%q\nexport CONTAINERS_STORAGE_CONF=%q\n' \
      "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF"
    exit 0 ;;
  podman)
    shift
    exec podman --runtime runc "$@" ;;
  base)
    lock
    ref="$(base_ref)"
    make_base "$ref"
    printf '%s\n' "$ref"
    exit 0 ;;
  build | --cached-only) ;;
  *) die 2 "unknown command $cmd (build, --cached-only, base, podman, env)" ;;
esac

bref="$(base_ref)"
if [[ "$cmd" == --cached-only ]]; then
  pm image exists "$bref" || die 3 "the stand-in base is not made yet (run scripts/image.sh)"
fi
lock
make_base "$bref"
base_id="$(pm image inspect --format '{{.Id}}' "$bref")"
ref="$IMAGE_REPO:$(image_key "$base_id")"
if pm image exists "$ref"; then
  say "using cached $ref"
elif [[ "$cmd" == --cached-only ]]; then
  die 3 "$ref is not built yet (run scripts/image.sh)"
else
  build_image "$ref" "$bref"
fi
printf '%s\n' "$ref"
