/**
 * The "peers" test tier: suites that need real mail servers. A suite whose peers are missing is
 * skipped with the reason in its title, unless MTA_POLICY_REQUIRE_PEERS=1 (CI: .ci/run installs
 * the peers and sets it), where the missing peer is a failing test instead.
 */
import { describe, it } from 'vitest';
import { peerMissing, type PeerName } from './bins.js';

/** True when a missing peer must fail the run rather than skip. */
export const peersRequired = (): boolean => process.env['MTA_POLICY_REQUIRE_PEERS'] === '1';

/** Why any of `peers` cannot run here, or null when all can. */
export function missingPeers(peers: readonly PeerName[]): string | null {
  const why = peers.map((p) => peerMissing(p)).filter((r): r is string => r !== null);
  return why.length === 0 ? null : why.join('; ');
}

/** `describe` for a suite that needs `peers` (see the file comment for skip vs fail). */
export function describePeers(title: string, peers: readonly PeerName[], body: () => void): void {
  const why = missingPeers(peers);
  if (why === null) {
    describe(title, body);
  } else if (peersRequired()) {
    describe(title, () => {
      it('has its peers installed (MTA_POLICY_REQUIRE_PEERS=1)', () => {
        throw new Error(why);
      });
    });
  } else {
    // The default reporter only counts skips: say why on stderr too.
    console.warn(`[peers] skipping "${title}": ${why}`);
    describe.skip(`${title} [skipped: ${why}]`, body);
  }
}
