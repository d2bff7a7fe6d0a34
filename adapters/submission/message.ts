/**
 * The message as it streams through DATA (after smtp-server's dot-unstuffing): line-ending and
 * line-length checks, the header block split off and parsed into fields for the policy, and the
 * header block rewritten for the next hop. Pure and bounded: nothing here holds more than the
 * header block, whose size the engine's own input limits cap.
 *
 * Line endings: only CRLF is a line end (RFC 5321 §2.3.8). A bare LF or a bare CR anywhere in the
 * message refuses it: MTAs disagree on what they mean, and that disagreement is what SMTP
 * smuggling (CVE-2023-51766 class) exploits; smtp-server itself only ends DATA at CRLF.CRLF.
 */
import { fieldKey } from '../../engine/header-fields.js';
import type { AddHeader } from '../../engine/types.js';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;

/** RFC 5322 §2.1.1: at most 998 characters per line, excluding CRLF. */
export const RFC5322_MAX_LINE = 998;

export type Violation = 'bare_lf' | 'bare_cr' | 'line_too_long' | 'header_too_large';

/** Where the header block stops being acceptable; the engine's input limits (engine.limits). */
export interface HeaderLimits {
  readonly maxBytes: number;
  readonly maxFields: number;
  readonly maxValueBytes: number;
}

/** Streaming check of line endings and line length across chunk boundaries. */
export class LineChecker {
  private cr = false;
  private length = 0;

  constructor(private readonly maxLine: number = RFC5322_MAX_LINE) {}

  /** The first violation in `chunk`, or null. After a violation the checker's state is undefined. */
  feed(chunk: Uint8Array): Violation | null {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (this.cr) {
        if (c !== LF) return 'bare_cr';
        this.cr = false;
        this.length = 0;
      } else if (c === CR) this.cr = true;
      else if (c === LF) return 'bare_lf';
      else if (++this.length > this.maxLine) return 'line_too_long';
    }
    return null;
  }

  /** At the end of the message: a CR left hanging is bare. */
  end(): Violation | null {
    return this.cr ? 'bare_cr' : null;
  }
}

/** One header field: its name and value as the policy reads them, and its bytes in the block. */
export interface HeaderField {
  /** As written, up to the first colon (the whole first line when it has none). */
  readonly name: string;
  /** After the colon, leading white space removed, folds (CRLF WSP) kept, final CRLF removed. */
  readonly value: string;
  readonly start: number;
  readonly end: number;
}

/** The header block split off the message. */
export interface HeaderBlock {
  /** The field lines, up to and including the CRLF of the last one (no blank line). */
  readonly raw: Buffer;
  readonly fields: readonly HeaderField[];
}

/**
 * Collects the header block: everything before the first empty line (RFC 5322 §2.1). `push`
 * returns the block and the bytes after it (starting with the blank line) once it is complete;
 * `end` returns it when the message has no body at all.
 */
export class HeaderSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private done = false;

  constructor(private readonly limits: HeaderLimits) {}

  push(chunk: Buffer): { block: HeaderBlock; rest: Buffer } | Violation | null {
    if (this.done) throw new Error('HeaderSplitter: push after the block was complete');
    // Look for CRLF CRLF across the boundary: keep the last three bytes seen in view.
    const prev = this.parts.length === 0 ? Buffer.alloc(0) : tail(this.parts, 3);
    const view = Buffer.concat([prev, chunk]);
    // A message that starts with its blank line has an empty header block.
    const atStart = this.size === prev.length && view.length >= 2 && view[0] === CR && view[1] === LF;
    const sep = atStart ? -2 : view.indexOf('\r\n\r\n');
    if (sep === -1) {
      this.parts.push(chunk);
      this.size += chunk.length;
      return this.size > this.limits.maxBytes ? 'header_too_large' : null;
    }
    // The block ends after the CRLF of its last line, 2 bytes into the separator.
    const blockEnd = atStart ? 0 : this.size - prev.length + sep + 2;
    if (blockEnd > this.limits.maxBytes) return 'header_too_large';
    const all = Buffer.concat([...this.parts, chunk]);
    this.done = true;
    this.parts = [];
    const raw = all.subarray(0, blockEnd);
    const fields = parseFields(raw, this.limits);
    return fields === 'header_too_large' ? fields : { block: { raw, fields }, rest: all.subarray(blockEnd) };
  }

  /** The message ended inside the header block: all of it is the header block. */
  end(): HeaderBlock | Violation {
    this.done = true;
    const raw = Buffer.concat(this.parts);
    this.parts = [];
    const fields = parseFields(raw, this.limits);
    return fields === 'header_too_large' ? fields : { raw, fields };
  }
}

function tail(parts: readonly Buffer[], n: number): Buffer {
  const last = Buffer.concat(parts.slice(-n));
  return last.subarray(Math.max(0, last.length - n));
}

/**
 * Splits a header block (CRLF line ends, checked by {@link LineChecker}) into fields. A line that
 * starts with WSP continues the field before it; one at the very start begins a field with an
 * empty name, which the engine refuses (header_invalid) rather than anything guessing here.
 */
export function parseFields(raw: Buffer, limits: HeaderLimits): HeaderField[] | 'header_too_large' {
  const out: HeaderField[] = [];
  let start = 0;
  let at = 0;
  const close = (end: number): boolean => {
    if (end <= start) return true;
    if (out.length >= limits.maxFields || end - start > limits.maxValueBytes) return false;
    const text = raw.toString('utf8', start, end).replace(/\r\n$/, '');
    const colon = text.indexOf(':');
    const firstLine = text.split('\r\n', 1)[0] ?? '';
    const name = colon < 0 || colon > firstLine.length ? firstLine : text.slice(0, colon);
    const value = colon < 0 || colon > firstLine.length ? '' : text.slice(colon + 1).replace(/^[ \t]+/, '');
    out.push({ name, value, start, end });
    return true;
  };
  while (at < raw.length) {
    const nl = raw.indexOf('\r\n', at);
    const next = nl < 0 ? raw.length : nl + 2;
    if (at > 0 && raw[at] !== SP && raw[at] !== HT) {
      if (!close(at)) return 'header_too_large';
      start = at;
    }
    at = next;
  }
  return close(raw.length) ? out : 'header_too_large';
}

/** Header fields as the engine's `HeaderFacts`: `[name, value]` in message order. */
export function headerFacts(block: HeaderBlock): [string, string][] {
  return block.fields.map((f) => [f.name, f.value]);
}

/**
 * The header block for the next hop: `prepend` (our trace field and the added flag headers) in
 * front, then every field whose lower-cased name is not in `remove` (every occurrence, any letter
 * case), byte for byte. A field whose name is no field name is kept: the policy refused such a
 * message already, so none reaches this point.
 */
export function rewriteHeader(block: HeaderBlock, remove: readonly string[], prepend: string): Buffer {
  const drop = new Set(remove);
  const parts: Buffer[] = [Buffer.from(prepend, 'utf8')];
  for (const f of block.fields) {
    const key = fieldKey(f.name);
    if (key !== null && drop.has(key)) continue;
    parts.push(block.raw.subarray(f.start, f.end));
  }
  return Buffer.concat(parts);
}

/** Added fields as header lines; throws on a name or value that could break the header. */
export function addedFields(add: readonly AddHeader[]): string {
  return add
    .map((h) => {
      if (fieldKey(h.name) === null || /[\r\n]/.test(h.value)) throw new Error(`refusing to add malformed header field ${JSON.stringify(h.name).slice(0, 80)}`);
      return `${h.name}: ${h.value}\r\n`;
    })
    .join('');
}
