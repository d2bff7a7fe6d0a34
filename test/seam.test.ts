/**
 * One test per defect class of issue 5 (§3 and §3b), through the engine on the real
 * policy.wasm: each fixed class, not only the example that found it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../engine/config/load.js';
import { parseDecision } from '../engine/decision.js';
import { Engine } from '../engine/engine.js';
import { INPUT_LIMITS } from '../engine/input.js';
import type { FactsFor, Stage } from '../engine/types.js';
import { main } from '../cli/program.js';
import { parseScenarios } from '../cli/scenarios/parse.js';
import { captureIo, fixtureConfig } from './helpers/engine.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create({ config: fixtureConfig() });
});

const INTERNET = { local: '192.0.2.99:25', remote: '198.51.100.7' } as const;
const CLIENT = { local: '192.0.2.99:587', remote: '198.51.100.7', tls: { version: 'TLSv1.3' } } as const;
const ALICE = { mechanism: 'PLAIN', user: 'alice' } as const;

/** End of headers for alice on the client connector with these header fields. */
function asAlice(headers: FactsFor<'headers'>['headers'], mailFrom = '<alice@contoso.test>'): ReturnType<Engine['decide']> {
  return engine.decide('headers', { ...CLIENT, auth: ALICE, mail_from: mailFrom, accepted_rcpt_count: 1, headers });
}

describe('§3: clear tempfails with their own codes', () => {
  it('a local endpoint without a port is a tempfail, not "no connector"', () => {
    const d = engine.decide('connect', { local: '192.0.2.99', remote: '198.51.100.7' });
    expect(d).toMatchObject({ decision: 'disconnect', reason: 'engine_error_connect', reply: { code: 421 }, error: { code: 'ENGINE_INPUT_INVALID' } });
    expect(d.error?.message).toMatch(/has no port/);
    expect(engine.decide('mail', { local: { ip: '192.0.2.99', port: 0 }, remote: '198.51.100.7', mail_from: '<>' }).error?.code).toBe('ENGINE_INPUT_INVALID');
  });

  it('an unknown stage is ENGINE_STAGE_UNKNOWN', () => {
    const d = engine.decide('bogus' as Stage, INTERNET as never);
    expect(d).toMatchObject({ decision: 'tempfail', reply: { code: 451 }, error: { code: 'ENGINE_STAGE_UNKNOWN' } });
  });

  it("the fail-safe reply follows the connector's dialect and its engine_error override", async () => {
    // Backend NIC is dialect rfc; a bad SIZE makes the input invalid once the connector is known.
    const rfc = engine.decide('mail', { local: '192.0.2.10:25', remote: '198.51.100.7', mail_from: '<>', mail_params: { SIZE: 'big' } });
    expect(rfc).toMatchObject({ connector: 'Backend NIC', decision: 'tempfail', error: { code: 'ENGINE_INPUT_INVALID' } });
    const custom = parseConfig(
      [
        'server: { fqdn: mx.test, dialect: exchange }',
        'connectors:',
        '  - name: Custom',
        '    usage: internet',
        '    bindings: ["0.0.0.0:25"]',
        '    replies:',
        '      engine_error: { code: 451, enhanced: 4.7.1, text: "Custom engine failure text" }',
      ].join('\n'),
      'custom.yaml',
    );
    const e = await Engine.create({ config: custom });
    const d = e.decide('mail', { local: '192.0.2.1:25', remote: '198.51.100.7', mail_from: '<>', mail_params: { SIZE: 'big' } });
    expect(d).toMatchObject({ decision: 'tempfail', connector: 'Custom', reply: { code: 451, enhanced: '4.7.1', text: 'Custom engine failure text' } });
  });

  it('parseDecision validates every field, including advertise, recipient, checks and selected_by', () => {
    const ctx = { id: 'x', fqdn: 'mx.test', clientIp: '192.0.2.1', session: null };
    const base = { decision: 'continue', reason: 'ok', reply: { code: 250, enhanced: '', text: 't' }, connector: 'C', principals: [], rights: '0'.repeat(20) };
    const ehlo = { ...base, advertise: { starttls: true, auth: ['PLAIN'], size: 10, require_tls: false, client_certificate: 'none' } };
    const rcpt = { ...base, recipient: { address: 'a@b.test', domain: 'b.test', accepted_domain_type: null, routed: false } };
    expect(() => parseDecision('ehlo', [{ result: ehlo }], ctx)).not.toThrow();
    const bad: [Stage, unknown][] = [
      ['ehlo', { ...ehlo, advertise: { ...ehlo.advertise, auth: [1] } }],
      ['ehlo', { ...ehlo, advertise: { ...ehlo.advertise, size: -1 } }],
      ['ehlo', { ...ehlo, advertise: { ...ehlo.advertise, client_certificate: 'demand' } }],
      ['ehlo', { ...ehlo, advertise: { ...ehlo.advertise, extra: true } }],
      ['rcpt', { ...rcpt, recipient: { ...rcpt.recipient, accepted_domain_type: 'ours' } }],
      ['rcpt', { ...rcpt, recipient: { ...rcpt.recipient, routed: 'no' } }],
      ['rcpt', { ...rcpt, checks: [['1', 'x']] }],
      ['rcpt', { ...rcpt, selected_by: { binding: 1 } }],
      ['rcpt', { ...rcpt, grant: true }],
      ['connect', { ...base, rights: 'x'.repeat(20) }],
    ];
    for (const [stage, result] of bad) {
      expect(() => parseDecision(stage, [{ result }], ctx), JSON.stringify(result)).toThrow(expect.objectContaining({ code: 'ENGINE_DECISION_MALFORMED' }));
    }
  });
});

describe('§3b send-as: every mailbox of From, Sender, Resent-From and Resent-Sender is checked', () => {
  it.each([
    ['two angle-addrs in one mailbox', { From: '<alice@contoso.test> <ceo@contoso.test>' }, 'header_invalid'],
    ['two bare addresses', { From: 'alice@contoso.test ceo@contoso.test' }, 'header_invalid'],
    ['a list with a foreign mailbox second', { From: 'alice@contoso.test, ceo@contoso.test' }, 'send_as_denied'],
    ['a group', { From: 'Team: alice@contoso.test, ceo@contoso.test;' }, 'send_as_denied'],
    ['a folded list', { From: 'alice@contoso.test,\r\n\tceo@contoso.test' }, 'send_as_denied'],
    ['an address hidden as display name', { From: '"alice@contoso.test" <ceo@contoso.test>' }, 'send_as_denied'],
    ['Sender', { From: 'alice@contoso.test', Sender: 'ceo@contoso.test' }, 'send_as_denied'],
    ['Resent-From', { From: 'alice@contoso.test', 'Resent-From': 'ceo@contoso.test' }, 'send_as_denied'],
    ['Resent-Sender', { From: 'alice@contoso.test', 'Resent-Sender': 'ceo@contoso.test' }, 'send_as_denied'],
    ['several @', { From: 'alice@ceo@contoso.test' }, 'header_invalid'],
    ['junk', { From: 'alice' }, 'header_invalid'],
  ])('%s', (_label, headers, reason) => {
    expect(asAlice(headers).reason).toBe(reason);
  });

  it('a repeated From is refused (RFC 5322 §3.6: exactly one)', () => {
    expect(asAlice([['From', 'alice@contoso.test'], ['From', 'ceo@contoso.test']]).reason).toBe('header_invalid');
    expect(asAlice([['From', 'alice@contoso.test'], ['From', 'alice@contoso.test']]).reason).toBe('header_invalid');
  });

  it('her own and send-as addresses pass', () => {
    expect(asAlice({ From: 'Alice <alice@contoso.test>, Sales <sales@contoso.test>', Sender: 'alice@contoso.test' }).decision).toBe('continue');
  });
});

describe('§3b header names that are not RFC 5322 ftext are refused, never skipped', () => {
  it.each(['From ', ' From', 'From:', 'From\t', ' X-MS-Exchange-Organization-AuthAs', 'X-Folded\r\n Name', 'Fröm', ''])('%j', (name) => {
    expect(asAlice([[name, 'ceo@contoso.test'], ['From', 'alice@contoso.test']]).reason).toBe('header_invalid');
  });

  it('an inbound flag header in any letter case is removed and replaced', () => {
    const d = engine.decide('eom', { ...INTERNET, mail_from: '<a@gmail.test>', accepted_rcpt_count: 1, headers: [['x-MTA-policy-AUTH-as', 'Internal'], ['From', 'a@gmail.test']], message_size: 1000 });
    expect(d.decision).toBe('accept');
    expect(d.remove_headers).toContain('x-mta-policy-auth-as');
    expect(d.add_headers).toContainEqual({ name: 'X-MTA-Policy-Auth-As', value: 'Anonymous' });
  });
});

describe('§3b domains are RFC 5321 domains, not URL hosts', () => {
  it.each(['<u@contoso.test/victim.test>', '<u@victim.test%2econtoso.test>', '<u@contoso.test?x>', '<u@contoso.test#x>', '<u@contoso.test\\victim.test>'])('RCPT %s', (rcpt) => {
    const d = engine.decide('rcpt', { ...INTERNET, mail_from: '<>', rcpt_to: rcpt });
    expect(d.decision).toBe('reject');
    expect(['recipient_invalid', 'routing_address', 'relay_denied']).toContain(d.reason);
    expect(d.recipient.accepted_domain_type).toBeNull();
  });

  it('a certificate name with a path does not make a partner', () => {
    const facts = { local: '192.0.2.99:25', remote: '203.0.113.5', mail_from: '<ceo@fabrikam.test>' };
    const good = engine.decide('mail', { ...facts, tls: { client_cert: { verified: true, san_dns: ['fabrikam.test'] } } });
    const bad = engine.decide('mail', { ...facts, tls: { client_cert: { verified: true, san_dns: ['fabrikam.test/evil'] } } });
    expect(good.principals).toEqual(['partner']);
    expect(bad).toMatchObject({ reason: 'partner_cert_invalid' });
  });

  it('several @ in MAIL FROM is an invalid sender (RCPT still calls it routing)', () => {
    expect(engine.decide('mail', { ...INTERNET, mail_from: '<a@victim.test@contoso.test>' }).reason).toBe('sender_invalid');
    expect(engine.decide('rcpt', { ...INTERNET, mail_from: '<>', rcpt_to: '<a@victim.test@contoso.test>' }).reason).toBe('routing_address');
  });
});

describe('§3b smaller ones', () => {
  it('logins fold with ASCII rules only (the Kelvin sign is not k)', async () => {
    const e = await Engine.create({
      config: parseConfig('server: { fqdn: mx.test }\nidentities: { users: [{ name: kim, addresses: [kim@contoso.test] }] }\nconnectors: [{ name: C, usage: client }]\n', 'k.yaml'),
    });
    const tls = { version: 'TLSv1.3' };
    expect(e.decide('auth', { local: '192.0.2.1:587', remote: '198.51.100.7', tls, auth: { mechanism: 'PLAIN', user: 'KIM' } }).decision).toBe('continue');
    expect(e.decide('auth', { local: '192.0.2.1:587', remote: '198.51.100.7', tls, auth: { mechanism: 'PLAIN', user: '\u212Aim' } }).reason).toBe('auth_unknown_identity');
  });

  it('sizes are derived and contradictions refused', () => {
    const headers = { From: 'a@gmail.test', Subject: 'x'.repeat(100) };
    const base = { ...INTERNET, mail_from: '<a@gmail.test>', accepted_rcpt_count: 1, headers };
    expect(engine.decide('headers', { ...base, header_size: 10 }).error?.code).toBe('ENGINE_INPUT_INVALID');
    expect(engine.decide('eom', { ...base, message_size: 20 }).error?.code).toBe('ENGINE_INPUT_INVALID');
    expect(engine.decide('eom', base as unknown as FactsFor<'eom'>).error?.message).toMatch(/needs message_size/);
    expect(engine.decide('mail', { ...INTERNET, mail_from: '<a@gmail.test>', mail_params: { size: '10', SIZE: '99999999999' } }).error?.message).toMatch(/given twice/);
  });

  it('the header-block bound holds whether or not header_size is given', () => {
    const headers: [string, string][] = [['From', 'x@example.test']];
    for (let i = 0; i < 40; i++) headers.push([`X-Big-${i}`, 'v'.repeat(60_000)]);
    const facts = { local: '192.0.2.99:25', remote: '10.1.2.3', mail_from: '<x@example.test>', headers };
    expect(engine.decide('headers', facts).error?.code).toBe('ENGINE_INPUT_INVALID');
    expect(2_500_000).toBeGreaterThan(INPUT_LIMITS.headerBytes);
    expect(engine.decide('headers', { ...facts, header_size: 2_500_000 }).error?.message).toMatch(/header block is larger than/);
    // header_size may exceed the bound when the fields given stay within it.
    expect(engine.decide('headers', { ...facts, headers: headers.slice(0, 2), header_size: 2_500_000 }).decision).toBe('continue');
  });

  it('a sender naming this server by literal is an inside sender, as RCPT treats it as local', () => {
    const base = { local: '192.0.2.99:2525', remote: '198.51.100.7', mail_from: '<x@example.test>' };
    expect(engine.decide('rcpt', { ...base, rcpt_to: '<ceo@[192.0.2.10]>' }).recipient.accepted_domain_type).toBe('local_literal');
    expect(engine.decide('headers', { ...base, headers: { From: 'ceo@contoso.test' } }).reason).toBe('send_as_denied_anonymous');
    expect(engine.decide('headers', { ...base, headers: { From: 'ceo@[192.0.2.10]' } }).reason).toBe('send_as_denied_anonymous');
    expect(engine.decide('headers', { ...base, local: '192.0.2.10:2525', headers: { From: 'ceo@[192.0.2.10]' } }).reason).toBe('send_as_denied_anonymous');
    // A foreign literal stays outside.
    expect(engine.decide('headers', { ...base, headers: { From: 'ceo@[203.0.113.9]' } }).decision).toBe('continue');
  });

  it('usage errors exit 2', async () => {
    const c = captureIo();
    expect(await main([], c.io)).toBe(2);
    expect(await main(['help', 'bogus'], c.io)).toBe(2);
    expect(await main(['help', 'check'], captureIo().io)).toBe(0);
  });
});

describe('§3b the scenario runner asserts what it claims', () => {
  const session = 'session: { local: 192.0.2.99:25, remote: 198.51.100.7 }';
  it.each([
    ['a misspelt key under defaults.session', `defaults:\n  session: { locall: 192.0.2.99:25 }\ncases:\n  - name: x\n    ${session}\n    expect: { connect: { decision: continue } }\n`, /unknown key "locall"/],
    ['a misspelt nested key', `cases:\n  - name: x\n    session: { local: 192.0.2.99:25, remote: 198.51.100.7, tls: { verison: x } }\n    expect: { connect: { decision: continue } }\n`, /unknown key "verison"/],
    ['expect: {}', `cases:\n  - name: x\n    ${session}\n    expect: {}\n`, /asserts nothing/],
    ['expect: { rcpt: {} }', `cases:\n  - name: x\n    ${session}\n    expect: { rcpt: {} }\n`, /asserts nothing/],
    ['an empty stage expectation', `cases:\n  - name: x\n    ${session}\n    expect: { mail: {} }\n`, /asserts nothing/],
  ])('refuses %s', (_label, text, message) => {
    expect(() => parseScenarios(text, 's.yaml')).toThrow(message);
  });

  it('an engine error at a stage the case does not assert fails the case', async () => {
    const { checkScenario } = await import('../cli/scenarios/run.js');
    const [c] = parseScenarios(
      `cases:\n  - name: bad size\n    session: { local: 192.0.2.99:25, remote: 198.51.100.7, mail_from: "<>", mail_params: { SIZE: big }, rcpt_to: ["<a@contoso.test>"] }\n    expect: { connect: { decision: continue } }\n`,
      's.yaml',
    );
    const diffs = await checkScenario(engine, c as NonNullable<typeof c>);
    expect(diffs.join('\n')).toMatch(/mail: engine error ENGINE_INPUT_INVALID/);
  });

});
