import { describe, expect, it } from 'vitest';
import { issueAt, issuesOf, lineOf, ok, withConnectors } from './helpers.js';

describe('connector rules', () => {
  const one = (body: string): string => withConnectors(`  - name: A\n${body}`);

  it('bad range: host bits set, with the network form', () => {
    const text = one('    usage: internal\n    remote_ip_ranges: [10.0.0.1, 192.168.1.5/24]\n');
    const i = issueAt(text, 'connectors[0].remote_ip_ranges[1]');
    expect(i.line).toBe(lineOf(text, '192.168.1.5/24'));
    expect(i.message).toContain('host bits');
    expect(i.fix).toContain('did you mean 192.168.1.0/24');
  });

  it('bad binding', () => {
    const text = one('    usage: internet\n    bindings:\n      - "0.0.0.0:25"\n      - "2001:db8::1:25"\n');
    const i = issueAt(text, 'connectors[0].bindings[1]');
    expect(i.line).toBe(lineOf(text, '2001:db8::1:25'));
    expect(i.fix).toContain('[2001:db8::1]:25');
  });

  it('duplicate binding and duplicate range in one connector', () => {
    const text = one(
      '    usage: custom\n    bindings: ["0.0.0.0:25", "[::ffff:0.0.0.0]:25"]\n    remote_ip_ranges:\n      - 10.0.0.0/8\n      - 10.0.0.0-10.255.255.255\n',
    );
    const b = issueAt(text, 'connectors[0].bindings[1]');
    expect(b.message).toContain('the same as');
    expect(b.line).toBe(lineOf(text, 'bindings:'));
    const r = issueAt(text, 'connectors[0].remote_ip_ranges[1]');
    expect(r.line).toBe(lineOf(text, '10.0.0.0-10.255.255.255'));
    expect(r.message).toContain(`(line ${lineOf(text, '- 10.0.0.0/8')})`);
  });

  it('None must be alone', () => {
    const text = one('    usage: client\n    auth_mechanisms: [Tls, None]\n    permission_groups: [None, Partners]\n');
    expect(issueAt(text, 'connectors[0].auth_mechanisms[1]').message).toContain('`None` must be the only auth mechanism');
    expect(issueAt(text, 'connectors[0].permission_groups[0]').message).toContain('`None` must be the only permission group');
  });

  it('BasicAuthRequireTLS requires BasicAuth and Tls', () => {
    const text = one('    usage: client\n    auth_mechanisms: [BasicAuthRequireTLS]\n');
    const i = issueAt(text, 'connectors[0].auth_mechanisms[0]');
    expect(i.line).toBe(lineOf(text, 'auth_mechanisms'));
    expect(i.message).toContain('requires `BasicAuth` and `Tls`');
  });

  it('ExternalAuthoritative requires ExchangeServers', () => {
    const text = one('    usage: internal\n    remote_ip_ranges: [10.0.0.0/8]\n    permission_groups: [AnonymousUsers]\n    auth_mechanisms: [Tls, ExternalAuthoritative]\n');
    expect(issueAt(text, 'connectors[0].auth_mechanisms[1]').message).toContain('requires permission group `ExchangeServers`');
  });

  it('require_tls and domain_secure_enabled require Tls', () => {
    const text = one('    usage: client\n    auth_mechanisms: [BasicAuth]\n    require_tls: true\n    domain_secure_enabled: true\n');
    expect(issueAt(text, 'connectors[0].require_tls').line).toBe(lineOf(text, 'require_tls'));
    expect(issueAt(text, 'connectors[0].domain_secure_enabled').message).toContain('requires auth mechanism `Tls`');
    const partner = withConnectors('  - { name: P, usage: partner, bindings: ["0.0.0.0:25"], remote_ip_ranges: [203.0.113.0/24], auth_mechanisms: [None] }\n');
    expect(issueAt(partner, 'connectors[0].auth_mechanisms').message).toContain('Domain Secure');
  });

  it('size limits', () => {
    const text = one('    usage: client\n    max_message_size: 10KB\n    max_header_size: 36XB\n');
    const m = issueAt(text, 'connectors[0].max_message_size');
    expect(m.line).toBe(lineOf(text, '10KB'));
    expect(m.message).toContain('from 64KB to 2GB');
    expect(issueAt(text, 'connectors[0].max_header_size').message).toContain('not a size');
  });

  it('principals', () => {
    const text = one(`    usage: client
    extended_rights:
      - { principal: anonymus, allow: [ms-Exch-SMTP-Submit] }
      - { principal: "user:nancyy", allow: [ms-Exch-SMTP-Submit] }
      - { principal: "group:Opss", allow: [ms-Exch-SMTP-Submit] }
      - { principal: "NT AUTHORITY\\\\ANONYMOUS LOGON", allow: [ms-Exch-SMTP-Submit] }
      - { principal: anonymous }
      - { principal: anonymous, allow: [ms-Exch-SMTP-Submit], deny: [MS-EXCH-SMTP-SUBMIT] }
`);
    const a = issueAt(text, 'connectors[0].extended_rights[0].principal');
    expect(a.line).toBe(lineOf(text, 'anonymus'));
    expect(a.fix).toBe('did you mean `anonymous`?');
    expect(issueAt(text, 'connectors[0].extended_rights[1].principal').fix).toBe('did you mean `user:nancy`?');
    const g = issueAt(text, 'connectors[0].extended_rights[2].principal');
    expect(g.message).toContain('no user is in group `Opss`');
    expect(g.fix).toBe('did you mean `group:Ops`?');
    expect(issueAt(text, 'connectors[0].extended_rights[3].principal').fix).toContain('`anonymous`');
    expect(issueAt(text, 'connectors[0].extended_rights[4]').message).toContain('neither allows nor denies');
    expect(issueAt(text, 'connectors[0].extended_rights[5].allow[0]').message).toContain('both allowed and denied');
  });

  it('connector names are unique, case-insensitively', () => {
    const text = withConnectors('  - { name: Relay, usage: client }\n  - { name: relay, usage: client, bindings: ["0.0.0.0:588"] }\n');
    const i = issueAt(text, 'connectors[1].name');
    expect(i.message).toContain(`already used by \`Relay\` at line ${lineOf(text, 'name: Relay')}`);
  });

  it('collects every issue at once, sorted by line', () => {
    const text = withConnectors(`  - name: A
    usage: custom
    bindings: ["0.0.0.0"]
    remote_ip_ranges: [10.0.0.1/8]
    permission_groups: [AnonymousUser]
    max_message_size: 1B
`);
    const all = issuesOf(text);
    expect(all.map((i) => i.path)).toEqual([
      'connectors[0].bindings[0]',
      'connectors[0].remote_ip_ranges[0]',
      'connectors[0].permission_groups[0]',
      'connectors[0].max_message_size',
    ]);
    const lines = all.map((i) => i.line ?? 0);
    expect([...lines].sort((x, y) => x - y)).toEqual(lines);
    expect(all[2]?.fix).toBe('did you mean `AnonymousUsers`?');
  });
});

describe('configurations that would be unsafe or dead', () => {
  const base = (connector: string, extra = ''): string =>
    `server: { fqdn: mx.test }\n${extra}connectors:\n  - name: A\n${connector}`;

  it('refuses an open relay: relay without credentials from every address', () => {
    const ext = base('    usage: internet\n    bindings: ["0.0.0.0:25"]\n    permission_groups: [ExchangeServers]\n    auth_mechanisms: [Tls, ExternalAuthoritative]\n');
    expect(issuesOf(ext).map((i) => i.message).join()).toContain('open relay');
    const ace = base(
      '    usage: internet\n    bindings: ["0.0.0.0:25"]\n    extended_rights: [{ principal: anonymous, allow: [ms-Exch-SMTP-Accept-Any-Recipient] }]\n',
    );
    expect(issuesOf(ace)[0]?.message).toMatch(/^open relay: remote range `0\.0\.0\.0-255\.255\.255\.255` covers every address/);
    // The same grant for a narrow range is Microsoft's anonymous relay recipe: fine.
    ok(
      base(
        '    usage: custom\n    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.2.3]\n    permission_groups: [AnonymousUsers]\n    extended_rights: [{ principal: anonymous, allow: [ms-Exch-SMTP-Accept-Any-Recipient] }]\n',
      ),
    );
  });

  it('refuses a remote range no binding can receive', () => {
    const text = base('    usage: custom\n    bindings: ["[::]:25"]\n    remote_ip_ranges: [198.51.100.0/24]\n    permission_groups: [AnonymousUsers]\n');
    const issue = issueAt(text, 'connectors[0].remote_ip_ranges');
    expect(issue.message).toContain('is IPv4 but the connector has no IPv4 binding');
    expect(issue.fix).toContain('0.0.0.0:25');
  });

  it('refuses a whole top-level domain as an accepted domain', () => {
    for (const domain of ['com', '"*.com"']) {
      const text = base('    usage: client\n', `accepted_domains: [{ domain: ${domain} }]\n`);
      expect(issueAt(text, 'accepted_domains[0].domain').message).toContain('whole top-level domain');
    }
  });

  it('keeps reply overrides in the class their reason needs', () => {
    const replies = (r: string): string => `server: { fqdn: mx.test, replies: { ${r} } }\nconnectors:\n  - name: A\n    usage: client\n`;
    expect(issueAt(replies('relay_denied: { code: 250, enhanced: 2.0.0, text: ok }'), 'server.replies.relay_denied.code').message).toContain('needs a refusal');
    expect(issueAt(replies('ok_rcpt: { code: 550, enhanced: 5.7.1, text: no }'), 'server.replies.ok_rcpt.code').message).toContain('needs a success reply');
    expect(issueAt(replies('engine_error: { code: 554, enhanced: 5.3.0, text: no }'), 'server.replies.engine_error.code').message).toContain('temporary failure');
    expect(issueAt(replies('ok_rcpt: { code: 250, enhanced: 2.1.5, text: ok, disconnect: true }'), 'server.replies.ok_rcpt.disconnect').message).toContain('only a refusal');
    ok(replies('engine_error: { code: 421, enhanced: 4.3.0, text: later, disconnect: true }'));
  });
});
