/**
 * How configuration issues are collected and worded: key paths, locations, short excerpts of
 * values, did-you-mean suggestions.
 */
import { ConfigError } from '../errors.js';
import type { ConfigIssue } from '../errors.js';
import type { SourceRef } from './types.js';

export type Seg = string | number;
export type Path = readonly Seg[];

/** Longest excerpt of a configured value quoted in a message. */
export const EXCERPT_CHARS = 80;

/** `s` cut to `max` characters (an ellipsis marks the cut), control characters made visible. */
export function excerpt(s: string, max = EXCERPT_CHARS): string {
  // eslint-disable-next-line no-control-regex
  if (s.length <= max && !/[\u0000-\u001f\u007f]/.test(s)) return s;
  // eslint-disable-next-line no-control-regex
  const visible = s.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === '\t' ? '\\t' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')));
  return visible.length > max ? `${visible.slice(0, max - 1)}…` : visible;
}

/** A value quoted for a message: `` `text` ``, cut short. */
export const code = (s: string): string => `\`${excerpt(s)}\``;

/** `connectors[2].remote_ip_ranges[0]`; `first` says whether `path` starts the text. */
export function formatPath(path: Path, first = true): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out === '' && first ? excerpt(seg) : `.${excerpt(seg)}`;
    else out += `[${JSON.stringify(excerpt(seg))}]`;
  }
  return out;
}

/** The tail of a path from its last key (`bindings[1]`, `fqdn`); `the configuration` for the root. */
export function subjectOf(path: Path): string {
  for (let i = path.length - 1; i >= 0; i--) {
    if (typeof path[i] === 'string') return formatPath(path.slice(i));
  }
  return path.length === 0 ? 'the configuration' : formatPath(path);
}

/** The last key of a path: the field a message is about. */
export function lastName(path: Path): string | undefined {
  for (let i = path.length - 1; i >= 0; i--) {
    const s = path[i];
    if (typeof s === 'string') return s;
  }
  return undefined;
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
  if (input.length > 200) return undefined;
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

export function didYouMean(input: string, candidates: readonly string[], otherwise?: string): string | undefined {
  const c = closest(input, candidates);
  return c === undefined ? otherwise : `did you mean ${code(c)}?`;
}

/** Where a value is: its key path, and its offset in the text (none for defaults). */
export interface Loc {
  readonly path: Path;
  readonly offset: number | undefined;
  /** `formatPath(path)`, when the location has it at hand. */
  readonly pathText?: string;
}

/** The issues found in one file, with positions resolved through the document's line index. */
export class Issues {
  readonly list: ConfigIssue[] = [];
  private readonly seen = new Set<string>();

  constructor(
    readonly file: string,
    private readonly position: (offset: number) => { readonly line: number; readonly column: number },
  ) {}

  /** Records an issue (an identical one at the same path is recorded once). */
  add(loc: Loc, message: string, fix?: string): void {
    const pos = loc.offset === undefined ? undefined : this.position(loc.offset);
    this.push(loc.pathText ?? formatPath(loc.path), pos?.line, pos?.column, message, fix);
  }

  /** Records an issue at a value's `SourceRef` (its line; no column). */
  addAt(ref: SourceRef, message: string, fix?: string): void {
    this.push(ref.path, ref.line, undefined, message, fix);
  }

  private push(path: string, line: number | undefined, column: number | undefined, message: string, fix: string | undefined): void {
    const key = `${path}\u0000${message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    // A safety net: messages quote values through `code`, which cuts them short already.
    const cut = fix === undefined ? {} : { fix: excerpt(fix, 1000) };
    this.list.push({ file: this.file, ...(line === undefined ? {} : { line }), ...(column === undefined ? {} : { column }), path, message: excerpt(message, 400), ...cut });
  }

  line(loc: Loc): number | undefined {
    return loc.offset === undefined ? undefined : this.position(loc.offset).line;
  }

  /** The `SourceRef` a validated value keeps for later messages. */
  ref(loc: Loc): SourceRef {
    const line = this.line(loc);
    const path = loc.pathText ?? formatPath(loc.path);
    return line === undefined ? { file: this.file, path } : { file: this.file, line, path };
  }

  /** `file:line` of a source, for messages. */
  where(ref: SourceRef): string {
    return ref.line === undefined ? ref.file : `${ref.file}:${ref.line}`;
  }

  /** Every issue, sorted by position (issues without a line last), as one error. */
  error(): ConfigError {
    const sorted = this.list
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
}
