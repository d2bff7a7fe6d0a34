import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import { SmtpDialog } from '../peers/harness.js';
import { message, startListener, USERS, type Fixture } from './listener-fixture.js';

let fx: Fixture;
let maildir: string;
beforeAll(async () => {
  maildir = join(process.env['TMPDIR'] ?? '/tmp', `mtap-md-${process.pid}`);
  fx = await startListener({ nextHop: `maildir:${maildir}` });
});
afterAll(async () => fx?.stop());

const delivered = (): string[] => readdirSync(join(maildir, 'new')).map((f) => readFileSync(join(maildir, 'new', f), 'utf8'));

describe('plaintext dialog on the client connector', () => {
  it('greets, advertises exactly the decision before TLS, refuses AUTH and MAIL', async () => {
    const { dialog, greeting } = await SmtpDialog.connect(fx.ports.client);
    expect(greeting.code).toBe(220);
    const ehlo = await dialog.command('EHLO client.test');
    expect(ehlo.code).toBe(250);
    console.log(ehlo.lines, greeting);
    const auth = await dialog.command('AUTH PLAIN AG5hbmN5AHg=');
    console.log(auth);
    const mail = await dialog.command('MAIL FROM:<nancy@example.test>');
    console.log(mail);
    await dialog.close();
  });
});

describe('nodemailer', () => {
  it('STARTTLS, AUTH PLAIN, one message into the Maildir', async () => {
    const c = new SMTPConnection({ host: '127.0.0.1', port: fx.ports.client, requireTLS: true, tls: { ca: readFileSync(fx.ca), servername: 'mail.test' } , name: 'client.test'});
    await new Promise<void>((res, rej) => c.connect((e?: Error) => (e ? rej(e) : res())));
    await new Promise<void>((res, rej) => c.login({ user: 'nancy', pass: USERS.nancy }, (e?: Error | null) => (e ? rej(e) : res())));
    const info = await new Promise<unknown>((res, rej) => c.send({ from: 'nancy@example.test', to: ['bob@example.test'] }, message({ from: 'nancy@example.test', to: 'bob@example.test', id: 'm1@test' }), (e, i) => (e ? rej(e) : res(i))));
    console.log(info);
    c.quit();
    console.log(delivered());
  });
});
