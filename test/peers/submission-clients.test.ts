/**
 * Independent SMTP clients against the submission listener on 127.0.0.1: swaks (Perl,
 * Net::SSLeay) and Python's smtplib, with a Maildir next hop.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startListener, USERS, type Fixture } from '../submission/listener-fixture.js';
import { BIN, runCommand, swaks } from './harness.js';
import { describePeers } from './skip.js';

let fx: Fixture;
beforeAll(async () => {
  fx = await startListener({ nextHop: 'maildir:mail', client: 'message_rate_limit: unlimited' });
});
afterAll(async () => fx?.stop());

const delivered = (id: string): string[] => {
  const dir = join(fx.dir, 'mail', 'new');
  return existsSync(dir) ? readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')).filter((m) => m.includes(`<${id}>`)) : [];
};
const data = (from: string, id: string, extra = ''): string => `From: <${from}>\nTo: <bob@example.test>\nSubject: swaks\nMessage-ID: <${id}>\n${extra}\nbody\n`;

describePeers('swaks against the listener', ['swaks'], () => {
  it('STARTTLS then AUTH PLAIN and AUTH LOGIN deliver', async () => {
    for (const mechanism of ['PLAIN', 'LOGIN']) {
      const id = `swaks-${mechanism}@test`;
      const r = await swaks({ server: `127.0.0.1:${fx.ports.client}`, tls: 'starttls', ehlo: 'swaks.test', auth: { user: 'nancy', password: USERS.nancy, mechanism }, from: 'nancy@example.test', to: 'bob@example.test', data: data('nancy@example.test', id) });
      expect(r.code, r.stdout).toBe(0);
      expect(r.replies).toContain('235 2.7.0 Authentication successful');
      expect(delivered(id)).toHaveLength(1);
    }
  });

  it('AUTH without TLS is not offered; a forced cleartext AUTH is refused', async () => {
    const r = await swaks({ server: `127.0.0.1:${fx.ports.client}`, auth: { user: 'nancy', password: USERS.nancy, mechanism: 'PLAIN' }, from: 'nancy@example.test', to: 'bob@example.test', quitAfter: 'auth' });
    expect(r.code).not.toBe(0); // swaks: the server did not advertise AUTH (exit 28)
    expect(r.replies.join('\n')).not.toMatch(/AUTH/);
    const forced = await swaks({ server: `127.0.0.1:${fx.ports.client}`, from: 'nancy@example.test', to: 'bob@example.test', args: ['--quit-after', 'rcpt'] });
    expect(forced.replies.some((l) => l.startsWith('530 5.7.0'))).toBe(true);
  });

  it('implicit TLS (--tls-on-connect) and a wrong password', async () => {
    const ok = await swaks({ server: `127.0.0.1:${fx.ports.smtps}`, tls: 'implicit', auth: { user: 'bob', password: USERS.bob }, from: 'bob@example.test', to: 'nancy@example.test', data: data('bob@example.test', 'swaks-smtps@test') });
    expect(ok.code, ok.stdout).toBe(0);
    const bad = await swaks({ server: `127.0.0.1:${fx.ports.client}`, tls: 'starttls', auth: { user: 'bob', password: 'not-it' }, from: 'bob@example.test', to: 'nancy@example.test' });
    expect(bad.code).not.toBe(0);
    expect(bad.replies.some((l) => l.startsWith('535 '))).toBe(true);
  });
});

const PY = String.raw`
import json, smtplib, ssl, sys
port, smtps, ca, user, pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
out = {}
msg = "From: <%s@example.test>\r\nTo: <bob@example.test>\r\nSubject: py\r\nMessage-ID: <%s>\r\n\r\nbody\r\n"
# AUTH before STARTTLS: not advertised, so smtplib refuses to try
s = smtplib.SMTP("127.0.0.1", port, local_hostname="py.test")
s.ehlo()
out["auth_before_tls_advertised"] = s.has_extn("auth")
try:
    s.login(user, pw); out["login_before_tls"] = "ok"
except smtplib.SMTPNotSupportedError as e:
    out["login_before_tls"] = "not supported"
code, text = s.mail("%s@example.test" % user)
out["mail_before_tls"] = [code, text.decode()]
s.quit()
for mech in ["PLAIN", "LOGIN"]:
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="py.test")
    s.starttls(context=ctx)
    s.ehlo()
    if mech == "PLAIN":
        s.login(user, pw)
    else:
        s.user, s.password = user, pw
        code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    r = s.sendmail("%s@example.test" % user, ["bob@example.test"], msg % (user, "py-%s@test" % mech))
    out["send_" + mech] = r
    s.quit()
s = smtplib.SMTP_SSL("127.0.0.1", smtps, context=ctx, local_hostname="py.test")
s.login(user, pw)
s.sendmail("%s@example.test" % user, ["bob@example.test"], msg % (user, "py-smtps@test"))
s.quit()
out["smtps"] = "ok"
s = smtplib.SMTP("127.0.0.1", port, local_hostname="py.test")
s.starttls(context=ctx); s.ehlo(); s.login(user, pw)
try:
    s.sendmail("%s@example.test" % user, ["a@example.test", "b@example.test", "c@example.test", "d@example.test"], msg % (user, "py-many@test"))
except smtplib.SMTPRecipientsRefused as e:
    out["too_many"] = "all refused"
else:
    out["too_many"] = "partial"
s.quit()
print(json.dumps(out))
`;

describePeers('Python smtplib against the listener', ['python3'], () => {
  it('STARTTLS + AUTH PLAIN/LOGIN, implicit TLS, AUTH refused before TLS, recipient limit', async () => {
    const r = await runCommand(BIN.python3, ['-c', PY, String(fx.ports.client), String(fx.ports.smtps), fx.ca, 'nancy', USERS.nancy], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toMatchObject({ auth_before_tls_advertised: false, login_before_tls: 'not supported', mail_before_tls: [530, '5.7.0 Authentication required'], send_PLAIN: {}, send_LOGIN: {}, smtps: 'ok', too_many: 'partial' });
    for (const id of ['py-PLAIN@test', 'py-LOGIN@test', 'py-smtps@test']) expect(delivered(id)).toHaveLength(1);
    // smtplib sent the 4th recipient, got 452 for it, and the message went to the first three only.
    const many = delivered('py-many@test');
    expect(many).toHaveLength(1);
  });
});
