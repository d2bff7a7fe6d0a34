import { describe, expect, it } from 'vitest';
import { FILE, connector, lineOf, ok, withConnectors } from './helpers.js';

describe('defaults by usage', () => {
  const text = withConnectors(`  - { name: C, usage: client }
  - { name: I, usage: internet, bindings: ["0.0.0.0:25"] }
  - { name: L, usage: internal, remote_ip_ranges: [10.0.0.0/8] }
  - { name: P, usage: partner, bindings: ["0.0.0.0:2525"], remote_ip_ranges: [203.0.113.0/24] }
  - { name: X, usage: custom, bindings: ["192.0.2.10:25"], remote_ip_ranges: [198.18.0.1] }
`);
  const config = ok(text);
  const ALL = ['0.0.0.0-255.255.255.255', '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'];

  it('client', () => {
    const c = connector(config, 'C');
    expect(c.bindings.map((b) => b.text)).toEqual(['0.0.0.0:587', '[::]:587']);
    expect(c.remoteIpRanges.map((r) => r.text)).toEqual(ALL);
    expect(c.remoteIpRanges[0]?.source).toEqual({ file: FILE, line: lineOf(text, 'name: C'), path: 'connectors[0].usage' });
    expect(c.permissionGroups).toEqual(['ExchangeUsers']);
    expect(c.authMechanisms).toEqual(['Tls', 'BasicAuth', 'BasicAuthRequireTLS']);
    expect(c.messageRateLimit).toBe(5);
    expect(c.messageRateSource).toBe('user');
    expect(c.domainSecureEnabled).toBe(false);
  });

  it('internet', () => {
    const c = connector(config, 'I');
    expect(c.remoteIpRanges.map((r) => r.text)).toEqual(ALL);
    expect(c.permissionGroups).toEqual(['AnonymousUsers']);
    expect(c.authMechanisms).toEqual(['Tls']);
    expect(c.messageRateLimit).toBeNull();
    expect(c.messageRateSource).toBe('ip_address');
  });

  it('internal', () => {
    const c = connector(config, 'L');
    expect(c.bindings.map((b) => b.text)).toEqual(['0.0.0.0:25', '[::]:25']);
    expect(c.remoteIpRanges.map((r) => r.text)).toEqual(['10.0.0.0/8']);
    expect(c.permissionGroups).toEqual(['ExchangeServers', 'ExchangeLegacyServers']);
    expect(c.authMechanisms).toEqual(['Tls', 'BasicAuth', 'BasicAuthRequireTLS']);
  });

  it('partner: Partners turns on Domain Secure', () => {
    const c = connector(config, 'P');
    expect(c.permissionGroups).toEqual(['Partners']);
    expect(c.authMechanisms).toEqual(['Tls']);
    expect(c.domainSecureEnabled).toBe(true);
  });

  it('custom, and the common connector defaults', () => {
    const c = connector(config, 'X');
    expect(c.permissionGroups).toEqual([]);
    expect(c.authMechanisms).toEqual(['Tls']);
    expect(c.bindings[0]).toMatchObject({ text: '192.0.2.10:25', ip: '192.0.2.10', family: 4, port: 25 });
    expect(c).toMatchObject({
      enabled: true,
      requireTls: false,
      fqdn: 'smtp.northwind.test',
      banner: null,
      dialect: 'exchange',
      maxMessageSize: 37748736,
      maxHeaderSize: 262144,
      maxRecipientsPerMessage: 200,
      maxInboundConnection: 5000,
      maxInboundConnectionPerSource: 20,
      maxLogonFailures: 3,
      maxHopCount: 30,
      requireEhloDomain: false,
      basicAuthMechanisms: ['PLAIN', 'LOGIN'],
      extendedRights: [],
      replies: {},
    });
  });

  it('server defaults', () => {
    expect(config.server).toEqual({
      fqdn: 'smtp.northwind.test',
      dialect: 'exchange',
      localAddresses: [],
      domainSecureDomains: [],
      organizationHeaderPrefixes: ['X-MS-Exchange-Organization-', 'X-MTA-Policy-'],
      forestHeaderPrefixes: ['X-MS-Exchange-Forest-'],
      replies: {},
    });
    expect(config.acceptedDomains[0]?.type).toBe('authoritative');
  });

  it('explicit values override defaults and are normalised', () => {
    const c = connector(
      ok(
        withConnectors(`  - name: Tuned
    usage: client
    permission_groups: [None]
    auth_mechanisms: [None]
    fqdn: SMTP.Northwind.Test.
    dialect: rfc
    max_message_size: 10 mb
    max_header_size: 1024
    max_recipients_per_message: unlimited
    message_rate_limit: Unlimited
    message_rate_source: all
    basic_auth_mechanisms: [login]
    extended_rights:
      - { principal: "User:Nancy", allow: [MS-EXCH-SMTP-SUBMIT] }
      - { principal: "group:ops", deny: [ms-exch-bypass-anti-spam] }
`),
      ),
      'Tuned',
    );
    expect(c.permissionGroups).toEqual([]);
    expect(c.authMechanisms).toEqual(['None']);
    expect(c.fqdn).toBe('smtp.northwind.test');
    expect(c.dialect).toBe('rfc');
    expect(c.maxMessageSize).toBe(10 * 1024 * 1024);
    expect(c.maxHeaderSize).toBe(1024);
    expect(c.maxRecipientsPerMessage).toBeNull();
    expect(c.messageRateLimit).toBeNull();
    expect(c.messageRateSource).toBe('all');
    expect(c.basicAuthMechanisms).toEqual(['LOGIN']);
    expect(c.extendedRights.map((a) => [a.principal, a.allow, a.deny])).toEqual([
      ['user:nancy', ['ms-Exch-SMTP-Submit'], []],
      ['group:ops', [], ['ms-Exch-Bypass-Anti-Spam']],
    ]);
  });
});
