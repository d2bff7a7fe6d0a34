/**
 * The listener's pure pieces: the DATA line checker and header splitter (every chunk boundary),
 * the header rewrite, the Received: field, reply rendering and the late-ended message pipe.
 */
import { describe, expect, it } from 'vitest';
import { addedFields, headerFacts, HeaderSplitter, LineChecker, rewriteHeader, type HeaderBlock } from '../../adapters/submission/message.js';
import { MessagePipe, PipeAborted } from '../../adapters/submission/pipe.js';
import { receivedValue } from '../../adapters/submission/received.js';
import { ehloKeywords, mirrorUpstream, withEnhancedCode } from '../../adapters/submission/replies.js';

const LIMITS = { maxBytes: 1 << 20, maxFields: 100, maxValueBytes: 4096 };
const MSG = 'From: <a@x.test>\r\nSubject: one\r\n\tfolded\r\nx-mta-policy-auth-as: Partner\r\n\r\nbody\r\n';

/** Splits `text` at `at`, feeding both parts; returns the block and what followed it. */
function split(text: string, at: number): { block: HeaderBlock; rest: string } {
  const s = new HeaderSplitter(LIMITS);
  let rest = '';
  let block: HeaderBlock | undefined;
  for (const part of [text.slice(0, at), text.slice(at)]) {
    if (block !== undefined) {
      rest += part;
      continue;
    }
    const r = s.push(Buffer.from(part));
    if (r !== null && typeof r !== 'string') {
      block = r.block;
      rest = r.rest.toString();
    }
  }
  if (block === undefined) {
    const b = s.end();
    if (typeof b === 'string') throw new Error(b);
    block = b;
  }
  return { block, rest };
}

describe('HeaderSplitter', () => {
  it('finds the header block at every chunk boundary', () => {
    for (let at = 0; at <= MSG.length; at++) {
      const { block, rest } = split(MSG, at);
      expect(block.raw.toString(), `split at ${at}`).toBe('From: <a@x.test>\r\nSubject: one\r\n\tfolded\r\nx-mta-policy-auth-as: Partner\r\n');
      expect(rest, `split at ${at}`).toBe('\r\nbody\r\n');
      expect(headerFacts(block)).toEqual([['From', '<a@x.test>'], ['Subject', 'one\r\n\tfolded'], ['x-mta-policy-auth-as', 'Partner']]);
    }
  });

  it('an empty header block and a message without body', () => {
    expect(split('\r\nbody\r\n', 1).block.fields).toEqual([]);
    expect(split('Subject: x\r\n', 3).block.fields.map((f) => f.name)).toEqual(['Subject']);
  });

  it('refuses a header block over the limit', () => {
    const s = new HeaderSplitter({ ...LIMITS, maxBytes: 20 });
    expect(s.push(Buffer.from('Subject: 0123456789abcdef\r\n'))).toBe('header_too_large');
  });
});

describe('LineChecker', () => {
  it('bare LF and bare CR anywhere, across chunks; CRLF split across chunks is fine', () => {
    const feed = (parts: string[]): string | null => {
      const c = new LineChecker();
      for (const p of parts) {
        const v = c.feed(Buffer.from(p));
        if (v !== null) return v;
      }
      return c.end();
    };
    expect(feed(['a\r', '\nb\r\n'])).toBeNull();
    expect(feed(['a\nb'])).toBe('bare_lf');
    expect(feed(['a\r', 'b'])).toBe('bare_cr');
    expect(feed(['a\r'])).toBe('bare_cr');
    expect(feed([`${'x'.repeat(998)}\r\n`])).toBeNull();
    expect(feed([`${'x'.repeat(999)}\r\n`])).toBe('line_too_long');
  });
});

describe('rewriteHeader', () => {
  it('removes every copy of a name in any case, keeps the rest byte for byte, prepends ours', () => {
    const { block } = split(MSG, 7);
    const out = rewriteHeader(block, ['x-mta-policy-auth-as'], `Received: r\r\n${addedFields([{ name: 'X-MTA-Policy-Auth-As', value: 'Internal' }])}`).toString();
    expect(out).toBe('Received: r\r\nX-MTA-Policy-Auth-As: Internal\r\nFrom: <a@x.test>\r\nSubject: one\r\n\tfolded\r\n');
    expect(() => addedFields([{ name: 'X-Bad', value: 'a\r\nInjected: yes' }])).toThrow();
  });
});

describe('Received:', () => {
  it('Postfix layout; untrusted HELO and login cannot open a comment or a clause', () => {
    const v = receivedValue({ helo: 'evil) (by x', esmtp: true, clientIp: '2001:db8::1', tls: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256' }, user: 'u(1)', by: 'mail.test', id: 'abc.1', recipients: ['a@x.test', 'b@x.test'], date: new Date(Date.UTC(2026, 11, 1, 10, 0, 0)) });
    // Spaces and parentheses in client-supplied text become '?'; `for` only with a single recipient.
    expect(v).toBe('from evil???by?x (unknown [IPv6:2001:db8::1])\r\n\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits))\r\n\t(Authenticated sender: u?1?)\r\n\tby mail.test (mta-policy) with ESMTPSA id abc.1;\r\n\tTue, 1 Dec 2026 10:00:00 +0000 (UTC)');
  });
});

describe('replies', () => {
  it('smtp-server texts get an enhanced code; ours and 3xx keep theirs; EHLO follows the decision', () => {
    expect(withEnhancedCode(221, 'Bye')).toBe('2.0.0 Bye');
    expect(withEnhancedCode(553, '5.7.1 Sender address rejected')).toBe('5.7.1 Sender address rejected');
    expect(withEnhancedCode(354, 'End data with <CR><LF>.<CR><LF>')).toBe('End data with <CR><LF>.<CR><LF>');
    expect(withEnhancedCode(503, 'Error: need MAIL command')).toBe('5.5.1 Error: need MAIL command');
    const adv = { starttls: true, auth: ['PLAIN', 'LOGIN', 'CRAM-MD5'], size: 1000, require_tls: false, client_certificate: 'none' as const };
    expect(ehloKeywords(adv, true)).toEqual(['PIPELINING', 'SIZE 1000', 'STARTTLS', 'AUTH PLAIN LOGIN', 'ENHANCEDSTATUSCODES', '8BITMIME', 'SMTPUTF8']);
    expect(ehloKeywords({ ...adv, auth: [], size: null }, false)).toEqual(['PIPELINING', 'SIZE', 'ENHANCEDSTATUSCODES', '8BITMIME', 'SMTPUTF8']);
  });

  it('a next hop reply is mirrored, 421 becoming 451 (it closed the next hop, not the client)', () => {
    expect(mirrorUpstream({ code: 550, enhanced: '5.1.1', text: 'User unknown', lines: [], source: 'peer' })).toEqual({ code: 550, enhanced: '5.1.1', text: 'User unknown' });
    expect(mirrorUpstream({ code: 421, enhanced: '4.3.2', text: 'shutting down', lines: [], source: 'peer' })).toEqual({ code: 451, enhanced: '4.3.2', text: 'shutting down' });
    expect(mirrorUpstream({ code: 452, enhanced: '', text: '', lines: [], source: 'peer' })).toEqual({ code: 452, enhanced: '4.0.0', text: 'Next hop: temporary failure' });
  });
});

describe('MessagePipe', () => {
  const drain = async (p: MessagePipe): Promise<string> => {
    let s = '';
    for await (const c of p) s += c.toString();
    return s;
  };

  it('the consumer finishes only after end(); fail() makes it throw, so no final dot is sent', async () => {
    const ok = new MessagePipe(4);
    const read = drain(ok);
    await ok.push(Buffer.from('abc'));
    await ok.push(Buffer.from('def'));
    let finished = false;
    void read.then(() => (finished = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(finished).toBe(false);
    ok.end();
    expect(await read).toBe('abcdef');

    const bad = new MessagePipe();
    const reading = drain(bad);
    await bad.push(Buffer.from('abc'));
    bad.fail('refused');
    await expect(reading).rejects.toBeInstanceOf(PipeAborted);
  });

  it('push waits for the consumer above the high-water mark, and stops waiting when it is gone', async () => {
    const p = new MessagePipe(4);
    let pushed = false;
    const it = p[Symbol.asyncIterator]();
    void p.push(Buffer.from('123456')).then(() => (pushed = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(pushed).toBe(false);
    await it.next();
    await new Promise((r) => setTimeout(r, 10));
    expect(pushed).toBe(true);
    await it.return?.();
    await p.push(Buffer.from('x'.repeat(100))); // resolves at once: the consumer stopped
  });
});
