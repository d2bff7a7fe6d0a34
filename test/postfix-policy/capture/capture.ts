/**
 * Re-captures the Postfix policy requests in test/postfix-policy/fixtures/ (see the README
 * there). Needs root and the peers (Postfix, Dovecot, swaks, openssl): `bash
 * test/postfix-policy/capture/capture.sh`.
 *
 * A private Postfix (test/peers harness: own config, queue and log, loopback ports) with
 * `check_policy_service` in every restriction list and `smtpd_delay_reject = no`, so each SMTP
 * state is asked about when it happens; `max_use = 1`, so every SMTP session is one smtpd
 * process and one policy connection. The recorder below is deliberately independent of
 * adapters/postfix-policy/: it stores the bytes as received and answers by plain text search
 * (`OK` at RCPT so that the message goes on, `DUNNO` elsewhere), so the fixtures test our codec
 * against Postfix, not against itself.
 */
import { createServer, connect, type Socket } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BIN, runOk, startDovecot, startPostfix, swaks, SmtpDialog, waitFor, peerVersions } from '../../peers/harness.js';

const OUT = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'test', 'postfix-policy', 'fixtures');

interface Recorded { readonly bytes: Buffer[]; closed: boolean }
const connections: Recorded[] = [];
const recorder = createServer((s: Socket) => {
  const rec: Recorded = { bytes: [], closed: false };
  connections.push(rec);
  let pending = '';
  s.on('data', (b: Buffer) => {
    rec.bytes.push(b);
    pending += b.toString('latin1');
    let end: number;
    while ((end = pending.indexOf('\n\n')) !== -1) {
      const req = pending.slice(0, end + 1);
      pending = pending.slice(end + 2);
      s.write(/^protocol_state=RCPT$/m.test(req) ? 'action=OK\n\n' : 'action=DUNNO\n\n');
    }
  });
  s.on('close', () => {
    rec.closed = true;
  });
  s.on('error', () => s.destroy());
});
await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r));
const policyPort = (recorder.address() as { port: number }).port;
const policy = `check_policy_service inet:127.0.0.1:${policyPort}`;

const work = await mkdtemp(join(tmpdir(), 'mta-policy-pcap-'));
const ssl = (args: string[]): Promise<unknown> => runOk(BIN.openssl, args, { timeoutMs: 30_000 });
// A client CA Postfix trusts, a client certificate it signed (CN with a space and a '+', to
// show the xtext encoding), and a self-signed client certificate Postfix does not trust.
await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Northwind Test CA', '-keyout', join(work, 'ca.key'), '-out', join(work, 'ca.pem')]);
await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=scanner 01\\+lab.northwind.test', '-keyout', join(work, 'client.key'), '-out', join(work, 'client.csr')]);
await ssl(['x509', '-req', '-in', join(work, 'client.csr'), '-CA', join(work, 'ca.pem'), '-CAkey', join(work, 'ca.key'), '-CAcreateserial', '-days', '2', '-out', join(work, 'client.pem')]);
await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=untrusted.example', '-keyout', join(work, 'self.key'), '-out', join(work, 'self.pem')]);

const dovecot = await startDovecot({ users: [{ name: 'nancy', password: 'n4ncy-secret' }], lmtp: false, extraConf: 'auth_failure_delay = 0\n' });
const pf = await startPostfix({
  tls: true,
  dovecotSasl: dovecot.authSocket,
  main: {
    mynetworks: '192.0.2.0/24',
    smtpd_delay_reject: 'no',
    max_use: '1',
    disable_vrfy_command: 'no',
    smtpd_tls_ask_ccert: 'yes',
    smtpd_tls_CAfile: join(work, 'ca.pem'),
    smtpd_client_restrictions: policy,
    smtpd_helo_restrictions: policy,
    smtpd_sender_restrictions: policy,
    smtpd_relay_restrictions: `${policy}, reject_unauth_destination`,
    smtpd_recipient_restrictions: '',
    smtpd_data_restrictions: policy,
    smtpd_end_of_data_restrictions: policy,
    smtpd_etrn_restrictions: policy,
  },
  services: { submission: { smtpd_sasl_auth_enable: 'yes', smtpd_tls_security_level: 'encrypt' } },
});

const scenarios: Array<[string, () => Promise<unknown>]> = [];
const server = `127.0.0.1:${pf.port}`;

/** A hand-driven session from `local` (raw bytes, so 8-bit addresses go out unchanged). */
async function dialog(local: string, lines: ReadonlyArray<string | Buffer>): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port: pf.port, localAddress: local });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const d = new SmtpDialog(socket, socket, 15_000, async () => {
    socket.destroy();
  });
  await d.read();
  for (const l of lines) {
    socket.write(Buffer.concat([Buffer.isBuffer(l) ? l : Buffer.from(l, 'utf8'), Buffer.from('\r\n')]));
    await d.read();
  }
  socket.destroy();
}

scenarios.push(['plain', () => swaks({ server, from: 'scanner@northwind.test', to: 'bob@example.org', ehlo: 'scanner.northwind.test', args: ['--local-interface', '127.20.30.40'] })]);
scenarios.push(['two-messages', () => dialog('127.0.0.80', [
  'HELO client.example.net',
  'MAIL FROM:<alice@example.net> SIZE=321', 'RCPT TO:<nancy@northwind.test>', 'RCPT TO:<"john doe"@northwind.test>', 'DATA', 'Subject: one\r\n\r\nbody\r\n.',
  'MAIL FROM:<>', 'RCPT TO:<andrew@northwind.test>', 'DATA', 'Subject: two\r\n\r\nbody\r\n.', 'QUIT',
])]);
scenarios.push(['vrfy-etrn', () => dialog('127.0.0.80', ['EHLO client.example.net', 'VRFY nancy@northwind.test', 'ETRN example.org', 'QUIT'])]);
scenarios.push(['utf8', () => dialog('127.0.0.80', [
  'EHLO client.example.net',
  'MAIL FROM:<jörg@example.org> SMTPUTF8', 'RCPT TO:<nancy@northwind.test>', 'RSET',
  // 8-bit, not UTF-8 (latin1 "ü"): Postfix passes local parts on as they are.
  Buffer.concat([Buffer.from('MAIL FROM:<m'), Buffer.from([0xfc]), Buffer.from('ller@example.org>')]), 'RCPT TO:<nancy@northwind.test>', 'QUIT',
])]);
scenarios.push(['tls-trusted', () => swaks({ server, tls: 'starttls', from: 'scanner@northwind.test', to: 'bob@example.org', args: ['--local-interface', '127.20.30.40', '--tls-cert', join(work, 'client.pem'), '--tls-key', join(work, 'client.key'), '--quit-after', 'rcpt'] })]);
scenarios.push(['tls-untrusted', () => swaks({ server, tls: 'starttls', from: 'partner@fabrikam.test', to: 'nancy@northwind.test', args: ['--local-interface', '127.0.0.80', '--tls-cert', join(work, 'self.pem'), '--tls-key', join(work, 'self.key'), '--quit-after', 'rcpt'] })]);
scenarios.push(['sasl', () => swaks({ server: `127.0.0.1:${pf.ports['submission']}`, tls: 'starttls', auth: { user: 'nancy', password: 'n4ncy-secret', mechanism: 'PLAIN' }, from: 'nancy@northwind.test', to: 'bob@example.org', args: ['--local-interface', '127.0.0.80', '--quit-after', 'rcpt'] })]);

try {
  const v = peerVersions();
  for (const [name, run] of scenarios) {
    const before = connections.length;
    await run();
    // max_use = 1: the smtpd process exits after the session and closes its policy connection.
    await waitFor(() => (connections.length > before && connections.slice(before).every((c) => c.closed) ? true : null), { timeoutMs: 15_000, what: `policy connection of ${name} closed` });
    const bytes = Buffer.concat(connections.slice(before).flatMap((c) => c.bytes));
    await writeFile(join(OUT, `postfix-${name}.policy`), bytes);
    process.stdout.write(`${name}: ${bytes.length} bytes, ${bytes.toString('latin1').split('\n\n').length - 1} requests\n`);
  }
  process.stdout.write(`captured with ${JSON.stringify(v)}\n`);
} finally {
  await pf.stop();
  await dovecot.stop();
  recorder.close();
  await rm(work, { recursive: true, force: true });
}
