#!/usr/bin/env bash
# The project's test command: provisions Node >= 22, the pinned opa, npm deps and the mail peers
# (Postfix, Dovecot, swaks, libmilter, Sendmail unpacked into .tools, the C pass-through milter;
# scripts/peers/README.md), then runs `npm test` (TypeScript build, Rego checks with opa,
# vitest). opa and the peers are required here: no silent skips.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_node
ensure_opa
ensure_npm_deps
ensure_peers
export MTA_POLICY_REQUIRE_OPA=1
# Everything is installed now, so a peers test that cannot find its peer fails instead of skipping.
export MTA_POLICY_REQUIRE_PEERS=1
cd "$ROOT"
npm test
# One closing line for every suite: opa test's count is in its own output above; vitest's
# JSON report gives the rest.
node -e '
  const r = require(process.argv[1]);
  console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
  if (r.numTotalTests === 0) process.exit(1);
' "$ROOT/dist/vitest-report.json"
