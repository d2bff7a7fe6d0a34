/** Small helpers shared by the engine, the config loader and the CLI. */

/** A plain object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * ASCII-only lower-casing for names compared case-insensitively (logins, SMTP verbs, header
 * names, domains): Unicode `toLowerCase` maps e.g. the Kelvin sign U+212A to `k`, which would
 * let two different strings compare equal.
 */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

/** ASCII-only upper-casing (SASL mechanism names, ESMTP keywords): see asciiLower. */
export function asciiUpper(s: string): string {
  return s.replace(/[a-z]+/g, (m) => m.toUpperCase());
}
