/**
 * Where each peer's binaries are and whether this machine can run it. `scripts/peers/install.sh`
 * (called by `.ci/run`) installs all of them; see scripts/peers/README.md.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../engine/bundle.js';

/** Binaries from Debian packages, at their Debian paths. */
export const BIN = {
  postfix: '/usr/sbin/postfix',
  postconf: '/usr/sbin/postconf',
  postqueue: '/usr/sbin/postqueue',
  postfixMaster: '/usr/lib/postfix/sbin/master',
  postInstall: '/usr/lib/postfix/sbin/post-install',
  smtpSink: '/usr/sbin/smtp-sink',
  smtpSource: '/usr/sbin/smtp-source',
  swaks: '/usr/bin/swaks',
  dovecot: '/usr/sbin/dovecot',
  doveadm: '/usr/bin/doveadm',
  lmtp: '/usr/lib/dovecot/lmtp',
  openssl: '/usr/bin/openssl',
  m4: '/usr/bin/m4',
  unshare: '/usr/bin/unshare',
  mount: '/usr/bin/mount',
  miltertest: '/usr/bin/miltertest',
  python3: '/usr/bin/python3',
} as const;

/** The peers a test can ask for. */
export type PeerName = 'postfix' | 'smtp-tools' | 'swaks' | 'sendmail' | 'dovecot' | 'openssl' | 'passthrough-milter' | 'miltertest' | 'python3';

const executable = (p: string): boolean => {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

export const isRoot = (): boolean => process.getuid?.() === 0;

/** Root of the unpacked Sendmail .debs: `$MTA_POLICY_SENDMAIL_ROOT`, else the newest `.tools/sendmail-*`. */
export function sendmailRoot(): string | null {
  const env = process.env['MTA_POLICY_SENDMAIL_ROOT'];
  if (env !== undefined && env !== '') return env;
  const tools = join(projectRoot(), '.tools');
  if (!existsSync(tools)) return null;
  const dirs = readdirSync(tools).filter((d) => /^sendmail-\d/.test(d)).sort();
  const last = dirs[dirs.length - 1];
  return last === undefined ? null : join(tools, last);
}

/** The Sendmail binary inside {@link sendmailRoot}. */
export const sendmailBinary = (root: string): string => join(root, 'usr/libexec/sendmail/sendmail');
/** Sendmail's m4 configuration tree inside {@link sendmailRoot}. */
export const sendmailCfDir = (root: string): string => join(root, 'usr/share/sendmail/cf');

/** Source of the C pass-through milter; its binary path carries the source's hash (see scripts/lib.sh). */
export const passthroughMilterSource = (): string => join(projectRoot(), 'test/bench/peers/passthrough-milter.c');

/** `.tools/passthrough-milter-<sha256[0:12] of the source>/passthrough-milter`, or `$MTA_POLICY_PASSTHROUGH_MILTER`. */
export function passthroughMilterBinary(): string {
  const env = process.env['MTA_POLICY_PASSTHROUGH_MILTER'];
  if (env !== undefined && env !== '') return env;
  const hash = createHash('sha256').update(readFileSync(passthroughMilterSource())).digest('hex').slice(0, 12);
  return join(projectRoot(), '.tools', `passthrough-milter-${hash}`, 'passthrough-milter');
}

let unshareOk: boolean | undefined;
/** `unshare -mu` works (root with CAP_SYS_ADMIN): Sendmail runs inside it (see sendmail.ts). */
function canUnshare(): boolean {
  if (unshareOk === undefined) {
    const r = spawnSync(BIN.unshare, ['-mu', 'true'], { timeout: 5_000, stdio: 'ignore' });
    unshareOk = r.status === 0;
  }
  return unshareOk;
}

const INSTALL_HINT = 'install the peers with `bash scripts/peers/install.sh` (as root)';

/** Why `peer` cannot run here, or null when it can. */
export function peerMissing(peer: PeerName): string | null {
  const need = (...bins: string[]): string | null => {
    const missing = bins.filter((b) => !executable(b));
    return missing.length === 0 ? null : `${missing.join(', ')} not installed; ${INSTALL_HINT}`;
  };
  const needRoot = (): string | null => (isRoot() ? null : `${peer} needs root (it runs a private instance as the system user would)`);
  switch (peer) {
    case 'postfix':
      return need(BIN.postfix, BIN.postfixMaster, BIN.postInstall) ?? needRoot();
    case 'smtp-tools':
      return need(BIN.smtpSink, BIN.smtpSource) ?? needRoot();
    case 'swaks':
      return need(BIN.swaks);
    case 'openssl':
      return need(BIN.openssl);
    case 'miltertest':
      return need(BIN.miltertest);
    case 'python3':
      return need(BIN.python3);
    case 'dovecot':
      return need(BIN.dovecot, BIN.doveadm, BIN.lmtp) ?? needRoot();
    case 'sendmail': {
      const root = sendmailRoot();
      if (root === null || !executable(sendmailBinary(root))) return `Sendmail is not unpacked into .tools; ${INSTALL_HINT}`;
      const m = need(BIN.m4, BIN.unshare, BIN.mount) ?? needRoot();
      if (m !== null) return m;
      return canUnshare() ? null : '`unshare -mu` is not permitted here (Sendmail needs a private mount and UTS namespace)';
    }
    case 'passthrough-milter': {
      const bin = passthroughMilterBinary();
      return executable(bin) ? null : `${bin} is not built; run \`bash scripts/peers/install.sh\``;
    }
  }
}

/** Installed versions, for reports and benchmark headers. */
export function peerVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  const run = (cmd: string, args: string[]): string => {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5_000 });
    return (r.stdout ?? '').trim();
  };
  if (executable(BIN.postconf)) out['postfix'] = run(BIN.postconf, ['-d', '-h', 'mail_version']);
  if (executable(BIN.dovecot)) out['dovecot'] = run(BIN.dovecot, ['--version']);
  const sm = sendmailRoot();
  if (sm !== null) out['sendmail'] = sm.replace(/^.*sendmail-/, '');
  return out;
}
