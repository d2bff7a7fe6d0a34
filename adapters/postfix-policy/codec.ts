/**
 * The Postfix policy-delegation wire format (SMTPD_POLICY_README, "Protocol description"),
 * both directions, pure, total and bounded:
 *
 * - A request is `name=value` lines, each ended by LF, and the request by an empty line. Many
 *   requests follow one another on one connection. The order of attributes does not matter;
 *   a name sent twice keeps its last value (the README allows first or last).
 * - A name must not contain `=`, NUL or LF; a value must not contain NUL or LF. Everything
 *   else is data, CR included: Postfix's own reader (`attr_scan_plain.c`) reads up to LF and
 *   keeps every other byte, and Postfix writes values verbatim (`attr_print_plain.c`,
 *   `"%s=%s\n"`), so there is no escaping to undo — except `ccert_subject`/`ccert_issuer`,
 *   which Postfix xtext-encodes (see attributes.ts).
 * - Bytes are decoded as UTF-8; an invalid sequence becomes U+FFFD (as in the milter
 *   adapter), so 8-bit data never closes a connection. With `smtputf8_enable = yes` (the
 *   default) Postfix refuses any SMTP command that is not valid UTF-8 before it asks us
 *   (smtpd.c: "protect internal interfaces against malformed UTF-8"; the `utf8` capture shows
 *   it); with `no`, an 8-bit address local part is passed on as is (`smtpd_check_addr`), and
 *   HELO names always go through `printable()`, which replaces invalid UTF-8 with `?`.
 * - The reply is one `action=…` line and an empty line.
 *
 * Malformed input is a {@link PolicyProtocolError}, after which the decoder accepts nothing
 * more: the connection is closed.
 */
import { StringDecoder } from 'node:string_decoder';
import { PolicyProtocolError } from './errors.js';

/** Bounds on what one request may hold. */
export interface PolicyLimits {
  /** One attribute line in bytes, without its LF. */
  readonly maxLineBytes: number;
  /** Attributes in one request. */
  readonly maxAttributes: number;
  /** One whole request in bytes, LFs included. */
  readonly maxRequestBytes: number;
}

/**
 * The defaults. A line: 4 × Postfix's `line_length_limit` (2048), the bound Postfix's own
 * attribute reader has (disabled) in `attr_scan_plain.c`; every value Postfix sends is an SMTP
 * command argument within `line_length_limit`, or a certificate name that xtext at most
 * triples. Attributes: Postfix 3.12 sends 32; 128 leaves room for later versions. A request:
 * a real one is under 2 KiB.
 */
export const DEFAULT_LIMITS: PolicyLimits = { maxLineBytes: 8192, maxAttributes: 128, maxRequestBytes: 65536 };

/** One request: attribute name → value, in the order first seen. */
export type PolicyRequest = ReadonlyMap<string, string>;

export interface DecodeResult {
  /** The requests completed by this chunk, in order. */
  readonly requests: readonly PolicyRequest[];
  /** Set when the input broke the protocol; requests before the bad byte are still returned. */
  readonly error?: PolicyProtocolError;
}

const LF = 0x0a;
const NUL = 0x00;
const EQUALS = 0x3d;

/** Incremental request decoder for one connection. */
export class RequestDecoder {
  private readonly limits: PolicyLimits;
  /** Bytes of the current, unfinished line. */
  private partial: Buffer[] = [];
  private partialLength = 0;
  private attrs = new Map<string, string>();
  private count = 0;
  private requestBytes = 0;
  private failed: PolicyProtocolError | undefined;

  constructor(limits: Partial<PolicyLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  /** True while a request has begun but not ended (for the request timeout). */
  get pending(): boolean {
    return this.failed === undefined && (this.partialLength > 0 || this.count > 0);
  }

  /** Feed bytes; returns the requests they complete. After an error, nothing more is decoded. */
  push(chunk: Uint8Array): DecodeResult {
    if (this.failed !== undefined) return { requests: [] };
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const requests: PolicyRequest[] = [];
    let pos = 0;
    while (pos < buf.length) {
      const lf = buf.indexOf(LF, pos);
      const end = lf === -1 ? buf.length : lf;
      const taken = end - pos;
      if (this.partialLength + taken > this.limits.maxLineBytes) {
        return this.fail(requests, 'POLICY_LINE_TOO_LONG', `an attribute line is longer than ${this.limits.maxLineBytes} bytes`);
      }
      if (this.requestBytes + taken + (lf === -1 ? 0 : 1) > this.limits.maxRequestBytes) {
        return this.fail(requests, 'POLICY_REQUEST_TOO_LARGE', `a request is larger than ${this.limits.maxRequestBytes} bytes`);
      }
      this.requestBytes += taken + (lf === -1 ? 0 : 1);
      if (lf === -1) {
        if (taken > 0) {
          this.partial.push(buf.subarray(pos));
          this.partialLength += taken;
        }
        break;
      }
      const line = this.partialLength === 0 ? buf.subarray(pos, lf) : Buffer.concat([...this.partial, buf.subarray(pos, lf)]);
      this.partial = [];
      this.partialLength = 0;
      pos = lf + 1;
      const error = this.line(line, requests);
      if (error !== undefined) return this.fail(requests, error[0], error[1]);
    }
    return { requests };
  }

  /** The connection ended: an error if it ended inside a request. */
  end(): PolicyProtocolError | undefined {
    if (this.failed !== undefined || !this.pending) return undefined;
    this.failed = new PolicyProtocolError('POLICY_REQUEST_TRUNCATED', 'the connection ended inside a request');
    return this.failed;
  }

  private line(line: Buffer, out: PolicyRequest[]): [PolicyProtocolError['code'], string] | undefined {
    if (line.length === 0) {
      if (this.count === 0) return ['POLICY_REQUEST_EMPTY', 'an empty line with no attribute before it'];
      out.push(this.attrs);
      this.attrs = new Map();
      this.count = 0;
      this.requestBytes = 0;
      return undefined;
    }
    if (line.indexOf(NUL) !== -1) return ['POLICY_NUL_BYTE', 'an attribute holds a NUL byte'];
    const eq = line.indexOf(EQUALS);
    if (eq === -1) return ['POLICY_ATTRIBUTE_MALFORMED', 'an attribute line has no "="'];
    if (eq === 0) return ['POLICY_ATTRIBUTE_MALFORMED', 'an attribute line has an empty name'];
    if (++this.count > this.limits.maxAttributes) return ['POLICY_TOO_MANY_ATTRIBUTES', `a request has more than ${this.limits.maxAttributes} attributes`];
    const name = line.toString('utf8', 0, eq);
    // A repeated name keeps its last value (the README allows first or last).
    this.attrs.set(name, line.toString('utf8', eq + 1));
    return undefined;
  }

  private fail(requests: PolicyRequest[], code: PolicyProtocolError['code'], message: string): DecodeResult {
    this.failed = new PolicyProtocolError(code, message);
    this.partial = [];
    this.partialLength = 0;
    this.attrs = new Map();
    return { requests, error: this.failed };
  }
}

/** Characters an action cannot carry: LF and NUL end or break the wire line; CR would reach the SMTP reply. */
const ACTION_FORBIDDEN = /[\x00\r\n]/;

/**
 * The reply to one request: `action=<action>` and an empty line. Throws `TypeError` for an
 * action that cannot be framed (empty, or holding CR, LF or NUL) — a programming error; the
 * adapter only sends actions built by actions.ts.
 */
export function encodeAction(action: string): Buffer {
  if (action === '' || ACTION_FORBIDDEN.test(action)) throw new TypeError(`an action cannot be empty or hold CR, LF or NUL: ${JSON.stringify(action.slice(0, 80))}`);
  return Buffer.from(`action=${action}\n\n`, 'utf8');
}

/**
 * Client side (tests, benchmarks, a smoke-test client): one request as Postfix writes it.
 * Throws `TypeError` for a name with `=`, or a name or value with LF or NUL.
 */
export function encodeRequest(attrs: Iterable<readonly [string, string]> | Readonly<Record<string, string>>): Buffer {
  const entries = Symbol.iterator in attrs ? [...(attrs as Iterable<readonly [string, string]>)] : Object.entries(attrs);
  let out = '';
  for (const [name, value] of entries) {
    if (name === '' || /[=\n\0]/.test(name) || /[\n\0]/.test(value)) throw new TypeError(`attribute ${JSON.stringify(name)} cannot be framed`);
    out += `${name}=${value}\n`;
  }
  if (out === '') throw new TypeError('a request needs at least one attribute');
  return Buffer.from(`${out}\n`, 'utf8');
}

/**
 * Client side: decodes the server's replies (`action=…` + empty line) from a byte stream.
 * Bounded by `maxLineBytes`; anything else is `POLICY_REPLY_MALFORMED`.
 */
export class ReplyDecoder {
  private buf = '';
  private failed = false;
  private readonly utf8 = new StringDecoder('utf8');

  constructor(private readonly maxLineBytes = DEFAULT_LIMITS.maxLineBytes) {}

  /** The actions completed by `chunk`, or an error. */
  push(chunk: Buffer): { readonly actions: readonly string[]; readonly error?: PolicyProtocolError } {
    if (this.failed) return { actions: [] };
    this.buf += this.utf8.write(chunk);
    const actions: string[] = [];
    for (;;) {
      const end = this.buf.indexOf('\n\n');
      if (end === -1) break;
      const line = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      if (!line.startsWith('action=') || line.includes('\n')) return this.fail(actions, `not an action reply: ${JSON.stringify(line.slice(0, 80))}`);
      actions.push(line.slice('action='.length));
    }
    if (this.buf.length > this.maxLineBytes + 2) return this.fail(actions, 'a reply is longer than the line limit');
    return { actions };
  }

  private fail(actions: string[], why: string): { actions: readonly string[]; error: PolicyProtocolError } {
    this.failed = true;
    return { actions, error: new PolicyProtocolError('POLICY_REPLY_MALFORMED', why) };
  }
}
