/**
 * Suites that need the `opa` binary (OPA's Go evaluator, `mta-policy build`). Where opa is
 * missing they are skipped with the reason in their title — unless MTA_POLICY_REQUIRE_OPA=1
 * (scripts/test.sh installs the pinned opa and sets it, so CI always runs them), where the
 * missing binary is a failing test instead, never a silent skip.
 */
import { describe, it } from 'vitest';
import { findOpa } from '../../engine/build.js';

/** The opa binary, or null when there is none here. */
export const opa: string | null = findOpa();

const WHY = 'opa is not installed here (scripts/test.sh installs the pinned opa and sets MTA_POLICY_REQUIRE_OPA=1)';

/** `describe` for a suite that needs opa (see the file comment for skip vs fail). */
export function describeWithOpa(title: string, body: () => void): void {
  if (opa !== null) {
    describe(title, body);
  } else if (process.env['MTA_POLICY_REQUIRE_OPA'] === '1') {
    describe(title, () => {
      it('has opa installed (MTA_POLICY_REQUIRE_OPA=1)', () => {
        throw new Error(WHY);
      });
    });
  } else {
    console.warn(`[opa] skipping "${title}": ${WHY}`);
    describe.skip(`${title} [skipped: ${WHY}]`, body);
  }
}
