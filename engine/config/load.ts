/**
 * Loads and validates the configuration file.
 *
 *   1. YAML (`yaml` parseDocument with a LineCounter, so every value keeps its position).
 *      Syntax errors and duplicate keys become issues.
 *   2. JSON Schema (engine/config/schema.ts, ajv, allErrors). Each ajv error is turned into a
 *      human message at the line of the offending key or value, with a fix.
 *   3. Semantic checks in TypeScript: IP ranges, bindings, domains, addresses, identities,
 *      principals, rights, reply overrides, auth-mechanism rules and connector selection
 *      conflicts. Parts that failed step 2 are skipped here, so one mistake is reported once.
 *
 * All issues are collected and thrown together as one `ConfigError`.
 */
import { normaliseDomain as normaliseEnvelopeDomain } from '../address.js';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import type { ErrorObject, SchemaObject, ValidateFunction } from 'ajv/dist/2020.js';
import { LineCounter, isAlias, isMap, isNode, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node } from 'yaml';
import { ConfigError } from '../errors.js';
import type { ConfigIssue } from '../errors.js';
import { REPLY_CATALOGUE, REASONS, isReason } from '../replies.js';
import { RIGHTS, WELL_KNOWN_PRINCIPALS } from './types.js';
import type {
  AcceptedDomain,
  AcceptedDomainType,
  Ace,
  AuthMechanism,
  Binding,
  Config,
  ConnectorConfig,
  Dialect,
  IpRange,
  MessageRateSource,
  PermissionGroup,
  Reply,
  Right,
  ServerConfig,
  SourceRef,
  Usage,
  UserIdentity,
} from './types.js';
import {
  CONFIG_SCHEMA,
  ENHANCED_CODE_PATTERN,
  HEADER_PREFIX_PATTERN,
  RIGHT_PATTERN,
  SASL_PATTERN,
  SINGLE_LINE_PATTERN,
  UNLIMITED_PATTERN,
  UNSUPPORTED_AUTH_MECHANISMS,
} from './schema.js';
import { allAddresses, formatRange, isParseFailure, parseBinding, parseIp, parseIpRange } from './ip.js';
import type { ParseFailure } from './ip.js';
import { BYTE_SIZE_FORMS, BYTE_SIZE_PATTERN, GB, KB, formatByteSize, parseByteSize } from './units.js';

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/**
 * Parses and validates configuration text. `file` labels positions in issues and becomes
 * `Config.file`. Throws `ConfigError` listing every problem found.
 */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const ctx = new Context(file, doc, lineCounter);

  let fatal = false;
  for (const err of doc.errors) {
    if (err.code === 'DUPLICATE_KEY') ctx.duplicateKey(err.pos[0]);
    else if (err.code === 'MULTIPLE_DOCS') {
      fatal = true;
      ctx.addAt(err.pos[0], [], 'the file holds more than one YAML document (a second `---`)', 'keep one document per configuration file');
    } else {
      fatal = true;
      ctx.addAt(err.pos[0], ctx.pathAt(err.pos[0]), `YAML syntax error: ${err.message}`, 'fix the YAML syntax at this position');
    }
  }
  if (fatal) throw ctx.error();

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // yaml refuses alias explosions ("billion laughs") here.
    ctx.add([], `the YAML cannot be expanded: ${err instanceof Error ? err.message : String(err)}`, 'use fewer aliases (*name)');
    throw ctx.error();
  }
  const validate = validator();
  if (!validate(data)) {
    for (const e of validate.errors ?? []) ctx.ajvError(e, data);
  }

  const config = buildConfig(ctx, data);
  if (ctx.issues.length > 0) throw ctx.error();
  return config;
}

/** Reads and validates a configuration file. Throws `ConfigError` when it is unreadable or invalid. */
export async function loadConfig(file: string): Promise<Config> {
  const abs = resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
    const why =
      code === 'ENOENT'
        ? 'the file does not exist'
        : code === 'EISDIR'
          ? 'it is a directory, not a file'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : err instanceof Error
              ? err.message
              : String(err);
    throw new ConfigError(
      [{ file: abs, path: '', message: `cannot read the configuration file: ${why}`, fix: 'check the path and its permissions' }],
      { cause: err },
    );
  }
  return parseConfig(text, abs);
}

// ---------------------------------------------------------------------------------------------
// Schema validator
// ---------------------------------------------------------------------------------------------

let compiled: ValidateFunction | undefined;

function validator(): ValidateFunction {
  if (compiled === undefined) {
    const ajv = new Ajv2020.default({
      allErrors: true,
      verbose: true,
      strict: true,
      strictRequired: false,
      allowUnionTypes: true,
      // Each $defs entry compiles once instead of being inlined at every use: halves compile time.
      inlineRefs: false,
    });
    compiled = ajv.compile(CONFIG_SCHEMA as SchemaObject);
  }
  return compiled;
}

// ---------------------------------------------------------------------------------------------
// Paths, positions, suggestions
// ---------------------------------------------------------------------------------------------

type Seg = string | number;
type Path = readonly Seg[];

export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

function pointer(path: Path): string {
  return path.map((s) => `/${String(s).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** JSON Pointer → path; array indexes become numbers (decided by walking `data`). */
function pointerToPath(ptr: string, data: unknown): Seg[] {
  if (ptr === '') return [];
  const out: Seg[] = [];
  let cur = data;
  for (const raw of ptr.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      const i = Number(seg);
      out.push(i);
      cur = cur[i];
    } else {
      out.push(seg);
      cur = isRecord(cur) ? cur[seg] : undefined;
    }
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = cur;
  }
  return prev[b.length] ?? Math.max(a.length, b.length);
}

/** The candidate closest to `input` (case, `_`, `-` and spaces ignored), if any is close enough. */
export function closest(input: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[_\-\s]/g, '');
  const n = norm(input);
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const cn = norm(c);
    let d = levenshtein(n, cn);
    const limit = Math.max(2, Math.floor(Math.max(n.length, cn.length) / 3));
    if (d > limit) {
      let common = 0;
      while (common < n.length && common < cn.length && n[common] === cn[common]) common++;
      if (common >= 4 && common >= 0.6 * n.length) d = limit;
      else continue;
    }
    if (d < bestScore) {
      bestScore = d;
      best = c;
    }
  }
  return best;
}

const code = (s: string): string => `\`${s}\``;

function didYouMean(input: string, candidates: readonly string[], otherwise?: string): string | undefined {
  const c = closest(input, candidates);
  if (c !== undefined) return `did you mean ${code(c)}?`;
  return otherwise;
}

// ---------------------------------------------------------------------------------------------
// Context: issues and source positions
// ---------------------------------------------------------------------------------------------

interface Position {
  readonly line: number;
  readonly column: number;
}

class Context {
  readonly issues: ConfigIssue[] = [];
  /** JSON pointers of values the schema rejected; semantic checks skip them. */
  private readonly tainted: string[] = [];
  private readonly seen = new Set<string>();

  constructor(
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lc: LineCounter,
  ) {}

  error(): ConfigError {
    const sorted = this.issues
      .map((issue, i) => ({ issue, i }))
      .sort((a, b) => {
        const la = a.issue.line ?? Infinity;
        const lb = b.issue.line ?? Infinity;
        if (la !== lb) return la - lb;
        const ca = a.issue.column ?? 0;
        const cb = b.issue.column ?? 0;
        return ca !== cb ? ca - cb : a.i - b.i;
      })
      .map((x) => x.issue);
    return new ConfigError(sorted);
  }

  private position(offset: number): Position {
    const p = this.lc.linePos(offset);
    return { line: p.line, column: p.col };
  }

  private keyText(k: unknown): string | null {
    if (isScalar(k)) return String(k.value);
    return null;
  }

  /** The node at `path` (or its key node), else the deepest ancestor that exists. */
  private nodeAt(path: Path, key: boolean): Node | null {
    let cur: unknown = this.doc.contents;
    let last: Node | null = isNode(cur) ? cur : null;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      if (isAlias(cur)) cur = cur.resolve(this.doc);
      if (isMap(cur)) {
        const pair = cur.items.find((p) => this.keyText(p.key) === String(seg));
        if (pair === undefined) return last;
        const keyNode = isNode(pair.key) ? pair.key : last;
        if (key && i === path.length - 1) return keyNode;
        const v = pair.value;
        // `key:` with no value: point at the key.
        if (!isNode(v) || (isScalar(v) && v.value === null && (v.source ?? '') === '')) return keyNode;
        cur = v;
      } else if (isSeq(cur) && typeof seg === 'number') {
        cur = cur.items[seg];
      } else {
        return last;
      }
      if (!isNode(cur)) return last;
      last = cur;
    }
    return last;
  }

  pos(path: Path, key = false): Position | undefined {
    const node = this.nodeAt(path, key);
    const start = node?.range?.[0];
    return start === undefined ? undefined : this.position(start);
  }

  line(path: Path, key = false): number | undefined {
    return this.pos(path, key)?.line;
  }

  /** `file:line` for messages. */
  where(ref: SourceRef): string {
    return ref.line === undefined ? ref.file : `${ref.file}:${ref.line}`;
  }

  ref(path: Path, key = false): SourceRef {
    const line = this.line(path, key);
    const p = formatPath(path);
    return line === undefined ? { file: this.file, path: p } : { file: this.file, line, path: p };
  }

  add(path: Path, message: string, fix?: string, key = false): void {
    const p = this.pos(path, key);
    this.push(p, formatPath(path), message, fix);
  }

  addAt(offset: number, path: Path, message: string, fix?: string): void {
    this.push(this.position(offset), formatPath(path), message, fix);
  }

  private push(p: Position | undefined, path: string, message: string, fix: string | undefined): void {
    const dedupe = `${path}\u0000${message}`;
    if (this.seen.has(dedupe)) return;
    this.seen.add(dedupe);
    const issue: ConfigIssue = {
      file: this.file,
      ...(p === undefined ? {} : { line: p.line, column: p.column }),
      path,
      message,
      ...(fix === undefined ? {} : { fix }),
    };
    this.issues.push(issue);
  }

  /** The key path of the innermost node containing `offset`. */
  pathAt(offset: number): Seg[] {
    const out: Seg[] = [];
    let cur: unknown = this.doc.contents;
    for (;;) {
      if (isMap(cur)) {
        const pair = cur.items.find((p) => {
          const k = isNode(p.key) ? p.key.range : undefined;
          const v = isNode(p.value) ? p.value.range : undefined;
          const start = k?.[0] ?? v?.[0];
          const end = v?.[2] ?? k?.[2];
          return start !== undefined && end !== undefined && start <= offset && offset <= end;
        });
        if (pair === undefined) return out;
        out.push(this.keyText(pair.key) ?? '?');
        const v = pair.value;
        const k = isNode(pair.key) ? pair.key.range : undefined;
        if (k !== undefined && k !== null && offset <= k[2]) return out;
        cur = v;
      } else if (isSeq(cur)) {
        const i = cur.items.findIndex((n) => {
          const r = isNode(n) ? n.range : undefined;
          return r !== undefined && r !== null && r[0] <= offset && offset <= r[2];
        });
        if (i < 0) return out;
        out.push(i);
        cur = cur.items[i];
      } else {
        return out;
      }
    }
  }

  duplicateKey(offset: number): void {
    const path = this.pathAt(offset);
    const keyName = path[path.length - 1];
    const parentPath = path.slice(0, -1);
    let first: number | undefined;
    let parent: unknown = this.doc.contents;
    for (const seg of parentPath) {
      if (isMap(parent)) parent = parent.items.find((p) => this.keyText(p.key) === String(seg))?.value;
      else if (isSeq(parent) && typeof seg === 'number') parent = parent.items[seg];
      else parent = undefined;
    }
    if (isMap(parent)) {
      const firstPair = parent.items.find((p) => this.keyText(p.key) === String(keyName));
      const start = isNode(firstPair?.key) ? firstPair.key.range?.[0] : undefined;
      if (start !== undefined) first = this.position(start).line;
    }
    const name = keyName === undefined ? 'a key' : code(String(keyName));
    this.addAt(
      offset,
      path,
      `${name} is defined twice in the same mapping${first === undefined ? '' : ` (first at line ${first})`}`,
      'keep one of them: YAML keys must be unique',
    );
  }

  // --- ajv errors -------------------------------------------------------------------------------

  /** True when the schema found nothing wrong at, above or below `path`. */
  isClean(path: Path): boolean {
    if (this.tainted.length === 0) return true;
    const p = pointer(path);
    return !this.tainted.some((t) => t === p || t.startsWith(`${p}/`) || p.startsWith(`${t}/`));
  }

  /**
   * Schema problems of the object at `path`: `self` when the object itself (or an ancestor) is
   * wrong; `fields` = keys whose own value is wrong or missing; `any` = anything wrong below.
   */
  taintOf(path: Path): { self: boolean; fields: Set<string>; any: boolean } {
    const p = pointer(path);
    const fields = new Set<string>();
    let self = false;
    let below = false;
    for (const t of this.tainted) {
      if (t === p || p.startsWith(`${t}/`)) self = true;
      else if (t.startsWith(`${p}/`)) {
        below = true;
        const rest = t.slice(p.length + 1).split('/');
        const [field] = rest;
        if (rest.length === 1 && field !== undefined) fields.add(field.replace(/~1/g, '/').replace(/~0/g, '~'));
      }
    }
    return { self, fields, any: below || self };
  }

  /** The items of a list the schema accepted, with their paths (none when the list itself is wrong). */
  items<T>(path: Path, list: readonly T[] | undefined): [T, Path][] {
    if (list === undefined || !Array.isArray(list) || this.taintOf(path).self) return [];
    const out: [T, Path][] = [];
    list.forEach((item, i) => {
      const ip = [...path, i];
      if (this.isClean(ip)) out.push([item, ip]);
    });
    return out;
  }

  ajvError(e: ErrorObject, data: unknown): void {
    const path = pointerToPath(e.instancePath, data);
    const params: Record<string, unknown> = e.params;
    const parent: unknown = e.parentSchema;
    const value: unknown = e.data;
    const field = lastName(path);

    if (e.schemaPath.includes('/propertyNames') || e.keyword === 'if') return;

    switch (e.keyword) {
      case 'additionalProperties': {
        // Not tainted: nothing reads an unknown key, so the rest of the object is still checked.
        const extra = String(params['additionalProperty']);
        const keyPath = [...path, extra];
        if (isRecord(parent) && parent['propertyNames'] !== undefined) {
          this.add(keyPath, `unknown reply reason ${code(extra)}`, didYouMean(extra, REASONS, `known reasons: ${REASONS.join(', ')}`), true);
          return;
        }
        const known = isRecord(parent) && isRecord(parent['properties']) ? Object.keys(parent['properties']) : [];
        const where = path.length === 0 ? 'at the top level' : `in ${nounOf(path)}`;
        this.add(
          keyPath,
          `unknown key ${code(extra)} ${where}`,
          didYouMean(extra, known, known.length > 0 ? `remove it; known keys here: ${known.join(', ')}` : 'remove it'),
          true,
        );
        return;
      }
      case 'required': {
        const missing = String(params['missingProperty']);
        this.tainted.push(pointer([...path, missing]));
        const then = /\/allOf\/\d+\/then\//.test(e.schemaPath);
        if (then) {
          const usage = isRecord(value) ? String(value['usage']) : '?';
          this.add(
            path,
            `a connector with usage ${code(usage)} needs ${code(missing)}: this usage has no default`,
            REQUIRED_HINTS[missing] ?? `add ${code(`${missing}: ...`)}`,
          );
        } else {
          this.add(path, `${nounOf(path)} is missing required key ${code(missing)}`, REQUIRED_HINTS[missing] ?? `add ${code(`${missing}: ...`)}`);
        }
        return;
      }
      default:
        this.tainted.push(pointer(path));
    }

    const subject = subjectOf(path);
    switch (e.keyword) {
      case 'type': {
        const types = Array.isArray(params['type']) ? params['type'].map(String) : String(params['type']).split(',');
        const expected = types.map((t) => TYPE_NAMES[t] ?? t).join(' or ');
        const examples = isRecord(parent) && Array.isArray(parent['examples']) ? parent['examples'] : [];
        const ex = examples[0];
        this.add(
          path,
          `${subject} must be ${expected}, not ${describeValue(value)}`,
          ex === undefined ? undefined : `for example ${code(typeof ex === 'string' ? ex : JSON.stringify(ex))}`,
        );
        return;
      }
      case 'enum': {
        const allowed = Array.isArray(params['allowedValues']) ? params['allowedValues'].map(String) : [];
        const v = typeof value === 'string' ? value : JSON.stringify(value);
        if (field === 'auth_mechanisms' && typeof value === 'string') {
          const unsupported = UNSUPPORTED_AUTH_MECHANISMS.find((m) => m.toLowerCase() === value.toLowerCase());
          if (unsupported !== undefined) {
            this.add(
              path,
              `auth mechanism ${code(unsupported)} is not supported by mta-policy (${unsupported === 'Integrated' ? 'NTLM/Kerberos' : 'Exchange server-to-server authentication'} needs Active Directory)`,
              'servers authenticate with AUTH as identities in group "Exchange Servers"; for trusted servers by IP address use ExternalAuthoritative with permission group ExchangeServers',
            );
            return;
          }
        }
        const exact = allowed.find((a) => typeof value === 'string' && a.toLowerCase() === value.toLowerCase());
        this.add(
          path,
          `${code(v)} is not a valid value for ${field ?? 'this key'}; allowed: ${allowed.join(', ')}`,
          exact !== undefined ? `write ${code(exact)} (values are case-sensitive)` : didYouMean(v, allowed, `use one of ${allowed.join(', ')}`),
        );
        return;
      }
      case 'pattern': {
        const pattern = isRecord(parent) ? parent['pattern'] : undefined;
        const v = String(value);
        if (pattern === RIGHT_PATTERN) {
          this.add(path, `unknown extended right ${code(v)}`, didYouMean(v, RIGHTS, `use one of ${RIGHTS.join(', ')}`));
        } else if (pattern === SASL_PATTERN) {
          this.add(path, `${code(v)} is not a SASL mechanism mta-policy offers for BasicAuth`, 'use PLAIN or LOGIN');
        } else if (pattern === BYTE_SIZE_PATTERN) {
          this.add(path, `${code(v)} is not a size`, BYTE_SIZE_FORMS);
        } else if (pattern === HEADER_PREFIX_PATTERN) {
          this.add(path, `${code(v)} is not a header-name prefix`, 'use printable ASCII without spaces or colons, e.g. X-MS-Exchange-Organization-');
        } else if (pattern === ENHANCED_CODE_PATTERN) {
          this.add(path, `${code(v)} is not an enhanced status code`, 'write class.subject.detail with class 2, 4 or 5, e.g. 5.7.1');
        } else if (pattern === SINGLE_LINE_PATTERN) {
          this.add(path, `${subject} must be a single line`, 'remove the line breaks');
        } else if (pattern === UNLIMITED_PATTERN && isRecord(parent)) {
          this.add(
            path,
            `${code(v)} is not a number or ${code('unlimited')}`,
            `write a whole number from ${String(parent['minimum'])} to ${String(parent['maximum'])}, or unlimited`,
          );
        } else {
          this.add(path, `${code(v)} does not have the expected form`);
        }
        return;
      }
      case 'minimum':
      case 'maximum': {
        const min = isRecord(parent) ? parent['minimum'] : undefined;
        const max = isRecord(parent) ? parent['maximum'] : undefined;
        const unl = isRecord(parent) && Array.isArray(parent['type']) ? ', or unlimited' : '';
        const range =
          typeof min === 'number' && typeof max === 'number'
            ? `from ${min} to ${max}${unl}`
            : typeof min === 'number'
              ? `at least ${min}${unl}`
              : `at most ${String(max)}${unl}`;
        this.add(path, `${subject} must be ${range}, not ${JSON.stringify(value)}`, `use a value ${range}`);
        return;
      }
      case 'minItems': {
        const n = Number(params['limit']);
        const extra = field === 'remote_ip_ranges' ? ': an empty list matches no client' : field === 'bindings' ? ': an empty list accepts no connection' : '';
        this.add(path, `${subject} must list at least ${n} item${n === 1 ? '' : 's'}${extra}`, REQUIRED_HINTS[field ?? ''] ?? 'add an item or remove the key');
        return;
      }
      case 'minLength':
        this.add(path, `${subject} must not be empty`, REQUIRED_HINTS[field ?? '']);
        return;
      case 'maxLength':
        this.add(path, `${subject} is too long (at most ${String(params['limit'])} characters)`, 'shorten it');
        return;
      default:
        this.add(path, `${subject} ${e.message ?? 'is invalid'}`);
    }
  }
}

const NOUNS: Readonly<Record<string, string>> = {
  connectors: 'this connector',
  users: 'this user',
  accepted_domains: 'this accepted domain',
  extended_rights: 'this permission entry',
  replies: 'this reply override',
};

/** What the object at `path` is, for messages: `this connector`, `server`, … */
function nounOf(path: Path): string {
  if (path.length === 0) return 'the configuration';
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (typeof last === 'number' && typeof parent === 'string') return NOUNS[parent] ?? formatPath(path);
  if (typeof last === 'string' && parent === 'replies') return NOUNS['replies'] ?? formatPath(path);
  return formatPath(path);
}

/** The tail of a path from its last key: `bindings[1]`, `fqdn`; `the configuration` for the root. */
function subjectOf(path: Path): string {
  for (let i = path.length - 1; i >= 0; i--) {
    if (typeof path[i] === 'string') return formatPath(path.slice(i));
  }
  return path.length === 0 ? 'the configuration' : formatPath(path);
}

function lastName(path: Path): string | undefined {
  for (let i = path.length - 1; i >= 0; i--) {
    const s = path[i];
    if (typeof s === 'string') return s;
  }
  return undefined;
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: 'a mapping (key: value)',
  array: 'a list',
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
};

function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'empty (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return String(v);
  return typeof v;
}

const REQUIRED_HINTS: Readonly<Record<string, string>> = {
  server: 'add `server:` with at least `fqdn: smtp.example.com`',
  connectors: 'add `connectors:` with at least one connector (or `connectors: []`)',
  fqdn: 'add `fqdn: smtp.example.com`',
  name: 'add `name: ...`',
  usage: 'add `usage: client`, `internet`, `internal`, `partner` or `custom`',
  domain: 'add `domain: example.com`',
  principal: 'add `principal: anonymous` (or authenticated, user:NAME, group:NAME, ...)',
  code: 'add `code: 550`',
  enhanced: 'add `enhanced: 5.7.1` (`""` only for 2xx/3xx replies)',
  text: 'add `text: ...`',
  bindings: 'add `bindings: ["0.0.0.0:25"]`',
  remote_ip_ranges: 'add `remote_ip_ranges: ["192.0.2.0/24"]`',
  basic_auth_mechanisms: 'list PLAIN and/or LOGIN, or remove the key',
};

// ---------------------------------------------------------------------------------------------
// Raw (schema-checked) shapes
// ---------------------------------------------------------------------------------------------

interface RawReply {
  code: number;
  enhanced: string;
  text: string;
  disconnect?: boolean;
}
type RawReplies = Record<string, RawReply>;

interface RawServer {
  fqdn: string;
  dialect?: Dialect;
  local_addresses?: string[];
  domain_secure_domains?: string[];
  organization_header_prefixes?: string[];
  forest_header_prefixes?: string[];
  replies?: RawReplies;
}

interface RawAcceptedDomain {
  domain: string;
  type?: AcceptedDomainType;
}

interface RawUser {
  name: string;
  addresses?: string[];
  groups?: string[];
  send_as?: string[];
  logins?: string[];
}

interface RawAce {
  principal: string;
  allow?: string[];
  deny?: string[];
}

type RawLimit = number | string;

interface RawConnector {
  name: string;
  enabled?: boolean;
  usage: Usage;
  bindings?: string[];
  remote_ip_ranges?: string[];
  permission_groups?: (PermissionGroup | 'None')[];
  auth_mechanisms?: AuthMechanism[];
  require_tls?: boolean;
  fqdn?: string;
  banner?: string | null;
  dialect?: Dialect;
  max_message_size?: number | string;
  max_header_size?: number | string;
  max_recipients_per_message?: RawLimit;
  max_inbound_connection?: RawLimit;
  max_inbound_connection_per_source?: RawLimit;
  message_rate_limit?: RawLimit;
  message_rate_source?: MessageRateSource;
  max_logon_failures?: number;
  max_hop_count?: number;
  require_ehlo_domain?: boolean;
  domain_secure_enabled?: boolean;
  basic_auth_mechanisms?: string[];
  extended_rights?: RawAce[];
  replies?: RawReplies;
}

// ---------------------------------------------------------------------------------------------
// Names: domains, host names, addresses
// ---------------------------------------------------------------------------------------------

const BAD_DOMAIN_CHARS = /[\s%/\\?#@:[\]<>,;"'()!$&=+|^`{}~*]/u;
const DOMAIN_FIX = 'use dot-separated labels of letters, digits and hyphens, e.g. northwind.test';

/** Lower-case A-label without a trailing dot; `*.` prefix allowed only when `allowWildcard`. */
export function normaliseDomain(text: string, allowWildcard: boolean): { domain: string; wildcard: boolean } | ParseFailure {
  let t = text.trim();
  if (t.endsWith('.') && !t.endsWith('..')) t = t.slice(0, -1);
  let wildcard = false;
  if (t.startsWith('*.')) {
    if (!allowWildcard) return { error: `${code(text)}: a wildcard is not allowed here`, fix: 'write the domain name itself' };
    wildcard = true;
    t = t.slice(2);
  }
  if (t.includes('*')) {
    return {
      error: `${code(text)} has a \`*\` that is not the whole first label`,
      fix: allowWildcard ? 'write `*.example.com` for all subdomains of example.com' : 'write the domain name itself',
    };
  }
  if (t === '') return { error: `${code(text)} is not a domain name`, fix: DOMAIN_FIX };
  if (BAD_DOMAIN_CHARS.test(t)) return { error: `${code(text)} is not a valid domain name`, fix: DOMAIN_FIX };
  // The same conversion the engine applies to envelope domains at run time, so a configured
  // domain and a recipient's domain can never be normalised differently.
  const ascii = normaliseEnvelopeDomain(t);
  if (ascii === null) return { error: `${code(text)} is not a valid domain name`, fix: DOMAIN_FIX };
  const labels = ascii.split('.');
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) {
    return { error: `${code(text)} is an IP address or ends in a numeric label, not a domain name`, fix: DOMAIN_FIX };
  }
  return { domain: ascii, wildcard };
}

const LOCAL_RE = /^[^\s@<>()[\]\\,;:"\p{Cc}]+$/u;

/** `local@domain` → lower-cased `local@a-label`. */
export function normaliseAddress(text: string): string | ParseFailure {
  const t = text.trim();
  const at = t.lastIndexOf('@');
  const fix = 'write local@domain, e.g. nancy@northwind.test';
  if (at <= 0 || at === t.length - 1) return { error: `${code(text)} is not an email address`, fix };
  const local = t.slice(0, at);
  const domainText = t.slice(at + 1);
  if (!LOCAL_RE.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..') || local.length > 64) {
    return { error: `${code(text)} has an invalid local part ${code(local)}`, fix };
  }
  const d = normaliseDomain(domainText, false);
  if (isParseFailure(d)) return { error: `${code(text)}: ${d.error}`, ...(d.fix === undefined ? {} : { fix: d.fix }) };
  return `${local.toLowerCase()}@${d.domain}`;
}

function normaliseHost(text: string): string | ParseFailure {
  const d = normaliseDomain(text, false);
  if (isParseFailure(d)) {
    return { error: `${code(text)} is not a valid host name`, fix: 'write a fully qualified host name, e.g. smtp.northwind.test' };
  }
  return d.domain;
}

// ---------------------------------------------------------------------------------------------
// Building the Config
// ---------------------------------------------------------------------------------------------

const REMOTE_ALL = 'all';
interface UsageDefaults {
  readonly bindings: readonly string[] | null;
  readonly remote: typeof REMOTE_ALL | null;
  readonly groups: readonly PermissionGroup[];
  readonly auth: readonly AuthMechanism[];
}

export const USAGE_DEFAULTS: Readonly<Record<Usage, UsageDefaults>> = {
  client: {
    bindings: ['0.0.0.0:587', '[::]:587'],
    remote: REMOTE_ALL,
    groups: ['ExchangeUsers'],
    auth: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'],
  },
  internet: { bindings: null, remote: REMOTE_ALL, groups: ['AnonymousUsers'], auth: ['Tls'] },
  internal: {
    bindings: ['0.0.0.0:25', '[::]:25'],
    remote: null,
    groups: ['ExchangeServers', 'ExchangeLegacyServers'],
    auth: ['Tls', 'BasicAuth', 'BasicAuthRequireTLS'],
  },
  partner: { bindings: null, remote: null, groups: ['Partners'], auth: ['Tls'] },
  custom: { bindings: null, remote: null, groups: [], auth: ['Tls'] },
};

const DEFAULT_ORG_PREFIXES = ['X-MS-Exchange-Organization-', 'X-MTA-Policy-'];
const DEFAULT_FOREST_PREFIXES = ['X-MS-Exchange-Forest-'];
const RIGHT_BY_LOWER = new Map<string, Right>(RIGHTS.map((r) => [r.toLowerCase(), r]));
const EXCHANGE_PRINCIPAL_NAMES: Readonly<Record<string, string>> = {
  'nt authority\\anonymous logon': 'anonymous',
  'anonymous logon': 'anonymous',
  'nt authority\\authenticated users': 'authenticated',
  'authenticated users': 'authenticated',
  'ms exchange\\externally secured servers': 'externally_secured',
  'externally secured servers': 'externally_secured',
  'ms exchange\\partner servers': 'partner',
  'partner servers': 'partner',
  'exchange servers': 'exchange_servers',
  'exchangelegacyinterop': 'exchange_legacy_servers',
};

/** A shallow copy of `raw` without `fields` (values the schema rejected). */
function withoutFields<T extends object>(raw: T, fields: ReadonlySet<string>): T {
  if (fields.size === 0) return raw;
  return Object.fromEntries(Object.entries(raw).filter(([k]) => !fields.has(k))) as T;
}

function buildConfig(ctx: Context, data: unknown): Config {
  const root = isRecord(data) ? data : {};
  const server = buildServer(ctx, root['server']);
  const acceptedDomains = buildAcceptedDomains(ctx, root['accepted_domains']);
  const { users, identitiesClean } = buildUsers(ctx, root['identities']);
  const connectors = buildConnectors(ctx, root['connectors'], server, users, identitiesClean);
  checkConflicts(ctx, connectors);
  return { file: ctx.file, server, acceptedDomains, users, connectors: connectors.map((c) => c.config) };
}

// --- replies -------------------------------------------------------------------------------------

function buildReplies(ctx: Context, path: Path, raw: RawReplies | undefined): Record<string, Reply> {
  const out: Record<string, Reply> = {};
  if (raw === undefined) return out;
  for (const [reason, r] of Object.entries(raw)) {
    const p = [...path, reason];
    if (!ctx.isClean(p) || !isReason(reason)) continue;
    const cls = String(r.code)[0] ?? '';
    const dflt = REPLY_CATALOGUE[reason].exchange.enhanced;
    const example = dflt !== '' && dflt[0] === cls ? dflt : `${cls}.7.1`;
    if (r.enhanced === '') {
      if (r.code >= 400) {
        ctx.add([...p, 'enhanced'], `a ${cls}xx reply needs an enhanced status code`, `e.g. ${code(`enhanced: ${example}`)}`);
        continue;
      }
    } else if (r.enhanced[0] !== cls) {
      const fix = cls === '2' || cls === '4' || cls === '5' ? `use class ${cls}, e.g. ${code(example)}` : `use ${code('""')} for a ${cls}xx reply`;
      ctx.add([...p, 'enhanced'], `enhanced status code ${code(r.enhanced)} has class ${r.enhanced[0] ?? ''} but reply code ${r.code} is class ${cls}`, fix);
      continue;
    }
    out[reason] = {
      code: r.code,
      enhanced: r.enhanced,
      text: r.text,
      ...(r.disconnect === undefined ? {} : { disconnect: r.disconnect }),
    };
  }
  return out;
}

// --- server ------------------------------------------------------------------------------------------

function buildServer(ctx: Context, value: unknown): ServerConfig {
  const base: Path = ['server'];
  const raw: Partial<RawServer> = isRecord(value) ? (value as Partial<RawServer>) : {};
  let fqdn = 'localhost';
  if (ctx.isClean([...base, 'fqdn']) && typeof raw.fqdn === 'string') {
    const h = normaliseHost(raw.fqdn);
    if (isParseFailure(h)) ctx.add([...base, 'fqdn'], h.error, h.fix);
    else fqdn = h;
  }
  const localAddresses: string[] = [];
  {
    const seen = new Map<string, number>();
    for (const [text, p] of ctx.items([...base, 'local_addresses'], raw.local_addresses)) {
      const ip = parseIp(text);
      if (ip === null) {
        ctx.add(p, `${code(text)} is not an IP address`, 'write an IPv4 or IPv6 address, e.g. 192.0.2.10');
      } else if (ip.value === 0n) {
        ctx.add(p, `${code(text)} is the unspecified address, not one of this server's addresses`, 'list the actual addresses');
      } else if (seen.has(ip.text)) {
        ctx.add(p, `${code(ip.text)} is listed twice (also at line ${seen.get(ip.text) ?? '?'})`, 'remove one');
      } else {
        seen.set(ip.text, ctx.line(p) ?? 0);
        localAddresses.push(ip.text);
      }
    }
  }
  const domainSecureDomains: string[] = [];
  {
    const seen = new Map<string, number>();
    for (const [text, p] of ctx.items([...base, 'domain_secure_domains'], raw.domain_secure_domains)) {
      const d = normaliseDomain(text, false);
      if (isParseFailure(d)) ctx.add(p, d.error, d.fix);
      else if (seen.has(d.domain)) ctx.add(p, `${code(d.domain)} is listed twice (also at line ${seen.get(d.domain) ?? '?'})`, 'remove one');
      else {
        seen.set(d.domain, ctx.line(p) ?? 0);
        domainSecureDomains.push(d.domain);
      }
    }
  }
  const dialect: Dialect = ctx.isClean([...base, 'dialect']) && raw.dialect !== undefined ? raw.dialect : 'exchange';
  const orgPrefixes =
    ctx.isClean([...base, 'organization_header_prefixes']) && raw.organization_header_prefixes !== undefined
      ? raw.organization_header_prefixes
      : DEFAULT_ORG_PREFIXES;
  const forestPrefixes =
    ctx.isClean([...base, 'forest_header_prefixes']) && raw.forest_header_prefixes !== undefined
      ? raw.forest_header_prefixes
      : DEFAULT_FOREST_PREFIXES;
  const replies = buildReplies(ctx, [...base, 'replies'], raw.replies);
  return {
    fqdn,
    dialect,
    localAddresses,
    domainSecureDomains,
    organizationHeaderPrefixes: [...orgPrefixes],
    forestHeaderPrefixes: [...forestPrefixes],
    replies,
  };
}

// --- accepted domains --------------------------------------------------------------------------------

function buildAcceptedDomains(ctx: Context, value: unknown): AcceptedDomain[] {
  const out: AcceptedDomain[] = [];
  if (!Array.isArray(value)) return out;
  const seen = new Map<string, number>();
  value.forEach((item: unknown, i) => {
    const p: Path = ['accepted_domains', i];
    const taint = ctx.taintOf(p);
    if (taint.self || taint.fields.has('domain')) return;
    const raw = withoutFields(item as RawAcceptedDomain, taint.fields);
    const d = normaliseDomain(raw.domain, true);
    if (isParseFailure(d)) {
      ctx.add([...p, 'domain'], d.error, d.fix);
      return;
    }
    const key = `${d.wildcard ? '*.' : ''}${d.domain}`;
    const other = seen.get(key);
    if (other !== undefined) {
      ctx.add([...p, 'domain'], `accepted domain ${code(key)} is listed twice (also at line ${other})`, 'remove one of them');
      return;
    }
    seen.set(key, ctx.line([...p, 'domain']) ?? 0);
    out.push({ domain: d.domain, wildcard: d.wildcard, type: raw.type ?? 'authoritative', text: raw.domain.trim(), source: ctx.ref(p) });
  });
  return out;
}

// --- users -------------------------------------------------------------------------------------------------

interface LoginClaim {
  readonly user: number;
  readonly path: Path;
  readonly kind: 'name' | 'address' | 'login';
}

function buildUsers(ctx: Context, value: unknown): { users: UserIdentity[]; identitiesClean: boolean } {
  let allClean = ctx.isClean(['identities']);
  const usersValue = isRecord(value) ? value['users'] : undefined;
  const users: UserIdentity[] = [];
  if (!Array.isArray(usersValue)) return { users, identitiesClean: allClean };
  const names = new Map<string, { line: number; name: string }>();
  const owners = new Map<string, { user: string; line: number }>();
  const logins = new Map<string, LoginClaim[]>();
  const userNames: string[] = [];
  const claim = (login: string, c: LoginClaim): void => {
    const list = logins.get(login) ?? [];
    list.push(c);
    logins.set(login, list);
  };

  usersValue.forEach((item: unknown, i) => {
    const p: Path = ['identities', 'users', i];
    const taint = ctx.taintOf(p);
    if (taint.any) allClean = false;
    if (taint.self || taint.fields.has('name')) return;
    const raw = withoutFields(item as RawUser, taint.fields);
    const idx = users.length;
    const name = raw.name.trim();
    if (name === '') {
      ctx.add([...p, 'name'], 'a user name must not be blank', REQUIRED_HINTS['name']);
      allClean = false;
      return;
    }
    const lower = name.toLowerCase();
    const prev = names.get(lower);
    if (prev !== undefined) {
      ctx.add([...p, 'name'], `user name ${code(name)} is already used by ${code(prev.name)} at line ${prev.line} (names are case-insensitive)`, 'rename one of them');
      allClean = false;
      return;
    }
    names.set(lower, { line: ctx.line([...p, 'name']) ?? 0, name });
    claim(lower, { user: idx, path: [...p, 'name'], kind: 'name' });

    const addresses: string[] = [];
    for (const [text, ap] of ctx.items([...p, 'addresses'], raw.addresses)) {
      const a = normaliseAddress(text);
      if (isParseFailure(a)) {
        ctx.add(ap, a.error, a.fix);
        continue;
      }
      if (addresses.includes(a)) {
        ctx.add(ap, `${code(a)} is listed twice for this user`, 'remove one');
        continue;
      }
      const owner = owners.get(a);
      if (owner !== undefined) {
        ctx.add(ap, `${code(a)} already belongs to user ${code(owner.user)} (line ${owner.line})`, 'an address belongs to one identity only; use send_as to let others send as it');
        continue;
      }
      owners.set(a, { user: name, line: ctx.line(ap) ?? 0 });
      addresses.push(a);
      claim(a, { user: idx, path: ap, kind: 'address' });
    }

    const groups: string[] = [];
    for (const [g, gp] of ctx.items([...p, 'groups'], raw.groups)) {
      const t = g.trim();
      if (t === '') ctx.add(gp, 'a group name must not be blank', 'remove it');
      else if (groups.some((x) => x.toLowerCase() === t.toLowerCase())) ctx.add(gp, `group ${code(t)} is listed twice for this user`, 'remove one');
      else groups.push(t);
    }

    const sendAs: string[] = [];
    for (const [text, sp] of ctx.items([...p, 'send_as'], raw.send_as)) {
      const a = normaliseAddress(text);
      if (isParseFailure(a)) ctx.add(sp, a.error, a.fix);
      else if (sendAs.includes(a)) ctx.add(sp, `${code(a)} is listed twice in send_as`, 'remove one');
      else if (!addresses.includes(a)) sendAs.push(a);
    }

    const userLogins = new Set<string>([lower, ...addresses]);
    for (const [l, lp] of ctx.items([...p, 'logins'], raw.logins)) {
      const t = l.trim().toLowerCase();
      if (t === '') ctx.add(lp, 'a login name must not be blank', 'remove it');
      else if (/[\s\p{Cc}]/u.test(t)) ctx.add(lp, `login name ${code(l)} contains white space or control characters`, 'remove them');
      else if (!userLogins.has(t)) {
        userLogins.add(t);
        claim(t, { user: idx, path: lp, kind: 'login' });
      }
    }

    userNames.push(name);
    users.push({ name, addresses, groups, sendAs, logins: [...userLogins], source: ctx.ref(p) });
  });

  for (const [login, claims] of logins) {
    const first = claims[0];
    if (first === undefined) continue;
    const reported = new Set<number>([first.user]);
    for (const c of claims.slice(1)) {
      if (reported.has(c.user)) continue;
      reported.add(c.user);
      if (c.kind === 'address' && first.kind === 'address') continue; // reported as an address conflict
      const firstUser = users[first.user]?.name ?? '?';
      ctx.add(
        c.path,
        `login name ${code(login)} already identifies user ${code(firstUser)} (line ${ctx.line(first.path) ?? '?'})`,
        'each login name (user name, address or explicit login) must identify one user only',
      );
    }
  }
  return { users, identitiesClean: allClean };
}

// --- connectors -----------------------------------------------------------------------------------------

interface BuiltConnector {
  readonly index: number;
  readonly config: ConnectorConfig;
}

function parseLimit(v: RawLimit | undefined, dflt: number | null): number | null {
  if (v === undefined) return dflt;
  if (typeof v === 'number') return v;
  return null; // the schema admits only `unlimited` as a string
}

function buildConnectors(
  ctx: Context,
  value: unknown,
  server: ServerConfig,
  users: readonly UserIdentity[],
  identitiesClean: boolean,
): BuiltConnector[] {
  const out: BuiltConnector[] = [];
  if (!Array.isArray(value)) return out;
  const names = new Map<string, { line: number; name: string }>();
  const userNames = new Map(users.map((u) => [u.name.toLowerCase(), u.name]));
  const groupNames = new Map<string, string>();
  for (const u of users) for (const g of u.groups) if (!groupNames.has(g.toLowerCase())) groupNames.set(g.toLowerCase(), g);
  const lookups: PrincipalLookups = { userNames, groupNames, reliable: identitiesClean };

  value.forEach((item: unknown, i) => {
    const p: Path = ['connectors', i];
    const taint = ctx.taintOf(p);
    if (taint.self || taint.fields.has('name') || taint.fields.has('usage')) return;
    const raw = withoutFields(item as RawConnector, taint.fields);
    const name = raw.name.trim();
    if (name === '') {
      ctx.add([...p, 'name'], 'a connector name must not be blank', REQUIRED_HINTS['name']);
      return;
    }
    const prev = names.get(name.toLowerCase());
    if (prev !== undefined) {
      ctx.add([...p, 'name'], `connector name ${code(name)} is already used by ${code(prev.name)} at line ${prev.line} (names are case-insensitive)`, 'rename one of them');
    } else {
      names.set(name.toLowerCase(), { line: ctx.line([...p, 'name']) ?? 0, name });
    }
    const built = buildConnector(ctx, p, raw, name, server, lookups);
    // A connector with schema errors is checked as far as possible but takes no part in the
    // conflict check: its defaults would stand in for the values that were wrong.
    if (built !== null && !taint.any) out.push({ index: i, config: built });
  });
  return out;
}

interface PrincipalLookups {
  readonly userNames: ReadonlyMap<string, string>;
  readonly groupNames: ReadonlyMap<string, string>;
  /** False when identities had errors: then unknown user/group names are not reported. */
  readonly reliable: boolean;
}

function buildConnector(ctx: Context, p: Path, raw: RawConnector, name: string, server: ServerConfig, lookups: PrincipalLookups): ConnectorConfig | null {
  const before = ctx.issues.length;
  const usage = raw.usage;
  const defaults = USAGE_DEFAULTS[usage];
  const usageRef = ctx.ref([...p, 'usage']);

  // Cross-field rules are checked only when every field they involve passed the schema.
  const clean = (...keys: string[]): boolean => keys.every((k) => ctx.isClean([...p, k]));

  // Bindings.
  const bindings: Binding[] = [];
  const bindingLines = new Map<string, { line: number; text: string }>();
  if (raw.bindings !== undefined) {
    for (const [text, bp] of ctx.items([...p, 'bindings'], raw.bindings)) {
      const b = parseBinding(text);
      if (isParseFailure(b)) {
        ctx.add(bp, b.error, b.fix);
        continue;
      }
      const dup = bindingLines.get(b.text);
      if (dup !== undefined) {
        const same = dup.text.trim() === text.trim() ? `binding ${code(b.text)} is listed twice` : `binding ${code(text.trim())} is the same as ${code(dup.text.trim())}`;
        ctx.add(bp, `${same} (line ${dup.line})`, 'remove one of them');
        continue;
      }
      bindingLines.set(b.text, { line: ctx.line(bp) ?? 0, text });
      bindings.push({ text: b.text, ip: b.ip, family: b.family, port: b.port, source: ctx.ref(bp) });
    }
  } else {
    for (const text of defaults.bindings ?? []) {
      const b = parseBinding(text);
      if (!isParseFailure(b)) bindings.push({ text: b.text, ip: b.ip, family: b.family, port: b.port, source: usageRef });
    }
  }

  // Remote IP ranges.
  const remoteIpRanges: IpRange[] = [];
  const rangeLines = new Map<string, { line: number; text: string }>();
  if (raw.remote_ip_ranges !== undefined) {
    for (const [text, rp] of ctx.items([...p, 'remote_ip_ranges'], raw.remote_ip_ranges)) {
      const r = parseIpRange(text);
      if (isParseFailure(r)) {
        ctx.add(rp, r.error, r.fix);
        continue;
      }
      const key = `${r.family}:${r.first}:${r.last}`;
      const dup = rangeLines.get(key);
      if (dup !== undefined) {
        const same = dup.text.trim() === text.trim() ? `remote range ${code(text.trim())} is listed twice` : `remote range ${code(text.trim())} is the same as ${code(dup.text.trim())}`;
        ctx.add(rp, `${same} (line ${dup.line})`, 'remove one of them');
        continue;
      }
      rangeLines.set(key, { line: ctx.line(rp) ?? 0, text });
      remoteIpRanges.push({ text: text.trim(), family: r.family, first: r.first, last: r.last, source: ctx.ref(rp) });
    }
  } else if (defaults.remote === REMOTE_ALL) {
    for (const fam of [4, 6] as const) {
      const r = allAddresses(fam);
      remoteIpRanges.push({ text: formatRange(r), family: fam, first: r.first, last: r.last, source: usageRef });
    }
  }

  // Permission groups.
  const groupsPath = [...p, 'permission_groups'];
  const rawGroups = raw.permission_groups;
  const permissionGroups: PermissionGroup[] = [];
  if (rawGroups === undefined) permissionGroups.push(...defaults.groups);
  else {
    for (const [g, gp] of ctx.items(groupsPath, rawGroups)) {
      if (g === 'None') {
        if (rawGroups.length > 1) ctx.add(gp, '`None` must be the only permission group', 'remove `None`, or remove the other groups');
      } else if (permissionGroups.includes(g)) {
        ctx.add(gp, `permission group ${code(g)} is listed twice`, 'remove one');
      } else {
        permissionGroups.push(g);
      }
    }
  }

  // Auth mechanisms.
  const authPath = [...p, 'auth_mechanisms'];
  const authMechanisms: AuthMechanism[] = [];
  const rawAuth = raw.auth_mechanisms;
  const authItemPath = new Map<AuthMechanism, Path>();
  if (rawAuth === undefined) authMechanisms.push(...defaults.auth);
  else {
    for (const [m, ap] of ctx.items(authPath, rawAuth)) {
      if (authMechanisms.includes(m)) {
        ctx.add(ap, `auth mechanism ${code(m)} is listed twice`, 'remove one');
        continue;
      }
      authMechanisms.push(m);
      authItemPath.set(m, ap);
    }
    if (rawAuth.length === 0) authMechanisms.push('None');
  }
  const authAt = (m: AuthMechanism): Path => authItemPath.get(m) ?? authPath;
  if (clean('auth_mechanisms')) {
    if (authMechanisms.includes('None') && authMechanisms.length > 1) {
      ctx.add(authAt('None'), '`None` must be the only auth mechanism', 'remove `None`, or remove the other mechanisms');
    }
    if (authMechanisms.includes('BasicAuthRequireTLS')) {
      const missing = (['BasicAuth', 'Tls'] as const).filter((m) => !authMechanisms.includes(m));
      if (missing.length > 0) {
        ctx.add(authAt('BasicAuthRequireTLS'), `\`BasicAuthRequireTLS\` requires ${missing.map(code).join(' and ')}`, `add ${missing.join(' and ')} to auth_mechanisms`);
      }
    }
  }
  if (clean('auth_mechanisms', 'permission_groups') && authMechanisms.includes('ExternalAuthoritative') && !permissionGroups.includes('ExchangeServers')) {
    ctx.add(
      authAt('ExternalAuthoritative'),
      '`ExternalAuthoritative` requires permission group `ExchangeServers`',
      'add ExchangeServers to permission_groups (the connection is then treated as an externally secured Exchange server)',
    );
  }
  const hasTls = authMechanisms.includes('Tls');
  const requireTls = raw.require_tls ?? false;
  if (clean('auth_mechanisms', 'require_tls') && requireTls && !hasTls) {
    ctx.add([...p, 'require_tls'], '`require_tls: true` requires auth mechanism `Tls` (STARTTLS must be offered)', 'add Tls to auth_mechanisms or set require_tls: false');
  }
  const domainSecureEnabled = raw.domain_secure_enabled ?? permissionGroups.includes('Partners');
  if (clean('auth_mechanisms', 'permission_groups', 'domain_secure_enabled') && domainSecureEnabled && !hasTls) {
    if (raw.domain_secure_enabled !== undefined) {
      ctx.add([...p, 'domain_secure_enabled'], '`domain_secure_enabled: true` requires auth mechanism `Tls`', 'add Tls to auth_mechanisms or set domain_secure_enabled: false');
    } else {
      ctx.add(
        rawAuth !== undefined ? authPath : groupsPath,
        'permission group `Partners` turns on Domain Secure, which requires auth mechanism `Tls`',
        'add Tls to auth_mechanisms, or set domain_secure_enabled: false',
      );
    }
  }

  // FQDN, banner, dialect.
  let fqdn = server.fqdn;
  if (raw.fqdn !== undefined) {
    const h = normaliseHost(raw.fqdn);
    if (isParseFailure(h)) ctx.add([...p, 'fqdn'], h.error, h.fix);
    else fqdn = h;
  }
  const banner = raw.banner ?? null;
  if (banner !== null && /^\s*[2-5][0-9][0-9](?:[ -]|$)/.test(banner)) {
    ctx.add([...p, 'banner'], 'the banner must not start with a reply code', 'write only the text; mta-policy sends `220 ` before it');
  }
  const dialect = raw.dialect ?? server.dialect;

  // Sizes.
  const size = (key: 'max_message_size' | 'max_header_size', dflt: number, min: number, max: number): number | null => {
    const v = raw[key];
    if (v === undefined) return dflt;
    const s = parseByteSize(v);
    if (isParseFailure(s)) {
      ctx.add([...p, key], s.error, s.fix);
      return dflt;
    }
    if (s.bytes !== null && (s.bytes < min || s.bytes > max)) {
      ctx.add(
        [...p, key],
        `${key} must be from ${formatByteSize(min)} to ${formatByteSize(max)}, or unlimited; ${code(String(v))} is ${formatByteSize(s.bytes)}`,
        `use a size from ${formatByteSize(min)} to ${formatByteSize(max)}`,
      );
    }
    return s.bytes;
  };
  const maxMessageSize = size('max_message_size', 36 * 1024 * KB, 64 * KB, 2 * GB);
  const maxHeaderSize = size('max_header_size', 256 * KB, KB, 2 * GB);

  // Basic auth mechanisms.
  const basicAuthMechanisms: string[] = [];
  if (raw.basic_auth_mechanisms === undefined) basicAuthMechanisms.push('PLAIN', 'LOGIN');
  else {
    for (const [m, mp] of ctx.items([...p, 'basic_auth_mechanisms'], raw.basic_auth_mechanisms)) {
      const up = m.toUpperCase();
      if (basicAuthMechanisms.includes(up)) ctx.add(mp, `${code(up)} is listed twice`, 'remove one');
      else basicAuthMechanisms.push(up);
    }
  }

  // Extended rights.
  const extendedRights: Ace[] = [];
  for (const [ace, ep] of ctx.items([...p, 'extended_rights'], raw.extended_rights)) {
    const principal = normalisePrincipal(ctx, [...ep, 'principal'], ace.principal, lookups);
    const rights = (key: 'allow' | 'deny'): Right[] => {
      const out: Right[] = [];
      for (const [text, rp] of ctx.items([...ep, key], ace[key])) {
        const r = RIGHT_BY_LOWER.get(text.trim().toLowerCase());
        if (r === undefined) continue; // reported by the schema
        if (out.includes(r)) ctx.add(rp, `${code(r)} is listed twice`, 'remove one');
        else out.push(r);
      }
      return out;
    };
    const allow = rights('allow');
    const deny = rights('deny');
    if ((ace.allow ?? []).length === 0 && (ace.deny ?? []).length === 0) {
      ctx.add(ep, 'this entry neither allows nor denies anything', 'add `allow: [...]` and/or `deny: [...]` with extended rights');
      continue;
    }
    for (const r of allow) {
      if (deny.includes(r)) {
        const k = (ace.allow ?? []).findIndex((t) => t.trim().toLowerCase() === r.toLowerCase());
        ctx.add([...ep, 'allow', k], `${code(r)} is both allowed and denied in the same entry (deny would win)`, 'remove it from one of the lists');
      }
    }
    if (principal !== null) extendedRights.push({ principal, allow, deny, source: ctx.ref(ep) });
  }

  const replies = buildReplies(ctx, [...p, 'replies'], raw.replies);
  if (ctx.issues.length > before) return null;

  return {
    name,
    enabled: raw.enabled ?? true,
    usage,
    bindings,
    remoteIpRanges,
    permissionGroups,
    authMechanisms,
    requireTls,
    fqdn,
    banner,
    dialect,
    maxMessageSize,
    maxHeaderSize,
    maxRecipientsPerMessage: parseLimit(raw.max_recipients_per_message, 200),
    maxInboundConnection: parseLimit(raw.max_inbound_connection, 5000),
    maxInboundConnectionPerSource: parseLimit(raw.max_inbound_connection_per_source, 20),
    messageRateLimit: parseLimit(raw.message_rate_limit, usage === 'client' ? 5 : null),
    messageRateSource: raw.message_rate_source ?? (usage === 'client' ? 'user' : 'ip_address'),
    maxLogonFailures: raw.max_logon_failures ?? 3,
    maxHopCount: raw.max_hop_count ?? 30,
    requireEhloDomain: raw.require_ehlo_domain ?? false,
    domainSecureEnabled,
    basicAuthMechanisms,
    extendedRights,
    replies,
    source: ctx.ref(p),
  };
}

function normalisePrincipal(ctx: Context, path: Path, text: string, lookups: PrincipalLookups): string | null {
  const t = text.trim();
  const lower = t.toLowerCase();
  if ((WELL_KNOWN_PRINCIPALS as readonly string[]).includes(lower)) return lower;
  const colon = t.indexOf(':');
  const kind = colon < 0 ? '' : lower.slice(0, colon).trim();
  if (kind === 'user' || kind === 'group') {
    const name = t.slice(colon + 1).trim();
    if (name === '') {
      ctx.add(path, `principal ${code(t)} names no ${kind}`, `write ${kind}:NAME`);
      return null;
    }
    const table = kind === 'user' ? lookups.userNames : lookups.groupNames;
    if (table.has(name.toLowerCase()) || !lookups.reliable) return `${kind}:${name.toLowerCase()}`;
    const known = [...table.values()];
    const hint = kind === 'user' ? 'add the user under identities.users' : 'add the group to a user under identities.users';
    ctx.add(
      path,
      kind === 'user' ? `principal ${code(t)}: there is no user named ${code(name)}` : `principal ${code(t)}: no user is in group ${code(name)}`,
      didYouMean(name, known, hint)?.replace(/`([^`]*)`\?$/, `\`${kind}:$1\`?`),
    );
    return null;
  }
  const exchangeName = EXCHANGE_PRINCIPAL_NAMES[lower];
  if (exchangeName !== undefined) {
    ctx.add(path, `unknown principal ${code(t)}`, `write ${code(exchangeName)}, mta-policy's name for it`);
    return null;
  }
  ctx.add(
    path,
    `unknown principal ${code(t)}`,
    didYouMean(t, WELL_KNOWN_PRINCIPALS, `use one of ${WELL_KNOWN_PRINCIPALS.join(', ')}, user:NAME or group:NAME`),
  );
  return null;
}

// ---------------------------------------------------------------------------------------------
// Connector selection conflicts (Exchange refuses these at configuration time)
// ---------------------------------------------------------------------------------------------

interface SweepItem {
  readonly conn: BuiltConnector;
  readonly rangeIndex: number;
  readonly range: IpRange;
  readonly binding: Binding;
  /** 0 = specific-IP group, 1 = wildcard group (cross sweeps only). */
  readonly side: 0 | 1;
}

const MAX_CONFLICT_REPORTS = 100;

function compareItems(a: SweepItem, b: SweepItem): number {
  if (a.range.first !== b.range.first) return a.range.first < b.range.first ? -1 : 1;
  if (a.range.last !== b.range.last) return a.range.last > b.range.last ? -1 : 1;
  return a.conn.index - b.conn.index;
}

/** First index in `active` (sorted by range.last ascending) whose last ≥ `v`. */
function lowerBound(active: readonly SweepItem[], v: bigint): number {
  let lo = 0;
  let hi = active.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const m = active[mid];
    if (m !== undefined && m.range.last < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

type ConflictKind = 'equal' | 'partial';

class ConflictReporter {
  private readonly seen = new Set<string>();
  private count = 0;
  private truncated = false;

  constructor(private readonly ctx: Context) {}

  private get full(): boolean {
    return this.count >= MAX_CONFLICT_REPORTS;
  }

  /** Records a conflict; returns false once the report is full (callers stop enumerating). */
  report(a: SweepItem, b: SweepItem, kind: ConflictKind): boolean {
    if (a.conn.index === b.conn.index) return true;
    const [x, y] = a.conn.index < b.conn.index ? [a, b] : [b, a];
    const key = `${x.conn.index}:${x.rangeIndex}|${y.conn.index}:${y.rangeIndex}`;
    if (this.seen.has(key)) return !this.full;
    if (this.full) {
      this.truncated = true;
      return false;
    }
    this.seen.add(key);
    this.count++;
    const ctx = this.ctx;
    const cx = x.conn.config;
    const cy = y.conn.config;
    const how = kind === 'equal' ? 'are equal' : 'partially overlap';
    const on =
      x.binding.text === y.binding.text
        ? `both listen on ${x.binding.text}`
        : `listen on ${x.binding.text} and ${y.binding.text}`;
    const message =
      `connectors ${code(cx.name)} (${ctx.where(cx.source)}) and ${code(cy.name)} (${ctx.where(cy.source)}) ${on}, ` +
      `and their remote ranges ${x.range.text} (${ctx.where(x.range.source)}) and ${y.range.text} (${ctx.where(y.range.source)}) ${how}: ` +
      'a client in the overlap would match both';
    const path = y.range.source.path;
    const line = y.range.source.line;
    ctx.issues.push({
      file: ctx.file,
      ...(line === undefined ? {} : { line }),
      path,
      message,
      fix: 'make one range contain the other, split the range, or bind one connector to a specific local IP',
    });
    return !this.full;
  }

  finish(): void {
    if (this.truncated) {
      this.ctx.issues.push({
        file: this.ctx.file,
        path: 'connectors',
        message: `there are more connector range conflicts than the ${MAX_CONFLICT_REPORTS} listed`,
        fix: 'fix the conflicts above and check again',
      });
    }
  }
}

/** Equal and partial overlaps among items on the same binding. `items` sorted by compareItems. */
function sweepSame(items: readonly SweepItem[], rep: ConflictReporter): void {
  let active: SweepItem[] = [];
  const equal = new Map<string, SweepItem>();
  for (const q of items) {
    const lo = lowerBound(active, q.range.first);
    if (lo > 0) active = active.slice(lo);
    const hi = lowerBound(active, q.range.last);
    // Every s in active[0, hi): s.first < q.first ≤ s.last < q.last — a partial overlap.
    for (let k = 0; k < hi; k++) {
      const s = active[k];
      if (s !== undefined && !rep.report(s, q, 'partial')) break;
    }
    const key = `${q.range.first}-${q.range.last}`;
    const e = equal.get(key);
    if (e === undefined) equal.set(key, q);
    else rep.report(e, q, 'equal');
    active.splice(hi, 0, q);
  }
}

/** Partial overlaps between a specific-IP binding's items (side 0) and the wildcard's (side 1). */
function sweepCross(items: readonly SweepItem[], rep: ConflictReporter): void {
  const active: [SweepItem[], SweepItem[]] = [[], []];
  for (const q of items) {
    const other = active[q.side === 0 ? 1 : 0];
    const lo = lowerBound(other, q.range.first);
    if (lo > 0) other.splice(0, lo);
    const hi = lowerBound(other, q.range.last);
    for (let k = 0; k < hi; k++) {
      const s = other[k];
      if (s !== undefined && !rep.report(s, q, 'partial')) break;
    }
    const own = active[q.side];
    own.splice(lowerBound(own, q.range.last), 0, q);
  }
}

function mergeSorted(a: readonly SweepItem[], b: readonly SweepItem[]): SweepItem[] {
  const out: SweepItem[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (y === undefined || (x !== undefined && compareItems(x, y) <= 0)) {
      if (x !== undefined) out.push(x);
      i++;
    } else {
      out.push(y);
      j++;
    }
  }
  return out;
}

function checkConflicts(ctx: Context, connectors: readonly BuiltConnector[]): void {
  // (port, family) → local ip or '*' → items.
  const groups = new Map<string, Map<string, SweepItem[]>>();
  for (const conn of connectors) {
    if (!conn.config.enabled) continue;
    for (const binding of conn.config.bindings) {
      const pf = `${binding.port}/${binding.family}`;
      let byIp = groups.get(pf);
      if (byIp === undefined) {
        byIp = new Map();
        groups.set(pf, byIp);
      }
      const ipKey = binding.ip ?? '*';
      let list = byIp.get(ipKey);
      if (list === undefined) {
        list = [];
        byIp.set(ipKey, list);
      }
      conn.config.remoteIpRanges.forEach((range, rangeIndex) => {
        if (range.family === binding.family) list.push({ conn, rangeIndex, range, binding, side: binding.ip === null ? 1 : 0 });
      });
    }
  }
  const rep = new ConflictReporter(ctx);
  for (const byIp of groups.values()) {
    for (const list of byIp.values()) list.sort(compareItems);
    for (const list of byIp.values()) sweepSame(list, rep);
    const wildcard = byIp.get('*');
    if (wildcard === undefined || wildcard.length === 0) continue;
    for (const [ip, list] of byIp) {
      if (ip !== '*') sweepCross(mergeSorted(list, wildcard), rep);
    }
  }
  rep.finish();
}
