/**
 * How configuration issues name things: key paths (and their JSON Pointers), did-you-mean
 * suggestions, and descriptions of objects and values for messages.
 */

// ---------------------------------------------------------------------------------------------
// Paths and suggestions
// ---------------------------------------------------------------------------------------------

export type Seg = string | number;
export type Path = readonly Seg[];

export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export function pointer(path: Path): string {
  return path.map((s) => `/${String(s).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** JSON Pointer → path; array indexes become numbers (decided by walking `data`). */
export function pointerToPath(ptr: string, data: unknown): Seg[] {
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

export function isRecord(v: unknown): v is Record<string, unknown> {
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

export const code = (s: string): string => `\`${s}\``;

export function didYouMean(input: string, candidates: readonly string[], otherwise?: string): string | undefined {
  const c = closest(input, candidates);
  if (c !== undefined) return `did you mean ${code(c)}?`;
  return otherwise;
}

// ---------------------------------------------------------------------------------------------
// Describing paths and values in messages
// ---------------------------------------------------------------------------------------------

const NOUNS: Readonly<Record<string, string>> = {
  connectors: 'this connector',
  users: 'this user',
  accepted_domains: 'this accepted domain',
  extended_rights: 'this permission entry',
  replies: 'this reply override',
};

/** What the object at `path` is, for messages: `this connector`, `server`, … */
export function nounOf(path: Path): string {
  if (path.length === 0) return 'the configuration';
  const last = path[path.length - 1];
  const parent = path[path.length - 2];
  if (typeof last === 'number' && typeof parent === 'string') return NOUNS[parent] ?? formatPath(path);
  if (typeof last === 'string' && parent === 'replies') return NOUNS['replies'] ?? formatPath(path);
  return formatPath(path);
}

/** The tail of a path from its last key: `bindings[1]`, `fqdn`; `the configuration` for the root. */
export function subjectOf(path: Path): string {
  for (let i = path.length - 1; i >= 0; i--) {
    if (typeof path[i] === 'string') return formatPath(path.slice(i));
  }
  return path.length === 0 ? 'the configuration' : formatPath(path);
}

export function lastName(path: Path): string | undefined {
  for (let i = path.length - 1; i >= 0; i--) {
    const s = path[i];
    if (typeof s === 'string') return s;
  }
  return undefined;
}

export const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: 'a mapping (key: value)',
  array: 'a list',
  string: 'a string',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
};

export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'empty (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return String(v);
  return typeof v;
}

export const REQUIRED_HINTS: Readonly<Record<string, string>> = {
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
