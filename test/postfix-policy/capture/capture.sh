#!/usr/bin/env bash
# Re-captures test/postfix-policy/fixtures/postfix-*.policy from a private Postfix (see
# capture.ts and the fixtures' README). Needs root and the peers (bash scripts/peers/install.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
# Inside the repository: the harness finds the project root from its own location.
mkdir -p "$ROOT/dist"
OUT="$(mktemp -d "$ROOT/dist/.capture.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT
cd "$ROOT"
npx tsc --outDir "$OUT" --rootDir . --module nodenext --moduleResolution nodenext --target ES2023 \
  --types node --strict --skipLibCheck test/postfix-policy/capture/capture.ts
node "$OUT/test/postfix-policy/capture/capture.js" "$ROOT/test/postfix-policy/fixtures"
