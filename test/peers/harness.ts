/**
 * The peers harness: private Postfix, Sendmail and Dovecot instances, smtp-sink/smtp-source/swaks
 * wrappers and a hand-driven SMTP client, for vitest tests and benchmark scripts alike (nothing
 * here imports vitest; see ./skip.ts for the test-side helpers). scripts/peers/README.md has the
 * recipes, ports, directories and gotchas.
 */
export { BIN, isRoot, peerMissing, peerVersions, sendmailRoot, type PeerName } from './bins.js';
export { startDovecot, dovecotHash, type DovecotInstance, type DovecotOptions, type DovecotUser } from './dovecot.js';
export { probeDovecotAuth, type AuthProbeResult } from './dovecot-auth-probe.js';
export { startPostfix, withPostfix, type PostfixDelivery, type PostfixInstance, type PostfixOptions } from './postfix.js';
export {
  freePort, freePorts, groupMembers, listenerOf, makeRunDir, PeerError, reapStale, retryPortRace, runCommand, runOk, runRoot, spawnTracked, waitFor,
  type CommandResult, type TrackedProcess,
} from './proc.js';
export { SENDMAIL_MILTER_MACROS, startSendmail, type SendmailInstance, type SendmailMacroStage, type SendmailOptions, type SendmailQueued } from './sendmail.js';
export { SmtpDialog, type SmtpReply } from './smtp-dialog.js';
export { makeSelfSignedCert, type CertOptions, type TlsFiles } from './tls.js';
export {
  smtpSink, smtpSource, swaks, type SinkMessage, type SmtpSink, type SmtpSinkOptions, type SmtpSourceOptions, type SwaksOptions, type SwaksResult,
} from './tools.js';

/** Anything the harness starts. */
export interface Stoppable {
  stop(): Promise<void>;
}

/**
 * Collects started peers so one `afterEach(() => peers.stopAll())` stops them all, newest first,
 * even when a test fails half-way.
 */
export class PeerStack {
  private readonly items: Stoppable[] = [];

  /** Registers `peer` and returns it. */
  add<T extends Stoppable>(peer: T): T {
    this.items.push(peer);
    return peer;
  }

  /** Stops everything registered (errors are collected and rethrown after all were tried). */
  async stopAll(): Promise<void> {
    const errors: unknown[] = [];
    while (this.items.length > 0) {
      try {
        await this.items.pop()?.stop();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'stopping peers failed');
  }
}
