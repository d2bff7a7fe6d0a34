import { domainToASCII } from 'node:url';
import { canonicalIp } from './ip.js';

/**
 * An envelope address, normalised so the Rego never parses strings (connector-model.md §4):
 * the domain is a lower-case A-label without trailing dot, and every routing trick that could
 * make a downstream hop deliver elsewhere is flagged.
 */
export interface NormalisedAddress {
  readonly raw: string;
  /** The null reverse-path `<>`. */
  readonly null: boolean;
  readonly valid: boolean;
  /** Only ASCII characters (otherwise SMTPUTF8 is required). */
  readonly ascii: boolean;
  readonly local: string;
  /** Lower-case A-label, or `[ip]` for a literal; empty when invalid. */
  readonly domain: string;
  /** `local@domain`, lower-cased: the key for identity and send-as lookups. */
  readonly key: string;
  /** Canonical IP of a domain literal (`user@[192.0.2.1]`), else null. */
  readonly literal: string | null;
  /** Proper parent domains, closest first (`a.b.test` → [`b.test`, `test`]). */
  readonly parents: readonly string[];
  readonly routing: {
    readonly source_route: boolean;
    readonly percent: boolean;
    readonly bang: boolean;
    readonly quoted_at: boolean;
    readonly multiple_at: boolean;
  };
}

/** RFC 5321 §4.5.3.1: path ≤ 256 octets, local part ≤ 64, domain ≤ 255. */
const MAX_PATH = 256;
const MAX_LOCAL = 64;
const MAX_DOMAIN = 255;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

const NO_ROUTING = { source_route: false, percent: false, bang: false, quoted_at: false, multiple_at: false };

function invalid(raw: string, ascii: boolean): NormalisedAddress {
  return {
    raw,
    null: false,
    valid: false,
    ascii,
    local: '',
    domain: '',
    key: '',
    literal: null,
    parents: [],
    routing: NO_ROUTING,
  };
}

/**
 * Normalise a domain name: trailing dot removed, IDN to lower-case A-label (UTS-46 via WHATWG
 * URL), syntax checked. Returns null when it is not a valid host name.
 */
export function normaliseDomain(text: string): string | null {
  if (text.length === 0 || text.length > MAX_DOMAIN) return null;
  const trimmed = text.endsWith('.') ? text.slice(0, -1) : text;
  if (trimmed.length === 0 || trimmed.includes('..')) return null;
  const ascii = domainToASCII(trimmed);
  if (ascii === '' || ascii.length > 253) return null;
  for (const label of ascii.split('.')) if (!LABEL.test(label)) return null;
  return ascii;
}

export function parentDomains(domain: string): string[] {
  const parents: string[] = [];
  for (let i = domain.indexOf('.'); i !== -1; i = domain.indexOf('.', i + 1)) parents.push(domain.slice(i + 1));
  return parents;
}

/**
 * Parse an SMTP path (`<local@domain>`, `local@domain`, `<@route,@route:local@domain>`, `<>`).
 * Total: any input yields a result; garbage yields `valid: false`.
 */
export function parsePath(input: string): NormalisedAddress {
  const raw = input.trim();
  // eslint-disable-next-line no-control-regex
  const ascii = /^[\x00-\x7f]*$/.test(raw);
  if (raw.length > MAX_PATH + 2) return invalid(raw, ascii);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(raw)) return invalid(raw, ascii);
  let path = raw;
  if (path.startsWith('<') || path.endsWith('>')) {
    if (!(path.startsWith('<') && path.endsWith('>'))) return invalid(raw, ascii);
    path = path.slice(1, -1);
  }
  if (path === '') return { ...invalid(raw, ascii), null: true, valid: true };
  if (/[\s<>]/.test(path) && !path.startsWith('"')) return invalid(raw, ascii);

  // Source route (RFC 5321 §4.1.1.3 / Appendix C): decided on the final mailbox.
  let sourceRoute = false;
  if (path.startsWith('@')) {
    const colon = path.indexOf(':');
    if (colon === -1) return invalid(raw, ascii);
    for (const hop of path.slice(0, colon).split(',')) {
      if (!hop.startsWith('@') || normaliseDomain(hop.slice(1)) === null) return invalid(raw, ascii);
    }
    sourceRoute = true;
    path = path.slice(colon + 1);
  }

  let local: string;
  let rest: string;
  let quotedAt = false;
  let quoted = '';
  if (path.startsWith('"')) {
    let i = 1;
    for (; i < path.length; i++) {
      const ch = path[i];
      if (ch === '\\') {
        i++;
        continue;
      }
      if (ch === '"') break;
    }
    if (i >= path.length) return invalid(raw, ascii);
    quoted = path.slice(1, i);
    local = path.slice(0, i + 1);
    rest = path.slice(i + 1);
    if (!rest.startsWith('@')) return invalid(raw, ascii);
    quotedAt = quoted.includes('@');
    rest = rest.slice(1);
  } else {
    const at = path.lastIndexOf('@');
    if (at <= 0) return invalid(raw, ascii);
    local = path.slice(0, at);
    rest = path.slice(at + 1);
  }
  if (local.length > MAX_LOCAL || rest.length === 0) return invalid(raw, ascii);
  const unquoted = quoted === '' ? local : quoted;
  const multipleAt = quoted === '' && local.includes('@');
  if (quoted === '' && /["\\()[\]]/.test(local)) return invalid(raw, ascii);

  let domain: string;
  let literal: string | null = null;
  if (rest.startsWith('[')) {
    if (!rest.endsWith(']')) return invalid(raw, ascii);
    const inner = rest.slice(1, -1);
    const ipText = /^ipv6:/i.test(inner) ? inner.slice(5) : inner;
    if (ipText !== inner && !ipText.includes(':')) return invalid(raw, ascii);
    if (ipText === inner && ipText.includes(':')) return invalid(raw, ascii); // IPv6 needs the tag
    literal = canonicalIp(ipText);
    if (literal === null) return invalid(raw, ascii);
    domain = `[${literal}]`;
  } else {
    const d = normaliseDomain(rest);
    if (d === null) return invalid(raw, ascii);
    domain = d;
  }
  return {
    raw,
    null: false,
    valid: true,
    ascii,
    local,
    domain,
    key: `${local.toLowerCase()}@${domain}`,
    literal,
    parents: literal === null ? parentDomains(domain) : [],
    routing: {
      source_route: sourceRoute,
      percent: unquoted.includes('%'),
      bang: unquoted.includes('!'),
      quoted_at: quotedAt,
      multiple_at: multipleAt,
    },
  };
}
