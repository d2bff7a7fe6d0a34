/**
 * A bounded reader for YAML files whose values must keep their source positions: the
 * configuration and the scenario files.
 *
 * - The file is opened without blocking (a FIFO cannot hang it), must be a regular file no
 *   larger than `maxBytes` (engine/config/files.ts), valid UTF-8 and free of NUL bytes.
 * - Nesting is measured on the concrete syntax tree before anything recursive runs, so deep
 *   nesting is a clear issue, not a stack overflow.
 * - Keys are unique per mapping (checked with a set, in linear time), and must be scalars.
 * - Aliases are resolved once, through an anchor map built in document order: an alias becomes
 *   a reference to the node its anchor names, so a list reused by a hundred aliases is stored
 *   once. The size and depth a document would have with every alias expanded are computed on
 *   the way and bounded ("billion laughs", YAML 1.2 §3.2.2.2 aliases).
 *
 * Issues carry file, line, column and key path; quoted values are cut to a short excerpt.
 */
import { Composer, LineCounter, Parser, isAlias, isMap, isNode, isScalar, isSeq } from 'yaml';
import type { CST } from 'yaml';
import { ConfigError } from '../errors.js';
import type { ConfigIssue } from '../errors.js';
import { isParseFailure } from '../ip.js';
import { describeSize, readBounded } from './files.js';
import { Issues, code, type Path } from './issues.js';

/** Bounds on what a YAML document may cost to read. */
export interface YamlLimits {
  /** Largest text accepted, in UTF-8 bytes. */
  readonly maxBytes: number;
  /** Deepest nesting of collections, in the text or through aliases. */
  readonly maxDepth: number;
  /** Most nodes the document may hold with every alias expanded. */
  readonly maxNodes: number;
}

export const YAML_LIMITS: YamlLimits = { maxBytes: 8 * 1024 * 1024, maxDepth: 64, maxNodes: 1_000_000 };

interface YBase {
  /** Offset of the node in the text; undefined for synthetic nodes (`fromJson`). */
  readonly offset: number | undefined;
}
export interface YScalar extends YBase {
  readonly kind: 'scalar';
  readonly value: string | number | boolean | null;
  /** The scalar as written (unquoted), for messages. */
  readonly source: string;
  /** `key:` with nothing after it. */
  readonly empty: boolean;
}
export interface YSeq extends YBase {
  readonly kind: 'seq';
  readonly items: readonly YNode[];
}
export interface YPair {
  readonly key: string;
  readonly keyOffset: number | undefined;
  readonly value: YNode;
}
export interface YMap extends YBase {
  readonly kind: 'map';
  readonly pairs: readonly YPair[];
}
/** A YAML node with aliases resolved: nodes reached through an alias are shared. */
export type YNode = YScalar | YSeq | YMap;

/** A read document: `root` is null when the text could not be read safely (see `issues`). */
export interface YamlDocument {
  readonly file: string;
  readonly root: YNode | null;
  readonly issues: readonly ConfigIssue[];
  /** 1-based line and column of a text offset. */
  position(offset: number): { readonly line: number; readonly column: number };
}


/** The deepest collection nesting of a CST, measured without recursion (stops past `limit`). */
function cstDepth(tokens: readonly CST.Token[], limit: number): { depth: number; offset: number } {
  const stack: [CST.Token, number][] = tokens.map((t) => [t, 0]);
  let deepest = { depth: 0, offset: 0 };
  for (let top = stack.pop(); top !== undefined && deepest.depth <= limit; top = stack.pop()) {
    const [token, depth] = top;
    if (token.type === 'document' && token.value) stack.push([token.value, depth]);
    if (token.type !== 'block-map' && token.type !== 'block-seq' && token.type !== 'flow-collection') continue;
    if (depth + 1 > deepest.depth) deepest = { depth: depth + 1, offset: token.offset };
    for (const item of token.items) {
      if ('key' in item && item.key) stack.push([item.key, depth + 1]);
      if (item.value) stack.push([item.value, depth + 1]);
    }
  }
  return deepest;
}

/** Size and depth of a node with every alias expanded. */
interface Stats {
  readonly size: number;
  readonly depth: number;
}

/**
 * Parses YAML text into positioned nodes. Never throws for bad input: every problem is an
 * issue, and `root` is null when the document cannot be used.
 */
export function readYaml(text: string, file: string, limits: YamlLimits = YAML_LIMITS): YamlDocument {
  const lc = new LineCounter();
  const position = (offset: number): { line: number; column: number } => {
    const p = lc.linePos(offset);
    return { line: p.line, column: p.col };
  };
  const issues = new Issues(file, position);
  // Duplicate keys are reported but not fatal: the first of them is kept.
  let fatal = false;
  const done = (root: YNode | null): YamlDocument => ({ file, root: fatal ? null : root, issues: issues.list, position });
  const fail = (offset: number | undefined, message: string, fix: string): YamlDocument => {
    issues.add({ path: [], offset }, message, fix);
    fatal = true;
    return done(null);
  };

  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > limits.maxBytes) return fail(undefined, `the file is ${describeSize(bytes)}, more than the limit of ${describeSize(limits.maxBytes)}`, 'split it or remove what it does not need');
  const nul = text.indexOf('\u0000');
  const tokens = [...new Parser(lc.addNewLine).parse(nul >= 0 ? text.slice(0, nul) : text)];
  if (nul >= 0) return fail(nul, 'the file contains a NUL byte: it is not a YAML text file', 'check that the path names a YAML file, not a binary one');
  const deepest = cstDepth(tokens, limits.maxDepth);
  if (deepest.depth > limits.maxDepth) return fail(deepest.offset, `nested too deeply (more than ${limits.maxDepth} levels of lists and mappings)`, 'flatten the structure');

  // uniqueKeys off: the library compares each key with every other; we use a set instead.
  const [doc, second] = [...new Composer({ uniqueKeys: false }).compose(tokens, true, text.length)];
  if (doc === undefined) return fail(undefined, 'the file holds no YAML document', 'write the configuration');
  if (second !== undefined) return fail(second.range[0], 'the file holds more than one YAML document (a second `---`)', 'keep one document per file');
  for (const e of [...doc.errors, ...doc.warnings]) {
    issues.add({ path: [], offset: e.pos[0] }, `YAML syntax error: ${e.message.split('\n')[0] ?? ''}`, 'fix the YAML syntax at this position');
  }
  fatal = issues.list.length > 0;
  if (fatal) return done(null);

  const stats = new WeakMap<YNode, Stats>();
  const anchors = new Map<string, YNode>();
  const open = new Set<string>();
  const scalar = (offset: number | undefined, value: YScalar['value'], source: string, empty = false): YScalar => {
    const n: YScalar = { kind: 'scalar', offset, value, source, empty };
    stats.set(n, { size: 1, depth: 0 });
    return n;
  };
  const collection = <N extends YSeq | YMap>(n: N, children: readonly YNode[]): N => {
    const s = children.map((c) => stats.get(c) ?? { size: 1, depth: 0 });
    stats.set(n, { size: s.reduce((sum, c) => sum + c.size, 1), depth: s.reduce((d, c) => Math.max(d, c.depth + 1), 0) });
    return n;
  };

  // Recursion follows the text's nesting, which cstDepth has bounded; an alias is a reference.
  const convert = (node: unknown, path: Path): YNode => {
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target !== undefined) return target;
      const inside = open.has(node.source);
      fatal = true;
      issues.add(
        { path, offset: node.range?.[0] },
        inside ? `alias ${code(`*${node.source}`)} is inside the node its anchor names` : `unknown alias ${code(`*${node.source}`)}`,
        inside ? 'a value cannot contain itself' : `define ${code(`&${node.source}`)} before using it`,
      );
      return scalar(undefined, null, '');
    }
    if (!isScalar(node) && !isMap(node) && !isSeq(node)) {
      fatal = true;
      issues.add({ path, offset: undefined }, 'unsupported YAML node', 'remove it');
      return scalar(undefined, null, '');
    }
    const offset = node.range?.[0];
    if (node.anchor !== undefined) open.add(node.anchor);
    let out: YNode;
    if (isMap(node)) {
      const pairs: YPair[] = [];
      const seen = new Map<string, number | undefined>();
      for (const pair of node.items) {
        const k = pair.key;
        const keyOffset = (isNode(k) ? k.range?.[0] : undefined) ?? offset;
        if (!isScalar(k) || typeof k.value === 'object') {
          fatal = true;
          issues.add({ path, offset: keyOffset }, 'a key must be a plain scalar (a name), not a list, mapping or alias', 'write `name: value`');
          continue;
        }
        const key = String(k.value);
        if (seen.has(key)) {
          const first = seen.get(key);
          const where = first === undefined ? '' : ` (first at line ${lc.linePos(first).line})`;
          issues.add({ path: [...path, key], offset: keyOffset }, `${code(key)} is defined twice in the same mapping${where}`, 'keep one of them: YAML keys must be unique');
          continue;
        }
        seen.set(key, keyOffset);
        const value = pair.value === null || pair.value === undefined ? scalar(keyOffset, null, '', true) : convert(pair.value, [...path, key]);
        pairs.push({ key, keyOffset, value });
      }
      out = collection({ kind: 'map', offset, pairs }, pairs.map((p) => p.value));
    } else if (isSeq(node)) {
      const items = node.items.map((item, i) => (item === null || item === undefined ? scalar(offset, null, '', true) : convert(item, [...path, i])));
      out = collection({ kind: 'seq', offset, items }, items);
    } else {
      const v = node.value;
      const src = typeof node.source === 'string' ? node.source : String(v);
      if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out = scalar(offset, v, src, v === null && src === '');
      else {
        fatal = true;
        issues.add({ path, offset }, `unsupported YAML value ${code(src)}${node.tag === undefined ? '' : ` (tag ${node.tag})`}`, 'write a string, number, true/false or null');
        out = scalar(offset, null, src);
      }
    }
    if (node.anchor !== undefined) {
      open.delete(node.anchor);
      anchors.set(node.anchor, out);
    }
    return out;
  };

  const root = doc.contents === null ? scalar(0, null, '', true) : convert(doc.contents, []);
  const s = stats.get(root) ?? { size: 1, depth: 0 };
  if (s.size > limits.maxNodes) return fail(undefined, `the aliases (*name) expand the document to more than ${limits.maxNodes} values`, 'use fewer aliases, or aliases of smaller values');
  if (s.depth > limits.maxDepth) return fail(undefined, `nested too deeply through aliases (more than ${limits.maxDepth} levels)`, 'use fewer nested aliases');
  return done(root);
}

/** The plain JavaScript value of a node (aliases expanded; `readYaml` bounded the expansion). */
export function toPlain(node: YNode): unknown {
  if (node.kind === 'scalar') return node.value;
  if (node.kind === 'seq') return node.items.map(toPlain);
  return Object.fromEntries(node.pairs.map((p) => [p.key, toPlain(p.value)]));
}

/** JSON-like values, as the JSON Schema writes defaults. */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json };

/** A synthetic, position-less node for a JSON value (defaults are decoded like written values). */
export function fromJson(value: Json): YNode {
  if (Array.isArray(value)) return { kind: 'seq', offset: undefined, items: value.map(fromJson) };
  if (typeof value === 'object' && value !== null) {
    const pairs = Object.entries(value as Record<string, Json>).map(([key, v]) => ({ key, keyOffset: undefined, value: fromJson(v) }));
    return { kind: 'map', offset: undefined, pairs };
  }
  const v = value as string | number | boolean | null;
  return { kind: 'scalar', offset: undefined, value: v, source: v === null ? 'null' : String(v), empty: false };
}

/**
 * Reads a text file for `readYaml`, refusing what is not a regular file of at most `maxBytes`
 * of UTF-8. Throws `ConfigError` (one issue, naming `what`) otherwise.
 */
export function readTextFile(file: string, what: string, maxBytes: number = YAML_LIMITS.maxBytes): string {
  const refuse = (why: string, fix?: string, cause?: unknown): ConfigError =>
    new ConfigError([{ file, path: '', message: `cannot read ${what}: ${why}`, ...(fix === undefined ? {} : { fix }) }], cause === undefined ? undefined : { cause });
  const bytes = readBounded(file, maxBytes);
  if (isParseFailure(bytes)) throw refuse(bytes.error, bytes.fix);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw refuse('it is not UTF-8 text', 'save it as UTF-8 (is it a binary file?)', err);
  }
}
