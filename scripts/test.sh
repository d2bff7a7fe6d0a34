#!/usr/bin/env bash
# The project's test command: provisions Node >= 22, the pinned opa and npm deps, then runs `npm test`
# (TypeScript build, Rego checks with opa, vitest). opa is required here: no silent skips.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_node
ensure_opa
ensure_npm_deps
export MTA_POLICY_REQUIRE_OPA=1
cd "$ROOT"
npm test
