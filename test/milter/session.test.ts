import { describe, expect, it } from 'vitest';
import type { MilterCommand } from '../../adapters/milter/commands.js';
import * as C from '../../adapters/milter/constants.js';
import type { MilterNeeds } from '../../adapters/milter/negotiate.js';
import type { MilterReply } from '../../adapters/milter/replies.js';
import { MilterSession, type SessionStep } from '../../adapters/milter/session.js';
import type { HandlerContext, MilterHandler } from '../../adapters/milter/types.js';
import { FULL_OFFER } from '../../adapters/milter/client.js';
import { recordingLogger, scriptedHandler, type Call } from './helpers.js';

const OPTNEG: MilterCommand = { kind: 'optneg', ...FULL_OFFER };
const CONNECT: MilterCommand = { kind: 'connect', hostname: 'client.example', family: 'inet', port: 40000, address: '192.0.2.1' };
const macro = (stage: string, pairs: Record<string, string> = {}): MilterCommand => ({ kind: 'macro', stage: stage.charCodeAt(0), macros: Object.entries(pairs) });
const mail = (a: string): MilterCommand => ({ kind: 'mail', args: [a] });
const rcpt = (a: string): MilterCommand => ({ kind: 'rcpt', args: [a] });
const header = (name: string, value: string): MilterCommand => ({ kind: 'header', name, value });
const body = (t: string): MilterCommand => ({ kind: 'body', chunk: Buffer.from(t) });
const EOM: MilterCommand = { kind: 'eom', chunk: Buffer.alloc(0) };
const K = (kind: MilterCommand['kind']): MilterCommand => ({ kind }) as MilterCommand;

/** A message as Postfix sends it (MACRO packets omitted). */
const message = (from: string, to: string): MilterCommand[] => [mail(from), rcpt(to), K('data'), header('Subject', 'hi'), K('eoh'), body('text\r\n'), EOM];

interface Harness {
  session: MilterSession;
  calls: Call[];
  log: ReturnType<typeof recordingLogger>;
  contexts: HandlerContext[];
  run(cmds: readonly MilterCommand[]): Promise<SessionStep[]>;
  /** Replies of `cmds`, one string per command: kinds joined by '+', '' for none. */
  replies(cmds: readonly MilterCommand[]): Promise<string[]>;
}

function harness(script: Parameters<typeof scriptedHandler>[0] = {}, needs: MilterNeeds = {}, extra: { handlerTimeoutMs?: number; maxMacroBytes?: number } = {}): Harness {
  const calls: Call[] = [];
  const log = recordingLogger();
  const contexts: HandlerContext[] = [];
  const session = new MilterSession({
    needs,
    logger: log,
    createHandler: (ctx) => {
      contexts.push(ctx);
      return scriptedHandler(script, calls);
    },
    ...extra,
  });
  const run = async (cmds: readonly MilterCommand[]): Promise<SessionStep[]> => {
    const out: SessionStep[] = [];
    for (const c of cmds) out.push(await session.handle(c));
    return out;
  };
  const show = (rs: readonly MilterReply[]): string => rs.map((r) => (r.kind === 'replyCode' ? `replyCode(${r.text})` : r.kind)).join('+');
  return { session, calls, log, contexts, run, replies: async (cmds) => (await run(cmds)).map((s) => (s.error ? `error:${s.error.code}` : show(s.replies))) };
}

describe('MilterSession transcripts', () => {
  it('several messages on one connection, ABORT midway, ABORT twice, QUIT', async () => {
    const h = harness();
    const cmds = [
      OPTNEG,
      macro('C', { j: 'mx' }),
      CONNECT,
      macro('H'),
      { kind: 'helo', name: 'client.example' } as MilterCommand,
      ...message('<a@example.net>', '<b@example.org>'),
      K('abort'),
      mail('<c@example.net>'),
      rcpt('<b@example.org>'),
      K('abort'), // RSET midway: the open message is abandoned
      K('abort'), // Postfix's duplicate
      ...message('<d@example.net>', '<b@example.org>'),
      K('abort'),
      K('quit'),
    ];
    const r = await h.replies(cmds);
    expect(r).toEqual(['optneg', '', 'continue', '', 'continue', ...Array(7).fill('continue'), '', 'continue', 'continue', '', '', ...Array(7).fill('continue'), '', '']);
    const methods = h.calls.map((c) => c.method);
    expect(methods.filter((m) => m === 'abort')).toHaveLength(1);
    expect(methods.filter((m) => m === 'eom')).toHaveLength(2);
    expect(methods.at(-1)).toBe('close');
    expect(h.session.closed).toBe(true);
    expect((await h.session.handle(mail('<x@y>'))).error?.code).toBe('MILTER_SEQUENCE');
  });

  it('a new MAIL without ABORT (Sendmail) starts a new message; MAIL inside an open one aborts it first', async () => {
    const h = harness();
    await h.run([OPTNEG, CONNECT, ...message('<a@x>', '<b@y>'), mail('<c@x>'), rcpt('<b@y>'), mail('<e@x>'), rcpt('<b@y>'), K('data')]);
    expect(h.calls.map((c) => c.method)).toEqual(['connect', 'mail', 'rcpt', 'data', 'header', 'eoh', 'body', 'eom', 'mail', 'rcpt', 'abort', 'mail', 'rcpt', 'data']);
  });

  it('the MAIL macros that precede an aborting MAIL survive the implicit abort', async () => {
    const h = harness();
    await h.run([OPTNEG, CONNECT, macro('M', { '{mail_addr}': 'a@x' }), mail('<a@x>'), macro('R', { '{rcpt_addr}': 'b@y' }), rcpt('<b@y>'), macro('M', { '{mail_addr}': 'c@x' }), mail('<c@x>')]);
    const last = h.calls.filter((c) => c.method === 'mail')[1];
    expect(last?.macros).toEqual({ '{mail_addr}': 'c@x' });
  });

  it('HELO again (after STARTTLS) inside a message aborts the message', async () => {
    const h = harness();
    const r = await h.replies([OPTNEG, CONNECT, mail('<a@x>'), { kind: 'helo', name: 'again' }, mail('<b@x>')]);
    expect(r.slice(2)).toEqual(['continue', 'continue', 'continue']);
    expect(h.calls.map((c) => c.method)).toEqual(['connect', 'mail', 'abort', 'helo', 'mail']);
  });

  it('NR flags: no reply at all for NR events, the handler is still called', async () => {
    const h = harness({}, { noReply: ['connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh', 'body', 'unknown'] });
    const r = await h.replies([OPTNEG, CONNECT, { kind: 'helo', name: 'h' }, ...message('<a@x>', '<b@y>'), { kind: 'unknown', command: 'X' }]);
    expect(r).toEqual(['optneg', '', '', '', '', '', '', '', '', 'continue', '']);
    expect(h.calls.map((c) => c.method)).toEqual(['connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh', 'body', 'eom', 'unknown']);
    expect(h.session.negotiated?.protocol).toBe(0x000ff080 | C.SMFIP_SKIP);
  });

  it('NR flags: a refusal at an NR stage cannot be sent, so the rest of the message is tempfailed and logged', async () => {
    const h = harness({ header: (name: string) => (name === 'X-Bad' ? { kind: 'reject' } : { kind: 'continue' }) }, { noReply: ['header'] });
    const r = await h.replies([OPTNEG, CONNECT, mail('<a@x>'), rcpt('<b@y>'), K('data'), header('X-Bad', '1'), header('X-Next', '2'), K('eoh'), body('b'), EOM, ...message('<n@x>', '<b@y>')]);
    expect(r.slice(5, 10)).toEqual(['', '', 'tempfail', 'tempfail', 'tempfail']);
    expect(r.slice(10)).toEqual(['continue', 'continue', 'continue', '', 'continue', 'continue', 'continue']); // the next message is unaffected
    expect(h.log.lines.some((l) => l.level === 'error' && l.obj.code === 'MILTER_NOREPLY_VIOLATED')).toBe(true);
    expect(h.calls.filter((c) => c.method === 'header')).toHaveLength(2); // second message's header only after X-Bad
  });

  it('NR flags: a handler failure at NR CONNECT tempfails the whole SMTP connection', async () => {
    const h = harness({ connect: () => Promise.reject(new Error('engine down')) }, { noReply: ['connect'] });
    const r = await h.replies([OPTNEG, CONNECT, { kind: 'helo', name: 'h' }, ...message('<a@x>', '<b@y>')]);
    expect(r.slice(1)).toEqual(['', 'tempfail', ...Array(7).fill('tempfail')]);
    expect(h.calls.map((c) => c.method)).toEqual(['connect']);
  });

  it('NR flags: an accept at an NR stage is carried on as continue, a skip under NR_BODY still stops the body', async () => {
    const h = harness({ mail: () => ({ kind: 'accept' }), body: () => ({ kind: 'skip' }) }, { noReply: ['mail', 'body'] });
    const r = await h.replies([OPTNEG, CONNECT, mail('<a@x>'), rcpt('<b@y>'), K('data'), K('eoh'), body('1'), body('2'), EOM]);
    expect(r.slice(2)).toEqual(['', 'continue', 'continue', 'continue', '', '', 'continue']);
    expect(h.calls.map((c) => c.method)).toEqual(['connect', 'mail', 'rcpt', 'data', 'eoh', 'body', 'eom']);
    expect(h.log.lines.some((l) => l.level === 'warn' && l.obj.code === 'MILTER_NOREPLY_VIOLATED')).toBe(true);
  });

  it('SKIP: the first body chunk is answered with SMFIR_SKIP, later chunks are not handed over', async () => {
    const h = harness({ body: () => ({ kind: 'skip' }) });
    const r = await h.replies([OPTNEG, CONNECT, mail('<a@x>'), rcpt('<b@y>'), K('data'), K('eoh'), body('1'), body('2'), EOM, mail('<c@x>'), rcpt('<d@y>'), K('data'), K('eoh'), body('3')]);
    expect(r.slice(6)).toEqual(['skip', 'continue', 'continue', 'continue', 'continue', 'continue', 'continue', 'skip']);
    expect(h.calls.filter((c) => c.method === 'body').map((c) => (c.args[0] as Buffer).toString())).toEqual(['1', '3']);
  });

  it('SKIP not offered by the MTA: a skip verdict goes out as continue', async () => {
    const h = harness({ body: () => ({ kind: 'skip' }) });
    const r = await h.replies([{ ...OPTNEG, protocol: FULL_OFFER.protocol & ~C.SMFIP_SKIP } as MilterCommand, CONNECT, mail('<a@x>'), body('1'), body('2')]);
    expect(r.slice(3)).toEqual(['continue', 'continue']);
    expect(h.calls.filter((c) => c.method === 'body')).toHaveLength(1);
  });

  it('modifications are sent at end of message only, in order, then exactly one verdict', async () => {
    const h = harness(
      {
        eom: () => ({
          modifications: [
            { kind: 'changeHeader', index: 1, name: 'X-Policy', value: '' },
            { kind: 'addHeader', name: 'X-Policy', value: 'checked' },
          ],
          action: { kind: 'accept' },
        }),
      },
      { requiredActions: C.SMFIF_ADDHDRS | C.SMFIF_CHGHDRS },
    );
    const steps = await h.run([OPTNEG, CONNECT, ...message('<a@x>', '<b@y>')]);
    expect(steps.at(-1)?.replies).toEqual([
      { kind: 'chgHeader', index: 1, name: 'X-Policy', value: '' },
      { kind: 'addHeader', name: 'X-Policy', value: 'checked' },
      { kind: 'accept' },
    ]);
  });

  it('a modification that was not negotiated turns the whole end of message into a tempfail', async () => {
    const h = harness({ eom: () => ({ modifications: [{ kind: 'addHeader', name: 'X-A', value: '1' }, { kind: 'replaceBody', body: Buffer.from('x') }], action: { kind: 'continue' } }) }, { optionalActions: C.SMFIF_ADDHDRS });
    const steps = await h.run([OPTNEG, CONNECT, ...message('<a@x>', '<b@y>')]);
    expect(steps.at(-1)?.replies).toEqual([{ kind: 'tempfail' }]);
    expect(h.log.lines.find((l) => l.level === 'error')?.obj.code).toBe('MILTER_MODIFICATION_INVALID');
  });

  it.each<[string, Parameters<typeof scriptedHandler>[0]]>([
    ['throws', { rcpt: () => { throw new Error('boom'); } }],
    ['rejects', { rcpt: () => Promise.reject(new Error('boom')) }],
    ['rejects with a non-Error', { rcpt: () => Promise.reject('a string') }],
    ['returns nothing', { rcpt: () => undefined as never }],
    ['returns garbage', { rcpt: () => ({ kind: 'maybe' }) as never }],
    ['returns a verdict not allowed there', { rcpt: () => ({ kind: 'skip' }) }],
    ['returns a reply of the wrong class', { rcpt: () => ({ kind: 'reject', reply: { code: 451, text: 'x' } }) }],
    ['never settles', { rcpt: () => new Promise(() => undefined) }],
  ])('a handler that %s gets SMFIR_TEMPFAIL, never continue, and is logged', async (_n, script) => {
    const h = harness(script, {}, { handlerTimeoutMs: 30 });
    const r = await h.replies([OPTNEG, CONNECT, mail('<a@x>'), rcpt('<b@y>'), rcpt('<c@y>')]);
    expect(r.slice(3)).toEqual(['tempfail', 'tempfail']);
    expect(h.log.lines.filter((l) => l.level === 'error').length).toBeGreaterThanOrEqual(2);
  });

  it('a failing eom is a tempfail without modifications', async () => {
    const h = harness({ eom: () => { throw new Error('x'); } });
    expect((await h.run([OPTNEG, CONNECT, ...message('<a@x>', '<b@y>')])).at(-1)?.replies).toEqual([{ kind: 'tempfail' }]);
  });

  it('connection-level verdicts are final: later commands get the same answer without the handler', async () => {
    const h = harness({ connect: () => ({ kind: 'reject', reply: { code: 554, enhanced: '5.7.1', text: 'no connector' } }) });
    const r = await h.replies([OPTNEG, CONNECT, { kind: 'helo', name: 'h' }, mail('<a@x>'), EOM]);
    expect(r.slice(1)).toEqual(Array(4).fill('replyCode(554 5.7.1 no connector)'));
    expect(h.calls.map((c) => c.method)).toEqual(['connect']);
  });

  it('a message-level refusal is final for that message; the next message starts afresh', async () => {
    const h = harness({ mail: (args: readonly string[]) => (args[0] === '<bad@x>' ? { kind: 'tempfail' } : { kind: 'continue' }) });
    const r = await h.replies([OPTNEG, CONNECT, mail('<bad@x>'), rcpt('<b@y>'), EOM, ...message('<ok@x>', '<b@y>')]);
    expect(r.slice(2, 5)).toEqual(['tempfail', 'tempfail', 'tempfail']);
    expect(r.slice(5)).toEqual(Array(7).fill('continue'));
  });

  it('a RCPT refusal refuses that recipient only', async () => {
    const h = harness({ rcpt: (args: readonly string[]) => (args[0] === '<no@y>' ? { kind: 'reject', reply: { code: 550, enhanced: '5.7.1', text: 'Relay denied' } } : { kind: 'continue' }) });
    const r = await h.replies([OPTNEG, CONNECT, mail('<a@x>'), rcpt('<no@y>'), rcpt('<yes@y>'), K('data'), EOM]);
    expect(r.slice(3)).toEqual(['replyCode(550 5.7.1 Relay denied)', 'continue', 'continue', 'continue']);
    expect(h.calls.filter((c) => c.method === 'eom')).toHaveLength(1);
  });

  it('macros: merged across stages, replaced within a stage, cleared by later-stage rules and ABORT', async () => {
    const h = harness();
    await h.run([
      OPTNEG,
      macro('C', { j: 'mx', '{daemon_addr}': '192.0.2.25' }),
      CONNECT,
      macro('H', { '{tls_version}': 'TLSv1.3' }),
      { kind: 'helo', name: 'h' },
      macro('M', { '{mail_addr}': 'a@x', '{auth_type}': 'PLAIN' }),
      mail('<a@x>'),
      macro('R', { '{rcpt_addr}': 'b@y', '{rcpt_host}': 'y' }),
      rcpt('<b@y>'),
      macro('R', { '{rcpt_addr}': 'c@y' }), // replaces the RCPT table: {rcpt_host} is gone
      rcpt('<c@y>'),
      macro('Z', { junk: 'ignored' }), // unknown stage byte: tolerated, ignored
      macro('E'), // empty packet: tolerated
      K('abort'),
      macro('M', { '{mail_addr}': 'n@x' }),
      mail('<n@x>'),
    ]);
    const at = (method: string, n = 0): Record<string, string> | undefined => h.calls.filter((c) => c.method === method)[n]?.macros;
    expect(at('mail')).toEqual({ j: 'mx', '{daemon_addr}': '192.0.2.25', '{tls_version}': 'TLSv1.3', '{mail_addr}': 'a@x', '{auth_type}': 'PLAIN' });
    expect(at('rcpt', 0)).toMatchObject({ '{rcpt_addr}': 'b@y', '{rcpt_host}': 'y', j: 'mx' });
    expect(at('rcpt', 1)?.['{rcpt_host}']).toBeUndefined();
    expect(at('rcpt', 1)?.['{rcpt_addr}']).toBe('c@y');
    expect(at('mail', 1)).toEqual({ j: 'mx', '{daemon_addr}': '192.0.2.25', '{tls_version}': 'TLSv1.3', '{mail_addr}': 'n@x' });
    expect(h.log.lines.some((l) => l.level === 'debug' && l.msg?.includes('unknown stage'))).toBe(true);
  });

  it('macros: `x` and `{x}` are one name; the total is bounded', async () => {
    let seen: string | undefined;
    const h = harness({ connect: (_i: unknown, m: { get(n: string): string | undefined }) => ((seen = m.get('{j}')), { kind: 'continue' }) }, {}, { maxMacroBytes: 100 });
    await h.run([OPTNEG, macro('C', { j: 'mx' }), CONNECT]);
    expect(seen).toBe('mx');
    const step = await h.session.handle(macro('H', { big: 'x'.repeat(200) }));
    expect(step.error?.code).toBe('MILTER_LIMIT');
    expect(step.close).toBe(true);
  });

  it('QUIT_NC: the SMTP connection ends, a new handler serves the next one with the same negotiation', async () => {
    const h = harness();
    const r = await h.replies([OPTNEG, macro('C', { j: 'mx' }), CONNECT, mail('<a@x>'), K('quitNc'), CONNECT, mail('<b@x>')]);
    expect(r).toEqual(['optneg', '', 'continue', 'continue', '', 'continue', 'continue']);
    expect(h.calls.map((c) => c.method)).toEqual(['connect', 'mail', 'abort', 'close', 'connect', 'mail']);
    expect(h.contexts.map((c) => c.smtpConnection)).toEqual([1, 2]);
    expect(h.calls.at(-1)?.macros?.j).toBeUndefined();
  });

  it('events the handler did not ask for are answered by the session itself', async () => {
    const h = harness({}, { events: ['connect', 'rcpt'] });
    // An MTA that cannot switch events off (no NO* bits offered) still sends them.
    const r = await h.replies([{ ...OPTNEG, protocol: C.SMFIP_SKIP } as MilterCommand, CONNECT, { kind: 'helo', name: 'h' }, ...message('<a@x>', '<b@y>')]);
    expect(r.slice(1)).toEqual(Array(9).fill('continue'));
    expect(h.calls.map((c) => c.method)).toEqual(['connect', 'rcpt', 'eom']);
  });

  it('a transaction can start at RCPT when MAIL was switched off (SMFIP_NOMAIL)', async () => {
    const h = harness({}, { events: ['connect', 'rcpt', 'header'] });
    const r = await h.replies([OPTNEG, CONNECT, rcpt('<b@y>'), header('S', 'x'), EOM, rcpt('<c@y>')]);
    expect(r.slice(2)).toEqual(['continue', 'continue', 'continue', 'continue']);
    expect((h.session.negotiated?.protocol ?? 0) & C.SMFIP_NOMAIL).toBe(C.SMFIP_NOMAIL);
  });

  it('a last body chunk carried by BODYEOB goes to body() first', async () => {
    const h = harness({ body: () => ({ kind: 'reject' }) });
    const steps = await h.run([OPTNEG, CONNECT, mail('<a@x>'), rcpt('<b@y>'), K('data'), K('eoh'), { kind: 'eom', chunk: Buffer.from('tail') }]);
    expect(steps.at(-1)?.replies).toEqual([{ kind: 'reject' }]);
    expect(h.calls.map((c) => c.method)).toEqual(['connect', 'mail', 'rcpt', 'data', 'eoh', 'body']);
  });

  it.each<[string, MilterCommand[]]>([
    ['a command before OPTNEG', [CONNECT]],
    ['a second OPTNEG', [OPTNEG, OPTNEG]],
    ['a second CONNECT without QUIT_NC', [OPTNEG, CONNECT, CONNECT]],
    ['HELO before CONNECT', [OPTNEG, { kind: 'helo', name: 'h' }]],
    ['RCPT outside a message', [OPTNEG, CONNECT, rcpt('<b@y>')]],
    ['HEADER after BODY', [OPTNEG, CONNECT, mail('<a@x>'), K('data'), body('x'), header('S', 'x')]],
    ['EOM outside a message', [OPTNEG, CONNECT, EOM]],
  ])('%s is a MILTER_SEQUENCE error that closes the connection', async (_n, cmds) => {
    const h = harness();
    const steps = await h.run(cmds);
    const last = steps.at(-1);
    expect(last?.error?.code).toBe('MILTER_SEQUENCE');
    expect(last?.close).toBe(true);
    expect(last?.replies).toEqual([]);
    expect(steps.slice(0, -1).every((s) => s.error === undefined)).toBe(true);
  });

  it('negotiation failure closes the connection without an answer', async () => {
    const h = harness();
    const [step] = await h.run([{ ...OPTNEG, version: 2 } as MilterCommand]);
    expect(step?.error?.code).toBe('MILTER_NEGOTIATION');
    expect(step?.replies).toEqual([]);
  });

  it('end() aborts an open message and closes the handler exactly once', async () => {
    const h = harness();
    await h.run([OPTNEG, CONNECT, mail('<a@x>')]);
    await h.session.end();
    await h.session.end();
    expect(h.calls.map((c) => c.method)).toEqual(['connect', 'mail', 'abort', 'close']);
  });

  it('concurrent handle() calls are answered in order', async () => {
    let n = 0;
    const h = harness({ rcpt: async () => { const me = ++n; await new Promise((r) => setTimeout(r, me === 1 ? 20 : 1)); return me === 1 ? { kind: 'reject' } : { kind: 'continue' }; } });
    await h.run([OPTNEG, CONNECT, mail('<a@x>')]);
    const [a, b] = await Promise.all([h.session.handle(rcpt('<1@y>')), h.session.handle(rcpt('<2@y>'))]);
    expect([a?.replies, b?.replies]).toEqual([[{ kind: 'reject' }], [{ kind: 'continue' }]]);
  });

  it('handler factories see the negotiation and a per-connection logger', async () => {
    const h = harness({}, { optionalActions: C.SMFIF_ADDHDRS });
    await h.run([OPTNEG, CONNECT]);
    expect(h.contexts[0]?.negotiated.actions).toBe(C.SMFIF_ADDHDRS);
  });
});

// Type-level check: a handler must answer every stage.
const _complete: MilterHandler = scriptedHandler();
void _complete;
