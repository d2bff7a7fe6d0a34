/**
 * The header block as the policy reads it (`"message":…` of the end-of-headers and
 * end-of-message inputs): field names checked as RFC 5322 ftext, sender fields parsed as strict
 * mailbox lists, sizes derived and contradictions refused. Pure and bounded by INPUT_LIMITS.
 */
import { fieldKey, unfoldFieldValue } from './header-fields.js';
import { INPUT_LIMITS, addressEntry, bad, count, str } from './input-parts.js';
import { parseMailboxList } from './mailbox.js';
import type { HeaderFacts } from './types.js';
import { isRecord } from './util.js';

function headerList(headers: HeaderFacts | undefined | null): [string, string][] {
  if (headers === undefined || headers === null) return [];
  if (!Array.isArray(headers) && !isRecord(headers)) throw bad('headers must be an object or a list of [name, value] pairs');
  const out: [string, string][] = [];
  const push = (name: unknown, value: unknown): void => {
    if (out.length >= INPUT_LIMITS.headerFields) throw bad(`more than ${INPUT_LIMITS.headerFields} header fields`);
    if (typeof value !== 'string') throw bad(`header ${String(name).slice(0, 64)} must have a string value`);
    if (Buffer.byteLength(value) > INPUT_LIMITS.headerValueBytes) throw bad(`header ${String(name).slice(0, 64)} is longer than ${INPUT_LIMITS.headerValueBytes} bytes`);
    out.push([str(name, 'header name'), value]);
  };
  if (Array.isArray(headers)) {
    for (const pair of headers as readonly unknown[]) {
      if (!Array.isArray(pair) || pair.length !== 2) throw bad('headers must be [name, value] pairs');
      push(pair[0], pair[1]);
    }
  } else {
    for (const [name, value] of Object.entries(headers)) {
      if (Array.isArray(value)) for (const v of value as readonly unknown[]) push(name, v);
      else push(name, value);
    }
  }
  return out;
}

/** The sender header fields RFC 5322 §3.6.2 / §3.6.6 defines: every mailbox in them is checked. */
const SENDER_FIELDS: Readonly<Record<string, 'list' | 'single'>> = {
  from: 'list',
  sender: 'single',
  'resent-from': 'list',
  'resent-sender': 'single',
};

export interface MessageSummary {
  /** `"message":…` */
  readonly json: string;
  /** Lower-case names of the fields present. */
  readonly names: ReadonlySet<string>;
  readonly headerSize: number;
  /** The JSON before and after the size value (see {@link withMessageSize}). */
  readonly around: readonly [string, string];
}

/**
 * The header block as the policy reads it. A field name that is not RFC 5322 ftext, or a
 * sender field that is not a clean mailbox list, marks the message `invalid` (refused by the
 * policy, `header_invalid`): such a field is never canonicalised or half-read.
 */
export function messageSummary(headersFact: HeaderFacts | undefined, headerSizeFact: unknown, messageSizeFact: unknown, needSize: boolean): MessageSummary {
  const headers = headerList(headersFact);
  const names = new Set<string>();
  let received = 0;
  let headerBytes = 2; // the empty line ending the header block
  let invalid = false;
  const from: string[] = [];
  const seen: Record<string, number> = {};
  for (const [name, value] of headers) {
    headerBytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 4; // "Name: value\r\n"
    const lower = fieldKey(name);
    if (lower === null) {
      invalid = true;
      continue;
    }
    names.add(lower);
    if (lower === 'received') received++;
    const kind = SENDER_FIELDS[lower];
    if (kind === undefined) continue;
    const n = (seen[lower] = (seen[lower] ?? 0) + 1);
    // RFC 5322 §3.6: one From and at most one Sender; Resent-* once per resent block.
    if ((kind === 'single' || lower === 'from') && n > 1 && !lower.startsWith('resent-')) invalid = true;
    if (lower.startsWith('resent-') && n > INPUT_LIMITS.resentFields) throw bad(`more than ${INPUT_LIMITS.resentFields} ${name} fields`);
    const unfolded = unfoldFieldValue(value);
    const list = unfolded === null ? null : parseMailboxList(unfolded, { single: kind === 'single' });
    if (list === null || !list.ok) {
      invalid = true;
      continue;
    }
    for (const m of list.addresses) {
      if (from.length >= INPUT_LIMITS.fromAddresses) throw bad(`more than ${INPUT_LIMITS.fromAddresses} sender mailboxes`);
      from.push(addressEntry(`<${m}>`, true).json);
    }
  }
  // The bound is on what the policy reads, so it holds whether or not header_size is given.
  if (headerBytes > INPUT_LIMITS.headerBytes) throw bad(`the header block is larger than ${INPUT_LIMITS.headerBytes} bytes`);
  let headerSize = headerBytes;
  if (headerSizeFact !== undefined && headerSizeFact !== null) {
    headerSize = count(headerSizeFact, 'header_size');
    if (headerSize < headerBytes) throw bad(`header_size ${headerSize} is smaller than the ${headerBytes} bytes of the headers given`);
  }
  let size = 0;
  if (needSize) {
    if (messageSizeFact === undefined || messageSizeFact === null) throw bad('the eom stage needs message_size');
    size = count(messageSizeFact, 'message_size');
    if (size < headerSize) throw bad(`message_size ${size} is smaller than the header block (${headerSize} bytes)`);
  } else if (messageSizeFact !== undefined && messageSizeFact !== null) {
    size = count(messageSizeFact, 'message_size');
  }
  const around = [
    `"message":{"from":[${from.join(',')}],"header_names":${JSON.stringify([...names].sort())},"received_count":${received},"header_size":${headerSize},"size":`,
    `${invalid ? ',"invalid":true' : ''}}`,
  ] as const;
  return { json: `${around[0]}${size}${around[1]}`, names, headerSize, around };
}

/**
 * The summary of the same header block for the end of message, with its size: what
 * `messageSummary(headers, header_size, messageSizeFact, true)` gives for the headers this
 * summary was made of, without parsing them again.
 */
export function withMessageSize(summary: MessageSummary, messageSizeFact: unknown): MessageSummary {
  if (messageSizeFact === undefined || messageSizeFact === null) throw bad('the eom stage needs message_size');
  const size = count(messageSizeFact, 'message_size');
  if (size < summary.headerSize) throw bad(`message_size ${size} is smaller than the header block (${summary.headerSize} bytes)`);
  return { ...summary, json: `${summary.around[0]}${size}${summary.around[1]}` };
}
