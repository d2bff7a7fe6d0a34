/**
 * Replays every captured MTA conversation through MilterSession with a handler that makes the
 * same decisions as the recorder did, and requires the session to produce the recorder's
 * replies byte for byte, in order — exactly one per command that expects one, none for MACRO,
 * ABORT, QUIT and NR events.
 */
import { describe, expect, it } from 'vitest';
import { decodeCommand, type MilterCommand } from '../../adapters/milter/commands.js';
import { SMFI_CURR_ACTS } from '../../adapters/milter/constants.js';
import type { MilterNeeds } from '../../adapters/milter/negotiate.js';
import { encodeReply } from '../../adapters/milter/replies.js';
import { MilterSession } from '../../adapters/milter/session.js';
import { fixtureNames, loadFixture, recordingLogger, scriptedHandler, type Call } from './helpers.js';

// The recorder's answer (capture/recorder.mjs): every action, no flags, these macro lists.
const RECORDER_MACROS: MilterNeeds['macros'] = {
  connect: ['{daemon_addr}', '{daemon_port}', 'j', '_', '{client_addr}', '{client_port}', '{client_name}'],
  helo: ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}', '{verify}'],
  mail: ['{auth_type}', '{auth_authen}', '{auth_author}', '{mail_addr}', 'i'],
  rcpt: ['{rcpt_addr}', 'i'],
  eoh: ['i'],
  eom: ['i', '{msg_id}'],
};
const PLAIN: MilterNeeds = { optionalActions: SMFI_CURR_ACTS, skip: false, macros: RECORDER_MACROS };

type Scenario = { needs: MilterNeeds; handler: (calls: Call[]) => ReturnType<typeof scriptedHandler> };

const SCENARIOS: Record<string, Scenario> = {
  basic: {
    needs: PLAIN,
    handler: (calls) =>
      scriptedHandler(
        {
          rcpt: (args: readonly string[]) =>
            args[0] === '<reject@example.org>' ? { kind: 'reject', reply: { code: 550, enhanced: '5.7.1', text: ['first line 100%', 'second line'] } } : { kind: 'continue' },
          mail: (args: readonly string[]) => (args[0] === '<refused@example.net>' ? { kind: 'reject' } : { kind: 'continue' }),
        },
        calls,
      ),
  },
  nr: {
    needs: { ...PLAIN, skip: true, headerLeadingSpace: true, noReply: ['connect', 'helo', 'mail', 'rcpt', 'data', 'unknown', 'eoh', 'header'] },
    handler: (calls) => scriptedHandler({ body: () => ({ kind: 'skip' }) }, calls),
  },
  disconnect: {
    needs: PLAIN,
    handler: (calls) =>
      scriptedHandler({ rcpt: (args: readonly string[]) => (args[0] === '<bye@example.org>' ? { kind: 'tempfail', reply: { code: 421, enhanced: '4.7.0', text: 'closing connection' } } : { kind: 'continue' }) }, calls),
  },
  rejectconnect: {
    needs: PLAIN,
    handler: (calls) => scriptedHandler({ connect: () => ({ kind: 'reject', reply: { code: 554, enhanced: '5.7.1', text: 'no connector' } }) }, calls),
  },
  edits: {
    needs: PLAIN,
    handler: (calls) =>
      scriptedHandler(
        {
          eom: () => ({
            modifications: [
              { kind: 'addHeader', name: 'X-Added', value: 'added value' },
              { kind: 'insertHeader', index: 0, name: 'X-Inserted-Top', value: 'top' },
              { kind: 'changeHeader', index: 1, name: 'Subject', value: 'changed subject' },
              { kind: 'changeHeader', index: 1, name: 'X-Remove-Me', value: '' },
              { kind: 'addRecipient', rcpt: '<extra@example.org>' },
              { kind: 'addRecipient', rcpt: '<extra2@example.org>', args: 'NOTIFY=NEVER' },
              { kind: 'deleteRecipient', rcpt: '<bob@example.org>' },
              { kind: 'changeSender', sender: '<newsender@example.net>', args: 'RET=HDRS ENVID=abc' },
              { kind: 'progress' },
              { kind: 'replaceBody', body: Buffer.from('Replaced body line 1\r\nReplaced body line 2\r\n') },
            ],
            action: { kind: 'quarantine', reason: 'quarantined by test' },
          }),
        },
        calls,
      ),
  },
};

function scenarioOf(name: string): Scenario {
  for (const key of ["rejectconnect", "disconnect", "edits", "nr"] as const) if (name.includes(`-${key}-`)) return SCENARIOS[key] as Scenario;
  return SCENARIOS.basic as Scenario;
}

async function replay(name: string): Promise<{ got: string[]; want: string[]; calls: Call[]; closed: boolean }> {
  const packets = loadFixture(name);
  const scenario = scenarioOf(name);
  const calls: Call[] = [];
  const session = new MilterSession({ needs: scenario.needs, createHandler: () => scenario.handler(calls), logger: recordingLogger() });
  const got: string[] = [];
  let closed = false;
  for (const p of packets.filter((x) => x.from === 'mta')) {
    const step = await session.handle(decodeCommand(p.frame) as MilterCommand);
    expect(step.error, `${name}:${p.line}`).toBeUndefined();
    for (const r of step.replies) got.push(encodeReply(r).toString('hex'));
    closed ||= step.close;
  }
  await session.end();
  return { got, want: packets.filter((x) => x.from === 'milter').map((x) => x.bytes.toString('hex')), calls, closed };
}

describe('session replays the captured conversations', () => {
  it.each(fixtureNames())('%s', async (name) => {
    const { got, want, calls } = await replay(name);
    expect(got).toEqual(want);
    expect(calls.filter((c) => c.method === 'close')).toHaveLength(1);
  });

  it('Postfix basic: handler calls, macros merged across stages, aborts only for abandoned messages', async () => {
    const { calls } = await replay('postfix-basic-1.hex');
    const methods = calls.map((c) => c.method);
    expect(methods.filter((m) => m === 'eom')).toHaveLength(3);
    // ABORT after each finished message, the double ABORT and the one after the refused MAIL
    // are no-ops; only the RSET of erin's open message is an abort.
    expect(methods.filter((m) => m === 'abort')).toHaveLength(1);
    const mail = calls.find((c) => c.method === 'mail');
    expect(mail?.macros).toMatchObject({ '{daemon_addr}': '127.0.0.1', '{daemon_port}': '47025', j: 'mx.test.example', '{mail_addr}': 'alice@example.net' });
    const rcpts = calls.filter((c) => c.method === 'rcpt');
    expect(rcpts[0]?.macros?.['{rcpt_addr}']).toBe('bob@example.org');
    expect(rcpts[0]?.macros?.i).toBeUndefined();
    expect(rcpts[1]?.macros?.i).toMatch(/^[0-9A-F]+$/);
    // The second message does not see the first message's rcpt macros replaced … by stale ones.
    const secondMail = calls.filter((c) => c.method === 'mail')[1];
    expect(secondMail?.macros?.['{rcpt_addr}']).toBeUndefined();
    expect(secondMail?.macros?.['{daemon_addr}']).toBe('127.0.0.1');
    expect(calls.find((c) => c.method === 'unknown')?.args).toEqual(['FOOBAR']);
    expect(calls.find((c) => c.method === 'connect')?.args[0]).toMatchObject({ hostname: 'localhost', family: 'inet', address: '127.0.0.1' });
  });

  it('NR run: every header still reaches the handler, without the HDR_LEADSPC space', async () => {
    const { calls } = await replay('postfix-nr-1.hex');
    const headers = calls.filter((c) => c.method === 'header').map((c) => c.args);
    expect(headers).toContainEqual(['From', 'a@example.net']);
    expect(headers).toContainEqual(['Subject', ' two leading spaces']);
    expect(calls.filter((c) => c.method === 'body')).toHaveLength(1);
  });

  it('Sendmail -bs: a unix CONNECT reaches the handler as a path', async () => {
    const { calls } = await replay('sendmail-bs-basic-1.hex');
    expect(calls.find((c) => c.method === 'connect')?.args[0]).toEqual({ hostname: 'localhost', family: 'unix', path: '' });
  });
});
