/**
 * docs/mta-integration.md against the code it describes: the snippets the peer tests run
 * (test/bench/mta-integration-doc.ts) agree with the milter's macro needs, the hint it logs, the
 * listen addresses of the mta-policy snippet (the milter's and the policy service's, as the
 * configuration loader reads them), and what the tests substitute; docs/postfix-policy.md
 * repeats no configuration of its own; the enforcement table names every right.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DAEMON_MACROS_HINT, MILTER_MACROS } from '../adapters/milter/facts.js';
import { parseListen, postfixEndpoint } from '../adapters/milter/listen.js';
import { fromSocketAddress } from '../adapters/shared/listen.js';
import { RIGHTS } from '../engine/config/types.js';
import { FLAG_HEADERS } from '../engine/headers.js';
import { northwindConfig } from './bench/milter-config.js';
import { MTA_INTEGRATION_DOC, docEndpoints, docMtaPolicyKeys, docPostfixMain, docPostfixMainAt, docPostfixServices, docRelayRestrictionsAt, docSendmail, restrictionList } from './bench/mta-integration-doc.js';

const text = readFileSync(MTA_INTEGRATION_DOC, 'utf8');
const POSTFIX_POLICY_DOC = MTA_INTEGRATION_DOC.replace(/mta-integration\.md$/, 'postfix-policy.md');
const words = (s: string | undefined): string[] => (s ?? '').split(/\s+/).filter((w) => w !== '');

describe('docs/mta-integration.md', () => {
  const keys = docMtaPolicyKeys();
  const main = docPostfixMain();
  const sendmail = docSendmail();

  it('the mta-policy snippet is valid configuration (the loader accepts it)', () => {
    expect(Object.keys(keys).sort()).toEqual(['milter', 'postfix_policy']);
    expect(() => northwindConfig({}, keys)).not.toThrow();
  });

  it('Postfix talks to the listeners the mta-policy snippet opens', () => {
    expect(main['smtpd_milters']).toBe(postfixEndpoint(parseListen(keys['milter']?.listen ?? '')));
    const relay = restrictionList(main['smtpd_relay_restrictions'] ?? '');
    const policy = relay.findIndex((r) => r.startsWith('check_policy_service '));
    expect(relay[policy]).toBe(`check_policy_service ${postfixEndpoint(parseListen(keys['postfix_policy']?.listen ?? ''))}`);
    expect(policy).toBeLessThan(relay.indexOf('reject_unauth_destination')); // a grant must come before Postfix's refusal
    expect(sendmail.filter.socket).toBe(keys['milter']?.listen);
  });

  it('the loaded configuration listens where Postfix looks: the milter at smtpd_milters, the policy service at check_policy_service', () => {
    const config = northwindConfig({}, keys);
    const milter = config.milter?.listen;
    const policy = config.postfixPolicy?.listen;
    expect(milter).toBeDefined();
    expect(policy).toBeDefined();
    if (milter === undefined || policy === undefined) return;
    expect(docEndpoints()).toEqual({ milter: postfixEndpoint(fromSocketAddress(milter)), policy: postfixEndpoint(fromSocketAddress(policy)) });
    expect(restrictionList(main['smtpd_relay_restrictions'] ?? '')).toContain(`check_policy_service ${postfixEndpoint(fromSocketAddress(policy))}`);
  });

  it('what the peer tests run is the snippet with only the two listen addresses replaced', () => {
    const at = { milter: 'unix:/run/test/milter.sock', policy: 'inet:127.0.0.1:61234' };
    const run = docPostfixMainAt(at);
    const changed = Object.keys(main).filter((k) => run[k] !== main[k]).sort();
    expect(changed).toEqual(['smtpd_milters', 'smtpd_relay_restrictions']);
    expect(run['smtpd_milters']).toBe(at.milter);
    const relay = restrictionList(run['smtpd_relay_restrictions'] ?? '');
    expect(relay).toEqual(restrictionList(main['smtpd_relay_restrictions'] ?? '').map((r) => (r.startsWith('check_policy_service ') ? `check_policy_service ${at.policy}` : r)));
    expect(docRelayRestrictionsAt(at.policy)).toBe(run['smtpd_relay_restrictions']);
    expect(Object.keys(run)).toEqual(Object.keys(main));
  });

  it('docs/postfix-policy.md repeats no main.cf or master.cf of its own and points to this one', () => {
    const policyDoc = readFileSync(POSTFIX_POLICY_DOC, 'utf8');
    const blocks = [...policyDoc.matchAll(/^```[^\n]*\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? '');
    for (const b of blocks) expect(b, b).not.toMatch(/^\s*(smtpd_|mynetworks|milter_)|\bsmtpd$/m);
    expect(policyDoc).toContain('(mta-integration.md');
    expect(policyDoc).toContain(`check_policy_service ${docEndpoints().policy}`);
  });

  it('fails closed and speaks protocol 6', () => {
    expect(main).toMatchObject({ milter_default_action: 'tempfail', milter_protocol: '6', non_smtpd_milters: '' });
    expect(main['smtpd_policy_service_default_action']).toMatch(/^4[0-9][0-9] 4\.[0-9]+\.[0-9]+ /); // a policy service down: defer, never a pass
    expect(sendmail.filter.flags).toBe('T');
  });

  it('asks both MTAs for every macro the milter needs at CONNECT, HELO and MAIL', () => {
    const postfix = { connect: words(main['milter_connect_macros']), helo: words(main['milter_helo_macros']), mail: words(main['milter_mail_macros']) };
    const sm = { connect: sendmail.macros['CONNECT'] ?? [], helo: sendmail.macros['HELO'] ?? [], mail: sendmail.macros['ENVFROM'] ?? [] };
    for (const m of MILTER_MACROS.connect) {
      expect(postfix.connect).toContain(m);
      expect(sm.connect).toContain(m);
    }
    const tls = MILTER_MACROS.helo.filter((m) => m !== '{verify}'); // Sendmail's; Postfix has none
    for (const m of tls) expect(postfix.helo).toContain(m);
    for (const m of MILTER_MACROS.helo) expect(sm.helo).toContain(m);
    for (const m of ['{auth_type}', '{auth_authen}']) {
      expect(postfix.mail).toContain(m);
      expect(sm.mail).toContain(m);
    }
  });

  it('the log line for missing connector macros gives the same settings as the snippets', () => {
    expect(DAEMON_MACROS_HINT).toContain(`milter_connect_macros = ${main['milter_connect_macros']}`);
    expect(DAEMON_MACROS_HINT).toContain(`define(\`confMILTER_MACROS_CONNECT', \`${(sendmail.macros['CONNECT'] ?? []).join(', ')}')`);
  });

  it('the submission service requires TLS and relays for SASL clients only', () => {
    expect(docPostfixServices()['submission']).toMatchObject({ smtpd_tls_security_level: 'encrypt', smtpd_sasl_auth_enable: 'yes', smtpd_relay_restrictions: 'permit_sasl_authenticated,reject' });
  });

  it('the enforcement table names every right, and the flag headers are mta-policy’s', () => {
    const table = text.slice(text.indexOf('## Which adapter enforces what'), text.indexOf('## Benchmark'));
    for (const right of RIGHTS) expect(table, right).toContain(`\`${right}\``);
    expect(FLAG_HEADERS.auth_as.startsWith('X-MTA-Policy-')).toBe(true);
    expect(table).toContain('`X-MTA-Policy-*`');
  });
});
