/**
 * A small declarative vocabulary for the configuration: each definition both DECODES a YAML
 * node (one pass, reporting issues with their positions) and DESCRIBES itself as JSON Schema
 * (draft 2020-12, published for editors). Nothing else states the file's shape.
 *
 * A decoder returns the typed value, or `BAD` after reporting why. A mapping or list with a
 * bad part is `BAD` as a whole, so checks across fields only ever see clean values: no
 * "taint" bookkeeping is needed to report one mistake once.
 */
import { fromJson, type Json, type YNode, type YScalar } from './yaml.js';
import { isParseFailure, type ParseFailure } from '../ip.js';
import { Issues, code, didYouMean, excerpt, formatPath, subjectOf, type Loc, type Path, type Seg } from './issues.js';

export type { Json } from './yaml.js';
export type JsonSchema = { readonly [key: string]: Json };

export const BAD: unique symbol = Symbol('bad');
export type Bad = typeof BAD;

/** The location being decoded, and the file's issues. Paths are built only when asked for. */
export class At implements Loc {
  private pathCache: Path | undefined;
  private textCache: string | undefined;

  constructor(
    readonly issues: Issues,
    private readonly parent: At | Path,
    private readonly seg: Seg | undefined,
    readonly offset: number | undefined,
    /** Defaults are decoded at the place that implied them: children keep this location. */
    private readonly frozen = false,
  ) {}

  /** The location of the root, or of a given path. */
  static of(issues: Issues, path: Path, offset: number | undefined): At {
    return new At(issues, path, undefined, offset);
  }

  get path(): Path {
    if (this.pathCache === undefined) {
      const base = this.parent instanceof At ? this.parent.path : this.parent;
      this.pathCache = this.seg === undefined ? base : [...base, this.seg];
    }
    return this.pathCache;
  }

  /** `formatPath(path)`, built from the parent's text. */
  get pathText(): string {
    if (this.textCache === undefined) {
      this.textCache =
        this.parent instanceof At && this.seg !== undefined ? this.parent.pathText + formatPath([this.seg], this.parent.pathText === '') : formatPath(this.path);
    }
    return this.textCache;
  }

  child(seg: Seg, offset: number | undefined): At {
    return this.frozen ? this : new At(this.issues, this, seg, offset ?? this.offset);
  }

  /** The same place, for decoding a default that stands in for the value. */
  freeze(): At {
    return new At(this.issues, this.path, undefined, this.offset, true);
  }

  fail(message: string, fix?: string): Bad {
    this.issues.add(this, message, fix);
    return BAD;
  }
}

/** JSON Schema `$defs` collected while a schema is generated. */
export class Defs {
  readonly defs: Record<string, JsonSchema> = {};
  ref(name: string, build: () => JsonSchema): JsonSchema {
    if (!(name in this.defs)) {
      this.defs[name] = {};
      this.defs[name] = build();
    }
    return { $ref: `#/$defs/${name}` };
  }
}

export interface Decoder<T> {
  decode(node: YNode, at: At): T | Bad;
  schema(defs: Defs): JsonSchema;
}

/** A value and where it was written (for messages raised after decoding). */
export interface Located<T> {
  readonly value: T;
  readonly loc: Loc;
}

export function describeValue(node: YNode): string {
  if (node.kind === 'seq') return 'a list';
  if (node.kind === 'map') return 'a mapping';
  const v = node.value;
  if (v === null) return 'empty (null)';
  if (typeof v === 'string') return `the string ${JSON.stringify(excerpt(v))}`;
  if (typeof v === 'number') return `the number ${v}`;
  return String(v);
}

/** The last key of a path: the field a message is about. */
export function lastName(path: Path): string | undefined {
  for (let i = path.length - 1; i >= 0; i--) {
    const s = path[i];
    if (typeof s === 'string') return s;
  }
  return undefined;
}

function typeError(node: YNode, at: At, expected: string, examples?: readonly Json[]): Bad {
  const ex = examples?.[0];
  return at.fail(
    `${subjectOf(at.path)} must be ${expected}, not ${describeValue(node)}`,
    ex === undefined ? undefined : `for example ${code(typeof ex === 'string' ? ex : JSON.stringify(ex))}`,
  );
}

// --- scalars -----------------------------------------------------------------------------------

type ScalarKind = 'string' | 'integer' | 'boolean';
const EXPECTED: Record<ScalarKind, string> = { string: 'a string', integer: 'a whole number', boolean: 'true or false' };

function scalarOf(node: YNode, kinds: readonly ScalarKind[]): YScalar | null {
  if (node.kind !== 'scalar') return null;
  const v = node.value;
  const ok =
    (typeof v === 'string' && kinds.includes('string')) ||
    (typeof v === 'number' && Number.isInteger(v) && kinds.includes('integer')) ||
    (typeof v === 'boolean' && kinds.includes('boolean'));
  return ok ? node : null;
}

/**
 * A scalar of the given JSON types, then `check`ed: the base of every leaf decoder.
 * `schema` is merged with the type (and `examples`, also used in type errors).
 */
export function scalar<T>(
  kinds: readonly ScalarKind[],
  check: (value: string | number | boolean, at: At) => T | Bad,
  schema: JsonSchema = {},
): Decoder<T> {
  const examples = Array.isArray(schema['examples']) ? (schema['examples'] as readonly Json[]) : undefined;
  const expected = kinds.map((k) => EXPECTED[k]).join(' or ');
  return {
    decode(node, at) {
      const s = scalarOf(node, kinds);
      return s === null || s.value === null ? typeError(node, at, expected, examples) : check(s.value, at);
    },
    schema: () => ({ type: kinds.length === 1 ? (kinds[0] ?? 'string') : [...kinds], ...schema }),
  };
}

export interface StringRules {
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly singleLine?: boolean;
  /** Fix for an empty string. */
  readonly emptyFix?: string;
}

export function string(rules: StringRules = {}, schema: JsonSchema = {}): Decoder<string> {
  return scalar(
    ['string'],
    (v, at) => {
      const s = String(v);
      if (rules.minLength !== undefined && s.trim().length < rules.minLength) return at.fail(`${subjectOf(at.path)} must not be empty`, rules.emptyFix);
      if (rules.maxLength !== undefined && s.length > rules.maxLength) return at.fail(`${subjectOf(at.path)} is too long (at most ${rules.maxLength} characters)`, 'shorten it');
      if (rules.singleLine === true && /[\r\n]/.test(s)) return at.fail(`${subjectOf(at.path)} must be a single line`, 'remove the line breaks');
      return s;
    },
    {
      ...(rules.minLength === undefined ? {} : { minLength: rules.minLength }),
      ...(rules.maxLength === undefined ? {} : { maxLength: rules.maxLength }),
      ...(rules.singleLine === true ? { pattern: '^[^\\r\\n]*$' } : {}),
      ...schema,
    },
  );
}

export const boolean = (): Decoder<boolean> => scalar(['boolean'], (v) => v === true);

function rangeText(min: number, max: number | undefined, unlimited: boolean): string {
  const u = unlimited ? ', or unlimited' : '';
  return max === undefined ? `at least ${min}${u}` : `from ${min} to ${max}${u}`;
}

export function integer(min: number, max: number): Decoder<number> {
  return scalar(
    ['integer'],
    (v, at) => {
      const n = Number(v);
      const range = rangeText(min, max, false);
      return n < min || n > max ? at.fail(`${subjectOf(at.path)} must be ${range}, not ${n}`, `use a value ${range}`) : n;
    },
    { minimum: min, maximum: max },
  );
}

/** A whole number in [min, max], or `unlimited` in any letter case (→ null). */
export function limit(min: number, max: number): Decoder<number | null> {
  const range = rangeText(min, max, true);
  return scalar(
    ['integer', 'string'],
    (v, at) => {
      if (typeof v === 'string') {
        if (v.trim().toLowerCase() === 'unlimited') return null;
        return at.fail(`${code(v)} is not a number or ${code('unlimited')}`, `write a whole number ${range}`);
      }
      const n = Number(v);
      return n < min || n > max ? at.fail(`${subjectOf(at.path)} must be ${range}, not ${n}`, `use a value ${range}`) : n;
    },
    { minimum: min, maximum: max, pattern: caselessPattern(['unlimited']), examples: [min === 1 ? 5 : min, 'unlimited'] },
  );
}

/** A regular expression source matching any of `words` in any letter case. */
export function caselessPattern(words: readonly string[]): string {
  const one = (w: string): string =>
    [...w].map((ch) => (ch.toLowerCase() !== ch.toUpperCase() ? `[${ch.toLowerCase()}${ch.toUpperCase()}]` : ch.replace(/[\\^$.*+?()[\]{}|/]/g, (c) => `\\${c}`))).join('');
  return `^(?:${words.map(one).join('|')})$`;
}

/**
 * One of `values`, exactly (YAML values are case-sensitive). `refused` names values that are
 * known but not supported, with the message and fix to give.
 */
export function oneOf<const V extends string>(values: readonly V[], refused: Readonly<Record<string, readonly [string, string]>> = {}): Decoder<V> {
  return scalar(
    ['string'],
    (v, at) => {
      const s = String(v);
      if ((values as readonly string[]).includes(s)) return s as V;
      const r = Object.entries(refused).find(([k]) => k.toLowerCase() === s.toLowerCase());
      if (r !== undefined) return at.fail(r[1][0], r[1][1]);
      const exact = values.find((a) => a.toLowerCase() === s.toLowerCase());
      return at.fail(
        `${code(s)} is not a valid value for ${lastName(at.path) ?? 'this key'}; allowed: ${values.join(', ')}`,
        exact !== undefined ? `write ${code(exact)} (values are case-sensitive)` : didYouMean(s, values, `use one of ${values.join(', ')}`),
      );
    },
    { enum: [...values] },
  );
}

/** One of `words` in any letter case, returned in its canonical spelling. */
export function caseless<const W extends string>(words: readonly W[], unknown: (text: string) => readonly [string, string | undefined]): Decoder<W> {
  const byLower = new Map(words.map((w) => [w.toLowerCase(), w]));
  return scalar(
    ['string'],
    (v, at) => {
      const s = String(v);
      const w = byLower.get(s.trim().toLowerCase());
      if (w !== undefined) return w;
      const [message, fix] = unknown(s);
      return at.fail(message, fix);
    },
    { pattern: caselessPattern(words), examples: [...words] },
  );
}

/** Longest text `parsed` hands to its parser: every parsed value type is far shorter. */
const MAX_PARSED = 1024;

/**
 * A string parsed by `parse` (which reports a failure with its fix). Results are kept per
 * node, so a value shared through an alias is parsed once however often it is used.
 */
export function parsed<T>(parse: (text: string) => T | ParseFailure, schema: JsonSchema = {}): Decoder<T> {
  const memo = new WeakMap<YNode, T | ParseFailure>();
  return {
    decode(node, at) {
      if (node.kind !== 'scalar' || typeof node.value !== 'string') return typeError(node, at, 'a string', schema['examples'] as readonly Json[] | undefined);
      const text = node.value;
      let r = memo.get(node);
      if (r === undefined) {
        r = text.length > MAX_PARSED ? { error: `${code(text)} is too long (${text.length} characters)`, fix: 'check the value' } : parse(text);
        memo.set(node, r);
      }
      return isParseFailure(r) ? at.fail(r.error, r.fix) : r;
    },
    schema: () => ({ type: 'string', minLength: 1, ...schema }),
  };
}

// --- combinators --------------------------------------------------------------------------------

/** `d`, then `check` on the decoded value (the schema is `d`'s, extended by `schema`). */
export function refine<T, U>(d: Decoder<T>, check: (value: T, at: At, node: YNode) => U | Bad, schema: JsonSchema = {}): Decoder<U> {
  return {
    decode(node, at) {
      const v = d.decode(node, at);
      return v === BAD ? BAD : check(v, at, node);
    },
    schema: (defs) => ({ ...d.schema(defs), ...schema }),
  };
}

export function nullable<T>(d: Decoder<T>): Decoder<T | null> {
  return {
    decode: (node, at) => (node.kind === 'scalar' && node.value === null ? null : d.decode(node, at)),
    schema(defs) {
      const s = d.schema(defs);
      const t = s['type'];
      return typeof t === 'string' ? { ...s, type: [t, 'null'] } : { anyOf: [s, { type: 'null' }] };
    },
  };
}

/** `d` with its location, for messages raised after decoding. */
export function located<T>(d: Decoder<T>): Decoder<Located<T>> {
  return {
    decode(node, at) {
      const value = d.decode(node, at);
      return value === BAD ? BAD : { value, loc: at };
    },
    schema: (defs) => d.schema(defs),
  };
}

/** A value whose decoding is left to the caller (a section that needs others decoded first). */
export interface Deferred {
  readonly node: YNode;
  readonly at: At;
}

/** Keeps the node for later decoding; published with `shape`'s schema. */
export function deferred(shape: Decoder<unknown>): Decoder<Deferred> {
  return { decode: (node, at) => ({ node, at }), schema: (defs) => shape.schema(defs) };
}

/** `d` published once under `$defs/name` and referenced. */
export function named<T>(name: string, d: Decoder<T>): Decoder<T> {
  return { decode: (node, at) => d.decode(node, at), schema: (defs) => defs.ref(name, () => d.schema(defs)) };
}

export interface ListRules<T> {
  readonly minItems?: number;
  /** Why an empty list is wrong, and the fix. */
  readonly empty?: readonly [string, string];
  /**
   * Items must differ in `key`; `label` names an item in the duplicate message, which goes at
   * `loc` (default: the item).
   */
  readonly unique?: { readonly key: (v: T) => string; readonly label: (v: T, text: string) => string; readonly loc?: (v: T) => Loc };
}

const textOf = (node: YNode): string => (node.kind === 'scalar' ? node.source.trim() : '');

export function list<T>(item: Decoder<T>, rules: ListRules<T> = {}): Decoder<T[]> {
  return {
    decode(node, at) {
      if (node.kind !== 'seq') return typeError(node, at, 'a list');
      const min = rules.minItems ?? 0;
      if (node.items.length < min) {
        const [why, fix] = rules.empty ?? ['', 'add an item or remove the key'];
        return at.fail(`${subjectOf(at.path)} must list at least ${min} item${min === 1 ? '' : 's'}${why === '' ? '' : `: ${why}`}`, fix);
      }
      const out: T[] = [];
      const seen = new Map<string, { loc: Loc; text: string }>();
      let bad = false;
      node.items.forEach((n, i) => {
        const ia = at.child(i, n.offset);
        const v = item.decode(n, ia);
        if (v === BAD) {
          bad = true;
          return;
        }
        const u = rules.unique;
        if (u !== undefined) {
          const key = u.key(v);
          const text = textOf(n);
          const loc = u.loc?.(v) ?? ia;
          const first = seen.get(key);
          if (first !== undefined) {
            const line = at.issues.line(first.loc) ?? '?';
            const same = text === first.text || text === '' ? `is listed twice (also at line ${line})` : `is the same as ${code(first.text)} (line ${line})`;
            at.issues.add(loc, `${u.label(v, text)} ${same}`, 'remove one of them');
            bad = true;
            return;
          }
          seen.set(key, { loc, text });
        }
        out.push(v);
      });
      return bad ? BAD : out;
    },
    schema: (defs) => ({ type: 'array', items: item.schema(defs), ...(rules.minItems === undefined ? {} : { minItems: rules.minItems }) }),
  };
}

// --- mappings ----------------------------------------------------------------------------------

export interface FieldMeta {
  readonly description: string;
  readonly examples?: readonly Json[];
  /** More schema for this field only (e.g. a `default` that the decoder does not fill in). */
  readonly schema?: JsonSchema;
}
export interface Field<T, P extends 'present' | 'optional'> extends FieldMeta {
  readonly decoder: Decoder<T>;
  readonly presence: P;
  /** The fix to give when a required field is missing. */
  readonly required?: string;
  /** The default as the file would write it (decoded on use, published in the schema). */
  readonly default?: Json;
}

/** A required field; `hint` is the fix when it is missing. */
export function required<T>(decoder: Decoder<T>, hint: string, meta: FieldMeta): Field<T, 'present'> {
  return { decoder, presence: 'present', required: hint, ...meta };
}
/** An optional field with a default, written as the file would write it. */
export function withDefault<T>(decoder: Decoder<T>, dflt: Json, meta: FieldMeta): Field<T, 'present'> {
  return { decoder, presence: 'present', default: dflt, ...meta };
}
/** An optional field without a default (undefined when absent). */
export function optional<T>(decoder: Decoder<T>, meta: FieldMeta): Field<T, 'optional'> {
  return { decoder, presence: 'optional', ...meta };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fields = Record<string, Field<any, 'present' | 'optional'>>;

/** Where the parts of a decoded mapping were written. */
export interface Where<K extends string> {
  readonly self: Loc;
  /** True when the file wrote the key. */
  has(key: K): boolean;
  /** The key (the mapping itself when absent). */
  key(key: K): Loc;
  /** The value (its key when empty, the mapping when absent). */
  value(key: K): Loc;
}

export type ObjOf<F extends Fields> = {
  readonly [K in keyof F]: F[K] extends Field<infer T, 'present'> ? T : F[K] extends Field<infer T, 'optional'> ? T | undefined : never;
} & { readonly where: Where<Extract<keyof F, string>> };

export interface ObjRules {
  readonly description?: string;
  /** How messages name this mapping, e.g. `this connector`; default: its path. */
  readonly noun?: string;
  /** Message and fix for a key that is not a field. */
  readonly unknownKey?: (key: string) => readonly [string, string | undefined];
  /** More schema (e.g. conditional requirements). */
  readonly schema?: JsonSchema;
}

/** The decoded value of a default: defaults are valid by construction, or this throws. */
function decodeDefault<T>(field: Field<T, 'present' | 'optional'>, at: At): T {
  const scratch = new At(new Issues('(default)', () => ({ line: 0, column: 0 })), at.path, undefined, at.offset, true);
  const v = field.decoder.decode(fromJson(field.default ?? null), scratch);
  if (v === BAD) throw new Error(`invalid default for ${formatPath(at.path)}: ${scratch.issues.list.map((i) => i.message).join('; ')}`);
  return v;
}

export function obj<F extends Fields>(fields: F, rules: ObjRules = {}): Decoder<ObjOf<F>> {
  const known = Object.keys(fields);
  return {
    decode(node, at) {
      if (node.kind !== 'map') return typeError(node, at, 'a mapping (key: value)');
      const noun = rules.noun ?? (at.path.length === 0 ? 'the configuration' : formatPath(at.path));
      const out: Record<string, unknown> = {};
      const keys = new Map<string, Loc>();
      const values = new Map<string, Loc>();
      let bad = false;
      for (const pair of node.pairs) {
        const keyAt = at.child(pair.key, pair.keyOffset);
        const field = fields[pair.key];
        if (field === undefined) {
          const [message, fix] =
            rules.unknownKey?.(pair.key) ??
            [
              `unknown key ${code(pair.key)} ${at.path.length === 0 ? 'at the top level' : `in ${noun}`}`,
              pair.key === '<<'
                ? 'YAML merge keys (<<) are not supported: write the keys out, or alias whole values'
                : didYouMean(pair.key, known, known.length > 0 ? `remove it; known keys here: ${known.join(', ')}` : 'remove it'),
            ];
          keyAt.fail(message, fix);
          continue;
        }
        const valueAt = pair.value.kind === 'scalar' && pair.value.empty ? keyAt : at.child(pair.key, pair.value.offset);
        keys.set(pair.key, keyAt);
        values.set(pair.key, valueAt);
        const v = field.decoder.decode(pair.value, valueAt);
        if (v === BAD) bad = true;
        else out[pair.key] = v;
      }
      for (const [k, field] of Object.entries(fields)) {
        if (keys.has(k)) continue;
        if (field.required !== undefined) {
          at.fail(`${noun} is missing required key ${code(k)}`, field.required);
          bad = true;
        } else if (field.default !== undefined) {
          out[k] = decodeDefault(field, at.child(k, undefined));
        }
      }
      if (bad) return BAD;
      const self: Loc = at;
      const absent = (k: string): Loc => at.child(k, undefined);
      out['where'] = {
        self,
        has: (k: string) => keys.has(k),
        key: (k: string) => keys.get(k) ?? absent(k),
        value: (k: string) => values.get(k) ?? absent(k),
      } satisfies Where<string>;
      return out as ObjOf<F>;
    },
    schema(defs) {
      const properties: Record<string, JsonSchema> = {};
      for (const [k, f] of Object.entries(fields)) {
        properties[k] = {
          ...f.decoder.schema(defs),
          description: f.description,
          ...(f.default === undefined ? {} : { default: f.default }),
          ...(f.examples === undefined ? {} : { examples: [...f.examples] }),
          ...f.schema,
        };
      }
      const req = Object.entries(fields).filter(([, f]) => f.required !== undefined).map(([k]) => k);
      return {
        type: 'object',
        ...(rules.description === undefined ? {} : { description: rules.description }),
        additionalProperties: false,
        ...(req.length === 0 ? {} : { required: req }),
        properties,
        ...rules.schema,
      };
    },
  };
}
