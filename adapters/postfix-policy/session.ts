/**
 * One policy request → one decision, socket-free.
 *
 * A policy request is stateless: each one carries everything Postfix knows about its SMTP
 * session at that point (endpoints, TLS, HELO, the AUTH Postfix ran, sender, recipient, size).
 * So each request gets its own throwaway engine `Session`, driven in SMTP order up to the
 * requested state — CONNECT → HELO → the MTA's AUTH → MAIL → RCPT — and answered with the first
 * decision that does not continue, or else the requested state's decision. Why this shape:
 *
 * - An earlier stage's refusal is never lost. Postfix usually asks only at RCPT (the
 *   recommended place is `smtpd_relay_restrictions`; with `smtpd_delay_reject = yes`, the
 *   default, even client and HELO restrictions run at RCPT): a connector that refuses the client,
 *   a sender the session may not use, or a BasicAuthRequireTLS breach are all found again there.
 * - Nothing is kept between requests, so nothing can go stale or leak: there is no per-instance
 *   table to bound, age or lose on a reconnect, and a request retried on a new connection (as
 *   Postfix does after an error) gets the same answer.
 * - The session document (connector, principals, rights) is still evaluated once per distinct
 *   (endpoints, TLS, AUTH) state: the engine caches it across sessions.
 *
 * Counters. A policy service never sees a connection open or close, nor a message delivered:
 * the connection counters see only this request's session (counted as 1, a true lower bound,
 * and never added to the shared store), and nothing is recorded. Message rates are *read* from
 * the engine's shared counters, so a milter or submission listener in the same process that
 * records deliveries makes the rate limit hold here too. Per-message recipient limits cannot be
 * applied at RCPT (Postfix sends `recipient_count` only at DATA); docs/postfix-policy.md names
 * the Postfix settings for what the policy service cannot see.
 */
import type { Counters } from '../../engine/counters.js';
import type { Config } from '../../engine/config/types.js';
import type { Session, SessionInit, SessionOptions } from '../../engine/session.js';
import type { Decision } from '../../engine/types.js';
import { requestFacts, type RequestFacts } from './attributes.js';
import type { PolicyRequest } from './codec.js';
import { PolicyRequestError } from './errors.js';
import { settleWithin } from '../shared/deadline.js';
import { actionFor, failureAction, type PolicyAction } from './actions.js';

/**
 * How long one decision may take before the request is answered with a 4xx. Postfix itself
 * waits `smtpd_policy_service_timeout` (100 s) and then applies its default action; an engine
 * decision takes well under a millisecond, so only a hung counter store gets near this.
 */
export const DEFAULT_DECISION_TIMEOUT_MS = 10_000;

/** The part of `Engine` the policy service uses. */
export interface PolicyEngine {
  session(init: SessionInit, options?: SessionOptions): Session;
  readonly counters: Counters;
  readonly config: Config;
}

/** How one request was answered. */
export interface PolicyAnswer extends PolicyAction {
  /** The decision that settled it; absent when none was reached. */
  readonly decision?: Decision;
  /** Why the request could not be decided (the answer is then the failure action). */
  readonly error?: { readonly code: string; readonly message: string };
  /** The protocol state asked about, when it was readable. */
  readonly state?: RequestFacts['state'];
}

/** Connection counts as a policy service can know them: this connection, nothing stored. */
class RequestCounters implements Counters {
  constructor(private readonly shared: Counters) {}
  openConnection(): { total: number; fromSource: number } {
    return { total: 1, fromSource: 1 };
  }
  closeConnection(): void {}
  messagesLastMinute(rateKey: string): number | Promise<number> {
    return this.shared.messagesLastMinute(rateKey);
  }
  recordMessage(): void {}
}

const stops = (d: Decision): boolean => d.decision !== 'continue';

/** Drive `s` to `f.state`; returns the deciding decision. */
async function drive(s: Session, f: RequestFacts): Promise<Decision> {
  let d: Decision = await s.connect();
  if (stops(d) || f.state === 'CONNECT') return d;
  if (f.helo !== undefined || f.state === 'EHLO' || f.state === 'HELO') {
    d = await s.helo(f.helo ?? '');
    if (stops(d) || f.state === 'EHLO' || f.state === 'HELO' || f.state === 'VRFY' || f.state === 'ETRN') return d;
  }
  // VRFY and ETRN are not stages of the model: the session's connector and HELO still decide.
  if (f.state === 'VRFY' || f.state === 'ETRN') return d;
  if (f.auth !== null) s.mtaAuthenticated(f.auth);
  d = await s.mail(f.sender ?? '<>', f.mailParams);
  // DATA and END-OF-MESSAGE re-check the transaction (at END-OF-MESSAGE `size` is the real
  // size). Their recipients were decided at RCPT; the message stages need headers Postfix does not send.
  if (stops(d) || f.state !== 'RCPT') return d;
  return s.rcpt(f.recipient ?? '');
}

/**
 * Answer one request. Never throws and never answers `OK` for anything but a RCPT the policy
 * granted: bad attributes, an engine failure, a failure here, or a decision slower than
 * `timeoutMs` all become a 4xx.
 */
export async function answerRequest(engine: PolicyEngine, req: PolicyRequest, options: { readonly logBindings?: object; readonly timeoutMs?: number } = {}): Promise<PolicyAnswer> {
  const fail = (e: unknown, state?: RequestFacts['state']): PolicyAnswer => ({
    ...failureAction(engine.config.server),
    error: e instanceof PolicyRequestError ? { code: e.code, message: e.message } : { code: 'POLICY_INTERNAL', message: e instanceof Error ? e.message : String(e) },
    ...(state === undefined ? {} : { state }),
  });
  const facts = requestFacts(req);
  if (facts instanceof PolicyRequestError) return fail(facts);
  const timeoutMs = options.timeoutMs ?? DEFAULT_DECISION_TIMEOUT_MS;
  try {
    const s = engine.session(
      { local: facts.local, remote: facts.remote, tls: facts.tls },
      { logBindings: { ...options.logBindings, state: facts.state, ...(facts.queueId === '' ? {} : { queue_id: facts.queueId }), ...(facts.instance === '' ? {} : { instance: facts.instance }) }, counters: new RequestCounters(engine.counters) },
    );
    const d = await settleWithin(drive(s, facts).finally(() => s.close()), timeoutMs);
    if (d.late) return fail(new PolicyRequestError('POLICY_DECISION_TIMEOUT', `no decision within ${timeoutMs} ms`), facts.state);
    return { ...actionFor(d.value, facts.state), decision: d.value, state: facts.state };
  } catch (e) {
    return fail(e, facts.state);
  }
}
