import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../engine/config/load.js';
import { formatRange, isParseFailure } from '../../engine/ip.js';
import { CONFIG_SCHEMA } from '../../engine/config/schema.js';
import { USAGES, type Usage } from '../../engine/config/types.js';
import { parseByteSize } from '../../engine/config/units.js';
import { USAGE_DEFAULTS, USAGE_TABLE_MARKERS, renderUsageDefaultsTable } from '../../engine/config/usage.js';
import { SCHEMA_FILE, schemaJsonText } from '../../engine/config/write-schema.js';
import { ROOT, connector, lineOf, ok } from './helpers.js';

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

describe('defaults by usage: one table', () => {
  it('README.md carries exactly the rendered table', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const [open, close] = USAGE_TABLE_MARKERS;
    const start = readme.indexOf(`${open}\n`);
    const end = readme.indexOf(close, start);
    expect(start, `README.md lacks ${open}`).toBeGreaterThanOrEqual(0);
    expect(readme.slice(start + open.length + 1, end)).toBe(renderUsageDefaultsTable());
  });

  it('every usage default decodes, and a connector that writes nothing gets exactly the table', () => {
    const required = (u: Usage): string =>
      `${USAGE_DEFAULTS[u].bindings === null ? ', bindings: ["0.0.0.0:25", "[::]:25"]' : ''}${USAGE_DEFAULTS[u].remote_ip_ranges === null ? ', remote_ip_ranges: ["198.51.100.7"]' : ''}`;
    for (const u of USAGES) {
      const port = 2000 + USAGES.indexOf(u);
      const text = `server: { fqdn: mx.test }\nconnectors:\n  - { name: C, usage: ${u}${required(u).replace(/0\.0\.0\.0:25/, `0.0.0.0:${port}`)} }\n`;
      const c = ok(text).connectors[0];
      const d = USAGE_DEFAULTS[u];
      if (c === undefined) throw new Error('no connector');
      expect(c.maxMessageSize).toBe(parseSize(d.max_message_size));
      expect(c.maxHeaderSize).toBe(parseSize(d.max_header_size));
      expect(c.maxRecipientsPerMessage).toBe(d.max_recipients_per_message === 'unlimited' ? null : d.max_recipients_per_message);
      expect(c.maxInboundConnection).toBe(d.max_inbound_connection === 'unlimited' ? null : d.max_inbound_connection);
      expect(c.maxInboundConnectionPerSource).toBe(d.max_inbound_connection_per_source === 'unlimited' ? null : d.max_inbound_connection_per_source);
      expect(c.messageRateLimit).toBe(d.message_rate_limit === 'unlimited' ? null : d.message_rate_limit);
      expect(c.messageRateSource).toBe(d.message_rate_source);
      expect(c.maxLogonFailures).toBe(d.max_logon_failures);
      expect(c.maxHopCount).toBe(d.max_hop_count);
      expect(c.permissionGroups).toEqual(d.permission_groups);
      expect(c.authMechanisms).toEqual(d.auth_mechanisms);
      if (d.bindings !== null) expect(c.bindings.map((b) => b.text)).toEqual(d.bindings);
      if (d.remote_ip_ranges !== null) expect(c.remoteIpRanges.map((r) => r.text)).toEqual(d.remote_ip_ranges);
    }
  });

  it('the schema publishes the table: uniform defaults as `default`, the rest in the description', () => {
    const props = (CONFIG_SCHEMA['$defs'] as Record<string, { properties: Record<string, { default?: unknown; description: string }> }>)['connector']?.properties ?? {};
    expect(props['max_message_size']?.default).toBe('36MB');
    expect(props['max_inbound_connection_per_source']?.default).toBe(20);
    expect(props['message_rate_limit']?.default).toBeUndefined();
    expect(props['message_rate_limit']?.description).toContain('client: 5; internet: unlimited');
    expect(props['bindings']?.description).toContain('internet: required');
  });
});

function parseSize(text: string): number | null {
  const r = parseByteSize(text);
  if (isParseFailure(r)) throw new Error(r.error);
  return r.bytes;
}
