import { describe, expect, it } from 'vitest';
import { formatNextHop, parseNextHop, parseReply } from '../../adapters/submission/next-hop.js';

describe('parseNextHop', () => {
  it.each([
    ['smtp://127.0.0.1:10025', { kind: 'smtp', host: '127.0.0.1', port: 10025, implicitTls: false }],
    ['smtp://relay.example.test', { kind: 'smtp', host: 'relay.example.test', port: 25, implicitTls: false }],
    ['smtps://relay.example.test', { kind: 'smtp', host: 'relay.example.test', port: 465, implicitTls: true }],
    ['SMTP://[::1]:2525', { kind: 'smtp', host: '::1', port: 2525, implicitTls: false }],
    ['lmtp://127.0.0.1:24', { kind: 'lmtp', host: '127.0.0.1', port: 24 }],
    ['lmtp:/run/dovecot/lmtp', { kind: 'lmtp-unix', path: '/run/dovecot/lmtp' }],
    ['maildir:/var/mail/northwind', { kind: 'maildir', path: '/var/mail/northwind' }],
    ['maildir:/var/mail/../mail/x/', { kind: 'maildir', path: '/var/mail/x' }],
  ])('%s', (text, want) => expect(parseNextHop(text)).toEqual(want));

  it('resolves relative paths against baseDir, and refuses them without one', () => {
    expect(parseNextHop('maildir:mail/inbox', { baseDir: '/etc/mta-policy' })).toEqual({ kind: 'maildir', path: '/etc/mta-policy/mail/inbox' });
    expect(parseNextHop('lmtp:run/lmtp', { baseDir: '/srv' })).toEqual({ kind: 'lmtp-unix', path: '/srv/run/lmtp' });
    expect(parseNextHop('maildir:mail')).toMatchObject({ kind: 'invalid', message: /base directory/ });
  });

  it.each([
    ['', /unknown next hop/],
    ['127.0.0.1:25', /unknown next hop/],
    ['http://x', /unknown next hop/],
    ['lmtp://127.0.0.1', /needs a port/],
    ['lmtp://127.0.0.1:25', /port 25/],
    ['smtp://user:secret@relay:587', /credentials/],
    ['smtp://relay:587/path', /path, query or fragment/],
    ['smtp://relay:587?starttls=1', /path, query or fragment/],
    ['smtp://relay:0', /out of range/],
    ['smtp://relay:99999', /not a valid URL/],
    ['smtp://:25', /not a valid URL|no host/],
    ['maildir:', /path is missing/],
    ['maildir://host/dir', /takes a path/],
    ['lmtp:', /path is missing/],
  ])('refuses %j', (text, why) => {
    const r = parseNextHop(text);
    expect(r.kind).toBe('invalid');
    expect(r.kind === 'invalid' && r.message).toMatch(why);
  });

  it('formats back to the canonical string', () => {
    for (const t of ['smtp://127.0.0.1:10025', 'smtps://relay.example.test:465', 'lmtp://[::1]:24', 'lmtp:/run/lmtp', 'maildir:/var/mail/x']) {
      const h = parseNextHop(t);
      expect(h.kind === 'invalid' ? h.message : formatNextHop(h)).toBe(t);
    }
  });
});

describe('parseReply', () => {
  it.each([
    [['250 2.1.0 Ok'], { code: 250, enhanced: '2.1.0', text: 'Ok', lines: ['2.1.0 Ok'] }],
    [['550 5.1.1 <bob@example.test> User doesn\'t exist'], { code: 550, enhanced: '5.1.1', text: "<bob@example.test> User doesn't exist" }],
    [['250-mx.example.test', '250-PIPELINING', '250 SIZE 1000'], { code: 250, enhanced: '', text: 'mx.example.test', lines: ['mx.example.test', 'PIPELINING', 'SIZE 1000'] }],
    [['354'], { code: 354, text: '' }],
    [['250 '], { code: 250, text: '' }],
    [['421 4.4.2 bye\u0007'], { code: 421, text: 'bye ' }],
  ])('%j', (lines, want) => expect(parseReply(lines)).toMatchObject({ ...want, source: 'peer' }));

  it.each([[['hello']], [['250-a', '251 b']], [['250-a']], [['250 a', '250 b']], [['150 x']], [['25 x']], [[]]])('garbage %j', (lines) =>
    expect(parseReply(lines)).toBeUndefined(),
  );
});
