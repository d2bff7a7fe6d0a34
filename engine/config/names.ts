/** Normalisation of configured domain names, host names and email addresses. */
import { parseDomain } from '../address.js';
import { isParseFailure } from '../ip.js';
import type { ParseFailure } from '../ip.js';
import { asciiLower } from '../util.js';
import { code } from './issues.js';

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
  const parsed = parseDomain(t);
  if (parsed.ok) return { domain: parsed.domain, wildcard };
  if (parsed.problem === 'numeric_tld') {
    return { error: `${code(text)} is an IP address or ends in a numeric label, not a domain name`, fix: DOMAIN_FIX };
  }
  return { error: `${code(text)} is not a valid domain name`, fix: DOMAIN_FIX };
}

const LOCAL_RE = /^[^\s@<>()[\]\\,;:"\p{Cc}]+$/u;

/** `local@domain` → `local@a-label`, the local part lower-cased in ASCII only (like logins). */
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
  return `${asciiLower(local)}@${d.domain}`;
}

export function normaliseHost(text: string): string | ParseFailure {
  const d = normaliseDomain(text, false);
  if (isParseFailure(d)) {
    return { error: `${code(text)} is not a valid host name`, fix: 'write a fully qualified host name, e.g. smtp.northwind.test' };
  }
  return d.domain;
}
