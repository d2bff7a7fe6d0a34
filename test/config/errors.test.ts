import { describe, expect, it } from 'vitest';
import { issueAt, issuesOf, lineOf, ok, withConnectors } from './helpers.js';

describe('YAML errors', () => {
  it('reports a syntax error with its line', () => {
    const text = 'server:\n  fqdn: smtp.northwind.test\nconnectors: [\n  { name: x\n';
    const all = issuesOf(text);
    expect(all.length).toBeGreaterThan(0);
    expect(all[0]?.message).toContain('YAML syntax error');
    expect(all[0]?.line).toBeGreaterThanOrEqual(3);
  });

  it('reports a duplicate key at the second occurrence, naming the first', () => {
    const text = withConnectors(`  - name: A
    usage: client
    usage: internet
`);
    const i = issueAt(text, 'connectors[0].usage');
    expect(i.line).toBe(lineOf(text, 'usage: internet'));
    expect(i.message).toContain('defined twice');
    expect(i.message).toContain(`first at line ${lineOf(text, 'usage: client')}`);
  });

  it('reports an empty file', () => {
    const all = issuesOf('');
    expect(all[0]?.message).toContain('must be a mapping');
  });
});

describe('schema errors become human messages', () => {
  it('unknown key: at the key, with did-you-mean', () => {
    const text = withConnectors(`  - name: A
    usage: custom
    bindings: ["0.0.0.0:25"]
    remote_ip_ranges: [10.0.0.0/8]
    remote_ip_range: [10.0.0.1]
`);
    const i = issueAt(text, 'connectors[0].remote_ip_range');
    expect(i.line).toBe(lineOf(text, 'remote_ip_range:'));
    expect(i.column).toBe(5);
    expect(i.message).toContain('unknown key `remote_ip_range`');
    expect(i.fix).toBe('did you mean `remote_ip_ranges`?');
  });

  it('unknown key in camelCase is recognised', () => {
    const text = `server:\n  fqdn: a.test\n  localAddresses: [192.0.2.1]\nconnectors: []\n`;
    expect(issueAt(text, 'server.localAddresses').fix).toBe('did you mean `local_addresses`?');
  });

  it('enum: lists allowed values and suggests the closest', () => {
    const text = withConnectors(`  - name: A
    usage: clients
`);
    const i = issueAt(text, 'connectors[0].usage');
    expect(i.line).toBe(lineOf(text, 'usage: clients'));
    expect(i.message).toContain('allowed: client, internet, internal, partner, custom');
    expect(i.fix).toBe('did you mean `client`?');
  });

  it('enum: wrong letter case', () => {
    const text = withConnectors(`  - name: A
    usage: client
    permission_groups: [anonymoususers]
`);
    expect(issueAt(text, 'connectors[0].permission_groups[0]').fix).toContain('write `AnonymousUsers`');
  });

  it('Integrated and ExchangeServer are not supported', () => {
    const text = withConnectors(`  - name: A
    usage: client
    auth_mechanisms: [Tls, BasicAuth, Integrated]
`);
    const i = issueAt(text, 'connectors[0].auth_mechanisms[2]');
    expect(i.line).toBe(lineOf(text, 'Integrated'));
    expect(i.message).toContain('not supported by mta-policy');
    expect(i.fix).toContain('Exchange Servers');
    expect(i.fix).toContain('ExternalAuthoritative');
  });

  it('missing required keys', () => {
    const text = withConnectors(`  - usage: client
  - name: B
    usage: custom
    remote_ip_ranges: [10.0.0.1]
`);
    const a = issueAt(text, 'connectors[0]');
    expect(a.line).toBe(lineOf(text, '- usage: client'));
    expect(a.message).toContain('missing required key `name`');
    const b = issueAt(text, 'connectors[1]');
    expect(b.line).toBe(lineOf(text, 'name: B'));
    expect(b.message).toContain('usage `custom` needs `bindings`');
    expect(b.fix).toContain('bindings:');
  });

  it('missing server', () => {
    const i = issueAt('connectors: []\n', '');
    expect(i.message).toContain('missing required key `server`');
  });

  it('wrong type, with an example', () => {
    const text = withConnectors(`  - name: A
    usage: client
    max_message_size: true
    require_tls: "yes"
`);
    const a = issueAt(text, 'connectors[0].max_message_size');
    expect(a.line).toBe(lineOf(text, 'max_message_size'));
    expect(a.message).toContain('must be a whole number or a string');
    expect(a.fix).toContain('36MB');
    expect(issueAt(text, 'connectors[0].require_tls').message).toContain('must be true or false');
  });

  it('unknown extended right, with did-you-mean', () => {
    const text = withConnectors(`  - name: A
    usage: client
    extended_rights:
      - principal: anonymous
        allow:
          - ms-Exch-SMTP-Submit
          - ms-exch-smtp-accept-any-recipent
`);
    const i = issueAt(text, 'connectors[0].extended_rights[0].allow[1]');
    expect(i.line).toBe(lineOf(text, 'recipent'));
    expect(i.message).toContain('unknown extended right');
    expect(i.fix).toBe('did you mean `ms-Exch-SMTP-Accept-Any-Recipient`?');
  });

  it('limits out of range', () => {
    const text = withConnectors(`  - name: A
    usage: client
    max_recipients_per_message: 0
    max_hop_count: 501
    max_inbound_connection: lots
`);
    expect(issueAt(text, 'connectors[0].max_recipients_per_message').message).toContain('from 1 to 512000, or unlimited');
    const hop = issueAt(text, 'connectors[0].max_hop_count');
    expect(hop.line).toBe(lineOf(text, 'max_hop_count'));
    expect(hop.message).toContain('from 1 to 500');
    expect(issueAt(text, 'connectors[0].max_inbound_connection').message).toContain('not a number or `unlimited`');
  });

  it('bad SASL mechanism', () => {
    const text = withConnectors(`  - name: A
    usage: client
    basic_auth_mechanisms: [PLAIN, CRAM-MD5]
`);
    expect(issueAt(text, 'connectors[0].basic_auth_mechanisms[1]').fix).toBe('use PLAIN or LOGIN');
  });
});

describe('reply overrides', () => {
  const server = (replies: string): string => `server:
  fqdn: smtp.northwind.test
  replies:
${replies}connectors: []
`;

  it('unknown reason', () => {
    const text = server('    relay_denyed: { code: 550, enhanced: 5.7.1, text: No }\n');
    const i = issueAt(text, 'server.replies.relay_denyed');
    expect(i.line).toBe(3 + 1);
    expect(i.message).toContain('unknown reply reason');
    expect(i.fix).toBe('did you mean `relay_denied`?');
  });

  it('code out of range', () => {
    const text = server('    relay_denied: { code: 600, enhanced: 5.7.1, text: No }\n');
    expect(issueAt(text, 'server.replies.relay_denied.code').message).toContain('from 200 to 599');
  });

  it('enhanced class must match the code', () => {
    const text = server('    relay_denied: { code: 550, enhanced: 4.7.1, text: No }\n');
    const i = issueAt(text, 'server.replies.relay_denied.enhanced');
    expect(i.line).toBe(4);
    expect(i.message).toContain('class 4 but reply code 550 is class 5');
    expect(i.fix).toContain('5.7.54');
  });

  it('empty enhanced only for 2xx/3xx', () => {
    expect(issueAt(server('    relay_denied: { code: 554, enhanced: "", text: No }\n'), 'server.replies.relay_denied.enhanced').message).toContain(
      'needs an enhanced status code',
    );
    const config = ok(server('    ok_connect: { code: 220, enhanced: "", text: "{fqdn} ready" }\n'));
    expect(config.server.replies['ok_connect']).toEqual({ code: 220, enhanced: '', text: '{fqdn} ready' });
  });

  it('text must be one line of 1–400 characters', () => {
    expect(issueAt(server('    relay_denied: { code: 554, enhanced: 5.7.1, text: "a\\r\\nb" }\n'), 'server.replies.relay_denied.text').message).toContain(
      'single line',
    );
    expect(issueAt(server(`    relay_denied: { code: 554, enhanced: 5.7.1, text: ${'x'.repeat(401)} }\n`), 'server.replies.relay_denied.text').message).toContain(
      'too long',
    );
    expect(issueAt(server('    relay_denied: { code: 554, enhanced: 5.7.1, text: "" }\n'), 'server.replies.relay_denied.text').message).toContain('must not be empty');
  });

  it('connector replies are checked too', () => {
    const text = withConnectors(`  - name: A
    usage: client
    replies:
      submit_denied: { code: 550, enhanced: 2.0.0, text: Nope }
`);
    expect(issueAt(text, 'connectors[0].replies.submit_denied.enhanced').line).toBe(lineOf(text, 'submit_denied'));
  });
});
