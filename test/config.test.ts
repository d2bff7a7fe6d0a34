import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, formatIssue } from '../engine/errors.js';
import type { ConfigIssue } from '../engine/errors.js';
import { loadConfig, parseConfig } from '../engine/config/load.js';
import type { Config, ConnectorConfig } from '../engine/config/types.js';
import { RIGHTS } from '../engine/config/types.js';
import {
  canonicalIp,
  formatRange,
  ipToBigInt,
  isParseFailure,
  parseBinding,
  parseIp,
  parseIpRange,
} from '../engine/ip.js';
import type { ParsedBinding, ParsedRange, ParseFailure } from '../engine/ip.js';
import { formatByteSize, parseByteSize } from '../engine/config/units.js';
import { CONFIG_SCHEMA, RIGHT_PATTERN } from '../engine/config/schema.js';
import { SCHEMA_FILE, schemaJsonText } from '../engine/config/write-schema.js';
import { MtaPolicyError } from '../engine/errors.js';

const ROOT = resolve(import.meta.dirname, '..');
const FILE = 'test.yaml';

// --- helpers -------------------------------------------------------------------------------------

/** The issues parseConfig reports; fails the test when the text is accepted. */
function issuesOf(text: string): readonly ConfigIssue[] {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error('expected a ConfigError, but the configuration was accepted');
}

/** The single issue at `path`; fails when there is none or more than one. */
function issueAt(text: string, path: string): ConfigIssue {
  const all = issuesOf(text);
  const found = all.filter((i) => i.path === path);
  if (found.length !== 1) {
    throw new Error(`expected one issue at ${path}, got ${found.length}:\n${all.map(formatIssue).join('\n')}`);
  }
  const [issue] = found;
  if (issue === undefined) throw new Error('unreachable');
  return issue;
}

/** 1-based line of the first line of `text` containing `needle` (`nth` occurrence, 1-based). */
function lineOf(text: string, needle: string, nth = 1): number {
  const lines = text.split('\n');
  let seen = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.includes(needle)) {
      seen++;
      if (seen === nth) return i + 1;
    }
  }
  throw new Error(`${JSON.stringify(needle)} not in text`);
}

const HEAD = `server:
  fqdn: smtp.northwind.test
accepted_domains:
  - { domain: northwind.test }
identities:
  users:
    - { name: nancy, addresses: [nancy@northwind.test], groups: [Ops] }
    - { name: andrew, addresses: [andrew@northwind.test], groups: [Managers] }
connectors:
`;

/** HEAD plus connector YAML (already indented as list items under `connectors:`). */
const withConnectors = (connectors: string): string => HEAD + connectors;

const ok = (text: string): Config => parseConfig(text, FILE);

function connector(config: Config, name: string): ConnectorConfig {
  const c = config.connectors.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no connector ${name}`);
  return c;
}

function range(text: string): ParsedRange {
  const r = parseIpRange(text);
  if (isParseFailure(r)) throw new Error(`${text}: ${r.error}`);
  return r;
}

function failure(r: ParsedRange | ParsedBinding | ParseFailure): ParseFailure {
  if (!isParseFailure(r)) throw new Error(`expected a failure, got ${JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
  return r;
}

// --- the example -------------------------------------------------------------------------------------

describe('examples/northwind.yaml', () => {
  it('loads, with normalised values and positions', async () => {
    const file = join(ROOT, 'examples', 'northwind.yaml');
    const config = await loadConfig(file);
    const text = readFileSync(file, 'utf8');
    expect(config.file).toBe(file);
    expect(config.server.fqdn).toBe('smtp.northwind.test');
    expect(config.server.dialect).toBe('exchange');
    expect(config.server.localAddresses).toEqual(['192.0.2.10', '2001:db8:10::25']);
    expect(config.server.domainSecureDomains).toEqual(['fabrikam.test']);

    expect(config.acceptedDomains.map((d) => [d.wildcard ? `*.${d.domain}` : d.domain, d.type])).toEqual([
      ['northwind.test', 'authoritative'],
      ['*.northwind.test', 'internal_relay'],
      ['xn--nordwind-bcher-psb.test', 'authoritative'],
      ['tailspin.test', 'external_relay'],
    ]);
    expect(config.acceptedDomains[2]?.text).toBe('nordwind-bücher.test');

    const nancy = config.users.find((u) => u.name === 'nancy');
    expect(nancy?.groups).toEqual(['Ops']);
    expect(nancy?.sendAs).toEqual(['ops@northwind.test']);
    expect(nancy?.logins).toEqual(
      expect.arrayContaining(['nancy', 'nancy@northwind.test', 'nancy.davolio@northwind.test', 'northwind\\nancy']),
    );
    expect(config.users.find((u) => u.name === 'janet')?.addresses).toContain('janet@xn--nordwind-bcher-psb.test');
    expect(config.users.find((u) => u.name === 'edge01')?.groups).toEqual(['Exchange Servers']);

    const scanner = connector(config, 'Scanner Relay');
    expect(scanner.usage).toBe('custom');
    expect(scanner.permissionGroups).toEqual(['AnonymousUsers']);
    expect(scanner.extendedRights).toHaveLength(1);
    expect(scanner.extendedRights[0]?.principal).toBe('anonymous');
    expect(scanner.extendedRights[0]?.allow).toEqual(['ms-Exch-SMTP-Accept-Any-Recipient']);
    expect(scanner.remoteIpRanges[0]?.source.line).toBe(lineOf(text, 'remote_ip_ranges: ["10.20.30.40"]'));
    expect(scanner.maxMessageSize).toBe(25 * 1024 * 1024);
    expect(scanner.messageRateLimit).toBe(30);
    expect(scanner.replies['submit_denied_anonymous']?.disconnect).toBe(true);

    const partner = connector(config, 'Partner Fabrikam');
    expect(partner.domainSecureEnabled).toBe(true);
    expect(partner.requireTls).toBe(true);
    expect(partner.fqdn).toBe('partners.northwind.test');
    expect(partner.remoteIpRanges.map((r) => formatRange(r))).toEqual(['203.0.113.16-203.0.113.31', '203.0.113.40-203.0.113.45']);

    const client = connector(config, 'Client Frontend SMTP01');
    expect(client.bindings.map((b) => b.text)).toEqual(['0.0.0.0:587', '[::]:587']);
    expect(client.messageRateLimit).toBe(5);
    expect(client.extendedRights[0]?.principal).toBe('user:crm-app');

    const lan = connector(config, 'Internal Relay LAN');
    expect(lan.authMechanisms).toEqual(['Tls', 'ExternalAuthoritative']);
    expect(lan.bindings.map((b) => b.text)).toEqual(['0.0.0.0:25', '[::]:25']);
    expect(lan.maxMessageSize).toBeNull();

    expect(connector(config, 'Legacy Fax Gateway').enabled).toBe(false);
  });

  it('the committed JSON Schema is current', () => {
    expect(readFileSync(join(ROOT, SCHEMA_FILE), 'utf8')).toBe(schemaJsonText());
  });

  it('test/fixtures/policy.yaml loads too', async () => {
    const config = await loadConfig(join(ROOT, 'test', 'fixtures', 'policy.yaml'));
    expect(config.connectors.length).toBeGreaterThan(3);
  });
});

// --- defaults by usage ---------------------------------------------------------------------------------

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

// --- IP helpers ---------------------------------------------------------------------------------------

describe('ip helpers', () => {
  it('parses and canonicalises addresses', () => {
    expect(canonicalIp('192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalIp('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalIp('::FFFF:c000:0201')).toBe('192.0.2.1');
    expect(canonicalIp('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIp('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(canonicalIp('010.0.0.1')).toBeNull();
    expect(canonicalIp('127.1')).toBeNull();
    expect(canonicalIp('fe80::1%eth0')).toBeNull();
    expect(canonicalIp('example.com')).toBeNull();
    expect(parseIp('::ffff:192.0.2.1')?.family).toBe(4);
    expect(ipToBigInt('192.0.2.1')).toEqual({ family: 4, value: 0xc0000201n });
    expect(ipToBigInt('::1')).toEqual({ family: 6, value: 1n });
    expect(() => ipToBigInt('nope')).toThrow(MtaPolicyError);
  });

  it('parses ranges', () => {
    expect(range('192.0.2.7')).toEqual({ family: 4, first: 0xc0000207n, last: 0xc0000207n });
    expect(range('192.168.1.0/24')).toEqual({ family: 4, first: 0xc0a80100n, last: 0xc0a801ffn });
    expect(range('0.0.0.0/0')).toEqual({ family: 4, first: 0n, last: 0xffffffffn });
    expect(range('198.18.7.1-198.18.7.30')).toEqual({ family: 4, first: 0xc6120701n, last: 0xc612071en });
    expect(range('::ffff:192.168.1.0/120')).toEqual({ family: 4, first: 0xc0a80100n, last: 0xc0a801ffn });
    const v6 = range('2001:db8:77::/48');
    expect(v6.family).toBe(6);
    expect(formatRange(v6)).toBe('2001:db8:77::-2001:db8:77:ffff:ffff:ffff:ffff:ffff');
  });

  it('refuses bad ranges with a fix', () => {
    const hostBits = failure(parseIpRange('192.168.1.5/24'));
    expect(hostBits.error).toContain('host bits');
    expect(hostBits.fix).toContain('did you mean 192.168.1.0/24');
    expect(failure(parseIpRange('2001:db8::1/32')).fix).toContain('did you mean 2001:db8::/32');
    expect(failure(parseIpRange('10.0.0.0/33')).error).toContain('too long');
    expect(failure(parseIpRange('10.0.0.9-10.0.0.1')).fix).toContain('10.0.0.1-10.0.0.9');
    expect(failure(parseIpRange('10.0.0.1-::1')).error).toContain('mixes');
    expect(failure(parseIpRange('10.0.0.300')).error).toContain('not an IP address');
  });

  it('parses bindings', () => {
    expect(parseBinding('0.0.0.0:25')).toEqual({ ip: null, family: 4, port: 25, text: '0.0.0.0:25' });
    expect(parseBinding('[::]:587')).toEqual({ ip: null, family: 6, port: 587, text: '[::]:587' });
    expect(parseBinding(' 192.0.2.10:25 ')).toEqual({ ip: '192.0.2.10', family: 4, port: 25, text: '192.0.2.10:25' });
    expect(parseBinding('[2001:DB8:0::1]:25')).toEqual({ ip: '2001:db8::1', family: 6, port: 25, text: '[2001:db8::1]:25' });
    expect(parseBinding('[::ffff:192.0.2.10]:25')).toMatchObject({ ip: '192.0.2.10', family: 4, text: '192.0.2.10:25' });
    expect(failure(parseBinding('192.0.2.10')).fix).toContain('192.0.2.10:25');
    expect(failure(parseBinding('2001:db8::1:25')).fix).toContain('[2001:db8::1]:25');
    expect(failure(parseBinding('0.0.0.0:0')).error).toContain('not a port');
    expect(failure(parseBinding('0.0.0.0:65536')).error).toContain('not a port');
    expect(failure(parseBinding('[192.0.2.1]:25')).error).toContain('IPv6');
    expect(failure(parseBinding('*:25')).fix).toContain('0.0.0.0:25');
  });
});

describe('byte sizes', () => {
  it('uses binary multiples like Exchange', () => {
    const bytes = (v: unknown): number | null => {
      const r = parseByteSize(v);
      if (isParseFailure(r)) throw new Error(r.error);
      return r.bytes;
    };
    expect(bytes('36MB')).toBe(37748736);
    expect(bytes('36 MB')).toBe(37748736);
    expect(bytes('36mib')).toBe(37748736);
    expect(bytes('256KB')).toBe(262144);
    expect(bytes('2GB')).toBe(2147483648);
    expect(bytes('10B')).toBe(10);
    expect(bytes('1.5MB')).toBe(1572864);
    expect(bytes(4096)).toBe(4096);
    expect(bytes('UNLIMITED')).toBeNull();
    expect(isParseFailure(parseByteSize('36XB'))).toBe(true);
    expect(isParseFailure(parseByteSize('0.1KB'))).toBe(true);
    expect(isParseFailure(parseByteSize(-1))).toBe(true);
    expect(formatByteSize(37748736)).toBe('36MB');
    expect(formatByteSize(1000)).toBe('1000B');
  });
});

describe('schema', () => {
  it('matches every right case-insensitively and nothing else', () => {
    const re = new RegExp(RIGHT_PATTERN, 'u');
    for (const r of RIGHTS) {
      expect(re.test(r)).toBe(true);
      expect(re.test(r.toUpperCase())).toBe(true);
      expect(re.test(r.toLowerCase())).toBe(true);
    }
    expect(re.test('ms-Exch-SMTP-Submit-X')).toBe(false);
    expect(re.test(' ms-Exch-SMTP-Submit')).toBe(false);
    expect(re.test('msXExch-SMTP-Submit')).toBe(false);
  });

  it('is closed and described', () => {
    const missing: string[] = [];
    const visit = (node: unknown, where: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${where}[${i}]`));
      if (typeof node !== 'object' || node === null) return;
      const rec = node as Record<string, unknown>;
      if (rec['type'] === 'object' && rec['additionalProperties'] !== false && rec['if'] === undefined && !where.includes('/if') && !where.includes('/then')) {
        missing.push(`${where}: additionalProperties`);
      }
      const props = rec['properties'];
      if (typeof props === 'object' && props !== null && !where.endsWith('/if') && !where.endsWith('/then')) {
        for (const [k, v] of Object.entries(props)) {
          if (typeof v !== 'object' || v === null || !('description' in v)) missing.push(`${where}.${k}: description`);
        }
      }
      for (const [k, v] of Object.entries(rec)) visit(v, `${where}/${k}`);
    };
    visit(CONFIG_SCHEMA, '#');
    expect(missing).toEqual([]);
  });
});

// --- bad input: one named error each, at the right line and path ------------------------------------------

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
});

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

// --- connector selection conflicts -------------------------------------------------------------------

describe('connector selection conflicts', () => {
  const FIX = 'make one range contain the other, split the range, or bind one connector to a specific local IP';
  const pair = (a: string, b: string): string =>
    withConnectors(`  - name: First
    usage: custom
${a}  - name: Second
    usage: custom
${b}`);

  it('equal ranges on the same binding', () => {
    const text = pair(
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.0.0/16]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.0.0-10.1.255.255]\n',
    );
    const i = issueAt(text, 'connectors[1].remote_ip_ranges[0]');
    expect(i.line).toBe(lineOf(text, '10.1.0.0-10.1.255.255'));
    expect(i.message).toContain('`First`');
    expect(i.message).toContain('`Second`');
    expect(i.message).toContain('0.0.0.0:25');
    expect(i.message).toContain(`10.1.0.0/16 (${FILE}:${lineOf(text, '[10.1.0.0/16]')})`);
    expect(i.message).toContain(`10.1.0.0-10.1.255.255 (${FILE}:${lineOf(text, '10.1.0.0-10.1.255.255')})`);
    expect(i.message).toContain('are equal');
    expect(i.fix).toBe(FIX);
  });

  it('partial overlap on the same binding', () => {
    const text = pair(
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.0.0/16]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.128.0-10.2.0.255]\n',
    );
    expect(issueAt(text, 'connectors[1].remote_ip_ranges[0]').message).toContain('partially overlap');
  });

  it('partial overlap found when the later connector starts first', () => {
    const text = pair(
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.128.0-10.2.0.255]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [198.18.0.1, 10.1.0.0/16]\n',
    );
    expect(issueAt(text, 'connectors[1].remote_ip_ranges[1]').message).toContain('partially overlap');
  });

  it('IPv6 ranges conflict on IPv6 bindings', () => {
    const text = pair(
      '    bindings: ["[::]:25"]\n    remote_ip_ranges: ["2001:db8::/32"]\n',
      '    bindings: ["[::]:25"]\n    remote_ip_ranges: ["2001:db8::/32"]\n',
    );
    expect(issueAt(text, 'connectors[1].remote_ip_ranges[0]').message).toContain('[::]:25');
  });

  it('nested ranges, other ports, other families and other local IPs are fine', () => {
    const nested = pair(
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.0.0.0/8, 198.18.0.0/15]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.2.3, 10.1.0.0/16, 198.18.0.0/15]\n',
    );
    // Second contains 10.1.0.0/16 and 10.1.2.3 (nested in First's /8) but also an equal /15.
    expect(issuesOf(nested).map((i) => i.path)).toEqual(['connectors[1].remote_ip_ranges[2]']);
    expect(
      ok(pair('    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.0.0.0/8]\n', '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.1.0.0/16]\n'))
        .connectors,
    ).toHaveLength(2);
    ok(pair('    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.0.0.0/8]\n', '    bindings: ["0.0.0.0:587"]\n    remote_ip_ranges: [10.0.0.0/8]\n'));
    // The same IPv4 range on an IPv4 and on an IPv6 wildcard binding: different sockets.
    ok(pair('    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: ["0.0.0.0/0"]\n', '    bindings: ["[::]:25", "0.0.0.0:2525"]\n    remote_ip_ranges: ["0.0.0.0/0"]\n'));
    ok(pair('    bindings: ["192.0.2.10:25"]\n    remote_ip_ranges: [10.0.0.0/8]\n', '    bindings: ["192.0.2.11:25"]\n    remote_ip_ranges: [10.0.0.0/8]\n'));
  });

  it('specific IP vs wildcard: equal is fine, partial is an error', () => {
    ok(pair('    bindings: ["192.0.2.10:25"]\n    remote_ip_ranges: [0.0.0.0/0]\n', '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [0.0.0.0/0]\n'));
    const text = pair(
      '    bindings: ["192.0.2.10:25"]\n    remote_ip_ranges: [10.0.0.0-10.0.0.200]\n',
      '    bindings: ["0.0.0.0:25"]\n    remote_ip_ranges: [10.0.0.128/25]\n',
    );
    const i = issueAt(text, 'connectors[1].remote_ip_ranges[0]');
    expect(i.message).toContain('192.0.2.10:25');
    expect(i.message).toContain('0.0.0.0:25');
    expect(i.message).toContain('partially overlap');
  });

  it('defaults take part: two internet connectors on one binding', () => {
    const text = withConnectors('  - { name: A, usage: internet, bindings: ["0.0.0.0:25"] }\n  - { name: B, usage: internet, bindings: ["0.0.0.0:25"] }\n');
    const i = issueAt(text, 'connectors[1].usage');
    expect(i.line).toBe(lineOf(text, 'name: B'));
    expect(i.message).toContain('0.0.0.0-255.255.255.255');
  });

  it('disabled connectors are ignored', () => {
    const text = withConnectors(
      '  - { name: A, usage: internet, bindings: ["0.0.0.0:25"] }\n  - { name: B, enabled: false, usage: internet, bindings: ["0.0.0.0:25"] }\n',
    );
    expect(ok(text).connectors[1]?.enabled).toBe(false);
  });

  it('one report per pair of ranges, even across several shared bindings', () => {
    const text = pair(
      '    bindings: ["0.0.0.0:25", "192.0.2.10:25"]\n    remote_ip_ranges: [10.0.0.0/16]\n',
      '    bindings: ["0.0.0.0:25", "192.0.2.10:25"]\n    remote_ip_ranges: [10.0.128.0-10.1.0.0]\n',
    );
    expect(issuesOf(text)).toHaveLength(1);
  });

  it('agrees with a brute-force check on random configurations', () => {
    // mulberry32: a small deterministic PRNG.
    const rng = (seed: number) => (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const BINDINGS = ['0.0.0.0:25', '192.0.2.10:25', '192.0.2.11:25', '0.0.0.0:587'];
    let checked = 0;
    let sawTruncation = false;
    for (let seed = 1; seed <= 60; seed++) {
      const rand = rng(seed);
      const pick = (n: number): number => Math.floor(rand() * n);
      interface Gen {
        name: string;
        enabled: boolean;
        bindings: string[];
        ranges: [number, number][];
      }
      const gens: Gen[] = [];
      for (let c = 0; c < (seed % 10 === 0 ? 40 : 10); c++) {
        const bindings = [...new Set([BINDINGS[pick(4)] ?? '', BINDINGS[pick(4)] ?? ''])];
        const ranges: [number, number][] = [];
        for (let r = 0; r < 1 + pick(3); r++) {
          const a = pick(256);
          const b = rand() < 0.3 ? a : Math.min(255, a + pick(80));
          if (!ranges.some(([x, y]) => x === a && y === b)) ranges.push([a, b]);
        }
        gens.push({ name: `C${c}`, enabled: rand() > 0.1, bindings, ranges });
      }
      const text = withConnectors(
        gens
          .map(
            (g) =>
              `  - name: ${g.name}\n    enabled: ${g.enabled}\n    usage: custom\n    bindings: [${g.bindings.map((b) => `"${b}"`).join(', ')}]\n` +
              `    remote_ip_ranges: [${g.ranges.map(([a, b]) => `"10.0.0.${a}-10.0.0.${b}"`).join(', ')}]\n`,
          )
          .join(''),
      );
      // Brute force over every pair of ranges and every pair of bindings.
      const expected = new Set<string>();
      for (let i = 0; i < gens.length; i++) {
        for (let j = i + 1; j < gens.length; j++) {
          const gi = gens[i];
          const gj = gens[j];
          if (gi === undefined || gj === undefined || !gi.enabled || !gj.enabled) continue;
          for (const [a1, b1] of gi.ranges) {
            for (const [a2, b2] of gj.ranges) {
              const equal = a1 === a2 && b1 === b2;
              const intersect = a1 <= b2 && a2 <= b1;
              const nested = (a1 <= a2 && b2 <= b1) || (a2 <= a1 && b1 <= b2);
              const partial = intersect && !nested;
              const conflict = gi.bindings.some((x) =>
                gj.bindings.some((y) => {
                  const [ipx, portx] = x.split(':');
                  const [ipy, porty] = y.split(':');
                  if (portx !== porty) return false;
                  if (ipx === ipy) return equal || partial;
                  if (ipx === '0.0.0.0' || ipy === '0.0.0.0') return partial;
                  return false;
                }),
              );
              if (conflict) expected.add(`${gi.name} 10.0.0.${a1}-10.0.0.${b1} | ${gj.name} 10.0.0.${a2}-10.0.0.${b2}`);
            }
          }
        }
      }
      const reported = new Set<string>();
      let truncated = false;
      let all: readonly ConfigIssue[] = [];
      if (expected.size > 0) all = issuesOf(text);
      else ok(text);
      for (const i of all) {
        const m = /^connectors `(\w+)` .* and `(\w+)` .*remote ranges (\S+) \(.*\) and (\S+) \(/.exec(i.message);
        if (m !== null) reported.add(`${m[1]} ${m[3]} | ${m[2]} ${m[4]}`);
        else if (i.message.startsWith('there are more connector range conflicts')) truncated = true;
        else throw new Error(`unexpected issue: ${formatIssue(i)}`);
      }
      if (truncated) {
        sawTruncation = true;
        expect(reported.size).toBe(100);
        expect(expected.size).toBeGreaterThan(100);
        for (const r of reported) expect(expected).toContain(r);
      } else {
        expect([...reported].sort()).toEqual([...expected].sort());
      }
      checked += expected.size;
    }
    expect(checked).toBeGreaterThan(50);
    expect(sawTruncation).toBe(true);
  });

  it('1,000 connectors: validates quickly and finds the one planted conflict', () => {
    let body = '';
    for (let i = 0; i < 1000; i++) {
      const net = `10.${i >> 8}.${i & 255}`;
      body += `  - name: Relay ${i}
    usage: custom
    bindings: ["0.0.0.0:25", "[::]:25"]
    remote_ip_ranges: ["${net}.0/26", "${net}.64-${net}.100", "2001:db8:${i.toString(16)}::/48"]
    permission_groups: [AnonymousUsers]
`;
    }
    body += `  - name: Planted
    usage: custom
    bindings: ["0.0.0.0:25"]
    remote_ip_ranges: ["10.0.5.101-10.0.6.10"]
`;
    const text = withConnectors(body);
    const started = performance.now();
    const all = issuesOf(text);
    const elapsed = performance.now() - started;
    expect(all).toHaveLength(1);
    const [i] = all;
    expect(i?.path).toBe('connectors[1000].remote_ip_ranges[0]');
    expect(i?.line).toBe(lineOf(text, '10.0.5.101-10.0.6.10'));
    expect(i?.message).toContain('`Relay 6`');
    expect(i?.message).toContain('`Planted`');
    expect(i?.message).toContain('10.0.6.0/26');
    expect(elapsed).toBeLessThan(5000);
  });
});

describe('loadConfig', () => {
  it('an unreadable file is a ConfigError', async () => {
    const missing = join(ROOT, 'examples', 'does-not-exist.yaml');
    const err: unknown = await loadConfig(missing).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    if (!(err instanceof ConfigError)) return;
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.issues[0]?.file).toBe(missing);
    expect(err.message).toContain('cannot read the configuration file: the file does not exist');
  });

  it('ConfigError message names the first issue and counts the rest', () => {
    const text = withConnectors('  - { name: A, usage: nope }\n  - { name: B, usage: nope }\n');
    try {
      parseConfig(text, FILE);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect(String(e instanceof Error ? e.message : e)).toMatch(new RegExp(`^${FILE}:${lineOf(text, 'name: A')}:\\d+: connectors\\[0\\]\\.usage: .*\\(and 1 more\\)$`));
    }
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
