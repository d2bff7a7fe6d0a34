/**
 * The captured Postfix 3.7 / Sendmail 8.17 conversations (test/fixtures/milter/README.md):
 * every MTA packet must decode, every recorded reply — built by an independent recorder and
 * accepted by the MTA — must be exactly what our encoder produces.
 */
import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../adapters/milter/codec.js';
import { decodeCommand, encodeCommand, type MilterCommand } from '../../adapters/milter/commands.js';
import { MilterProtocolError } from '../../adapters/milter/errors.js';
import { decodeReply, encodeReply } from '../../adapters/milter/replies.js';
import { fixtureNames, loadFixture } from './helpers.js';

const names = fixtureNames();

function commands(name: string): MilterCommand[] {
  return loadFixture(name)
    .filter((p) => p.from === 'mta')
    .map((p) => decodeCommand(p.frame) as MilterCommand);
}

describe('captured packets', () => {
  it('has captures of both MTAs', () => {
    expect(names.filter((n) => n.startsWith('postfix-')).length).toBeGreaterThanOrEqual(7);
    expect(names.filter((n) => n.startsWith('sendmail-')).length).toBeGreaterThanOrEqual(4);
  });

  it.each(names)('%s: every MTA packet decodes and re-encodes to the same bytes', (name) => {
    for (const p of loadFixture(name).filter((x) => x.from === 'mta')) {
      const cmd = decodeCommand(p.frame);
      expect(cmd, `line ${p.line}`).not.toBeInstanceOf(MilterProtocolError);
      const raw = p.frame.data.includes('IPv6:');
      if (!raw) expect(encodeCommand(cmd as MilterCommand).equals(p.bytes), `line ${p.line}`).toBe(true);
    }
  });

  it.each(names)('%s: every recorded reply is byte-identical to our encoding of it', (name) => {
    for (const p of loadFixture(name).filter((x) => x.from === 'milter')) {
      const reply = decodeReply(p.frame);
      expect(reply, `line ${p.line}`).not.toBeInstanceOf(MilterProtocolError);
      if (!(reply instanceof MilterProtocolError)) expect(encodeReply(reply).toString('hex'), `line ${p.line}`).toBe(p.bytes.toString('hex'));
    }
  });

  it.each(names)('%s: the MTA stream decodes the same in one piece and in 1-byte pieces', (name) => {
    const wire = Buffer.concat(loadFixture(name).filter((x) => x.from === 'mta').map((p) => p.bytes));
    const whole = new FrameDecoder().push(wire);
    const d = new FrameDecoder();
    let count = 0;
    for (let i = 0; i < wire.length; i += 1) count += d.push(wire.subarray(i, i + 1)).frames.length;
    expect(whole.error).toBeUndefined();
    expect(count).toBe(whole.frames.length);
    expect(d.end()).toBeUndefined();
  });
});

describe('what the MTAs actually send', () => {
  it('Postfix: OPTNEG 6/0x1FF/0x1FFFFF, then MACRO before every event, ABORT after every message', () => {
    const c = commands('postfix-basic-1.hex');
    expect(c[0]).toEqual({ kind: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff });
    expect(c.filter((x) => x.kind === 'abort').length).toBeGreaterThanOrEqual(5);
    const stages = new Set(c.flatMap((x) => (x.kind === 'macro' ? [String.fromCharCode(x.stage)] : [])));
    expect([...stages].sort()).toEqual(['B', 'C', 'E', 'H', 'L', 'M', 'N', 'R', 'T', 'U']);
    expect(c.at(-1)).toEqual({ kind: 'quit' });
    expect(c.at(-2)).toEqual({ kind: 'abort' });
    expect(c.at(-3)).toEqual({ kind: 'abort' }); // the double ABORT
    expect(c).toContainEqual({ kind: 'unknown', command: 'FOOBAR' });
    expect(c).toContainEqual({ kind: 'header', name: 'X-Multi', value: 'line one\n\tcontinued' });
    expect(c).toContainEqual({ kind: 'header', name: 'X-Empty', value: '' });
    expect(c).toContainEqual({ kind: 'header', name: 'X-Lead', value: '  three leading spaces' });
    expect(c.find((x) => x.kind === 'body')).toEqual({ kind: 'body', chunk: Buffer.from('Hello body line 1\r\n.leading dot\r\nlast line\r\n') });
  });

  it('Postfix: requested connect macros arrive; the queue id i only from the second RCPT on', () => {
    const c = commands('postfix-basic-1.hex');
    const conn = c.find((x) => x.kind === 'macro' && x.stage === 0x43);
    const names = conn?.kind === 'macro' ? conn.macros.map(([n]) => n) : [];
    expect(names).toEqual(expect.arrayContaining(['{daemon_addr}', '{daemon_port}', 'j', '_', '{client_addr}', '{client_port}']));
    const mailMacros = c.find((x) => x.kind === 'macro' && x.stage === 0x4d);
    expect(mailMacros?.kind === 'macro' && mailMacros.macros.some(([n]) => n === 'i')).toBe(false);
  });

  it('Postfix over IPv6 and unknown client names', () => {
    expect(commands('postfix-short-1.hex').find((x) => x.kind === 'connect')).toMatchObject({ hostname: '[::1]', family: 'inet6', address: '::1' });
  });

  it('Postfix under NR flags pipelines, fills body chunks to 65535 and obeys SKIP', () => {
    const pk = loadFixture('postfix-nr-1.hex');
    const bodies = pk.filter((p) => p.from === 'mta' && p.frame.command === 0x42);
    expect(bodies.map((b) => b.frame.data.length)).toEqual([65535]);
    expect(commands('postfix-nr-1.hex')).toContainEqual({ kind: 'header', name: 'Subject', value: '  two leading spaces' });
  });

  it('Sendmail -bs: CONNECT family L with port 0 and no path; no ABORT after a message', () => {
    const c = commands('sendmail-bs-basic-1.hex');
    expect(c.find((x) => x.kind === 'connect')).toEqual({ kind: 'connect', hostname: 'localhost', family: 'unix', port: 0, address: '' });
    expect(c).toContainEqual({ kind: 'unknown', command: 'FOOBAR baz' });
    const eoms = c.flatMap((x, i) => (x.kind === 'eom' ? [i] : []));
    for (const i of eoms) expect(c[i + 1]?.kind).not.toBe('abort');
  });

  it("Sendmail daemon: IPv4 '4' and IPv6 '6' with the IPv6: prefix removed", () => {
    expect(commands('sendmail-daemon-1.hex').find((x) => x.kind === 'connect')).toMatchObject({ family: 'inet', address: '127.0.0.1' });
    expect(commands('sendmail-daemon-2.hex').find((x) => x.kind === 'connect')).toMatchObject({ family: 'inet6', address: '0:0:0:0:0:0:0:1' });
  });
});
