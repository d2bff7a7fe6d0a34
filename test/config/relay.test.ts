import { describe, expect, it } from 'vitest';
import { issuesOf, ok } from './helpers.js';

/** One connector on 0.0.0.0:25 and [::]:25 with `extra` keys, in a minimal configuration. */
const conf = (ranges: readonly string[], extra: string): string =>
  `server: { fqdn: mx.test }\nconnectors:\n  - name: R\n    usage: custom\n    bindings: ["0.0.0.0:25", "[::]:25"]\n` +
  `    remote_ip_ranges: [${ranges.map((r) => `"${r}"`).join(', ')}]\n${extra}`;

const ANON_RELAY = '    permission_groups: [AnonymousUsers]\n    extended_rights: [{ principal: anonymous, allow: [ms-Exch-SMTP-Accept-Any-Recipient] }]\n';
const EXT_AUTH = '    permission_groups: [ExchangeServers]\n    auth_mechanisms: [Tls, ExternalAuthoritative]\n';

const relayIssue = (text: string): string | undefined => issuesOf(text).find((i) => i.message.startsWith('open relay'))?.message;

describe('open relay: the union of the ranges, and what credential-free clients really hold', () => {
  const NEARLY_ALL_V4 = {
    'two halves': ['0.0.0.0/1', '128.0.0.0/1'],
    'all but one address': ['0.0.0.0-255.255.255.254'],
    'eight CIDRs, all but 255.0.0.0/8': ['0.0.0.0/1', '128.0.0.0/2', '192.0.0.0/3', '224.0.0.0/4', '240.0.0.0/5', '248.0.0.0/6', '252.0.0.0/7', '254.0.0.0/8'],
    'all public addresses, no private ones': ['1.0.0.0-9.255.255.255', '11.0.0.0-100.63.255.255', '100.128.0.0-126.255.255.255', '128.0.0.0-169.253.255.255', '169.255.0.0-172.15.255.255', '172.32.0.0-192.167.255.255', '192.169.0.0-223.255.255.255'],
    'all public addresses but one /8': ['0.0.0.0-0.255.255.255', '2.0.0.0-255.255.255.255'],
  };
  const NEARLY_ALL_V6 = {
    'two halves': ['::/1', '8000::/1'],
    'all but one address': ['::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe'],
    'global unicast 2000::/3': ['2000::/3'],
    'eight CIDRs': ['2000::/4', '3000::/5', '3800::/6', '3c00::/7', '3e00::/8', '3f00::/9', '3f80::/10', '3fc0::/10'],
  };

  it('refuses anonymous Accept-Any-Recipient over (nearly) all of IPv4 or IPv6', () => {
    for (const [label, ranges] of [...Object.entries(NEARLY_ALL_V4), ...Object.entries(NEARLY_ALL_V6)]) {
      const message = relayIssue(conf(ranges, ANON_RELAY));
      expect(message, label).toMatch(/^open relay: remote_ip_ranges cover (every|all but \d+ of the) public IPv[46] address(es)? and principal `anonymous` holds ms-Exch-SMTP-Accept-Any-Recipient/);
    }
  });

  it('refuses ExternalAuthoritative (externally secured holds Accept-Any-Recipient) alike', () => {
    for (const ranges of [...Object.values(NEARLY_ALL_V4), ...Object.values(NEARLY_ALL_V6)]) {
      expect(relayIssue(conf(ranges, EXT_AUTH))).toContain('ExternalAuthoritative treats every client as an externally secured server');
    }
  });

  it('a deny wins: an allow in one entry and a deny in another for the same principal is no relay', () => {
    const split = '    permission_groups: [AnonymousUsers]\n    extended_rights:\n' +
      '      - { principal: anonymous, allow: [ms-Exch-SMTP-Accept-Any-Recipient] }\n' +
      '      - { principal: anonymous, deny: [ms-Exch-SMTP-Accept-Any-Recipient] }\n';
    expect(ok(conf(['0.0.0.0/1', '128.0.0.0/1', '::/0'], split)).connectors[0]?.extendedRights).toHaveLength(2);
    const deniedExternal = `${EXT_AUTH}    extended_rights: [{ principal: externally_secured, deny: [ms-Exch-SMTP-Accept-Any-Recipient] }]\n`;
    ok(conf(['0.0.0.0/0', '::/0'], deniedExternal));
  });

  it('a grant to another principal is no relay for clients without credentials', () => {
    // Only authenticated users relay here (Exchange's client connector), and a deny for
    // anonymous does not take away a group's grant to authenticated users.
    ok(conf(['0.0.0.0/0'], '    permission_groups: [ExchangeUsers]\n    extended_rights: [{ principal: anonymous, deny: [ms-Exch-SMTP-Submit] }]\n'));
    // partner needs a Domain Secure certificate; without Domain Secure nobody is partner.
    const partner = '    extended_rights: [{ principal: partner, allow: [ms-Exch-SMTP-Accept-Any-Recipient] }]\n';
    ok(conf(['0.0.0.0/0'], `${partner}    domain_secure_enabled: false\n`));
    expect(relayIssue(conf(['0.0.0.0/0'], `    permission_groups: [Partners]\n${partner}`))).toContain('principal `partner`');
  });

  it('ranges that leave out more than a /8 of the public space, or only private space, are fine', () => {
    ok(conf(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'], ANON_RELAY));
    ok(conf(['0.0.0.0-0.255.255.255', '2.0.0.1-255.255.255.255'], ANON_RELAY)); // misses 1.0.0.0/8 and 2.0.0.0
    ok(conf(['0.0.0.0/1', '2000::/4'], ANON_RELAY));
    ok(conf(['0.0.0.0/1'], EXT_AUTH));
  });
});

describe('open relay across connectors: selection is per binding, so relaying connectors add up', () => {
  const relay = (name: string, binding: string, range: string): string =>
    `  - name: ${name}\n    usage: custom\n    bindings: ["${binding}"]\n    remote_ip_ranges: ["${range}"]\n${ANON_RELAY}`;
  const config = (...connectors: string[]): string => `server: { fqdn: mx.test }\nconnectors:\n${connectors.join('')}`;

  it('refuses two anonymous relay connectors on one binding that together cover all of IPv4', () => {
    expect(relayIssue(config(relay('Relay A', '0.0.0.0:25', '0.0.0.0/1'), relay('Relay B', '0.0.0.0:25', '128.0.0.0/1')))).toBe(
      'open relay: connectors `Relay A`, `Relay B` together let clients on port 25 relay from every public IPv4 address (principal `anonymous` holds ms-Exch-SMTP-Accept-Any-Recipient without authentication)',
    );
    expect(relayIssue(config(relay('A', '[::]:25', '::/1'), relay('B', '[::]:25', '8000::/1')))).toContain('every public IPv6 address');
  });

  it('refuses the same split over a specific-IP binding and the wildcard on its port', () => {
    expect(relayIssue(config(relay('Relay A', '192.0.2.10:25', '0.0.0.0/1'), relay('Relay B', '0.0.0.0:25', '128.0.0.0/1')))).toContain('clients on 192.0.2.10:25');
  });

  it('connectors on different ports, or on two specific addresses, are different bindings', () => {
    ok(config(relay('Relay A', '0.0.0.0:25', '0.0.0.0/1'), relay('Relay B', '0.0.0.0:2525', '128.0.0.0/1')));
    ok(config(relay('Relay A', '192.0.2.10:25', '0.0.0.0/1'), relay('Relay B', '192.0.2.11:25', '128.0.0.0/1')));
    // A connector whose anonymous clients cannot relay does not add to the union.
    ok(config(relay('Relay A', '0.0.0.0:25', '0.0.0.0/1'), `  - { name: Inbound, usage: custom, bindings: ["0.0.0.0:25"], remote_ip_ranges: ["128.0.0.0/1"], permission_groups: [AnonymousUsers] }\n`));
  });
});
