#!/usr/bin/env bash
# Runs the main job (`npm run example`): builds and runs the CLI on examples/. Needs Node only, not opa.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_node
ensure_npm_deps
cd "$ROOT"
npm run example
