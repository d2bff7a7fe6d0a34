/**
 * Policy request attributes → the engine's facts. Pure. What each attribute means, and when
 * Postfix sends it, is Postfix's `smtpd_check.c` `check_policy_service()` and SMTPD_POLICY_README:
 *
 * - `server_address`/`server_port` (Postfix ≥ 3.2): the local endpoint the client reached, which
 *   selects the connector. Missing (older Postfix), `unknown` (the client went away before
 *   Postfix could read the socket) or port 0 (a stand-alone `sendmail -bs` session, whose
 *   endpoints Postfix fills with bogus loopback values): the request is not decided — the
 *   connector is never guessed.
 * - `client_address`: the client IP (`unknown` as above). `client_port` is informational.
 * - `encryption_protocol`/`encryption_cipher`: empty in cleartext; set, TLS is active.
 *   `encryption_keysize` is not a fact the policy reads.
 * - `ccert_subject`/`ccert_issuer`: the client certificate's subject and issuer **CN**, sent only
 *   when the certificate chain verified against Postfix's CAs (`TLS_CERT_IS_TRUSTED`), xtext
 *   encoded (`+XX`). `ccert_fingerprint` is sent for any certificate, verified or not. So: a
 *   subject means a verified certificate with that CN; a fingerprint alone an unverified one.
 * - `sasl_method`/`sasl_username`: the AUTH Postfix ran (empty without one) — the session's
 *   "the MTA authenticated" path.
 * - `sender`, `recipient`: Postfix's internal (unquoted) form, `""` for the null sender. A local
 *   part that needs quoting is quoted again (RFC 5321 §4.1.2), so `"john doe"@x` reaches the
 *   policy as the client wrote it rather than as an invalid `john doe@x`.
 * - `size`: MAIL FROM's SIZE (0 when none), after END-OF-MESSAGE the actual size.
 * - `recipient_count`: non-zero only at DATA and END-OF-MESSAGE; `instance` names the mail
 *   transaction (set once MAIL FROM is accepted, so empty at MAIL). Both are informational here.
 * - SMTPUTF8: Postfix does not tell a policy service whether MAIL FROM carried the SMTPUTF8
 *   keyword, and enforces it itself (a non-ASCII domain needs it; `strict_smtputf8 = yes`
 *   extends that to local parts). A non-ASCII address that reached us is therefore taken as
 *   declared, rather than refused for a keyword we cannot see.
 */
import { parseIp } from '../../engine/ip.js';
import type { TlsFacts } from '../../engine/types.js';
import type { PolicyRequest } from './codec.js';
import { PolicyRequestError } from './errors.js';

/** The SMTP states Postfix asks about (SMTPD_POLICY_README; BDAT is sent as DATA). */
export const PROTOCOL_STATES = ['CONNECT', 'EHLO', 'HELO', 'MAIL', 'RCPT', 'DATA', 'END-OF-MESSAGE', 'VRFY', 'ETRN'] as const;
export type ProtocolState = (typeof PROTOCOL_STATES)[number];

/** The only request type Postfix's SMTP server sends. */
export const REQUEST_TYPE = 'smtpd_access_policy';

/** What one request says about its SMTP session, as engine facts. */
export interface RequestFacts {
  readonly state: ProtocolState;
  /** `ip:port` or `[v6]:port`. */
  readonly local: string;
  /** The client's IP address. */
  readonly remote: string;
  /** TLS state; null in cleartext. */
  readonly tls: TlsFacts | null;
  /** The HELO/EHLO argument; undefined when the client sent none yet. */
  readonly helo: string | undefined;
  /** The AUTH Postfix performed; null when none. */
  readonly auth: { readonly mechanism: string; readonly user: string } | null;
  /** Reverse-path with angle brackets (`<>` = null sender); undefined before MAIL. */
  readonly sender: string | undefined;
  /** Forward-path with angle brackets; undefined when Postfix sent none. */
  readonly recipient: string | undefined;
  /** MAIL FROM parameters the facts support (SIZE, SMTPUTF8). */
  readonly mailParams: Readonly<Record<string, number | boolean>>;
  /** For log lines only. */
  readonly instance: string;
  readonly queueId: string;
}

const isState = (s: string): s is ProtocolState => (PROTOCOL_STATES as readonly string[]).includes(s);

/** A value Postfix sends as "unavailable": absent, empty, or `unknown` (smtpd.h `*_ATTR_UNKNOWN`). */
function available(v: string | undefined): string | undefined {
  return v === undefined || v === '' || v === 'unknown' ? undefined : v;
}

/** A decimal port 1–65535, or null. */
function port(v: string | undefined): number | null {
  if (v === undefined || !/^[0-9]{1,5}$/.test(v)) return null;
  const n = Number(v);
  return n >= 1 && n <= 65535 ? n : null;
}

function endpointError(what: string, fix: string): PolicyRequestError {
  return new PolicyRequestError('POLICY_ENDPOINT_MISSING', `${what}: ${fix}`);
}

function localEndpoint(req: PolicyRequest): string | PolicyRequestError {
  const addr = req.get('server_address');
  if (addr === undefined || req.get('server_port') === undefined) {
    return endpointError('Postfix sent no server_address/server_port', 'they need Postfix 3.2 or later; mta-policy chooses the connector by the local address and port and never guesses it');
  }
  const ip = available(addr) === undefined ? null : parseIp(addr);
  const p = port(req.get('server_port'));
  if (ip === null || p === null) {
    return endpointError(`server_address/server_port are ${JSON.stringify(`${addr.slice(0, 60)} ${String(req.get('server_port')).slice(0, 10)}`)}`, 'the client went away, or the session has no socket (sendmail -bs); the connector cannot be chosen');
  }
  return ip.family === 6 ? `[${ip.text}]:${p}` : `${ip.text}:${p}`;
}

function remoteAddress(req: PolicyRequest): string | PolicyRequestError {
  const addr = available(req.get('client_address'));
  const ip = addr === undefined ? null : parseIp(addr);
  if (ip === null) return endpointError(`client_address is ${JSON.stringify(String(req.get('client_address')).slice(0, 60))}`, 'the client address is unknown; the connector cannot be chosen');
  return ip.text;
}

/** xtext (RFC 3461 §4, Postfix `xtext_unquote`): `+XX` is the byte 0xXX; then UTF-8. */
export function decodeXtext(text: string): string | null {
  if (!text.includes('+')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x2b) {
      // ASCII is its own UTF-8 byte; anything else is encoded one UTF-16 unit at a time.
      if (c < 0x80) bytes.push(c);
      else for (const b of Buffer.from(text[i] ?? '', 'utf8')) bytes.push(b);
      continue;
    }
    const hex = text.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    bytes.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(bytes).toString('utf8');
}

/** RFC 4514 §2.4 escaping of an attribute value, so that `CN=<value>` parses back to the value. */
function dnValue(v: string): string {
  return v.replace(/[\\,+"<>;=/]/g, (c) => `\\${c}`).replace(/^[ #]/, (c) => `\\${c}`).replace(/ $/, '\\ ');
}

function clientCert(req: PolicyRequest): TlsFacts['client_cert'] | PolicyRequestError {
  const subject = req.get('ccert_subject') ?? '';
  if (subject !== '') {
    const cn = decodeXtext(subject);
    const issuer = decodeXtext(req.get('ccert_issuer') ?? '');
    if (cn === null || issuer === null) return new PolicyRequestError('POLICY_ATTRIBUTE_INVALID', 'ccert_subject or ccert_issuer is not valid xtext');
    return { verified: true, subject: `CN=${dnValue(cn)}`, ...(issuer === '' ? {} : { issuer: `CN=${dnValue(issuer)}` }) };
  }
  if ((req.get('ccert_fingerprint') ?? '') !== '' || (req.get('ccert_pubkey_fingerprint') ?? '') !== '') return { verified: false };
  return null;
}

function tls(req: PolicyRequest): TlsFacts | null | PolicyRequestError {
  const version = req.get('encryption_protocol') ?? '';
  if (version === '') return null;
  const cert = clientCert(req);
  if (cert instanceof PolicyRequestError) return cert;
  const cipher = req.get('encryption_cipher') ?? '';
  return { version, ...(cipher === '' ? {} : { cipher }), ...(cert === null || cert === undefined ? {} : { client_cert: cert }) };
}

/** RFC 5321 §4.1.2 Dot-string in RFC 6531's form: atext (plus non-ASCII) and single inner dots. */
const DOT_STRING = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+)*$/u;

/** Postfix's internal address form → an SMTP path with angle brackets. */
export function smtpPath(internal: string): string {
  if (internal === '') return '<>';
  const at = internal.lastIndexOf('@');
  const local = at === -1 ? internal : internal.slice(0, at);
  const domain = at === -1 ? '' : internal.slice(at);
  const quoted = DOT_STRING.test(local) ? local : `"${local.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  return `<${quoted}${domain}>`;
}

const NON_ASCII = /[^\x00-\x7f]/;

/** Turns one request into facts, or says why it cannot be decided. */
export function requestFacts(req: PolicyRequest): RequestFacts | PolicyRequestError {
  const type = req.get('request');
  if (type !== REQUEST_TYPE) return new PolicyRequestError('POLICY_REQUEST_TYPE', `request is ${JSON.stringify(String(type).slice(0, 40))}, not ${REQUEST_TYPE}`);
  const state = req.get('protocol_state') ?? '';
  if (!isState(state)) return new PolicyRequestError('POLICY_STATE_UNKNOWN', `protocol_state ${JSON.stringify(state.slice(0, 40))} is not one of ${PROTOCOL_STATES.join(', ')}`);
  const local = localEndpoint(req);
  if (local instanceof PolicyRequestError) return local;
  const remote = remoteAddress(req);
  if (remote instanceof PolicyRequestError) return remote;
  const t = tls(req);
  if (t instanceof PolicyRequestError) return t;
  const helo = req.get('helo_name') ?? '';
  const method = req.get('sasl_method') ?? '';
  const user = req.get('sasl_username') ?? '';
  const sender = req.get('sender');
  const recipient = req.get('recipient') ?? '';
  const sizeText = req.get('size') ?? '0';
  if (!/^[0-9]{1,20}$/.test(sizeText)) return new PolicyRequestError('POLICY_ATTRIBUTE_INVALID', `size ${JSON.stringify(sizeText.slice(0, 30))} is not a number`);
  const size = Number(sizeText);
  if (state === 'RCPT' && recipient === '') return new PolicyRequestError('POLICY_ATTRIBUTE_INVALID', 'a RCPT request without a recipient');
  const mailParams: Record<string, number | boolean> = {};
  if (size > 0) mailParams['SIZE'] = size;
  if (NON_ASCII.test(sender ?? '') || NON_ASCII.test(recipient)) mailParams['SMTPUTF8'] = true;
  return {
    state,
    local,
    remote,
    tls: t,
    helo: helo === '' ? undefined : helo,
    auth: method !== '' && user !== '' ? { mechanism: method.toUpperCase(), user } : null,
    // MAIL and later always carry a sender (empty = null sender); before MAIL there is none.
    sender: sender === undefined || state === 'CONNECT' || state === 'EHLO' || state === 'HELO' ? undefined : smtpPath(sender),
    recipient: recipient === '' ? undefined : smtpPath(recipient),
    mailParams,
    instance: req.get('instance') ?? '',
    queueId: req.get('queue_id') ?? '',
  };
}
