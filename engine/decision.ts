import { rightsFromBits } from './data.js';
import { EngineError } from './errors.js';
import type { Decision, DecisionKind, SmtpReply, Stage } from './types.js';

/**
 * The policy's raw result set → a validated Decision, or an EngineError. An undefined result,
 * more than one result, a wrong type, or a reply whose class contradicts the decision are all
 * errors: "undefined" never becomes "accept".
 */

const KINDS: readonly DecisionKind[] = ['continue', 'accept', 'reject', 'tempfail', 'discard', 'disconnect'];
const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}$/;
/** RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including the code and CRLF. */
const MAX_TEXT = 480;

export interface RenderContext {
  readonly id: string;
  readonly fqdn: string;
  readonly clientIp: string;
}

function malformed(stage: Stage, what: string): EngineError {
  return new EngineError('ENGINE_DECISION_MALFORMED', `${stage} decision: ${what}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringArray(stage: Stage, v: unknown, field: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw malformed(stage, `${field} must be an array of strings, got ${typeof v}`);
  }
  return v as string[];
}

function render(text: string, ctx: RenderContext): string {
  return text.replaceAll('{fqdn}', ctx.fqdn).replaceAll('{client_ip}', ctx.clientIp);
}

export function validateReply(stage: Stage, kind: DecisionKind, raw: unknown, ctx: RenderContext): SmtpReply {
  if (!isObject(raw)) throw malformed(stage, 'reply must be an object');
  const { code, enhanced, text } = raw;
  if (typeof code !== 'number' || !Number.isInteger(code) || code < 200 || code > 599) {
    throw malformed(stage, `reply code must be an integer 200-599, got ${JSON.stringify(code)}`);
  }
  if (typeof enhanced !== 'string') throw malformed(stage, `reply enhanced code must be a string, got ${typeof enhanced}`);
  if (typeof text !== 'string') throw malformed(stage, `reply text must be a string, got ${typeof text}`);
  const klass = Math.floor(code / 100);
  if (enhanced === '') {
    if (klass >= 4) throw malformed(stage, `a ${code} reply needs an enhanced status code`);
  } else if (!ENHANCED.test(enhanced) || Number(enhanced[0]) !== klass) {
    throw malformed(stage, `enhanced code "${enhanced}" does not fit reply code ${code}`);
  }
  const expected: Record<DecisionKind, (k: number) => boolean> = {
    continue: (k) => k === 2 || k === 3,
    accept: (k) => k === 2,
    reject: (k) => k === 5,
    tempfail: (k) => k === 4,
    disconnect: (k) => k === 4 || k === 5,
    discard: () => true,
  };
  if (!expected[kind](klass)) throw malformed(stage, `a ${kind} decision cannot carry a ${code} reply`);
  if (kind === 'discard' && (stage === 'connect' || stage === 'ehlo' || stage === 'auth')) {
    throw malformed(stage, 'there is no message to discard before MAIL FROM');
  }
  const rendered = render(text, ctx);
  if (/[\r\n\0]/.test(rendered)) throw malformed(stage, 'reply text contains CR, LF or NUL');
  if (rendered.length > MAX_TEXT) throw malformed(stage, `reply text is longer than ${MAX_TEXT} characters`);
  return { code, enhanced, text: rendered };
}

function rightsMask(stage: Stage, v: unknown): string[] {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw malformed(stage, `rights must be a bitmask, got ${JSON.stringify(v)}`);
  return rightsFromBits(v);
}

export function parseDecision(stage: Stage, resultSet: unknown, ctx: RenderContext): Decision {
  if (!Array.isArray(resultSet)) throw malformed(stage, 'result set is not an array');
  if (resultSet.length === 0) throw new EngineError('ENGINE_DECISION_UNDEFINED', `${stage} decision is undefined`);
  if (resultSet.length > 1) throw new EngineError('ENGINE_DECISION_MULTIPLE', `${stage} decision has ${resultSet.length} results`);
  const first: unknown = resultSet[0];
  if (!isObject(first) || !isObject(first['result'])) throw malformed(stage, 'result is not an object');
  const r = first['result'];
  const kind = r['decision'];
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) {
    throw malformed(stage, `decision must be one of ${KINDS.join('|')}, got ${JSON.stringify(kind)}`);
  }
  const reason = r['reason'];
  if (typeof reason !== 'string' || reason === '') throw malformed(stage, 'reason must be a non-empty string');
  const connector = r['connector'];
  if (connector !== null && typeof connector !== 'string') throw malformed(stage, 'connector must be a string or null');
  const decision: Record<string, unknown> = {
    id: ctx.id,
    stage,
    decision: kind,
    reason,
    reply: validateReply(stage, kind as DecisionKind, r['reply'], ctx),
    connector,
    principals: stringArray(stage, r['principals'], 'principals'),
    rights: rightsMask(stage, r['rights']),
  };
  if (stage === 'ehlo') {
    const a = r['advertise'];
    if (!isObject(a) || typeof a['starttls'] !== 'boolean' || (a['size'] !== null && typeof a['size'] !== 'number')) {
      throw malformed(stage, 'advertise must be {starttls, auth, size, require_tls, client_certificate}');
    }
    stringArray(stage, a['auth'], 'advertise.auth');
    decision['advertise'] = a;
  }
  if (stage === 'rcpt') {
    if (!isObject(r['recipient'])) throw malformed(stage, 'recipient must be an object');
    decision['recipient'] = r['recipient'];
  }
  if (stage === 'headers' || stage === 'eom') {
    const actions = r['header_actions'];
    if (!Array.isArray(actions) || !actions.every((x) => isObject(x) && x['op'] === 'remove' && typeof x['name'] === 'string')) {
      throw malformed(stage, 'header_actions must be an array of {op: "remove", name}');
    }
    const flags = r['message_flags'];
    if (!isObject(flags) || typeof flags['auth_as'] !== 'string' || typeof flags['bypass_anti_spam'] !== 'boolean') {
      throw malformed(stage, 'message_flags must be {auth_as, bypass_anti_spam, …}');
    }
    decision['header_actions'] = actions;
    decision['message_flags'] = flags;
  }
  if (r['checks'] !== undefined) decision['checks'] = r['checks'];
  if (r['selected_by'] !== undefined) decision['selected_by'] = r['selected_by'];
  return decision as unknown as Decision;
}
