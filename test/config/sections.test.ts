import { describe, expect, it } from 'vitest';
import { issueAt, ok } from './helpers.js';

describe('accepted domains', () => {
  const domains = (items: string): string => `server:\n  fqdn: smtp.northwind.test\naccepted_domains:\n${items}connectors: []\n`;

  it('normalises case, trailing dot and IDN', () => {
    const config = ok(domains('  - { domain: "Northwind.TEST." }\n  - { domain: "*.Bücher.test", type: internal_relay }\n'));
    expect(config.acceptedDomains.map((d) => [d.domain, d.wildcard])).toEqual([
      ['northwind.test', false],
      ['xn--bcher-kva.test', true],
    ]);
  });

  it('wildcard only as the whole first label', () => {
    const text = domains('  - { domain: northwind.test }\n  - { domain: "mail.*.northwind.test" }\n');
    const i = issueAt(text, 'accepted_domains[1].domain');
    expect(i.line).toBe(5);
    expect(i.message).toContain('not the whole first label');
    expect(issueAt(domains('  - { domain: "*northwind.test" }\n'), 'accepted_domains[0].domain').message).toContain('not the whole first label');
  });

  it('invalid names', () => {
    expect(issueAt(domains('  - { domain: "north wind.test" }\n'), 'accepted_domains[0].domain').message).toContain('not a valid domain name');
    expect(issueAt(domains('  - { domain: "-bad.test" }\n'), 'accepted_domains[0].domain').message).toContain('not a valid domain name');
    expect(issueAt(domains('  - { domain: "192.0.2.1" }\n'), 'accepted_domains[0].domain').message).toContain('IP address');
  });

  it('duplicates name the other line', () => {
    const text = domains('  - { domain: northwind.test }\n  - { domain: tailspin.test }\n  - { domain: NORTHWIND.test. }\n');
    const i = issueAt(text, 'accepted_domains[2].domain');
    expect(i.line).toBe(6);
    expect(i.message).toContain('listed twice (also at line 4)');
  });

  it('bad type', () => {
    const text = domains('  - { domain: northwind.test, type: internal }\n');
    expect(issueAt(text, 'accepted_domains[0].type').fix).toBe('did you mean `internal_relay`?');
  });
});

describe('identities', () => {
  const users = (items: string): string => `server:\n  fqdn: smtp.northwind.test\nidentities:\n  users:\n${items}connectors: []\n`;

  it('normalises addresses', () => {
    const config = ok(users('    - { name: Nancy, addresses: ["Nancy@Bücher.Test"], send_as: [OPS@northwind.test] }\n'));
    expect(config.users[0]?.addresses).toEqual(['nancy@xn--bcher-kva.test']);
    expect(config.users[0]?.sendAs).toEqual(['ops@northwind.test']);
    expect(config.users[0]?.logins).toEqual(['nancy', 'nancy@xn--bcher-kva.test']);
  });

  it('invalid address', () => {
    const text = users('    - { name: nancy, addresses: [nancy.northwind.test] }\n');
    const i = issueAt(text, 'identities.users[0].addresses[0]');
    expect(i.line).toBe(5);
    expect(i.message).toContain('not an email address');
  });

  it('an address belongs to one user only', () => {
    const text = users('    - { name: nancy, addresses: [ops@northwind.test] }\n    - { name: andrew, addresses: [OPS@northwind.test] }\n');
    const i = issueAt(text, 'identities.users[1].addresses[0]');
    expect(i.line).toBe(6);
    expect(i.message).toContain('already belongs to user `nancy` (line 5)');
  });

  it('a login name identifies one user only', () => {
    const text = users('    - { name: nancy, logins: ["NORTHWIND\\\\nancy"] }\n    - { name: andrew, logins: ["northwind\\\\NANCY"] }\n');
    const i = issueAt(text, 'identities.users[1].logins[0]');
    expect(i.line).toBe(6);
    expect(i.message).toContain('already identifies user `nancy`');
  });

  it('a user name may not be another user\'s login', () => {
    const text = users('    - { name: nancy, logins: [boss] }\n    - { name: Boss }\n');
    expect(issueAt(text, 'identities.users[1].name').message).toContain('already identifies user `nancy`');
  });

  it('user names are unique, case-insensitively', () => {
    const text = users('    - { name: nancy }\n    - { name: NANCY }\n');
    const i = issueAt(text, 'identities.users[1].name');
    expect(i.message).toContain('already used by `nancy` at line 5');
  });

  it('logins and names are case-folded in ASCII only: the Kelvin sign is not k', () => {
    const config = ok(users('    - { name: kelvin }\n    - { name: Other, logins: ["\u212Aelvin", "NORTHWIND\\\\Other"], addresses: ["\u212A@northwind.test"] }\n'));
    expect(config.users[0]?.logins).toEqual(['kelvin']);
    expect(config.users[1]?.logins).toEqual(['other', '\u212A@northwind.test', '\u212Aelvin', 'northwind\\other']);
    // Unicode toLowerCase would have made the second user's login `kelvin`, another user's name.
    expect('\u212Aelvin'.toLowerCase()).toBe('kelvin');
    const principal = ok(
      `${users('    - { name: "\u212Aelvin" }\n    - { name: kelvin }\n').replace('connectors: []\n', '')}connectors:\n  - { name: C, usage: client, extended_rights: [{ principal: "user:\u212AELVIN", deny: [ms-Exch-SMTP-Submit] }] }\n`,
    );
    expect(principal.connectors[0]?.extendedRights[0]?.principal).toBe('user:\u212Aelvin');
  });
});
