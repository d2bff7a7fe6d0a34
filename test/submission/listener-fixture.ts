/**
 * A real submission listener for tests: a configuration written to a temp directory (a
 * self-signed certificate made with openssl, bcrypt hashes for two users), the engine on the
 * committed policy bundle, and `startSubmission` on free 127.0.0.1 ports:
 *
 *   client  — usage client: STARTTLS, then AUTH PLAIN/LOGIN; 3 recipients, 64 KiB, 2 logon failures
 *   smtps   — usage client, implicit TLS (RFC 8314)
 *   relay   — anonymous relay (Accept-Any-Recipient for anonymous), no AUTH
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSync } from '@node-rs/bcrypt';
import { parseConfig } from '../../engine/config/load.js';
import { Engine } from '../../engine/engine.js';
import { startSubmission, type SubmissionListener, type SubmissionOptions } from '../../adapters/submission/server.js';
import { freePort, makeSelfSignedCert } from '../peers/harness.js';

export const USERS = { nancy: 'nancy-secret-1', bob: 'bob-secret-2' } as const;

export interface FixtureOptions {
  /** `next_hop` of every connector (smtp://, lmtp://, lmtp:/, maildir:). */
  readonly nextHop: string;
  /** YAML lines added under `identities:` (e.g. `  dovecot_auth: "unix:/…"`). */
  readonly identities?: string;
  /** Extra keys for the client connector (YAML flow entries, e.g. `message_rate_limit: 2`). */
  readonly client?: string;
  readonly listener?: SubmissionOptions;
  /** Leave the configured users without passwords (for Dovecot-only tests). */
  readonly noPasswords?: boolean;
}

export interface Fixture {
  readonly dir: string;
  readonly ports: { readonly client: number; readonly smtps: number; readonly relay: number };
  readonly engine: Engine;
  readonly listener: SubmissionListener;
  readonly ca: string;
  stop(): Promise<void>;
}

export async function startListener(o: FixtureOptions): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'mtap-listener-'));
  const cert = await makeSelfSignedCert(dir, { commonName: 'mail.test', keyType: 'ec' });
  const ports = { client: await freePort(), smtps: await freePort(), relay: await freePort() };
  const pw = (p: string): string => (o.noPasswords === true ? '' : `, password: "{BLF-CRYPT}${hashSync(p, 4)}"`);
  const yaml = `
server:
  fqdn: mail.test
  dialect: rfc
  tls: { cert: ${cert.cert}, key: ${cert.key} }
  next_hop: "${o.nextHop}"
accepted_domains:
  - { domain: example.test, type: authoritative }
identities:
  unlisted_logins: authenticated
${o.identities ?? ''}
  users:
    - { name: nancy, addresses: [nancy@example.test]${pw(USERS.nancy)} }
    - { name: bob, addresses: [bob@example.test]${pw(USERS.bob)} }
connectors:
  - { name: Client, usage: client, bindings: ["127.0.0.1:${ports.client}"], basic_auth_mechanisms: [PLAIN, LOGIN], max_message_size: 64KB, max_recipients_per_message: 3, max_logon_failures: 2${o.client === undefined ? '' : `, ${o.client}`} }
  - { name: Smtps, usage: client, bindings: ["127.0.0.1:${ports.smtps}"], implicit_tls: true, basic_auth_mechanisms: [PLAIN, LOGIN] }
  - name: Relay
    usage: custom
    bindings: ["127.0.0.1:${ports.relay}"]
    remote_ip_ranges: ["127.0.0.0/8"]
    permission_groups: [AnonymousUsers]
    extended_rights:
      - { principal: anonymous, allow: [Ms-Exch-SMTP-Accept-Any-Recipient] }
`;
  const file = join(dir, 'config.yaml');
  writeFileSync(file, yaml);
  const logger = { info: () => undefined, warn: () => undefined, error: (obj: object) => (process.env['MTAP_DEBUG'] === undefined ? undefined : console.error(JSON.stringify(obj))) };
  const engine = await Engine.create({ config: parseConfig(yaml, file), logger });
  const listener = await startSubmission(engine, { authFailureDelayMs: 50, ...o.listener });
  return {
    dir,
    ports,
    engine,
    listener,
    ca: cert.cert,
    async stop() {
      await listener.close(2_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An RFC 5322 message with CRLF line ends. */
export function message(opts: { from: string; to: string; id: string; subject?: string; extraHeaders?: readonly string[]; body?: string }): string {
  return [
    `From: <${opts.from}>`,
    `To: <${opts.to}>`,
    `Subject: ${opts.subject ?? 'test'}`,
    `Message-ID: <${opts.id}>`,
    'Date: Tue, 01 Dec 2026 10:00:00 +0000',
    ...(opts.extraHeaders ?? []),
    '',
    opts.body ?? 'Hello.',
    '',
  ].join('\r\n');
}
