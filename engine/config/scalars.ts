/** Leaf decoders: strings, booleans, whole numbers and limits, closed sets, parsed texts. */
import { isParseFailure, type ParseFailure } from '../ip.js';
import { code, didYouMean, lastName, subjectOf } from './issues.js';
import { typeError, type At, type Bad, type Decoder, type Json, type JsonSchema } from './decode.js';
import type { YNode } from './yaml.js';

type Kind = 'string' | 'integer' | 'boolean';
const EXPECTED: Record<Kind, string> = { string: 'a string', integer: 'a whole number', boolean: 'true or false' };

function ofKind(v: unknown, kinds: readonly Kind[]): boolean {
  return (
    (typeof v === 'string' && kinds.includes('string')) ||
    (typeof v === 'number' && Number.isInteger(v) && kinds.includes('integer')) ||
    (typeof v === 'boolean' && kinds.includes('boolean'))
  );
}

/**
 * A scalar of the given JSON types, then `check`ed: the base of every leaf decoder. `schema`
 * is merged with the type (its `examples` also serve type errors).
 */
export function scalar<T>(kinds: readonly Kind[], check: (value: string | number | boolean, at: At) => T | Bad, schema: JsonSchema = {}): Decoder<T> {
  const examples = schema['examples'] as readonly Json[] | undefined;
  const expected = kinds.map((k) => EXPECTED[k]).join(' or ');
  return {
    decode: (node, at) =>
      node.kind === 'scalar' && node.value !== null && ofKind(node.value, kinds) ? check(node.value, at) : typeError(node, at, expected, examples),
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

export function string(rules: StringRules = {}): Decoder<string> {
  const { minLength, maxLength, singleLine } = rules;
  return scalar(
    ['string'],
    (v, at) => {
      const s = String(v);
      if (minLength !== undefined && s.trim().length < minLength) return at.fail(`${subjectOf(at.path)} must not be empty`, rules.emptyFix);
      if (maxLength !== undefined && s.length > maxLength) return at.fail(`${subjectOf(at.path)} is too long (at most ${maxLength} characters)`, 'shorten it');
      if (singleLine === true && /[\r\n]/.test(s)) return at.fail(`${subjectOf(at.path)} must be a single line`, 'remove the line breaks');
      return s;
    },
    { ...(minLength === undefined ? {} : { minLength }), ...(maxLength === undefined ? {} : { maxLength }), ...(singleLine === true ? { pattern: '^[^\\r\\n]*$' } : {}) },
  );
}

export const boolean = (): Decoder<boolean> => scalar(['boolean'], (v) => v === true);

/** A whole number in [min, max]; with `unlimited`, also the word `unlimited` in any case (→ null). */
function bounded<U extends boolean>(min: number, max: number, unlimited: U): Decoder<U extends true ? number | null : number> {
  const range = `from ${min} to ${max}${unlimited ? ', or unlimited' : ''}`;
  const schema = unlimited ? { pattern: caselessPattern(['unlimited']), examples: [min === 1 ? 5 : min, 'unlimited'] } : {};
  return scalar(
    unlimited ? ['integer', 'string'] : ['integer'],
    (v, at) => {
      if (typeof v === 'string') return v.trim().toLowerCase() === 'unlimited' ? null : at.fail(`${code(v)} is not a number or ${code('unlimited')}`, `write a whole number ${range}`);
      const n = Number(v);
      return n < min || n > max ? at.fail(`${subjectOf(at.path)} must be ${range}, not ${n}`, `use a value ${range}`) : n;
    },
    { minimum: min, maximum: max, ...schema },
  ) as Decoder<U extends true ? number | null : number>;
}

export const integer = (min: number, max: number): Decoder<number> => bounded(min, max, false);
export const limit = (min: number, max: number): Decoder<number | null> => bounded(min, max, true);

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
export function caseless<const W extends string>(words: readonly W[], unknown: (text: string) => readonly [string, string | undefined], description?: string): Decoder<W> {
  const byLower = new Map(words.map((w) => [w.toLowerCase(), w]));
  return scalar(
    ['string'],
    (v, at) => byLower.get(String(v).trim().toLowerCase()) ?? at.fail(...unknown(String(v))),
    { ...(description === undefined ? {} : { description }), pattern: caselessPattern(words), examples: [...words] },
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
