#!/usr/bin/env bash
# Rego checks (`npm run policies:test`): opa fmt, opa check --strict against the wasm-native
# capabilities, opa test with a coverage threshold. Sources: $POLICY_DIR minus dist/.
#   POLICY_DIR (default policies)  COVERAGE_THRESHOLD (default 90, percent)
#   MTA_POLICY_REQUIRE_OPA=1: fail instead of skipping when opa is not installed
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
POLICY_DIR=${POLICY_DIR:-$ROOT/policies}
COVERAGE_THRESHOLD=${COVERAGE_THRESHOLD:-90}
CAPABILITIES=${CAPABILITIES:-$ROOT/policies/capabilities.json}

opa=${MTA_POLICY_OPA:-}
if [ -z "$opa" ] && [ -x "$TOOLS/opa-$OPA_VERSION/opa" ]; then opa="$TOOLS/opa-$OPA_VERSION/opa"; fi
if [ -z "$opa" ]; then opa=$(command -v opa || true); fi
if [ -z "$opa" ] || [ ! -x "$opa" ]; then
  [ "${MTA_POLICY_REQUIRE_OPA:-0}" = 1 ] && die "opa not installed (MTA_POLICY_REQUIRE_OPA=1); run scripts/test.sh to install it"
  echo "SKIPPED: opa not installed (run scripts/test.sh to install it)"
  exit 0
fi
v=$(opa_version "$opa")
[ "$v" = "${OPA_VERSION#v}" ] || log "WARNING: $opa is version ${v:-unknown}, the project pins $OPA_VERSION"
[ -f "$CAPABILITIES" ] || die "$CAPABILITIES missing; generate it with: node scripts/gen-capabilities.mjs"

mapfile -t files < <(find "$POLICY_DIR" -path "$POLICY_DIR/dist" -prune -o -type f -name '*.rego' -print | sort)
[ "${#files[@]}" -gt 0 ] || die "no .rego files under $POLICY_DIR"
# check/test load directories (so data files keep their paths); skip build output and the capabilities.
ignore=(--ignore dist --ignore capabilities.json)

log "opa fmt (${#files[@]} files)"
"$opa" fmt --fail -l "${files[@]}" || die "Rego not formatted; run: $opa fmt -w $POLICY_DIR"

log "opa check --strict --capabilities $(basename "$CAPABILITIES")"
"$opa" check --strict --capabilities "$CAPABILITIES" "${ignore[@]}" "$POLICY_DIR"

log "opa test"
"$opa" test -v --fail-on-empty "${ignore[@]}" "$POLICY_DIR"

log "opa test --coverage (threshold ${COVERAGE_THRESHOLD}%)"
report=$(mktemp)
trap 'rm -f "$report"' EXIT
"$opa" test --coverage --format=json "${ignore[@]}" "$POLICY_DIR" >"$report"
node - "$report" "$COVERAGE_THRESHOLD" <<'EOF'
const fs = require("fs");
const [report, threshold] = process.argv.slice(2);
const cov = JSON.parse(fs.readFileSync(report, "utf8"));
for (const [file, f] of Object.entries(cov.files ?? {})) {
  const missed = [...new Set((f.not_covered ?? []).map((r) => (r.start.row === r.end.row ? r.start.row : `${r.start.row}-${r.end.row}`)))];
  console.log(`  ${(f.coverage ?? 0).toFixed(1).padStart(5)}%  ${file}${missed.length ? `  (not covered: ${missed.join(", ")})` : ""}`);
}
// Judge the policy, not the tests: test files are always fully "covered".
let covered = 0;
let missed = 0;
for (const [file, f] of Object.entries(cov.files ?? {})) {
  if (file.endsWith("_test.rego")) continue;
  covered += f.covered_lines ?? 0;
  missed += f.not_covered_lines ?? 0;
}
const total = covered + missed === 0 ? 0 : (100 * covered) / (covered + missed);
console.log(`Rego coverage of the policy (tests excluded): ${total.toFixed(2)}% (threshold ${threshold}%)`);
if (total < Number(threshold)) {
  console.error(`FAIL: Rego coverage ${total.toFixed(2)}% is below the ${threshold}% threshold`);
  process.exit(1);
}
EOF

# The committed bundle must be what the sources build to (and the Rego test fixtures what the
# engine produces), or the program would run a policy nobody reviewed.
log "policies/test/fixtures.json is current"
node "$ROOT/dist/test/fixtures/policy-fixtures.js" --check || die "stale Rego test fixtures; run: npm run policies:build"
log "policies/dist matches a fresh build"
MTA_POLICY_OPA="$opa" node "$ROOT/dist/cli/index.js" build --check || die "stale policy bundle; run: npm run policies:build, then commit policies/dist"
