/**
 * The golden table: a broad set of stage × facts over the test configuration, shared by the
 * agreement test against OPA's Go evaluator and the cached-vs-inline equivalence test; and a
 * generator of random sessions for the latter.
 */
import type { Facts, Stage } from '../../engine/types.js';

const CLIENTS = ['198.51.100.7', '198.18.5.10', '198.18.7.15', '198.18.7.31', '10.1.2.3', '203.0.113.5', '2001:db8::1', '::ffff:10.9.9.9'];
const LOCALS = ['192.0.2.99:25', '192.0.2.10:25', '192.0.2.99:587', '192.0.2.99:2525', '192.0.2.99:2526', '192.0.2.99:26', '[2001:db8::25]:25', '[2001:db8::25]:587'];
const TLS = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' };
const PARTNER_TLS = { ...TLS, client_cert: { verified: true, san_dns: ['mx.fabrikam.test'] } };
const USERS = ['alice', 'bob', 'edge01', 'legacy01', 'carol@contoso.test'];
const SENDERS = ['<>', '<alice@contoso.test>', '<someone@gmail.test>', '<ceo@fabrikam.test>', '<sales@contoso.test>', '<user@sub.contoso.test>'];
const RCPTS = [
  '<user@contoso.test>',
  '<user@victim.test>',
  '<user@x.deep.contoso.test>',
  '<relaytest%victim.test@contoso.test>',
  '<@contoso.test:relaytest@victim.test>',
  '<"a@victim.test"@contoso.test>',
  '<a@victim.test@contoso.test>',
  '<victim.test!a@contoso.test>',
  '<user@[192.0.2.10]>',
  '<user@[198.51.100.1]>',
  '<user@bücher.test>',
  '<user@contoso.test.evil.test>',
];
const HEADERS = [
  { From: 'Alice <alice@contoso.test>', Received: 'x', 'X-MS-Exchange-Organization-SCL': '1', 'Resent-From': 'y' },
  { From: 'someone@gmail.test, "B" <bob@contoso.test>', 'X-MS-Exchange-Forest-Foo': '1', Subject: 'z' },
];

/** A broad table of stage × facts, cycling through the variations for each endpoint pair. */
export function goldenCases(): { stage: Stage; facts: Facts }[] {
  const cases: { stage: Stage; facts: Facts }[] = [];
  let n = 0;
  const pick = <T>(xs: readonly T[]): T => xs[n++ % xs.length] as T;
  const v6 = (ip: string): boolean => ip.includes(':') && !ip.startsWith('::ffff:');
  for (const remote of CLIENTS) {
    for (const local of LOCALS) {
      if (v6(remote) !== local.startsWith('[')) continue; // a TCP connection's ends share a family
      const base: Facts = { local, remote };
      cases.push({ stage: 'connect', facts: base });
      cases.push({ stage: 'connect', facts: { ...base, counters: { connections_from_source: 4, connections_total: 9000 } } });
      cases.push({ stage: 'ehlo', facts: { ...base, helo: pick(['mx.example.test', '', 'bad_host']) } });
      cases.push({ stage: 'ehlo', facts: { ...base, tls: TLS } });
      for (let i = 0; i < 4; i++) {
        const result = pick(['success', 'success', 'failure', 'tempfail'] as const);
        cases.push({ stage: 'auth', facts: { ...base, tls: pick([TLS, null]), auth: { mechanism: pick(['PLAIN', 'LOGIN', 'CRAM-MD5']), user: pick(USERS), result }, counters: { logon_failures: pick([0, 3]) } } });
      }
      for (let i = 0; i < 4; i++) {
        const user = pick([...USERS, null, null]);
        cases.push({
          stage: 'mail',
          facts: {
            ...base,
            tls: pick([TLS, null, PARTNER_TLS]),
            ...(user === null ? {} : { auth: { mechanism: 'PLAIN', user } }),
            mail_from: pick(SENDERS),
            mail_params: { SIZE: pick([100, 40_000_000]) },
            counters: { messages_last_minute: pick([0, 5]) },
          },
        });
      }
      for (let i = 0; i < 6; i++) {
        cases.push({ stage: 'rcpt', facts: { ...base, tls: pick([TLS, null]), mail_from: '<someone@gmail.test>', rcpt_to: pick(RCPTS), accepted_rcpt_count: pick([0, 2, 200]) } });
      }
      for (let i = 0; i < 2; i++) {
        const user = pick([...USERS, null]);
        cases.push({
          stage: 'headers',
          facts: { ...base, tls: PARTNER_TLS, ...(user === null ? {} : { auth: { mechanism: 'PLAIN', user } }), mail_from: pick(SENDERS), headers: pick(HEADERS) },
        });
      }
      cases.push({ stage: 'eom', facts: { ...base, mail_from: '<>', headers: pick(HEADERS), message_size: pick([1_000, 2_000_000, 40_000_000]) } });
    }
  }
  return cases;
}


/** One step of a scripted SMTP session (driven through the engine's Session). */
export type Step =
  | { readonly op: 'helo'; readonly name: string }
  | { readonly op: 'starttls'; readonly cert: boolean }
  | { readonly op: 'auth'; readonly mechanism: string; readonly user: string; readonly result: 'success' | 'failure' | 'tempfail' }
  | { readonly op: 'mta_auth'; readonly mechanism: string; readonly user: string }
  | { readonly op: 'mail'; readonly from: string; readonly size?: number }
  | { readonly op: 'rcpt'; readonly to: string }
  | { readonly op: 'data'; readonly headers: Record<string, string>; readonly size: number }
  | { readonly op: 'rset' };

export interface SessionScript {
  readonly local: string;
  readonly remote: string;
  readonly tls: boolean;
  readonly steps: readonly Step[];
}

/** A small deterministic PRNG (mulberry32), so failures reproduce from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` random sessions over the golden table's endpoints, identities and addresses. */
export function randomSessions(seed: number, count: number): SessionScript[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const v6 = (ip: string): boolean => ip.includes(':') && !ip.startsWith('::ffff:');
  const out: SessionScript[] = [];
  while (out.length < count) {
    const remote = pick(CLIENTS);
    const local = pick(LOCALS);
    if (v6(remote) !== local.startsWith('[')) continue;
    const steps: Step[] = [{ op: 'helo', name: pick(['mx.example.test', '', 'bad_host']) }];
    if (rnd() < 0.5) steps.push({ op: 'starttls', cert: rnd() < 0.3 }, { op: 'helo', name: 'mx.example.test' });
    const auths = Math.floor(rnd() * 3);
    for (let i = 0; i < auths; i++) {
      steps.push({ op: 'auth', mechanism: pick(['PLAIN', 'LOGIN', 'CRAM-MD5']), user: pick(USERS), result: pick(['success', 'failure', 'failure', 'tempfail'] as const) });
    }
    if (auths === 0 && rnd() < 0.3) steps.push({ op: 'mta_auth', mechanism: pick(['PLAIN', 'CRAM-MD5']), user: pick(USERS) });
    const transactions = 1 + Math.floor(rnd() * 3);
    for (let t = 0; t < transactions; t++) {
      steps.push({ op: 'mail', from: pick(SENDERS), ...(rnd() < 0.3 ? { size: pick([100, 40_000_000]) } : {}) });
      const rcpts = 1 + Math.floor(rnd() * 4);
      for (let r = 0; r < rcpts; r++) steps.push({ op: 'rcpt', to: pick(RCPTS) });
      if (rnd() < 0.2) steps.push({ op: 'rset' });
      else steps.push({ op: 'data', headers: pick(HEADERS), size: pick([1_000, 2_000_000, 40_000_000]) });
    }
    out.push({ local, remote, tls: rnd() < 0.2, steps });
  }
  return out;
}
