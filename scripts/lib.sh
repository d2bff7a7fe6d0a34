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

# ---------------------------------------------------------------------------------------------
# Mail peers for the integration tests and benchmarks (scripts/peers/README.md):
#   ensure_peers               everything below, then prints the versions
#   ensure_apt_packages P...   installs the Debian packages not yet installed (root), never
#                              starting a service
#   ensure_sendmail            Sendmail unpacked from the Debian .debs into .tools/sendmail-<ver>/
#                              (Postfix stays the MTA); exports MTA_POLICY_SENDMAIL_ROOT
#   ensure_passthrough_milter  builds test/bench/peers/passthrough-milter.c with libmilter into
#                              .tools/passthrough-milter-<hash>/; exports MTA_POLICY_PASSTHROUGH_MILTER

# The Debian packages the peers need: Postfix (with smtp-source/smtp-sink), Dovecot auth + LMTP,
# swaks and libnet-ssleay-perl (only "recommended" by swaks, but its TLS needs it), libmilter and
# a C compiler for the pass-through milter, m4 for sendmail.cf, openssl for test certificates,
# python3 (smtplib), miltertest (a Lua-scripted milter client). Installed without recommends.
PEER_APT_PACKAGES=(postfix dovecot-core dovecot-lmtpd swaks libnet-ssleay-perl libmilter-dev gcc libc6-dev make m4 openssl python3 miltertest)

# invoke-rc.d(8) consults this file before starting any service.
POLICY_RC_D=/usr/sbin/policy-rc.d

pkg_installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# apt-get with a wait for the dpkg lock instead of failing when another apt runs.
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" </dev/null; }

APT_UPDATED=
apt_update_once() {
  [ -n "$APT_UPDATED" ] && return
  log "apt-get update"
  apt_get update -qq >&2 || die "apt-get update failed"
  APT_UPDATED=1
}

ensure_apt_packages() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "missing Debian packages: ${missing[*]} (as root: apt-get install ${missing[*]})"
  fi
  apt_update_once
  # Debian's postfix/dovecot maintainer scripts start their daemons through invoke-rc.d /
  # deb-systemd-invoke, which obey policy-rc.d: exit 101 = "action forbidden". Install one for
  # the duration unless the machine already has one; postfix gets "No configuration" so no
  # system main.cf (and no system instance) is created.
  local own_policy=
  if [ ! -e "$POLICY_RC_D" ]; then
    printf '#!/bin/sh\n# mta-policy scripts/lib.sh: no service starts during package installation\nexit 101\n' >"$POLICY_RC_D"
    chmod 755 "$POLICY_RC_D"
    own_policy=1
  fi
  printf 'postfix postfix/main_mailer_type select No configuration\npostfix postfix/mailname string mx.postfix.test\n' |
    debconf-set-selections || true
  log "installing Debian packages: ${missing[*]}"
  local rc=0
  apt_get install -y -qq --no-install-recommends "${missing[@]}" >&2 || rc=$?
  if [ -n "$own_policy" ]; then rm -f "$POLICY_RC_D"; fi
  [ "$rc" = 0 ] || die "apt-get install ${missing[*]} failed"
}

# The candidate version of Debian package $1 ("" when apt knows none).
apt_candidate() { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '^(none)$' || true; }

# Libraries the binary $1 needs that the dynamic linker cannot find (empty when none).
missing_libs() { ldd "$1" 2>/dev/null | grep 'not found' || true; }

ensure_sendmail() {
  local ver dir debs tmp d deps
  ver=$(apt_candidate sendmail-bin)
  dir=
  if [ -n "$ver" ]; then
    dir="$TOOLS/sendmail-${ver//:/_}"
  else
    # Offline re-run with empty apt lists: reuse what is unpacked already.
    dir=$(ls -d "$TOOLS"/sendmail-[0-9]* 2>/dev/null | sort | tail -n 1 || true)
    if [ -z "$dir" ]; then
      [ "$(id -u)" = 0 ] || die "apt knows no sendmail-bin package; run apt-get update as root"
      apt_update_once
      ver=$(apt_candidate sendmail-bin)
      [ -n "$ver" ] || die "no sendmail-bin package in the apt sources"
      dir="$TOOLS/sendmail-${ver//:/_}"
    fi
  fi
  debs="$TOOLS/debs"
  if [ ! -x "$dir/usr/libexec/sendmail/sendmail" ]; then
    mkdir -p "$debs"
    if ! ls "$debs"/sendmail-bin_"${ver#*:}"_*.deb "$debs"/sendmail-cf_"${ver#*:}"_*.deb >/dev/null 2>&1; then
      log "downloading sendmail-bin and sendmail-cf $ver (unpacked only; Postfix stays the MTA)"
      # As root apt downloads as _apt, which cannot write into .tools: download as root.
      (cd "$debs" && apt-get -o APT::Sandbox::User=root download -qq "sendmail-bin=$ver" "sendmail-cf=$ver") >&2 ||
        die "apt-get download sendmail-bin=$ver sendmail-cf=$ver failed"
    fi
    tmp="$TOOLS/.sendmail-unpack.$$"   # hidden: never matched as a sendmail-<version> tree
    rm -rf "$tmp"
    mkdir -p "$tmp"
    for d in "$debs"/sendmail-bin_"${ver#*:}"_*.deb "$debs"/sendmail-cf_"${ver#*:}"_*.deb; do
      dpkg-deb -x "$d" "$tmp" || die "dpkg-deb -x $d failed"
    done
    rm -rf "$dir"
    mv "$tmp" "$dir"   # atomic: a half-unpacked tree is never seen at $dir
  fi
  # Shared libraries the unpacked binary needs come from the package's own Depends (minus
  # sendmail-*), installed like any other package.
  if [ -n "$(missing_libs "$dir/usr/libexec/sendmail/sendmail")" ]; then
    d=$(ls "$debs"/sendmail-bin_*.deb 2>/dev/null | sort | tail -n 1 || true)
    [ -n "$d" ] || die "sendmail misses libraries and its .deb is gone; remove $dir and retry"
    deps=$(dpkg-deb -f "$d" Depends | tr ',' '\n' | sed 's/[ (].*//; s/^ *//' | grep -v -e '^sendmail' -e '^$' || true)
    # shellcheck disable=SC2086
    ensure_apt_packages $deps
    [ -z "$(missing_libs "$dir/usr/libexec/sendmail/sendmail")" ] ||
      die "sendmail still misses libraries: $(missing_libs "$dir/usr/libexec/sendmail/sendmail")"
  fi
  export MTA_POLICY_SENDMAIL_ROOT="$dir"
  log "using sendmail ${dir##*/sendmail-} at $MTA_POLICY_SENDMAIL_ROOT"
}

ensure_passthrough_milter() {
  local src="$ROOT/test/bench/peers/passthrough-milter.c" hash dir
  [ -f /usr/include/libmilter/mfapi.h ] && command -v gcc >/dev/null ||
    die "libmilter-dev and gcc are needed to build the pass-through milter (apt-get install libmilter-dev gcc)"
  hash=$(sha256sum "$src" | cut -c1-12)
  dir="$TOOLS/passthrough-milter-$hash"
  if [ ! -x "$dir/passthrough-milter" ]; then
    log "building the C pass-through milter ($src)"
    mkdir -p "$dir"
    gcc -O2 -Wall -Wextra -Werror -o "$dir/passthrough-milter.tmp.$$" "$src" -lmilter -pthread >&2 ||
      die "gcc failed on $src"
    mv "$dir/passthrough-milter.tmp.$$" "$dir/passthrough-milter"
  fi
  export MTA_POLICY_PASSTHROUGH_MILTER="$dir/passthrough-milter"
}

ensure_peers() {
  ensure_apt_packages "${PEER_APT_PACKAGES[@]}"
  ensure_sendmail
  ensure_passthrough_milter
  log "peers: postfix $(postconf -d -h mail_version), dovecot $(dovecot --version | cut -d' ' -f1), swaks $(dpkg-query -W -f='${Version}' swaks)"
}
