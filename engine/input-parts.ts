/**
 * The pieces every part of the policy input is built from (engine/input.ts assembles them, the
 * header summary is in engine/message-input.ts): the input bounds, addresses as the policy reads
 * them (parsed once per raw string, RFC 5321 via engine/address.ts), and the value checks whose
 * failure is `ENGINE_INPUT_INVALID` (the engine then tempfails).
 */
import { parsePath, parseReversePath, type NormalisedAddress } from './address.js';
import { EngineError } from './errors.js';
import { MAILBOX_LIST_LIMITS } from './mailbox.js';

/** Caps on what one decision reads; adapters bound their buffers with the same numbers. */
export const INPUT_LIMITS = {
  headerFields: 2000,
  /** One header field's value (folded lines included). */
  headerValueBytes: 65536,
  /** The header fields given, as "Name: value\r\n" lines (header_size may say the block was larger). */
  headerBytes: 1048576,
  /** Mailboxes across From, Sender, Resent-From and Resent-Sender. */
  fromAddresses: MAILBOX_LIST_LIMITS.mailboxes,
  /** Resent-From / Resent-Sender fields (one per resent block, RFC 5322 §3.6.6). */
  resentFields: 20,
  certNames: 100,
  stringLength: 4096,
} as const;

/**
 * An address as the policy reads it: booleans appear only when true, to keep the JSON that
 * crosses into WASM small.
 */
export interface PolicyAddress {
  domain: string;
  key: string;
  parents: readonly string[];
  literal?: string;
  null?: true;
  invalid?: true;
  non_ascii?: true;
  routing?: Partial<Record<keyof NormalisedAddress['routing'], true>>;
}

function toPolicyAddress(a: NormalisedAddress): PolicyAddress {
  const out: PolicyAddress = { domain: a.domain, key: a.key, parents: a.parents };
  if (a.literal !== null) out.literal = a.literal;
  if (a.null) out.null = true;
  if (!a.valid) out.invalid = true;
  if (!a.ascii) out.non_ascii = true;
  const routing: PolicyAddress['routing'] = {};
  for (const [flag, on] of Object.entries(a.routing)) if (on) routing[flag as keyof NormalisedAddress['routing']] = true;
  if (Object.keys(routing).length > 0) out.routing = routing;
  return out;
}

/** A bounded memo: a full cache is simply cleared. Keys are the raw strings as received. */
export class Memo<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly limit: number) {}
  get(key: string, make: () => V): V {
    let v = this.map.get(key);
    if (v === undefined) {
      if (this.map.size >= this.limit) this.map.clear();
      v = make();
      this.map.set(key, v);
    }
    return v;
  }
}

export function bad(message: string): EngineError {
  return new EngineError('ENGINE_INPUT_INVALID', message);
}

export function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw bad(`${what} must be a string`);
  if (value.length > INPUT_LIMITS.stringLength) throw bad(`${what} is longer than ${INPUT_LIMITS.stringLength} characters`);
  return value;
}

export function count(value: unknown, what: string): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw bad(`${what} must be a non-negative integer`);
  return value;
}

// --- addresses ---------------------------------------------------------------------------------

/** A parsed address and its JSON text. */
export interface AddressEntry {
  readonly address: PolicyAddress;
  readonly json: string;
}

const addressMemo = new Memo<AddressEntry>(4096);
const senderMemo = new Memo<AddressEntry>(4096);

export function addressEntry(raw: string, sender: boolean): AddressEntry {
  return (sender ? senderMemo : addressMemo).get(raw, () => {
    // A reverse-path names one mailbox: several `@` (which RCPT flags as routing) make it invalid.
    const address = toPolicyAddress(sender ? parseReversePath(raw) : parsePath(raw));
    return { address, json: JSON.stringify(address) };
  });
}

/** An envelope recipient (or any path) as the policy reads it. */
export function policyAddress(raw: string): PolicyAddress {
  return addressEntry(raw, false).address;
}

/** A reverse-path (MAIL FROM): several `@` make it invalid rather than routed. */
export function policySender(raw: string): PolicyAddress {
  return addressEntry(raw, true).address;
}
