/**
 * Macro bookkeeping (adapters/spec/milter-v6.md §4.2). An SMFIC_MACRO packet replaces the table
 * of its own stage only; tables of other stages survive, so connection macros (`j`,
 * `{daemon_addr}`) outlive every message — the bug of replacing the whole map on every packet
 * (phalaaxx/milter, emersion/go-milter) is avoided. As in libmilter (`mi_clr_macros`), a command
 * clears the tables of later stages, and `x` and `{x}` name the same macro.
 */
import {
  SMFIC_BODY,
  SMFIC_BODYEOB,
  SMFIC_CONNECT,
  SMFIC_DATA,
  SMFIC_EOH,
  SMFIC_HEADER,
  SMFIC_HELO,
  SMFIC_MAIL,
  SMFIC_RCPT,
  SMFIC_UNKNOWN,
} from './constants.js';
import { MilterProtocolError } from './errors.js';

/**
 * Stage bytes we keep, lowest precedence first (a later stage's value wins a lookup, as
 * libmilter's `smfi_getsymval` searches backwards). `L`, `B`, `U` are Postfix-only: it sends the
 * EOH list before every header and the EOM list before every body chunk.
 */
const STAGE_ORDER: readonly number[] = [
  SMFIC_CONNECT,
  SMFIC_HELO,
  SMFIC_UNKNOWN,
  SMFIC_MAIL,
  SMFIC_RCPT,
  SMFIC_DATA,
  SMFIC_HEADER,
  SMFIC_EOH,
  SMFIC_BODY,
  SMFIC_BODYEOB,
];
/** Stages that belong to one message; cleared when it ends. */
export const MESSAGE_STAGES: readonly number[] = STAGE_ORDER.slice(STAGE_ORDER.indexOf(SMFIC_MAIL));
/** Stages cleared when each command arrives (its later stages). */
export const CLEARED_BY: ReadonlyMap<number, readonly number[]> = new Map([
  [SMFIC_CONNECT, STAGE_ORDER.slice(1)],
  [SMFIC_HELO, MESSAGE_STAGES],
  [SMFIC_MAIL, MESSAGE_STAGES.slice(1)],
  [SMFIC_RCPT, MESSAGE_STAGES.slice(2)],
]);

/** Canonical macro name: `j` for `j` and `{j}`, `{client_addr}` for `client_addr` too. */
export function canonicalMacroName(name: string): string {
  const bare = name.length >= 2 && name.startsWith('{') && name.endsWith('}') ? name.slice(1, -1) : name;
  return bare.length === 1 ? bare : `{${bare}}`;
}

/** Read-only macro values visible at one callback. */
export class Macros {
  private readonly values: ReadonlyMap<string, string>;
  constructor(values: ReadonlyMap<string, string> = new Map()) {
    this.values = values;
  }
  /** The value of `name` (`x`, `{x}` or `xname` and `{xname}` alike), if the MTA sent it. */
  get(name: string): string | undefined {
    return this.values.get(canonicalMacroName(name));
  }
  has(name: string): boolean {
    return this.values.has(canonicalMacroName(name));
  }
  /** Every macro as `{ canonical name: value }`. */
  toObject(): Record<string, string> {
    return Object.fromEntries(this.values);
  }
  get size(): number {
    return this.values.size;
  }
}

/** Per-connection macro tables by stage, bounded in total size. */
export class MacroStore {
  private readonly tables = new Map<number, Map<string, string>>();
  private readonly sizes = new Map<number, number>();
  private total = 0;
  readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /**
   * Replace the table of `stage` with `pairs`. Unknown stage bytes are ignored, as libmilter
   * does (and must not break the connection: rspamd #2005). Returns a `MILTER_LIMIT` error when
   * the MTA's macros together exceed the bound.
   */
  define(stage: number, pairs: readonly (readonly [string, string])[]): MilterProtocolError | 'ignored' | undefined {
    if (!STAGE_ORDER.includes(stage)) return 'ignored';
    let size = 0;
    const table = new Map<string, string>();
    for (const [name, value] of pairs) {
      size += name.length + value.length;
      table.set(canonicalMacroName(name), value);
    }
    const next = this.total - (this.sizes.get(stage) ?? 0) + size;
    if (next > this.maxBytes) {
      return new MilterProtocolError('MILTER_LIMIT', `macros would hold ${next} characters, more than the limit of ${this.maxBytes}`);
    }
    this.tables.set(stage, table);
    this.sizes.set(stage, size);
    this.total = next;
    return undefined;
  }

  /** Forget the tables of `stages`. */
  clear(stages: readonly number[]): void {
    for (const s of stages) {
      this.total -= this.sizes.get(s) ?? 0;
      this.tables.delete(s);
      this.sizes.delete(s);
    }
  }

  clearAll(): void {
    this.clear(STAGE_ORDER);
  }

  /** Characters currently held (names + values). */
  get bytes(): number {
    return this.total;
  }

  /** Snapshot of every current macro, later stages overriding earlier ones. */
  view(): Macros {
    const merged = new Map<string, string>();
    for (const stage of STAGE_ORDER) {
      const t = this.tables.get(stage);
      if (t !== undefined) for (const [k, v] of t) merged.set(k, v);
    }
    return new Macros(merged);
  }
}
