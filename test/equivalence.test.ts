/**
 * The session document is computed once per session state (endpoints, TLS, AUTH) and passed
 * to every stage; without the cache every stage computes it inline. This proves the two give
 * identical decisions, over the golden table and over random multi-transaction sessions, so
 * the cached part depends on nothing but the restricted input it is computed from.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../engine/engine.js';
import type { Session } from '../engine/session.js';
import type { Decision, Stage } from '../engine/types.js';
import { fixtureConfig } from './helpers/engine.js';
import { goldenCases, randomSessions, type SessionScript } from './helpers/golden.js';

let cached: Engine;
let inline: Engine;
beforeAll(async () => {
  cached = await Engine.create({ config: fixtureConfig() });
  inline = await Engine.create({ config: fixtureConfig(), sessionCache: false });
});

/** A decision without its id (ids are per engine). */
const comparable = (d: Decision): unknown => ({ ...d, id: undefined });

describe('cached and inline session documents give identical decisions', () => {
  it('on every case of the golden table, with and without explain', () => {
    const cases = goldenCases();
    expect(cases.length).toBeGreaterThan(700);
    let differing = 0;
    for (const c of cases) {
      for (const explain of [false, true]) {
        const a = cached.decide(c.stage as Stage, c.facts as never, { explain });
        const b = inline.decide(c.stage as Stage, c.facts as never, { explain });
        expect(a.error, JSON.stringify(c)).toBeUndefined();
        if (JSON.stringify(comparable(a)) !== JSON.stringify(comparable(b))) {
          differing++;
          expect(comparable(a), JSON.stringify(c)).toEqual(comparable(b));
        }
      }
    }
    expect(differing).toBe(0);
  });

  async function drive(engine: Engine, s: SessionScript): Promise<Decision[]> {
    const session: Session = engine.session({ local: s.local, remote: s.remote, tls: s.tls ? { version: 'TLSv1.3' } : null });
    const out: Decision[] = [await session.connect()];
    for (const step of s.steps) {
      switch (step.op) {
        case 'helo':
          out.push(await session.helo(step.name));
          break;
        case 'starttls':
          session.starttls(step.cert ? { version: 'TLSv1.3', client_cert: { verified: true, san_dns: ['mx.fabrikam.test'] } } : { version: 'TLSv1.3' });
          break;
        case 'auth':
          out.push(await session.auth({ mechanism: step.mechanism, user: step.user, result: step.result }));
          break;
        case 'mta_auth':
          session.mtaAuthenticated({ mechanism: step.mechanism, user: step.user });
          break;
        case 'mail':
          out.push(await session.mail(step.from, step.size === undefined ? undefined : { SIZE: step.size }));
          break;
        case 'rcpt':
          out.push(await session.rcpt(step.to));
          break;
        case 'data': {
          const h = await session.headers(step.headers);
          out.push(h);
          if (h.decision === 'continue') {
            const e = await session.eom(step.size);
            out.push(e);
            if (e.decision === 'accept') await session.messageAccepted();
          }
          break;
        }
        case 'rset':
          session.rset();
          break;
      }
    }
    await session.close();
    return out;
  }

  it('on 400 random sessions (several transactions, STARTTLS, AUTH, MTA AUTH, RSET)', async () => {
    let decisions = 0;
    const kinds = new Set<string>();
    for (const s of randomSessions(20261201, 400)) {
      const a = (await drive(cached, s)).map(comparable);
      const b = (await drive(inline, s)).map(comparable);
      expect(a, JSON.stringify(s)).toEqual(b);
      decisions += a.length;
      for (const d of a) kinds.add(`${(d as Decision).stage}:${(d as Decision).decision}`);
    }
    expect(decisions).toBeGreaterThan(3000);
    // The sessions reach every stage and both outcomes, so the comparison is not vacuous.
    for (const k of ['connect:continue', 'ehlo:continue', 'auth:continue', 'auth:reject', 'mail:continue', 'rcpt:continue', 'rcpt:reject', 'headers:continue', 'eom:accept']) {
      expect(kinds).toContain(k);
    }
  });
});
