/** Collects configuration issues and maps key paths to source positions in the YAML document. */
import { LineCounter, isAlias, isMap, isNode, isScalar, isSeq } from 'yaml';
import type { Document, Node } from 'yaml';
import type { ErrorObject } from 'ajv/dist/2020.js';
import { ConfigError } from '../errors.js';
import type { ConfigIssue } from '../errors.js';
import { REASONS } from '../replies.js';
import { RIGHTS } from './types.js';
import type { SourceRef } from './types.js';
import {
  ENHANCED_CODE_PATTERN,
  HEADER_PREFIX_PATTERN,
  RIGHT_PATTERN,
  SASL_PATTERN,
  SINGLE_LINE_PATTERN,
  UNLIMITED_PATTERN,
  UNSUPPORTED_AUTH_MECHANISMS,
} from './schema.js';
import { BYTE_SIZE_FORMS, BYTE_SIZE_PATTERN } from './units.js';
import {
  REQUIRED_HINTS,
  TYPE_NAMES,
  code,
  describeValue,
  didYouMean,
  formatPath,
  isRecord,
  lastName,
  nounOf,
  pointer,
  pointerToPath,
  subjectOf,
} from './messages.js';
import type { Path, Seg } from './messages.js';

// ---------------------------------------------------------------------------------------------
// Context: issues and source positions
// ---------------------------------------------------------------------------------------------

interface Position {
  readonly line: number;
  readonly column: number;
}

export class Context {
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
