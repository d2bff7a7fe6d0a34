# shellcheck shell=bash
# Sourced helper: provisions the pinned toolchain into $ROOT/.tools (git-ignored).
#   ensure_node      Node >= 22 (installs Node $NODE_VERSION from the npm registry if needed)
#   ensure_opa       opa $OPA_VERSION built with `go install` (installs Go 1.23 from Debian if needed)
#   ensure_npm_deps  `npm ci` when node_modules is missing or stale
# Every function is idempotent; on failure it prints a message and exits the calling script.

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
TOOLS="$ROOT/.tools"
NODE_MIN_MAJOR=22
# Pins live in package.json ("mtaPolicy"), read by the engine too.
pin() { sed -n "s/.*\"$1\": *\"\([v0-9.]*\)\".*/\1/p" "$ROOT/package.json" | head -n 1; }
NODE_VERSION="$(pin node)"
OPA_VERSION="$(pin opaVersion)"
[ -n "$NODE_VERSION" ] && [ -n "$OPA_VERSION" ] || { printf '[mta-policy] ERROR: pins missing in package.json mtaPolicy\n' >&2; exit 1; }

log() { printf '[mta-policy] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  if ! command -v node >/dev/null || [ "$(node_major node)" -lt "$NODE_MIN_MAJOR" ]; then
    local arch dir bin
    case "$(uname -m)" in
      x86_64) arch=x64 ;; aarch64) arch=arm64 ;;
      *) die "no Node $NODE_VERSION package for $(uname -m); install Node >= $NODE_MIN_MAJOR yourself" ;;
    esac
    dir="$TOOLS/node-v$NODE_VERSION"
    bin="$dir/node_modules/node-linux-$arch/bin"
    if [ "$("$bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
      command -v npm >/dev/null || die "npm not found; it is needed to install Node $NODE_VERSION (apt-get install npm)"
      log "installing Node $NODE_VERSION into $dir (npm package node-linux-$arch)"
      rm -rf "$dir"
      npm install --no-save --no-package-lock --no-audit --no-fund --prefix "$dir" \
        "node-linux-$arch@$NODE_VERSION" >&2 || die "npm install node-linux-$arch@$NODE_VERSION failed"
      [ -x "$bin/node" ] || die "node binary missing after install: $bin/node"
    fi
    export PATH="$bin:$PATH"   # the system npm (#!/usr/bin/env node) then runs under this node too
  fi
  log "using node $(node --version) at $(command -v node)"
}

opa_version() { "$1" version 2>/dev/null | sed -n 's/^Version: //p'; }

# True if the go binary $1 is >= 1.21 (needed for GOTOOLCHAIN=auto).
go_ok() {
  local v major minor
  v=$(GOTOOLCHAIN=local "$1" version 2>/dev/null | sed -n 's/.* go\([0-9]*\)\.\([0-9]*\).*/\1.\2/p') || return 1
  major=${v%%.*} minor=${v#*.}
  [ -n "$v" ] && { [ "$major" -gt 1 ] || [ "$minor" -ge 21 ]; }
}

# Sets GO to a usable go binary, installing golang-1.23-go from bookworm-backports if none is.
find_go() {
  local g
  for g in "$(command -v go || true)" /usr/local/go/bin/go /usr/lib/go-1.23/bin/go; do
    if [ -n "$g" ] && [ -x "$g" ] && go_ok "$g"; then GO=$g; return; fi
  done
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "Go >= 1.21 is needed to build opa; install golang-1.23-go from bookworm-backports (as root)"
  fi
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    local uri
    uri=$(grep -rhos '^URIs: *[^ ]*/debian$' /etc/apt/sources.list.d/*.sources | head -n1 | sed 's/^URIs: *//' || true)
    [ -n "$uri" ] || uri=$(grep -hos '^deb *[^ ]*/debian ' /etc/apt/sources.list | head -n1 | awk '{print $2}' || true)
    [ -n "$uri" ] || die "no Debian mirror found in the apt sources; add bookworm-backports by hand"
    log "adding the bookworm-backports apt source ($uri)"
    echo "deb $uri bookworm-backports main" >/etc/apt/sources.list.d/bookworm-backports.list
  fi
  log "installing golang-1.23-go from bookworm-backports"
  apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports golang-1.23-go >&2 ||
    die "apt-get install golang-1.23-go failed"
  GO=/usr/lib/go-1.23/bin/go
  go_ok "$GO" || die "$GO is missing or older than 1.21 after install"
}

ensure_opa() {
  local dir="$TOOLS/opa-$OPA_VERSION"
  if [ "$(opa_version "$dir/opa")" != "${OPA_VERSION#v}" ]; then
    find_go
    log "building opa $OPA_VERSION with $(GOTOOLCHAIN=local "$GO" version) (about 2 minutes with a cold Go cache)"
    mkdir -p "$dir"
    GOTOOLCHAIN=auto GOBIN="$dir" CGO_ENABLED=0 "$GO" install \
      "github.com/open-policy-agent/opa@$OPA_VERSION" >&2 || die "go install opa@$OPA_VERSION failed"
    [ "$(opa_version "$dir/opa")" = "${OPA_VERSION#v}" ] || die "$dir/opa does not report version $OPA_VERSION"
  fi
  export MTA_POLICY_OPA="$dir/opa" PATH="$dir:$PATH"
  log "using opa $OPA_VERSION at $MTA_POLICY_OPA"
}

ensure_npm_deps() {
  local stamp="$ROOT/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$ROOT/package-lock.json" -nt "$stamp" ]; then
    log "installing npm dependencies (npm ci)"
    (cd "$ROOT" && npm ci --no-audit --no-fund) >&2 || die "npm ci failed"
  fi
}
