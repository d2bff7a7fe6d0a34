import { describe, expect, it } from 'vitest';
import { commandFrame, decodeCommand, encodeCommand, type MilterCommand } from '../../adapters/milter/commands.js';
import { MilterProtocolError, MilterUsageError } from '../../adapters/milter/errors.js';
import { hex } from './helpers.js';

const s = (t: string): string => Buffer.from(`${t}\0`).toString('hex');
/** Hex of a packet whose length prefix is computed from `body` (command byte + data). */
const p = (body: string): string => `${(hex(body).length).toString(16).padStart(8, '0')} ${body}`;

/** [name, wire bytes (length prefix included), decoded command]; every one also round-trips. */
const VECTORS: [string, string, MilterCommand][] = [
  ['OPTNEG (Postfix 3.7, Sendmail 8.17)', '0000000d 4f 00000006 000001ff 001fffff', { kind: 'optneg', version: 6, actions: 0x1ff, protocol: 0x1fffff }],
  ['MACRO with pairs', p(`44 43 ${s('j')}${s('mx.test')}${s('_')}${s('x')}`), { kind: 'macro', stage: 0x43, macros: [['j', 'mx.test'], ['_', 'x']] }],
  ['MACRO empty (Postfix before HELO)', '00000002 44 48', { kind: 'macro', stage: 0x48, macros: [] }],
  ['MACRO stage L (Postfix before each header)', p(`44 4c ${s('i')}${s('ABC12')}`), { kind: 'macro', stage: 0x4c, macros: [['i', 'ABC12']] }],
  ['MACRO unknown stage byte', '00000002 44 5a', { kind: 'macro', stage: 0x5a, macros: [] }],
  ['MACRO empty value', p(`44 52 ${s('{x}')}${s('')}${s('i')}${s('')}`), { kind: 'macro', stage: 0x52, macros: [['{x}', ''], ['i', '']] }],
  [
    'CONNECT IPv4 (Postfix, observed Postfix trace)',
    '00000018 43 6c6f63616c686f737400 34 d586 3132372e302e302e3100',
    { kind: 'connect', hostname: 'localhost', family: 'inet', port: 54662, address: '127.0.0.1' },
  ],
  ['CONNECT IPv6 (Postfix)', p(`43 ${s('[::1]')} 36 89c0 ${s('::1')}`), { kind: 'connect', hostname: '[::1]', family: 'inet6', port: 0x89c0, address: '::1' }],
  ['CONNECT unix (L, port 0)', p(`43 ${s('localhost')} 4c 0000 ${s('/run/smtp.sock')}`), { kind: 'connect', hostname: 'localhost', family: 'unix', port: 0, address: '/run/smtp.sock' }],
  ['CONNECT unknown (U, nothing follows)', '0000000c 43 6c6f63616c686f737400 55', { kind: 'connect', hostname: 'localhost', family: 'unknown' }],
  ['HELO', p(`48 ${s('client.example.net')}`), { kind: 'helo', name: 'client.example.net' }],
  [
    'MAIL with ESMTP args',
    p(`4d ${s('<alice@example.net>')}${s('BODY=8BITMIME')}${s('SIZE=200')}`),
    { kind: 'mail', args: ['<alice@example.net>', 'BODY=8BITMIME', 'SIZE=200'] },
  ],
  ['MAIL null sender', p(`4d ${s('<>')}`), { kind: 'mail', args: ['<>'] }],
  ['RCPT', p(`52 ${s('<bob@example.org>')}${s('NOTIFY=NEVER')}`), { kind: 'rcpt', args: ['<bob@example.org>', 'NOTIFY=NEVER'] }],
  ['DATA', '00000001 54', { kind: 'data' }],
  ['HEADER', p(`4c ${s('Subject')}${s('short')}`), { kind: 'header', name: 'Subject', value: 'short' }],
  ['HEADER empty value survives', p(`4c ${s('X-Empty')}${s('')}`), { kind: 'header', name: 'X-Empty', value: '' }],
  ['HEADER folded with LF', p(`4c ${s('X-Multi')}${s('line one\n\tcont')}`), { kind: 'header', name: 'X-Multi', value: 'line one\n\tcont' }],
  ['EOH', '00000001 4e', { kind: 'eoh' }],
  ['BODY (raw, no NUL)', '00000007 42 626f64790d0a', { kind: 'body', chunk: Buffer.from('body\r\n') }],
  ['BODYEOB', '00000001 45', { kind: 'eom', chunk: Buffer.alloc(0) }],
  ['BODYEOB with a last chunk (libmilter accepts it)', '00000004 45 6869 00', { kind: 'eom', chunk: hex('686900') }],
  ['ABORT', '00000001 41', { kind: 'abort' }],
  ['QUIT', '00000001 51', { kind: 'quit' }],
  ['QUIT_NC', '00000001 4b', { kind: 'quitNc' }],
  ['UNKNOWN (Postfix: the verb only)', p(`55 ${s('FOOBAR')}`), { kind: 'unknown', command: 'FOOBAR' }],
];

function decode(wire: string): MilterCommand | MilterProtocolError {
  const b = hex(wire);
  return decodeCommand({ command: b[4] as number, data: b.subarray(5) });
}

describe('SMFIC_* vectors', () => {
  it.each(VECTORS)('%s', (_name, wire, cmd) => {
    expect(hex(wire).readUInt32BE(0)).toBe(hex(wire).length - 4);
    expect(decode(wire)).toEqual(cmd);
    expect(encodeCommand(cmd).toString('hex')).toBe(hex(wire).toString('hex'));
  });

  it("strips Sendmail's IPv6: prefix", () => {
    const wire = p(`43 ${s('mx.sendmail.test')} 36 85e0 ${s('IPv6:0:0:0:0:0:0:0:1')}`);
    expect(decode(wire)).toEqual({ kind: 'connect', hostname: 'mx.sendmail.test', family: 'inet6', port: 0x85e0, address: '0:0:0:0:0:0:0:1' });
  });

  it('decodes invalid UTF-8 without failing (8-bit header text)', () => {
    const r = decode(p(`4c 5800 ff00`));
    expect(r).toEqual({ kind: 'header', name: 'X', value: '\ufffd' });
  });
});

/** [name, wire, error code] */
const MALFORMED: [string, string, string][] = [
  ['OPTNEG too short', '0000000c 4f 00000006 000001ff 001fff', 'MILTER_COMMAND_MALFORMED'],
  ['OPTNEG too long', '0000000e 4f 00000006 000001ff 001fffff 00', 'MILTER_COMMAND_MALFORMED'],
  ['MACRO without stage', '00000001 44', 'MILTER_COMMAND_MALFORMED'],
  ['MACRO odd number of strings', p(`44 43 ${s('j')}`), 'MILTER_COMMAND_MALFORMED'],
  ['MACRO not NUL-terminated', '00000004 44 43 6a00 78', 'MILTER_COMMAND_MALFORMED'],
  ['MACRO empty name', p(`44 43 ${s('')}${s('v')}`), 'MILTER_COMMAND_MALFORMED'],
  ['CONNECT without NUL', '00000005 43 6c6f63', 'MILTER_COMMAND_MALFORMED'],
  ['CONNECT without family', p(`43 ${s('h')}`), 'MILTER_COMMAND_MALFORMED'],
  ['CONNECT unknown family', p(`43 ${s('h')} 58`), 'MILTER_COMMAND_MALFORMED'],
  ['CONNECT U with trailing bytes', p(`43 ${s('h')} 55 00`), 'MILTER_COMMAND_MALFORMED'],
  ['CONNECT 4 without port', p(`43 ${s('h')} 34 00`), 'MILTER_COMMAND_MALFORMED'],
  ['CONNECT 4 without address', p(`43 ${s('h')} 34 0019`), 'MILTER_COMMAND_MALFORMED'],
  ['CONNECT address not terminated', p(`43 ${s('h')} 34 0019 3132`), 'MILTER_COMMAND_MALFORMED'],
  ['CONNECT bytes after address', p(`43 ${s('h')} 34 0019 ${s('1')}${s('2')}`), 'MILTER_COMMAND_MALFORMED'],
  ['HELO empty', '00000001 48', 'MILTER_COMMAND_MALFORMED'],
  ['HELO two strings', p(`48 ${s('a')}${s('b')}`), 'MILTER_COMMAND_MALFORMED'],
  ['HELO not terminated', '00000002 48 61', 'MILTER_COMMAND_MALFORMED'],
  ['MAIL empty', '00000001 4d', 'MILTER_COMMAND_MALFORMED'],
  ['RCPT not terminated', '00000003 52 3c3e', 'MILTER_COMMAND_MALFORMED'],
  ['DATA with data', '00000002 54 00', 'MILTER_COMMAND_MALFORMED'],
  ['EOH with data', '00000002 4e 00', 'MILTER_COMMAND_MALFORMED'],
  ['ABORT with data', '00000002 41 00', 'MILTER_COMMAND_MALFORMED'],
  ['QUIT with data', '00000002 51 00', 'MILTER_COMMAND_MALFORMED'],
  ['QUIT_NC with data', '00000002 4b 00', 'MILTER_COMMAND_MALFORMED'],
  ['HEADER one string', p(`4c ${s('X')}`), 'MILTER_COMMAND_MALFORMED'],
  ['HEADER three strings', p(`4c ${s('X')}${s('v')}${s('w')}`), 'MILTER_COMMAND_MALFORMED'],
  ['HEADER empty name', p(`4c ${s('')}${s('v')}`), 'MILTER_COMMAND_MALFORMED'],
  ['UNKNOWN empty', '00000001 55', 'MILTER_COMMAND_MALFORMED'],
  ['unknown command byte', '00000001 7a', 'MILTER_COMMAND_UNKNOWN'],
  ['a reply byte sent as a command', '00000001 63', 'MILTER_COMMAND_UNKNOWN'],
];

describe('malformed commands', () => {
  it.each(MALFORMED.map(([n, w, c]) => [`${n} → ${c}`, w, c]))('%s', (_name, wire, code) => {
    const r = decode(wire);
    expect(r).toBeInstanceOf(MilterProtocolError);
    expect((r as MilterProtocolError).code).toBe(code);
  });
});

describe('encodeCommand', () => {
  it('refuses a string with NUL (it cannot be framed)', () => {
    expect(() => commandFrame({ kind: 'helo', name: 'a\0b' })).toThrow(MilterUsageError);
  });
});
