import { describe, expect, it } from 'vitest';
import { SMFIF_ADDHDRS, SMFIF_CHGHDRS, SMFIP_SKIP, SMFI_CURR_ACTS } from '../../adapters/milter/constants.js';
import { MilterProtocolError, MilterUsageError } from '../../adapters/milter/errors.js';
import { negotiate, type Negotiated } from '../../adapters/milter/negotiate.js';
import { MAX_REPLY_LINES, formatReplyText, parseReplyText } from '../../adapters/milter/reply-text.js';
import { decodeReply, encodeReply, type MilterReply } from '../../adapters/milter/replies.js';
import { disconnect } from '../../adapters/milter/types.js';
import { actionReplies, modificationReplies } from '../../adapters/milter/verdicts.js';
import { FULL_OFFER } from '../../adapters/milter/client.js';
import { hex } from './helpers.js';

const s = (t: string): string => Buffer.from(`${t}\0`).toString('hex');
const p = (body: string): string => `${hex(body).length.toString(16).padStart(8, '0')} ${body}`;

/** [name, reply, wire]; the trace entries are byte-exact packets Postfix and Sendmail sent (test/fixtures/milter/). */
const VECTORS: [string, MilterReply, string][] = [
  ['CONTINUE', { kind: 'continue' }, '00000001 63'],
  ['ACCEPT', { kind: 'accept' }, '00000001 61'],
  ['REJECT', { kind: 'reject' }, '00000001 72'],
  ['TEMPFAIL', { kind: 'tempfail' }, '00000001 74'],
  ['DISCARD', { kind: 'discard' }, '00000001 64'],
  ['SKIP', { kind: 'skip' }, '00000001 73'],
  ['PROGRESS', { kind: 'progress' }, '00000001 70'],
  [
    'REPLYCODE multi-line with %% (§5)',
    { kind: 'replyCode', text: '550-5.7.1 first line 100%%\r\n550 5.7.1 second line' },
    '00000033 79 3535302d352e372e31206669727374206c696e652031303025250d0a35353020352e372e31207365636f6e64206c696e6500',
  ],
  ['CHGHEADER (§5)', { kind: 'chgHeader', index: 1, name: 'Subject', value: 'changed subject' }, '0000001d 6d 00000001 5375626a65637400 6368616e676564207375626a65637400'],
  ['CHGHEADER delete', { kind: 'chgHeader', index: 2, name: 'X-Dup', value: '' }, p(`6d 00000002 ${s('X-Dup')}00`)],
  ['INSHEADER (§5)', { kind: 'insHeader', index: 0, name: 'X-Inserted-Top', value: 'top' }, '00000018 69 00000000 582d496e7365727465642d546f7000 746f7000'],
  ['ADDHEADER', { kind: 'addHeader', name: 'X-Added', value: 'added value' }, p(`68 ${s('X-Added')}${s('added value')}`)],
  ['ADDHEADER folded with LF', { kind: 'addHeader', name: 'X-F', value: 'a\n\tb' }, p(`68 ${s('X-F')}${s('a\n\tb')}`)],
  ['ADDRCPT', { kind: 'addRcpt', rcpt: '<extra@example.org>' }, p(`2b ${s('<extra@example.org>')}`)],
  ['ADDRCPT_PAR', { kind: 'addRcptPar', rcpt: '<x@example.org>', args: 'NOTIFY=NEVER ORCPT=rfc822;x@example.org' }, p(`32 ${s('<x@example.org>')}${s('NOTIFY=NEVER ORCPT=rfc822;x@example.org')}`)],
  ['ADDRCPT_PAR without args', { kind: 'addRcptPar', rcpt: '<x@example.org>' }, p(`32 ${s('<x@example.org>')}`)],
  ['DELRCPT', { kind: 'delRcpt', rcpt: '<bob@example.org>' }, p(`2d ${s('<bob@example.org>')}`)],
  ['CHGFROM (§5)', { kind: 'chgFrom', sender: '<newsender@example.net>', args: 'RET=HDRS ENVID=abc' }, '0000002c 65 3c6e657773656e646572406578616d706c652e6e65743e00 5245543d4844525320454e5649443d61626300'],
  ['CHGFROM without args', { kind: 'chgFrom', sender: '<>' }, p(`65 ${s('<>')}`)],
  ['REPLBODY (raw, no NUL)', { kind: 'replBody', chunk: Buffer.from('new body\r\n') }, p(`62 ${Buffer.from('new body\r\n').toString('hex')}`)],
  ['QUARANTINE', { kind: 'quarantine', reason: 'held by policy' }, p(`71 ${s('held by policy')}`)],
  ['OPTNEG answer without macro lists', { kind: 'optneg', version: 6, actions: 0x11, protocol: 0x400, macros: [] }, '0000000d 4f 00000006 00000011 00000400'],
  [
    'OPTNEG answer with SETSYMLIST entries',
    { kind: 'optneg', version: 6, actions: 0x111, protocol: 0, macros: [[0, '{daemon_addr} j'], [3, '{rcpt_addr}']] },
    p(`4f 00000006 00000111 00000000 00000000 ${s('{daemon_addr} j')} 00000003 ${s('{rcpt_addr}')}`),
  ],
];

describe('SMFIR_* vectors', () => {
  it.each(VECTORS)('%s', (_n, reply, wire) => {
    const bytes = hex(wire);
    expect(bytes.readUInt32BE(0)).toBe(bytes.length - 4);
    expect(encodeReply(reply).toString('hex')).toBe(bytes.toString('hex'));
    expect(decodeReply({ command: bytes[4] as number, data: bytes.subarray(5) })).toEqual(reply);
  });
});

describe('reply encoder refuses what an MTA would misread', () => {
  it.each<[string, MilterReply]>([
    ['header name with colon', { kind: 'addHeader', name: 'X-A:', value: 'v' }],
    ['header name with space', { kind: 'addHeader', name: 'X A', value: 'v' }],
    ['empty header name', { kind: 'chgHeader', index: 1, name: '', value: 'v' }],
    ['CR in a header value', { kind: 'addHeader', name: 'X-A', value: 'a\r\n\tb' }],
    ['bare LF (a header injection)', { kind: 'addHeader', name: 'X-A', value: 'a\nX-Evil: 1' }],
    ['NUL in a value', { kind: 'insHeader', index: 0, name: 'X-A', value: 'a\0b' }],
    ['CHGHEADER index 0', { kind: 'chgHeader', index: 0, name: 'X-A', value: 'v' }],
    ['negative index', { kind: 'insHeader', index: -1, name: 'X-A', value: 'v' }],
    ['empty recipient', { kind: 'addRcpt', rcpt: '' }],
    ['LF in quarantine reason (Sendmail)', { kind: 'quarantine', reason: 'a\nb' }],
    ['empty quarantine reason', { kind: 'quarantine', reason: '' }],
    ['REPLBODY chunk above 65535', { kind: 'replBody', chunk: Buffer.alloc(65536) }],
    ['raw reply text with a lone %', { kind: 'replyCode', text: '550 5.7.1 100% sure' }],
    ['raw reply text with mismatched class', { kind: 'replyCode', text: '550 4.7.1 no' }],
  ])('%s', (_n, reply) => {
    expect(() => encodeReply(reply)).toThrow(MilterUsageError);
  });
});

describe('reply text (SMFIR_REPLYCODE)', () => {
  it('formats one line, escapes %, defaults the enhanced code to the class', () => {
    expect(formatReplyText({ code: 550, enhanced: '5.7.1', text: 'Relay denied 100%' }, 'reject')).toBe('550 5.7.1 Relay denied 100%%');
    expect(formatReplyText({ code: 451, text: 'later' }, 'tempfail')).toBe('451 4.0.0 later');
    expect(formatReplyText({ code: 451, enhanced: '', text: '' }, 'tempfail')).toBe('451 4.0.0');
  });

  it('formats multi-line replies with ddd- continuation lines and CRLF, no trailing CRLF', () => {
    expect(formatReplyText({ code: 550, enhanced: '5.7.1', text: ['first line 100%', 'second line'] }, 'reject')).toBe('550-5.7.1 first line 100%%\r\n550 5.7.1 second line');
  });

  it('accepts an engine SmtpReply as it is', () => {
    const engineReply = { code: 421, enhanced: '4.3.2', text: 'Too many connections, try again later' };
    expect(formatReplyText(engineReply, 'tempfail')).toBe('421 4.3.2 Too many connections, try again later');
  });

  it.each<[string, Parameters<typeof formatReplyText>[0], 'reject' | 'tempfail']>([
    ['4xx on a reject', { code: 451, text: 'x' }, 'reject'],
    ['5xx on a tempfail', { code: 550, text: 'x' }, 'tempfail'],
    ['2xx', { code: 250, text: 'x' }, 'reject'],
    ['not three digits', { code: 5500, text: 'x' }, 'reject'],
    ['enhanced class differs from the code', { code: 550, enhanced: '4.7.1', text: 'x' }, 'reject'],
    ['malformed enhanced code', { code: 550, enhanced: '5.7', text: 'x' }, 'reject'],
    ['CR LF in the text', { code: 550, text: 'a\r\n550 b' }, 'reject'],
    ['NUL in the text', { code: 550, text: 'a\0' }, 'reject'],
    ['no lines', { code: 550, text: [] }, 'reject'],
    ['33 lines', { code: 550, text: Array.from({ length: MAX_REPLY_LINES + 1 }, () => 'x') }, 'reject'],
    ['a line over 512 octets with CRLF', { code: 550, text: 'x'.repeat(501) }, 'reject'],
    ['over 980 characters in total', { code: 550, text: Array.from({ length: 5 }, () => 'y'.repeat(200)) }, 'reject'],
  ])('refuses %s', (_n, reply, verdict) => {
    expect(() => formatReplyText(reply, verdict)).toThrow(MilterUsageError);
  });

  it('parses wire text back as an MTA does, undoing %%', () => {
    expect(parseReplyText('550-5.7.1 first line 100%%\r\n550 5.7.1 second line')).toEqual({ code: 550, enhanced: '5.7.1', lines: ['first line 100%', 'second line'] });
    for (const bad of ['550 5.7.1 100% x', '550-5.7.1 a', '550 5.7.1 a\r\n550 5.7.1 b', '550-5.7.1 a\r\n551 5.7.1 b', '55 5.7.1 x', '550 5.7.1 a\r\n']) {
      expect(parseReplyText(bad), bad).toBeInstanceOf(MilterProtocolError);
    }
  });
});

describe('verdicts and modifications → replies', () => {
  const full = negotiate(FULL_OFFER, { optionalActions: SMFI_CURR_ACTS }) as Negotiated;
  const headersOnly = negotiate(FULL_OFFER, { optionalActions: SMFIF_ADDHDRS | SMFIF_CHGHDRS, skip: false }) as Negotiated;

  it('maps each verdict to exactly one final reply', () => {
    expect(actionReplies('rcpt', { kind: 'continue' }, full)).toEqual([{ kind: 'continue' }]);
    expect(actionReplies('rcpt', { kind: 'reject' }, full)).toEqual([{ kind: 'reject' }]);
    expect(actionReplies('rcpt', { kind: 'reject', reply: { code: 550, enhanced: '5.7.1', text: 'no' } }, full)).toEqual([{ kind: 'replyCode', text: '550 5.7.1 no' }]);
    expect(actionReplies('mail', disconnect(), full)).toEqual([{ kind: 'replyCode', text: '421 4.7.0 Service not available, closing transmission channel' }]);
    expect(actionReplies('eom', { kind: 'quarantine', reason: 'hold' }, full)).toEqual([{ kind: 'quarantine', reason: 'hold' }, { kind: 'continue' }]);
  });

  it('sends SKIP only when negotiated, continue otherwise', () => {
    expect(full.protocol & SMFIP_SKIP).toBe(SMFIP_SKIP);
    expect(actionReplies('body', { kind: 'skip' }, full)).toEqual([{ kind: 'skip' }]);
    expect(actionReplies('body', { kind: 'skip' }, headersOnly)).toEqual([{ kind: 'continue' }]);
  });

  it.each<[string, Parameters<typeof actionReplies>[0], Parameters<typeof actionReplies>[1]]>([
    ['discard at connect', 'connect', { kind: 'discard' }],
    ['skip at rcpt', 'rcpt', { kind: 'skip' }],
    ['quarantine before end of message', 'mail', { kind: 'quarantine', reason: 'x' }],
    ['accept of an unknown command', 'unknown', { kind: 'accept' }],
    ['a 4xx reply on a reject', 'rcpt', { kind: 'reject', reply: { code: 451, text: 'x' } }],
  ])('refuses %s', (_n, stage, action) => {
    expect(() => actionReplies(stage, action, full)).toThrow(MilterUsageError);
  });

  it('gates each modification on its negotiated action and keeps the order', () => {
    const mods = modificationReplies(
      [
        { kind: 'changeHeader', index: 2, name: 'X-Dup', value: '' },
        { kind: 'addHeader', name: 'X-Policy', value: 'ok' },
        { kind: 'insertHeader', index: 0, name: 'X-Top', value: 't' },
      ],
      headersOnly,
    );
    expect(mods.map((m) => m.kind)).toEqual(['chgHeader', 'addHeader', 'insHeader']);
    for (const m of [
      { kind: 'addRecipient', rcpt: '<a@b>' },
      { kind: 'addRecipient', rcpt: '<a@b>', args: 'NOTIFY=NEVER' },
      { kind: 'deleteRecipient', rcpt: '<a@b>' },
      { kind: 'changeSender', sender: '<a@b>' },
      { kind: 'replaceBody', body: Buffer.from('x') },
    ] as const) {
      expect(() => modificationReplies([m], headersOnly), m.kind).toThrow(MilterUsageError);
      expect(() => modificationReplies([m], full), m.kind).not.toThrow();
    }
    expect(() => actionReplies('eom', { kind: 'quarantine', reason: 'x' }, headersOnly)).toThrow(MilterUsageError);
  });

  it('splits a replacement body into contiguous 65535-byte chunks and allows only one', () => {
    const body = Buffer.alloc(65535 * 2 + 10, 0x61);
    const r = modificationReplies([{ kind: 'replaceBody', body }], full);
    expect(r.map((x) => (x.kind === 'replBody' ? x.chunk.length : -1))).toEqual([65535, 65535, 10]);
    expect(() => modificationReplies([{ kind: 'replaceBody', body }, { kind: 'replaceBody', body }], full)).toThrow(MilterUsageError);
  });

  it('adds the leading space itself when HDR_LEADSPC is negotiated', () => {
    const lead = negotiate(FULL_OFFER, { optionalActions: SMFIF_ADDHDRS, headerLeadingSpace: true }) as Negotiated;
    expect(modificationReplies([{ kind: 'addHeader', name: 'X-A', value: 'v' }], lead)).toEqual([{ kind: 'addHeader', name: 'X-A', value: ' v' }]);
    expect(modificationReplies([{ kind: 'addHeader', name: 'X-A', value: 'v' }], headersOnly)).toEqual([{ kind: 'addHeader', name: 'X-A', value: 'v' }]);
  });
});
