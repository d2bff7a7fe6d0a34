/**
 * Review finding: the open-relay check (engine/config/rights.ts checkOpenRelay) computes the
 * union of ranges per connector only. Connector selection is per binding, so an admin who
 * splits an anonymous relay over two connectors on the same binding — 0.0.0.0/1 in one,
 * 128.0.0.0/1 in the other — gets exactly the open relay issue 5 §3b asks to refuse ("compute
 * the union of ranges … and refuse when it covers (nearly) all of an address family"), and
 * `mta-policy check` says ok.
 *
 * Expected: the union is computed over every enabled connector on a binding (a specific-IP
 * binding together with the wildcard on its port) whose credential-free principals hold
 * Accept-Any-Recipient, and the configuration is refused.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../engine/config/load.js';
import { ConfigError } from '../../engine/errors.js';

const relay = (name: string, binding: string, range: string): string =>
  `  - name: ${name}\n    usage: custom\n    bindings: ["${binding}"]\n    remote_ip_ranges: ["${range}"]\n` +
  '    permission_groups: [AnonymousUsers]\n    extended_rights: [{ principal: anonymous, allow: [ms-Exch-SMTP-Accept-Any-Recipient] }]\n';

function openRelayIssue(text: string): string | undefined {
  try {
    parseConfig(text, 'relay.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.find((i) => i.message.startsWith('open relay'))?.message;
    throw e;
  }
  return undefined;
}

describe('open relay across connectors', () => {
  it('refuses two anonymous relay connectors on one binding that together cover all of IPv4', () => {
    // Control: the per-connector check catches one connector holding both halves.
    const one = `server: { fqdn: mx.test }\nconnectors:\n${relay('Relay', '0.0.0.0:25', '0.0.0.0/1').replace('["0.0.0.0/1"]', '["0.0.0.0/1", "128.0.0.0/1"]')}`;
    expect(openRelayIssue(one)).toBeDefined();
    const two = `server: { fqdn: mx.test }\nconnectors:\n${relay('Relay A', '0.0.0.0:25', '0.0.0.0/1')}${relay('Relay B', '0.0.0.0:25', '128.0.0.0/1')}`;
    expect(openRelayIssue(two)).toBeDefined();
  });

  it('refuses the same split over a specific-IP binding and the wildcard on its port', () => {
    const two = `server: { fqdn: mx.test }\nconnectors:\n${relay('Relay A', '192.0.2.10:25', '0.0.0.0/1')}${relay('Relay B', '0.0.0.0:25', '128.0.0.0/1')}`;
    expect(openRelayIssue(two)).toBeDefined();
  });
});
