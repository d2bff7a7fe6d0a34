#!/usr/bin/env bash
# Runs one benchmark with everything it needs provisioned, as scripts/test.sh does for the tests:
# Node, the pinned opa (OPA's Go evaluator side by side), the mail peers (Postfix, smtp-source,
# smtp-sink, Dovecot, the C pass-through milter) and valgrind (bench:engine's instruction count).
#   bash scripts/bench.sh engine|milter|policy|submission [options passed to the benchmark]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case "${1:-}" in
  engine | milter | policy | submission) ;;
  *) die "usage: bash scripts/bench.sh engine|milter|policy|submission [options]" ;;
esac
name=$1
shift
ensure_node
ensure_opa
ensure_npm_deps
ensure_peers
ensure_apt_packages valgrind
cd "$ROOT"
npm run "bench:$name" -- "$@"
