/**
 * A small declarative vocabulary for the configuration: each definition both DECODES a YAML
 * node (one pass, reporting issues with their positions) and DESCRIBES itself as JSON Schema
 * (draft 2020-12, published for editors). Nothing else states the file's shape.
 *
 * A decoder returns the typed value, or `BAD` after reporting why. A mapping or list with a
 * bad part is `BAD` as a whole, so checks across fields only ever see clean values: no
 * "taint" bookkeeping is needed to report one mistake once. Leaf decoders: scalars.ts.
 */
import { fromJson, type Json, type YNode } from './yaml.js';
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

  /** A location by path; `frozen` for decoding a default in place of a value. */
  static of(issues: Issues, path: Path, offset: number | undefined, frozen = false): At {
    return new At(issues, path, undefined, offset, frozen);
  }

  get path(): Path {
    const base = this.parent instanceof At ? this.parent.path : this.parent;
    return (this.pathCache ??= this.seg === undefined ? base : [...base, this.seg]);
  }

  /** `formatPath(path)`, built from the parent's text. */
  get pathText(): string {
    const p = this.parent;
    return (this.textCache ??= p instanceof At && this.seg !== undefined ? p.pathText + formatPath([this.seg], p.pathText === '') : formatPath(this.path));
  }

  child(seg: Seg, offset: number | undefined): At {
    return this.frozen ? this : new At(this.issues, this, seg, offset ?? this.offset);
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
      this.defs[name] = {}; // reserved first: a definition may refer to itself
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

function describeValue(node: YNode): string {
  if (node.kind !== 'scalar') return node.kind === 'seq' ? 'a list' : 'a mapping';
  const v = node.value;
  return v === null ? 'empty (null)' : typeof v === 'string' ? `the string ${JSON.stringify(excerpt(v))}` : typeof v === 'number' ? `the number ${v}` : String(v);
}

export function typeError(node: YNode, at: At, expected: string, examples?: readonly Json[]): Bad {
  const ex = examples?.[0];
  return at.fail(`${subjectOf(at.path)} must be ${expected}, not ${describeValue(node)}`, ex === undefined ? undefined : `for example ${code(typeof ex === 'string' ? ex : JSON.stringify(ex))}`);
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
      return typeof s['type'] === 'string' ? { ...s, type: [s['type'], 'null'] } : { anyOf: [s, { type: 'null' }] };
    },
  };
}

/** `d` with its location, for messages raised after decoding. */
export const located = <T>(d: Decoder<T>): Decoder<Located<T>> => refine(d, (value, at) => ({ value, loc: at }));

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
  /** Items must differ in `key`; `label` names one in the message, which goes at `loc` (default: the item). */
  readonly unique?: { readonly key: (v: T) => string; readonly label: (v: T, text: string) => string; readonly loc?: (v: T) => Loc };
}

const textOf = (n: YNode): string => (n.kind === 'scalar' ? n.source.trim() : '');

export function list<T>(item: Decoder<T>, rules: ListRules<T> = {}): Decoder<T[]> {
  const min = rules.minItems ?? 0;
  return {
    decode(node, at) {
      if (node.kind !== 'seq') return typeError(node, at, 'a list');
      if (node.items.length < min) {
        const [why, fix] = rules.empty ?? ['', 'add an item or remove the key'];
        return at.fail(`${subjectOf(at.path)} must list at least ${min} item${min === 1 ? '' : 's'}${why === '' ? '' : `: ${why}`}`, fix);
      }
      const out: T[] = [];
      const seen = new Map<string, { loc: Loc; node: YNode }>();
      const u = rules.unique;
      let bad = false;
      for (let i = 0; i < node.items.length; i++) {
        const n = node.items[i] as YNode;
        const ia = at.child(i, n.offset);
        const v = item.decode(n, ia);
        if (v === BAD) {
          bad = true;
          continue;
        }
        const key = u?.key(v);
        const first = key === undefined ? undefined : seen.get(key);
        if (u === undefined || key === undefined || first === undefined) {
          if (key !== undefined) seen.set(key, { loc: u?.loc?.(v) ?? ia, node: n });
          out.push(v);
          continue;
        }
        const [text, firstText] = [textOf(n), textOf(first.node)];
        const line = at.issues.line(first.loc) ?? '?';
        const same = text === firstText || text === '' ? `is listed twice (also at line ${line})` : `is the same as ${code(firstText)} (line ${line})`;
        at.issues.add(u.loc?.(v) ?? ia, `${u.label(v, text)} ${same}`, 'remove one of them');
        bad = true;
      }
      return bad ? BAD : out;
    },
    schema: (defs) => ({ type: 'array', items: item.schema(defs), ...(rules.minItems === undefined ? {} : { minItems: min }) }),
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
export const required = <T>(decoder: Decoder<T>, hint: string, meta: FieldMeta): Field<T, 'present'> => ({ decoder, presence: 'present', required: hint, ...meta });
/** An optional field with a default, written as the file would write it. */
export const withDefault = <T>(decoder: Decoder<T>, dflt: Json, meta: FieldMeta): Field<T, 'present'> => ({ decoder, presence: 'present', default: dflt, ...meta });
/** An optional field without a default (undefined when absent). */
export const optional = <T>(decoder: Decoder<T>, meta: FieldMeta): Field<T, 'optional'> => ({ decoder, presence: 'optional', ...meta });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Fields = Record<string, Field<any, 'present' | 'optional'>>;

/** Where the parts of a decoded mapping were written. */
export interface Where<K extends string> {
  readonly self: Loc;
  /** True when the file wrote the key. */
  has(key: K): boolean;
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
  const scratch = At.of(new Issues('(default)', () => ({ line: 0, column: 0 })), at.path, at.offset, true);
  const v = field.decoder.decode(fromJson(field.default ?? null), scratch);
  if (v === BAD) throw new Error(`invalid default for ${formatPath(at.path)}: ${scratch.issues.list.map((i) => i.message).join('; ')}`);
  return v;
}

function unknownKey(key: string, known: readonly string[], at: At, noun: string): readonly [string, string | undefined] {
  const where = at.path.length === 0 ? 'at the top level' : `in ${noun}`;
  const fix =
    key === '<<'
      ? 'YAML merge keys (<<) are not supported: write the keys out, or alias whole values'
      : didYouMean(key, known, known.length > 0 ? `remove it; known keys here: ${known.join(', ')}` : 'remove it');
  return [`unknown key ${code(key)} ${where}`, fix];
}

export function obj<F extends Fields>(fields: F, rules: ObjRules = {}): Decoder<ObjOf<F>> {
  const known = Object.keys(fields);
  return {
    decode(node, at) {
      if (node.kind !== 'map') return typeError(node, at, 'a mapping (key: value)');
      const noun = rules.noun ?? (at.path.length === 0 ? 'the configuration' : at.pathText);
      const out: Record<string, unknown> = {};
      const values = new Map<string, Loc>();
      let bad = false;
      for (const pair of node.pairs) {
        const keyAt = at.child(pair.key, pair.keyOffset);
        const field = fields[pair.key];
        if (field === undefined) {
          const [message, fix] = rules.unknownKey?.(pair.key) ?? unknownKey(pair.key, known, at, noun);
          keyAt.fail(message, fix);
          continue;
        }
        const valueAt = pair.value.kind === 'scalar' && pair.value.empty ? keyAt : at.child(pair.key, pair.value.offset);
        values.set(pair.key, valueAt);
        const v = field.decoder.decode(pair.value, valueAt);
        if (v === BAD) bad = true;
        else out[pair.key] = v;
      }
      for (const [k, field] of Object.entries(fields)) {
        if (values.has(k)) continue;
        if (field.required !== undefined) bad = at.fail(`${noun} is missing required key ${code(k)}`, field.required) === BAD;
        else if (field.default !== undefined) out[k] = decodeDefault(field, at.child(k, undefined));
      }
      if (bad) return BAD;
      out['where'] = { self: at, has: (k: string) => values.has(k), value: (k: string) => values.get(k) ?? at.child(k, undefined) } satisfies Where<string>;
      return out as ObjOf<F>;
    },
    schema(defs) {
      const properties: Record<string, JsonSchema> = {};
      for (const [k, f] of Object.entries(fields)) {
        const dflt = f.default === undefined ? {} : { default: f.default };
        properties[k] = { ...f.decoder.schema(defs), description: f.description, ...dflt, ...(f.examples === undefined ? {} : { examples: [...f.examples] }), ...f.schema };
      }
      const req = known.filter((k) => fields[k]?.required !== undefined);
      const description = rules.description === undefined ? {} : { description: rules.description };
      return { type: 'object', ...description, additionalProperties: false, ...(req.length === 0 ? {} : { required: req }), properties, ...rules.schema };
    },
  };
}
