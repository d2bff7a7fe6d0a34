#!/usr/bin/env bash
# The README's main job. Builds the CLI, checks examples/northwind.yaml and runs its scenario
# tests (`npm run example`), then the live part (examples/live.ts): `mta-policy serve` on
# examples/northwind-submission.yaml (loopback ports 2587 and 2525, a self-signed certificate
# made with openssl on the first run into var/certs, delivery into var/maildir), three messages
# through it with a real SMTP client, then SIGTERM. Exits 0 only if every expectation held.
# Needs Node and openssl (installed from Debian when missing and run as root), not opa.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_node
ensure_npm_deps
command -v openssl >/dev/null || ensure_apt_packages openssl
cd "$ROOT"
npm run example
node dist/examples/live.js "$@"
