#!/usr/bin/env bash
# Installs the mail peers the integration tests and benchmarks run against (Postfix, Dovecot,
# swaks, Sendmail unpacked into .tools, the C pass-through milter). Idempotent; needs root for
# apt. `.ci/run` calls the same function. See scripts/peers/README.md.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
ensure_peers
