import { rightsFromString } from './data.js';
import { EngineError } from './errors.js';
import { flagHeaders, headersToRemove } from './headers.js';
import { DECISION_KINDS, type Decision, type DecisionKind, type HeaderAction, type MessageFlags, type SmtpReply, type Stage } from './types.js';
import { isRecord } from './util.js';

/**
 * The policy's raw results → a validated Decision, or an EngineError. An undefined result,
 * more than one result, a wrong type, an unknown field, or a reply whose class contradicts the
 * decision are all errors: "undefined" never becomes "accept". Every field that crosses the
 * boundary is checked; nothing is cast unchecked.
 */

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}$/;
/** RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including the code and CRLF. */
const MAX_TEXT = 480;

/** Which reply classes each decision kind may carry. */
const REPLY_CLASSES: Readonly<Record<DecisionKind, readonly number[]>> = {
  continue: [2, 3],
  accept: [2],
  reject: [5],
  tempfail: [4],
  disconnect: [4, 5],
  discard: [2, 4, 5],
};

const AUTH_AS: ReadonlySet<string> = new Set(['Anonymous', 'Internal', 'Partner']);
const DOMAIN_TYPES: ReadonlySet<unknown> = new Set(['authoritative', 'internal_relay', 'external_relay', 'local_literal', null]);

/** The session document (`mta/session`), validated. */
export interface SessionDoc {
  readonly connector: string | null;
  readonly selected_by: { readonly binding: string; readonly range: string } | null;
  readonly authenticated: boolean;
  readonly login: string | null;
  readonly identity: string | null;
  readonly principals: readonly string[];
  /** Rights as the policy passes them: "0"/"1" per right in RIGHTS order. */
  readonly rights: string;
  readonly partner_rights: string | null;
  /** The same, as sorted names (expanded once). */
  readonly rightNames: readonly string[];
  readonly partnerRightNames: readonly string[] | null;
  readonly unknown_identity: boolean;
  readonly mta_auth: string | null;
}

export interface RenderContext {
  readonly id: string;
  readonly fqdn: string;
  readonly clientIp: string;
  /** Cached mode: principals and rights come from here. */
  readonly session: SessionDoc | null;
  /** End of headers / end of message: the field names present, for the removals. */
  readonly headerNames?: ReadonlySet<string>;
  /** Cached mode: the catalogue reply for a reason (connector override, else the dialect's). */
  readonly catalogue?: (reason: string) => { readonly code: number; readonly enhanced: string; readonly text: string } | undefined;
  /** Cached mode, RCPT: the recipient as the engine normalised it. */
  readonly recipient?: { readonly key: string; readonly domain: string };
}

function malformed(stage: Stage | 'session', what: string): EngineError {
  return new EngineError('ENGINE_DECISION_MALFORMED', `${stage} decision: ${what}`);
}

function onlyKeys(where: Stage | 'session', what: string, v: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  for (const k of Object.keys(v)) if (!allowed.has(k)) throw malformed(where, `${what} has an unknown field "${k.slice(0, 40)}"`);
}

function stringArray(where: Stage | 'session', v: unknown, field: string): string[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw malformed(where, `${field} must be an array of strings`);
  return v as string[];
}

function bool(where: Stage | 'session', v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw malformed(where, `${field} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function rightNames(where: Stage | 'session', v: unknown, field: string): string[] {
  const names = typeof v === 'string' ? rightsFromString(v) : null;
  if (names === null) throw malformed(where, `${field} must be a rights string of 0/1, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return names;
}

function nullableString(where: Stage | 'session', v: unknown, field: string): string | null {
  if (v !== null && typeof v !== 'string') throw malformed(where, `${field} must be a string or null`);
  return v;
}

function selectedBy(where: Stage | 'session', v: unknown): SessionDoc['selected_by'] {
  if (v === null) return null;
  if (!isRecord(v) || typeof v['binding'] !== 'string' || typeof v['range'] !== 'string' || Object.keys(v).length !== 2) {
    throw malformed(where, 'selected_by must be {binding, range} or null');
  }
  return { binding: v['binding'], range: v['range'] };
}

/** One result from a result set: exactly one, an object. */
function single(where: Stage | 'session', resultSet: unknown): Record<string, unknown> {
  if (!Array.isArray(resultSet)) throw malformed(where, 'result set is not an array');
  if (resultSet.length === 0) throw new EngineError('ENGINE_DECISION_UNDEFINED', `${where} decision is undefined`);
  if (resultSet.length > 1) throw new EngineError('ENGINE_DECISION_MULTIPLE', `${where} decision has ${resultSet.length} results`);
  const first: unknown = resultSet[0];
  if (!isRecord(first) || !isRecord(first['result'])) throw malformed(where, 'result is not an object');
  return first['result'];
}

const SESSION_KEYS: ReadonlySet<string> = new Set([
  'connector', 'selected_by', 'authenticated', 'login', 'identity', 'principals', 'rights', 'partner_rights', 'unknown_identity', 'mta_auth',
]);

export function parseSessionDoc(resultSet: unknown): SessionDoc {
  const r = single('session', resultSet);
  onlyKeys('session', 'the session document', r, SESSION_KEYS);
  const partner = r['partner_rights'];
  const rights = r['rights'];
  const rightList = rightNames('session', rights, 'rights');
  const partnerList = partner === null ? null : rightNames('session', partner, 'partner_rights');
  return {
    connector: nullableString('session', r['connector'], 'connector'),
    selected_by: selectedBy('session', r['selected_by']),
    authenticated: bool('session', r['authenticated'], 'authenticated'),
    login: nullableString('session', r['login'], 'login'),
    identity: nullableString('session', r['identity'], 'identity'),
    principals: stringArray('session', r['principals'], 'principals'),
    rights: rights as string,
    partner_rights: partner as string | null,
    rightNames: rightList,
    partnerRightNames: partnerList,
    unknown_identity: bool('session', r['unknown_identity'], 'unknown_identity'),
    mta_auth: nullableString('session', r['mta_auth'], 'mta_auth'),
  };
}

function render(text: string, ctx: RenderContext): string {
  return text.replaceAll('{fqdn}', ctx.fqdn).replaceAll('{client_ip}', ctx.clientIp);
}

export function validateReply(stage: Stage, kind: DecisionKind, raw: unknown, ctx: RenderContext): SmtpReply {
  if (!isRecord(raw)) throw malformed(stage, 'reply must be an object');
  onlyKeys(stage, 'reply', raw, REPLY_KEYS);
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
    throw malformed(stage, `enhanced code "${enhanced.slice(0, 16)}" does not fit reply code ${code}`);
  }
  if (!REPLY_CLASSES[kind].includes(klass)) throw malformed(stage, `a ${kind} decision cannot carry a ${code} reply`);
  if (kind === 'discard' && (stage === 'connect' || stage === 'ehlo' || stage === 'auth')) {
    throw malformed(stage, 'there is no message to discard before MAIL FROM');
  }
  const rendered = render(text, ctx);
  if (/[\r\n\0]/.test(rendered)) throw malformed(stage, 'reply text contains CR, LF or NUL');
  if (rendered.length > MAX_TEXT) throw malformed(stage, `reply text is longer than ${MAX_TEXT} characters`);
  return { code, enhanced, text: rendered };
}

const REPLY_KEYS: ReadonlySet<string> = new Set(['code', 'enhanced', 'text']);
const ADVERTISE_KEYS: ReadonlySet<string> = new Set(['starttls', 'auth', 'size', 'require_tls', 'client_certificate']);
const RECIPIENT_KEYS: ReadonlySet<string> = new Set(['address', 'domain', 'accepted_domain_type', 'routed']);
const FLAG_KEYS: ReadonlySet<string> = new Set(['auth_as', 'bypass_anti_spam', 'accept_authentication_flag', 'bypass_message_size_limit']);
const COMMON_KEYS = ['decision', 'reason', 'reply', 'checks', 'selected_by', 'connector', 'principals', 'rights', 'partner'];
const STAGE_KEYS: Readonly<Record<Stage, ReadonlySet<string>>> = {
  connect: new Set(COMMON_KEYS),
  ehlo: new Set([...COMMON_KEYS, 'advertise']),
  auth: new Set([...COMMON_KEYS, 'logon_failure']),
  mail: new Set(COMMON_KEYS),
  rcpt: new Set([...COMMON_KEYS, 'recipient']),
  headers: new Set([...COMMON_KEYS, 'header_actions', 'message_flags']),
  eom: new Set([...COMMON_KEYS, 'header_actions', 'message_flags']),
};

function advertise(stage: Stage, a: unknown): Record<string, unknown> {
  if (!isRecord(a)) throw malformed(stage, 'advertise must be an object');
  onlyKeys(stage, 'advertise', a, ADVERTISE_KEYS);
  const size = a['size'];
  if (size !== null && (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)) throw malformed(stage, 'advertise.size must be a byte count or null');
  const cert = a['client_certificate'];
  if (cert !== 'none' && cert !== 'request') throw malformed(stage, 'advertise.client_certificate must be "none" or "request"');
  return {
    starttls: bool(stage, a['starttls'], 'advertise.starttls'),
    auth: stringArray(stage, a['auth'], 'advertise.auth'),
    size,
    require_tls: bool(stage, a['require_tls'], 'advertise.require_tls'),
    client_certificate: cert,
  };
}

function recipient(stage: Stage, raw: unknown, ctx: RenderContext): Record<string, unknown> {
  if (!isRecord(raw)) throw malformed(stage, 'recipient must be an object');
  onlyKeys(stage, 'recipient', raw, RECIPIENT_KEYS);
  let r = raw;
  if (ctx.session !== null) {
    if (r['address'] !== undefined || r['domain'] !== undefined || ctx.recipient === undefined) throw malformed(stage, 'recipient address comes from the engine in cached mode');
    r = { ...r, address: ctx.recipient.key, domain: ctx.recipient.domain };
  }
  if (typeof r['address'] !== 'string' || typeof r['domain'] !== 'string') throw malformed(stage, 'recipient.address and .domain must be strings');
  if (!DOMAIN_TYPES.has(r['accepted_domain_type'])) throw malformed(stage, 'recipient.accepted_domain_type is not an accepted-domain type or null');
  return { address: r['address'], domain: r['domain'], accepted_domain_type: r['accepted_domain_type'], routed: bool(stage, r['routed'], 'recipient.routed') };
}

function headerActions(stage: Stage, v: unknown): HeaderAction[] {
  if (!Array.isArray(v)) throw malformed(stage, 'header_actions must be an array');
  return v.map((x: unknown) => {
    if (!isRecord(x) || x['op'] !== 'remove' || typeof x['name'] !== 'string' || Object.keys(x).length !== 2) {
      throw malformed(stage, 'header_actions must be an array of {op: "remove", name}');
    }
    return { op: 'remove', name: x['name'] };
  });
}

function messageFlags(stage: Stage, f: unknown): MessageFlags {
  if (!isRecord(f)) throw malformed(stage, 'message_flags must be an object');
  onlyKeys(stage, 'message_flags', f, FLAG_KEYS);
  const authAs = f['auth_as'];
  if (typeof authAs !== 'string' || !AUTH_AS.has(authAs)) throw malformed(stage, 'message_flags.auth_as must be Anonymous, Internal or Partner');
  return {
    auth_as: authAs as MessageFlags['auth_as'],
    bypass_anti_spam: bool(stage, f['bypass_anti_spam'], 'message_flags.bypass_anti_spam'),
    accept_authentication_flag: bool(stage, f['accept_authentication_flag'], 'message_flags.accept_authentication_flag'),
    bypass_message_size_limit: bool(stage, f['bypass_message_size_limit'], 'message_flags.bypass_message_size_limit'),
  };
}

function checks(stage: Stage, v: unknown): (readonly [number, string])[] {
  if (!Array.isArray(v) || !v.every((c: unknown) => Array.isArray(c) && c.length === 2 && Number.isInteger(c[0]) && typeof c[1] === 'string')) {
    throw malformed(stage, 'checks must be an array of [order, reason]');
  }
  return v as [number, string][];
}

/**
 * The reply: the result's own (inline mode, or an extension's), else — cached mode — the
 * catalogue entry for the reason, from the same compiled catalogue the policy reads.
 */
function replyOf(stage: Stage, r: Record<string, unknown>, reason: string, ctx: RenderContext): unknown {
  if (r['reply'] !== undefined) return r['reply'];
  if (ctx.session === null || ctx.catalogue === undefined) throw malformed(stage, 'reply is missing');
  const entry = ctx.catalogue(reason);
  if (entry === undefined) throw malformed(stage, `no catalogue reply for reason ${JSON.stringify(reason.slice(0, 60))}`);
  return { code: entry.code, enhanced: entry.enhanced, text: entry.text };
}

/** Principals and rights: from the stage result (inline mode) or the session document. */
function identityFacts(stage: Stage, r: Record<string, unknown>, session: SessionDoc | null): { connector: string | null; principals: string[]; rights: string[] } {
  if (session === null) {
    if (r['partner'] !== undefined) throw malformed(stage, 'partner is only set in cached mode');
    return {
      connector: nullableString(stage, r['connector'], 'connector'),
      principals: stringArray(stage, r['principals'], 'principals'),
      rights: rightNames(stage, r['rights'], 'rights'),
    };
  }
  if (r['connector'] !== undefined || r['principals'] !== undefined || r['rights'] !== undefined) {
    throw malformed(stage, 'a stage result must not restate the session document');
  }
  const partner = r['partner'] === undefined ? false : bool(stage, r['partner'], 'partner');
  if (partner && session.partnerRightNames === null) throw malformed(stage, 'partner switch on a session that cannot become a partner');
  return {
    connector: session.connector,
    principals: partner ? ['partner'] : [...session.principals],
    rights: [...((partner ? session.partnerRightNames : session.rightNames) ?? [])],
  };
}

export function parseDecision(stage: Stage, resultSet: unknown, ctx: RenderContext): Decision {
  const r = single(stage, resultSet);
  onlyKeys(stage, 'the result', r, STAGE_KEYS[stage]);
  const kind = r['decision'];
  if (typeof kind !== 'string' || !(DECISION_KINDS as readonly string[]).includes(kind)) {
    throw malformed(stage, `decision must be one of ${DECISION_KINDS.join('|')}, got ${JSON.stringify(kind)?.slice(0, 40)}`);
  }
  const reason = r['reason'];
  if (typeof reason !== 'string' || reason === '') throw malformed(stage, 'reason must be a non-empty string');
  const decision: Record<string, unknown> = {
    id: ctx.id,
    stage,
    decision: kind,
    reason,
    reply: validateReply(stage, kind as DecisionKind, replyOf(stage, r, reason, ctx), ctx),
    ...identityFacts(stage, r, ctx.session),
  };
  if (stage === 'ehlo') decision['advertise'] = advertise(stage, r['advertise']);
  if (stage === 'rcpt') decision['recipient'] = recipient(stage, r['recipient'], ctx);
  if (stage === 'auth') decision['logon_failure'] = bool(stage, r['logon_failure'], 'logon_failure');
  if (stage === 'headers' || stage === 'eom') {
    const actions = headerActions(stage, r['header_actions']);
    const flags = messageFlags(stage, r['message_flags']);
    decision['header_actions'] = actions;
    decision['message_flags'] = flags;
    decision['remove_headers'] = headersToRemove(actions, ctx.headerNames ?? []);
    decision['add_headers'] = flagHeaders(flags);
  }
  if (r['checks'] !== undefined) decision['checks'] = checks(stage, r['checks']);
  if (r['selected_by'] !== undefined) decision['selected_by'] = selectedBy(stage, r['selected_by']);
  // Every field above was checked against the Decision type it is cast to.
  return decision as unknown as Decision;
}
