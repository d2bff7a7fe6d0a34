import { beforeAll, describe, expect, it } from 'vitest';
import { decodeXtext, requestFacts, smtpPath, type RequestFacts } from '../../adapters/postfix-policy/attributes.js';
import { PolicyRequestError } from '../../adapters/postfix-policy/errors.js';
import { answerRequest } from '../../adapters/postfix-policy/session.js';
import { Engine } from '../../engine/engine.js';
import { CAPTURES, INTERNET_IP, SCANNER_IP, capturedRequests, northwindOnLoopback, request } from './helpers.js';

/** The ports Postfix listened on when the captures were made (see fixtures/README.md). */
const CAPTURED = { smtp: [40103], submission: [40493] };

const facts = (r: ReadonlyMap<string, string>): RequestFacts => {
  const f = requestFacts(r);
  if (f instanceof PolicyRequestError) throw f;
  return f;
};
const at = (capture: string, state: string, nth = 0): Map<string, string> => {
  const r = capturedRequests(capture).filter((q) => q.get('protocol_state') === state)[nth];
  if (r === undefined) throw new Error(`${capture} has no ${state} #${nth}`);
  return new Map(r);
};

describe('captured requests → facts', () => {
  it('plain: endpoints, HELO, sender, recipient, size; no TLS, no AUTH', () => {
    expect(facts(at('plain', 'RCPT'))).toMatchObject({
      state: 'RCPT', local: '127.0.0.1:40103', remote: SCANNER_IP, tls: null, helo: 'scanner.northwind.test', auth: null,
      sender: '<scanner@northwind.test>', recipient: '<bob@example.org>', mailParams: {},
    });
    expect(facts(at('plain', 'CONNECT'))).toMatchObject({ state: 'CONNECT', helo: undefined, sender: undefined, recipient: undefined });
    expect(facts(at('plain', 'END-OF-MESSAGE')).mailParams).toEqual({ SIZE: 265 });
  });

  it('two messages: the null sender, SIZE, a local part that needs quoting', () => {
    const rcpts = capturedRequests('two-messages').filter((q) => q.get('protocol_state') === 'RCPT').map((q) => facts(q));
    expect(rcpts.map((f) => [f.sender, f.recipient])).toEqual([
      ['<alice@example.net>', '<nancy@northwind.test>'],
      ['<alice@example.net>', '<"john doe"@northwind.test>'],
      ['<>', '<andrew@northwind.test>'],
    ]);
    expect(rcpts[0]?.mailParams).toEqual({ SIZE: 321 });
  });

  it('utf8: a non-ASCII sender is taken as declared SMTPUTF8', () => {
    expect(facts(at('utf8', 'RCPT'))).toMatchObject({ sender: '<jörg@example.org>', mailParams: { SMTPUTF8: true } });
  });

  it('tls-trusted: a verified client certificate, its xtext-encoded CN decoded', () => {
    expect(facts(at('tls-trusted', 'RCPT')).tls).toEqual({
      version: 'TLSv1.3', cipher: expect.any(String),
      client_cert: { verified: true, subject: 'CN=scanner 01\\+lab.northwind.test', issuer: expect.stringMatching(/^CN=/) },
    });
  });

  it('tls-untrusted: a certificate with a fingerprint but no subject is unverified', () => {
    expect(facts(at('tls-untrusted', 'RCPT')).tls).toMatchObject({ version: 'TLSv1.3', client_cert: { verified: false } });
  });

  it('sasl: the AUTH Postfix ran, over TLS, on the submission port', () => {
    expect(facts(at('sasl', 'RCPT'))).toMatchObject({ local: '127.0.0.1:40493', auth: { mechanism: 'PLAIN', user: 'nancy' }, tls: { version: 'TLSv1.3' } });
  });

  it('decodes xtext and refuses a bad escape', () => {
    expect(decodeXtext('scanner+2001+2Blab')).toBe('scanner 01+lab');
    expect(decodeXtext('caf+C3+A9')).toBe('café');
    expect(decodeXtext('bad+4')).toBeNull();
    expect(decodeXtext('bad+ZZ')).toBeNull();
  });

  it('writes Postfix internal addresses as SMTP paths', () => {
    expect(smtpPath('')).toBe('<>');
    expect(smtpPath('a.b@x')).toBe('<a.b@x>');
    expect(smtpPath('john doe@x')).toBe('<"john doe"@x>');
    expect(smtpPath('a"b@x')).toBe('<"a\\"b"@x>');
    expect(smtpPath('postmaster')).toBe('<postmaster>');
  });

  it.each([
    ['no request type', { request: 'other' }, 'POLICY_REQUEST_TYPE'],
    ['an unknown state', { protocol_state: 'BDAT' }, 'POLICY_STATE_UNKNOWN'],
    ['server_address unknown (the client left)', { server_address: 'unknown' }, 'POLICY_ENDPOINT_MISSING'],
    ['server_port 0 (sendmail -bs)', { server_port: '0' }, 'POLICY_ENDPOINT_MISSING'],
    ['client_address unknown', { client_address: 'unknown' }, 'POLICY_ENDPOINT_MISSING'],
    ['a size that is not a number', { size: '12x' }, 'POLICY_ATTRIBUTE_INVALID'],
    ['RCPT without a recipient', { recipient: '' }, 'POLICY_ATTRIBUTE_INVALID'],
    ['bad xtext in ccert_subject', { encryption_protocol: 'TLSv1.3', ccert_subject: 'a+4' }, 'POLICY_ATTRIBUTE_INVALID'],
  ])('does not decide a request with %s', (_what, over, code) => {
    expect(requestFacts(request('RCPT', over))).toMatchObject({ code });
  });

  it('does not decide a request from a Postfix older than 3.2 (no server_address): the connector is never guessed', () => {
    const r = request('RCPT');
    r.delete('server_address');
    r.delete('server_port');
    expect(requestFacts(r)).toMatchObject({ code: 'POLICY_ENDPOINT_MISSING', message: expect.stringContaining('3.2') });
  });
});

describe('captured requests → actions, decided by the real policy (examples/northwind.yaml on loopback)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.create({ config: northwindOnLoopback(CAPTURED) });
  });

  /** Per capture, the action for each request in order. */
  const EXPECTED: Record<(typeof CAPTURES)[number], readonly string[]> = {
    // The Scanner Relay connector grants Accept-Any-Recipient: the relay to example.org is OK.
    plain: ['DUNNO', 'DUNNO', 'DUNNO', 'OK', 'DUNNO', 'DUNNO'],
    // Anonymous Internet mail to accepted domains: each recipient is granted.
    'two-messages': ['DUNNO', 'DUNNO', 'DUNNO', 'OK', 'OK', 'DUNNO', 'DUNNO', 'DUNNO', 'OK', 'DUNNO', 'DUNNO'],
    'vrfy-etrn': ['DUNNO', 'DUNNO', 'DUNNO', 'DUNNO'],
    utf8: ['DUNNO', 'DUNNO', 'DUNNO', 'OK'],
    'tls-trusted': ['DUNNO', 'DUNNO', 'DUNNO', 'DUNNO', 'OK'],
    'tls-untrusted': ['DUNNO', 'DUNNO', 'DUNNO', 'DUNNO', 'OK'],
    // nancy authenticated on the submission connector (ExchangeUsers: Accept-Any-Recipient).
    sasl: ['DUNNO', 'DUNNO', 'DUNNO', 'DUNNO', 'OK'],
  };

  it.each(CAPTURES)('%s: every request is decided, with the expected action', async (c) => {
    const answers = [];
    for (const r of capturedRequests(c)) answers.push(await answerRequest(engine, r));
    expect(answers.map((a) => a.error)).toEqual(answers.map(() => undefined));
    expect(answers.map((a) => a.action)).toEqual(EXPECTED[c]);
    expect(answers.every((a) => a.decision !== undefined && a.decision.connector !== null)).toBe(true);
  });

  it('the same relay from a client outside the Scanner Relay range is refused with the policy text', async () => {
    const a = await answerRequest(engine, new Map([...at('plain', 'RCPT'), ['client_address', INTERNET_IP]]));
    expect(a).toMatchObject({ kind: 'reject', action: '550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain', decision: { reason: 'relay_denied' } });
  });

  it('the submission relay without AUTH is refused; an earlier stage refusal is found again at RCPT', async () => {
    const r = at('sasl', 'RCPT');
    r.set('sasl_method', '');
    r.set('sasl_username', '');
    const a = await answerRequest(engine, r);
    expect(a.kind).toBe('reject');
    expect(a.action).toMatch(/^5[0-9][0-9] 5\.[0-9]+\.[0-9]+ \S/);
    expect(a.decision?.stage).toBe('mail');
  });

  it('a plaintext AUTH on the TLS-required submission connector is refused', async () => {
    const r = at('sasl', 'RCPT');
    r.set('encryption_protocol', '');
    r.set('encryption_cipher', '');
    const a = await answerRequest(engine, r);
    expect(a.kind).toBe('reject');
    expect(a.action).not.toBe('OK');
  });
});
