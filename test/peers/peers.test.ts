/**
 * Tier "peers": smoke tests of the harness against the real Postfix, Sendmail, Dovecot,
 * smtp-sink/smtp-source, swaks and the C libmilter pass-through milter, so that a broken
 * install or recipe fails here, not inside an adapter's integration test.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { startPassthroughMilter } from '../bench/peers/passthrough-milter.js';
import {
  groupMembers, listenerOf, makeRunDir, OWNER_FILE, procStartTime, reapStale, runCommand, spawnTracked, type OwnerRecord,
} from './proc.js';
import { BIN, PeerStack, probeDovecotAuth, startDovecot, startPostfix, startSendmail, smtpSink, smtpSource, swaks } from './harness.js';
import { describePeers } from './skip.js';

const peers = new PeerStack();
/** Dovecot delays every failed login by 2 s by default; the smoke tests need no brute-force damping. */
const FAST_FAIL = 'auth_failure_delay = 0\n';
afterEach(() => peers.stopAll());

/** After stop(): no live process in the instance's group and no run directory. */
function expectGone(p: { pid: number | undefined; dir: string }): void {
  if (p.pid !== undefined) expect(groupMembers(p.pid)).toEqual([]);
  expect(existsSync(p.dir)).toBe(false);
}

describePeers('peers: Postfix private instance', ['postfix', 'smtp-tools', 'swaks', 'openssl', 'python3'], () => {
  it('relays a STARTTLS swaks message and smtp-source messages to smtp-sink, then stops cleanly', async () => {
    const sink = peers.add(await smtpSink());
    const pf = peers.add(await startPostfix({ tls: true, delivery: { kind: 'relay', port: sink.port } }));
    const sw = await swaks({
      server: `127.0.0.1:${pf.port}`, tls: 'starttls', from: 'alice@example.net', to: 'bob@example.org',
      headers: ['Subject: harness smoke'],
    });
    expect(sw.code, sw.stdout).toBe(0);
    const src = await smtpSource({ target: `127.0.0.1:${pf.port}`, messages: 5, sessions: 2, from: 'load@example.net', to: 'sink@example.org' });
    expect(src.code, src.stderr).toBe(0);
    const got = await sink.waitForMessages(6);
    expect(got).toHaveLength(6);
    const tlsOne = got.find((m) => m.mailArgs.startsWith('<alice@example.net>'));
    expect(tlsOne?.rcptArgs[0]).toMatch(/^<bob@example\.org>/);
    expect(tlsOne?.message).toMatch(/^Subject: harness smoke$/m);
    expect(tlsOne?.message).toMatch(/with ESMTPS id/); // Postfix's Received: records the TLS session
    expect(got.filter((m) => m.mailArgs.startsWith('<load@example.net>'))).toHaveLength(5);
    await pf.waitForLog(/status=sent/);
    await pf.stop();
    expectGone(pf);
  });

  it('takes a message from Python smtplib over STARTTLS', async () => {
    const sink = peers.add(await smtpSink());
    const pf = peers.add(await startPostfix({ tls: true, delivery: { kind: 'relay', port: sink.port } }));
    const script = [
      'import smtplib, ssl, sys',
      'ctx = ssl.create_default_context(cafile=sys.argv[2])',
      "s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), local_hostname='py.client.test', timeout=15)",
      "s.starttls(context=ctx); s.ehlo('py.client.test')",
      "s.sendmail('py@example.net', ['rcpt@example.org'], 'Subject: from python\\r\\n\\r\\nhello\\r\\n'); s.quit()",
    ].join('\n');
    // The client verifies the self-signed certificate (it is its own CA; SAN 127.0.0.1).
    const r = await runCommand(BIN.python3, ['-c', script, String(pf.port), pf.tls?.cert ?? ''], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    const [m] = await sink.waitForMessages(1);
    expect(m?.mailArgs).toMatch(/^<py@example\.net>/);
    expect(m?.message).toMatch(/^Subject: from python$/m);
    expect(m?.message).toMatch(/from py\.client\.test .*\n.*with ESMTPS id/);
  });

  it('delivers into a Maildir with the virtual transport', async () => {
    const pf = peers.add(await startPostfix({ delivery: { kind: 'maildir' } }));
    const sw = await swaks({ server: `127.0.0.1:${pf.port}`, from: 'a@example.net', to: 'carol@example.org', body: 'to the maildir' });
    expect(sw.code, sw.stdout).toBe(0);
    const [msg] = await pf.waitForMail('carol@example.org');
    expect(msg).toMatch(/^Delivered-To: carol@example\.org$/m);
    expect(msg).toMatch(/to the maildir/);
  });

  it('runs a submission service that needs STARTTLS and Dovecot SASL before it relays', async () => {
    const dv = peers.add(await startDovecot({ users: [{ name: 'alice@example.test', password: 'alice-secret' }], lmtp: false, extraConf: FAST_FAIL }));
    const sink = peers.add(await smtpSink());
    const pf = peers.add(await startPostfix({
      tls: true, dovecotSasl: dv.authSocket, delivery: { kind: 'relay', port: sink.port },
      main: { mynetworks: '192.0.2.0/24' }, // loopback clients are not trusted: relaying needs AUTH
      services: {
        submission: {
          smtpd_tls_security_level: 'encrypt', smtpd_sasl_auth_enable: 'yes', smtpd_tls_auth_only: 'yes',
          smtpd_relay_restrictions: 'permit_sasl_authenticated, reject',
        },
      },
    }));
    const server = `127.0.0.1:${pf.ports['submission']}`;
    const anon = await swaks({ server, tls: 'starttls', from: 'alice@example.test', to: 'bob@example.org' });
    expect(anon.code).not.toBe(0);
    expect(anon.replies.join('\n')).toMatch(/^554 5\.7\.1 <bob@example\.org>: Recipient address rejected/m);
    const good = await swaks({ server, tls: 'starttls', from: 'alice@example.test', to: 'bob@example.org', auth: { user: 'alice@example.test', password: 'alice-secret' } });
    expect(good.code, good.stdout).toBe(0);
    await sink.waitForMessages(1);
    await pf.waitForLog(/sasl_method=PLAIN, sasl_username=alice@example\.test/);
    // Last: after a failure Dovecot's per-IP auth penalty would delay every later attempt by seconds.
    const bad = await swaks({ server, tls: 'starttls', from: 'alice@example.test', to: 'bob@example.org', auth: { user: 'alice@example.test', password: 'nope' } });
    expect(bad.replies.join('\n')).toMatch(/^535 5\.7\.8 /m);
  });
});

describePeers('peers: Postfix with the C libmilter pass-through milter', ['postfix', 'swaks', 'passthrough-milter'], () => {
  for (const transport of ['inet', 'unix'] as const) {
    it(`passes mail through it over ${transport}; with the milter gone, Postfix tempfails`, async () => {
      const milter = peers.add(await startPassthroughMilter({ transport }));
      const pf = peers.add(await startPostfix({ main: { smtpd_milters: milter.postfixSpec, milter_default_action: 'tempfail' } }));
      const ok = await swaks({ server: `127.0.0.1:${pf.port}`, from: 'a@example.net', to: 'b@example.org' });
      expect(ok.code, ok.stdout).toBe(0);
      await milter.stop();
      const down = await swaks({ server: `127.0.0.1:${pf.port}`, from: 'a@example.net', to: 'b@example.org' });
      expect(down.code).not.toBe(0);
      expect(down.replies.join('\n')).toMatch(/^451 4\.7\.1 /m);
    });
  }
});

describePeers('peers: Sendmail 8.17 (unpacked .deb, private .cf)', ['sendmail', 'smtp-tools', 'swaks', 'passthrough-milter'], () => {
  it('takes one message in a -bs session and queues it', async () => {
    const sm = peers.add(await startSendmail({ daemon: false }));
    const { dialog, greeting } = await sm.session();
    expect(greeting.code).toBe(220);
    expect((await dialog.command('EHLO client.test')).code).toBe(250);
    expect((await dialog.command('MAIL FROM:<alice@example.net>')).code).toBe(250);
    expect((await dialog.command('RCPT TO:<bob@example.org>')).code).toBe(250);
    expect((await dialog.data('Subject: via -bs\n\n.leading dot\n')).code).toBe(250);
    expect((await dialog.command('QUIT')).code).toBe(221);
    await dialog.close();
    const [queued] = await sm.waitForQueued(1);
    expect(queued?.sender).toBe('alice@example.net');
    expect(queued?.recipients).toEqual(['bob@example.org']);
    expect(queued?.headers).toContain('Subject: via -bs');
    expect(queued?.body).toBe('.leading dot\n');
  });

  it('daemon with INPUT_MAIL_FILTER relays through the milter to smtp-sink; milter gone → 451', async () => {
    const milter = peers.add(await startPassthroughMilter({ transport: 'inet' }));
    const sink = peers.add(await smtpSink());
    const sm = peers.add(await startSendmail({ milter: { socket: milter.sendmailSpec }, relay: { port: sink.port } }));
    const cf = readFileSync(sm.cf, 'utf8');
    expect(cf).toMatch(/^O Milter\.macros\.connect=.*\{daemon_addr\}, \{daemon_port\}/m);
    expect(cf).toContain(`Xmta-policy, S=${milter.sendmailSpec}, F=T`);
    const ok = await swaks({ server: `127.0.0.1:${sm.port}`, from: 'alice@example.net', to: 'bob@example.org' });
    expect(ok.code, ok.stdout).toBe(0);
    const [m] = await sink.waitForMessages(1, 20_000);
    expect(m?.message).toMatch(/by mx\.sendmail\.test \(8\.17/);
    await milter.stop();
    const down = await swaks({ server: `127.0.0.1:${sm.port}`, from: 'alice@example.net', to: 'bob@example.org' });
    expect(down.replies.join('\n')).toMatch(/^451 4\.3\.2 /m);
    await sm.stop();
    expectGone(sm);
  });
});

describePeers('peers: Dovecot auth server and LMTP', ['dovecot', 'swaks'], () => {
  it('answers the auth-client protocol on its socket and inet listener', async () => {
    const dv = peers.add(await startDovecot({ users: [{ name: 'alice@example.test', password: 's3cret' }], authInet: true, lmtp: false, extraConf: FAST_FAIL }));
    const ok = await probeDovecotAuth(dv.authSocket, 'alice@example.test', 's3cret');
    expect(ok.mechanisms).toEqual(['PLAIN', 'LOGIN']);
    expect(ok.handshake[0]).toBe('VERSION\t1\t2');
    expect(ok.verdict).toBe('OK');
    expect(ok.params).toContain('user=alice@example.test');
    const fail = await probeDovecotAuth(dv.authPort ?? 0, 'alice@example.test', 'wrong');
    expect(fail.verdict).toBe('FAIL');
    await dv.stop();
    expectGone(dv);
  });

  it('delivers over LMTP (unix socket and 127.0.0.1 port) into the Maildir and refuses unknown users', async () => {
    const dv = peers.add(await startDovecot({ users: [{ name: 'alice@example.test', password: 'x' }] }));
    const a = await swaks({ socket: dv.lmtpSocket ?? '', protocol: 'LMTP', from: 'a@example.net', to: 'alice@example.test', body: 'one' });
    expect(a.code, a.stdout).toBe(0);
    const b = await swaks({ server: `127.0.0.1:${dv.lmtpPort}`, protocol: 'LMTP', from: 'a@example.net', to: 'alice@example.test', body: 'two' });
    expect(b.code, b.stdout).toBe(0);
    const msgs = await dv.waitForMessages('alice@example.test', 2);
    expect(msgs.map((m) => /^(one|two)$/m.exec(m)?.[1])).toEqual(['one', 'two']);
    const unknown = await swaks({ socket: dv.lmtpSocket ?? '', protocol: 'LMTP', from: 'a@example.net', to: 'nobody@example.test' });
    expect(unknown.replies.join('\n')).toMatch(/^550 5\.1\.1 /m);
  });
});

describePeers('peers: harness hygiene', [], () => {
  it('reaps what a dead test process left behind, matching pid and start time', async () => {
    const dir = await makeRunDir('reap-test');
    const orphan = spawnTracked('sleep', ['60'], { runDir: dir, what: 'orphan' });
    // Pretend the owner was a process that has since died: a real, finished one.
    const dead = spawnTracked('true', [], { runDir: dir, what: 'owner' });
    const deadStart = procStartTime(dead.pid) ?? '';
    await dead.exited;
    const rec = JSON.parse(readFileSync(join(dir, OWNER_FILE), 'utf8')) as OwnerRecord;
    writeFileSync(join(dir, OWNER_FILE), JSON.stringify({ ...rec, ownerPid: dead.pid, ownerStart: deadStart }));
    reapStale();
    await orphan.exited;
    expect(orphan.child.signalCode).toBe('SIGKILL');
    expect(existsSync(dir)).toBe(false);
    expect((await runCommand('true', [])).code).toBe(0); // the harness itself is still usable
  });

  it('tells its own listener from a port another process took', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const addr = srv.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    expect(listenerOf(port, process.pid)).toBe('ours');
    expect(listenerOf(port, process.ppid)).toBe('other');
    await new Promise<void>((r) => srv.close(() => r()));
    expect(listenerOf(port, process.pid)).toBe('none');
  });
});
