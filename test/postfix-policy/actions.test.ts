import { beforeAll, describe, expect, it } from 'vitest';
import { actionFor, failureAction } from '../../adapters/postfix-policy/actions.js';
import { answerRequest, type PolicyEngine } from '../../adapters/postfix-policy/session.js';
import { Engine } from '../../engine/engine.js';
import type { Decision } from '../../engine/types.js';
import { capturedRequests, countersWithRate, northwindOnLoopback, request, unreachableCounters } from './helpers.js';

const CAPTURED = { smtp: [40103], submission: [40493] };

/** A decision as the engine returns it; only the fields the mapping reads matter. */
function decision(over: Partial<Record<string, unknown>>): Decision {
  return {
    id: 'd1', stage: 'rcpt', decision: 'continue', reason: 'ok_rcpt', reply: { code: 250, enhanced: '2.1.5', text: 'Recipient OK' },
    connector: 'c', principals: [], rights: [], ...over,
  } as unknown as Decision;
}

describe('decision → action (adapters/README.md, "policy service action=")', () => {
  it('continue at RCPT is OK: the policy grants this recipient', () => {
    expect(actionFor(decision({}), 'RCPT')).toEqual({ kind: 'permit', action: 'OK' });
  });

  it.each(['CONNECT', 'EHLO', 'HELO', 'MAIL', 'DATA', 'END-OF-MESSAGE', 'VRFY', 'ETRN'] as const)('continue at %s is DUNNO: no opinion', (state) => {
    const stage = state === 'CONNECT' ? 'connect' : state === 'MAIL' || state === 'DATA' || state === 'END-OF-MESSAGE' ? 'mail' : 'ehlo';
    expect(actionFor(decision({ stage }), state)).toEqual({ kind: 'dunno', action: 'DUNNO' });
  });

  it('a continue from an earlier stage never grants a RCPT (only the rcpt decision does)', () => {
    expect(actionFor(decision({ stage: 'mail' }), 'RCPT').action).toBe('DUNNO');
  });

  it('accept is DUNNO', () => {
    expect(actionFor(decision({ stage: 'eom', decision: 'accept' }), 'END-OF-MESSAGE').action).toBe('DUNNO');
  });

  it('reject and tempfail carry the exact code, enhanced code and text', () => {
    expect(actionFor(decision({ decision: 'reject', reply: { code: 550, enhanced: '5.7.54', text: 'SMTP; Unable to relay' } }), 'RCPT')).toEqual({ kind: 'reject', action: '550 5.7.54 SMTP; Unable to relay', code: 550 });
    expect(actionFor(decision({ decision: 'tempfail', reply: { code: 452, enhanced: '4.5.3', text: 'Too many recipients' } }), 'RCPT')).toEqual({ kind: 'defer', action: '452 4.5.3 Too many recipients', code: 452 });
  });

  it('never sends an all-numeric action (access(5) reads it as OK) nor a mismatched code class', () => {
    const empty = actionFor(decision({ decision: 'reject', reply: { code: 550, enhanced: '', text: '' } }), 'RCPT');
    expect(empty.action).toBe('550 5.0.0 Refused by policy');
    expect(actionFor(decision({ decision: 'reject', reply: { code: 451, enhanced: '4.3.0', text: 'x' } }), 'RCPT').action).toBe('550 5.0.0 x');
    expect(actionFor(decision({ decision: 'tempfail', reply: { code: 550, enhanced: '5.7.1', text: 'x' } }), 'RCPT').action).toBe('451 4.0.0 x');
    expect(actionFor(decision({ decision: 'reject', reply: { code: 550, enhanced: '5.7.1', text: 'a\r\nb\tc' } }), 'RCPT').action).toBe('550 5.7.1 a  b c');
  });

  it('a 4xx disconnect is 421, on which Postfix hangs up; a 5xx disconnect refuses and keeps the session', () => {
    expect(actionFor(decision({ decision: 'disconnect', reply: { code: 421, enhanced: '4.7.0', text: 'Too many connections' } }), 'CONNECT')).toEqual({ kind: 'disconnect', action: '421 4.7.0 Too many connections', code: 421 });
    expect(actionFor(decision({ decision: 'disconnect', reply: { code: 450, enhanced: '4.7.0', text: 'Go away' } }), 'MAIL')).toMatchObject({ kind: 'disconnect', action: '421 4.7.0 Go away' });
    expect(actionFor(decision({ decision: 'disconnect', reply: { code: 554, enhanced: '5.7.1', text: 'No' } }), 'MAIL')).toMatchObject({ kind: 'reject', action: '554 5.7.1 No' });
  });

  it('discard is DISCARD with the text', () => {
    expect(actionFor(decision({ stage: 'mail', decision: 'discard', reply: { code: 250, enhanced: '2.0.0', text: 'Dropped' } }), 'MAIL').action).toBe('DISCARD Dropped');
  });

  it('the failure action is a 4xx with the engine_error reply (the server override if any), never OK', () => {
    const server = northwindOnLoopback(CAPTURED).server;
    expect(failureAction(server)).toEqual({ kind: 'defer', action: '451 4.3.0 Temporary policy failure, try again later', code: 451 });
    expect(failureAction({ ...server, replies: { engine_error: { code: 550, enhanced: '5.3.0', text: 'on {fqdn}' } } })).toMatchObject({ action: `451 4.0.0 on ${server.fqdn}` });
  });
});

describe('failures never answer OK', () => {
  let failing: Engine;
  let hanging: Engine;
  beforeAll(async () => {
    failing = await Engine.create({ config: northwindOnLoopback(CAPTURED), counters: unreachableCounters() });
    hanging = await Engine.create({ config: northwindOnLoopback(CAPTURED), counters: countersWithRate(() => new Promise<number>(() => undefined)) });
  });

  const sasl = (): ReadonlyMap<string, string> => {
    const r = capturedRequests('sasl').find((q) => q.get('protocol_state') === 'RCPT');
    if (r === undefined) throw new Error('no RCPT');
    return r;
  };

  it('an engine failure (the counter store is down) on a relay the policy would grant is a 4xx', async () => {
    const a = await answerRequest(failing, sasl());
    expect(a.kind).toBe('defer');
    expect(a.action).toBe('451 4.3.0 Temporary policy failure, try again later');
    expect(a.decision?.error).toBeDefined();
  });

  it('a decision slower than the decision timeout is a 4xx (POLICY_DECISION_TIMEOUT)', async () => {
    const a = await answerRequest(hanging, sasl(), { timeoutMs: 50 });
    expect(a).toMatchObject({ kind: 'defer', action: expect.stringMatching(/^451 4\.3\.0 /), error: { code: 'POLICY_DECISION_TIMEOUT' } });
  });

  it('a failure inside the adapter (the engine throws) is a 4xx (POLICY_INTERNAL)', async () => {
    const broken: PolicyEngine = {
      config: failing.config, counters: failing.counters,
      session: () => {
        throw new Error('boom');
      },
    };
    expect(await answerRequest(broken, request('RCPT'))).toMatchObject({ kind: 'defer', error: { code: 'POLICY_INTERNAL', message: 'boom' } });
  });

  it('a request that cannot be decided is a 4xx naming why', async () => {
    expect(await answerRequest(failing, request('RCPT', { server_address: 'unknown' }))).toMatchObject({ kind: 'defer', action: expect.stringMatching(/^451 /), error: { code: 'POLICY_ENDPOINT_MISSING' } });
  });
});
