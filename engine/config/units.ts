/**
 * Byte sizes as Exchange writes them (ByteQuantifiedSize): a whole number of bytes, or a number
 * with a unit. KB, MB, GB and TB are BINARY multiples (36MB = 36 × 1024 × 1024 = 37748736),
 * exactly as in Exchange; KiB/MiB/GiB/TiB are accepted as synonyms. Units are case-insensitive
 * and may be separated from the number by spaces. `unlimited` means no limit (null).
 */
import type { ParseFailure } from '../ip.js';
import { code } from './issues.js';

export const KB = 1024;
export const MB = 1024 * KB;
export const GB = 1024 * MB;
export const TB = 1024 * GB;

const UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, kb: KB, kib: KB, mb: MB, mib: MB, gb: GB, gib: GB, tb: TB, tib: TB };

/** The textual forms, for the JSON Schema `pattern` (case-insensitive by construction). */
export const BYTE_SIZE_PATTERN =
  '^\\s*(?:[uU][nN][lL][iI][mM][iI][tT][eE][dD]|[0-9]+(?:\\.[0-9]+)?\\s*(?:[bB]|[kKmMgGtT][iI]?[bB])?)\\s*$';

const SIZE_RE = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)\s*$/i;

export const BYTE_SIZE_FORMS = 'write a number of bytes (37748736), a size such as 36MB, 256KB or 2GB, or unlimited';

/**
 * Parses a byte size: a non-negative integer (bytes), a string such as `36MB`, `36 MB`,
 * `256KB`, `10B`, `1.5GB`, `36MiB`, or `unlimited` (→ null).
 */
export function parseByteSize(value: unknown): { readonly bytes: number | null } | ParseFailure {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? { bytes: value } : { error: `${value} is not a whole number of bytes`, fix: BYTE_SIZE_FORMS };
  }
  if (typeof value !== 'string') return { error: 'a size must be a number or a string', fix: BYTE_SIZE_FORMS };
  if (value.trim().toLowerCase() === 'unlimited') return { bytes: null };
  const m = SIZE_RE.exec(value);
  const num = m?.[1];
  const unitText = m?.[2];
  if (num === undefined || unitText === undefined) return { error: `${code(value)} is not a size`, fix: BYTE_SIZE_FORMS };
  const unit = UNITS[unitText.toLowerCase()];
  if (unit === undefined) return { error: `${code(unitText)} in ${code(value)} is not a size unit`, fix: 'use B, KB, MB, GB or TB (binary multiples of 1024)' };
  // Exact arithmetic: split the decimal so 1.5MB is exactly 1572864.
  const [intPart = '0', fracPart = ''] = num.split('.');
  const scale = 10n ** BigInt(fracPart.length);
  const scaled = (BigInt(intPart) * scale + BigInt(fracPart === '' ? '0' : fracPart)) * BigInt(unit);
  if (scaled % scale !== 0n) {
    return { error: `${code(value)} is not a whole number of bytes`, fix: 'use a smaller unit or a whole number' };
  }
  const bytes = scaled / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    return { error: `${code(value)} is too large`, fix: BYTE_SIZE_FORMS };
  }
  return { bytes: Number(bytes) };
}

/** Shortest exact text for a size: `36MB`, `256KB`, `1000B`, `unlimited`. */
export function formatByteSize(bytes: number | null): string {
  if (bytes === null) return 'unlimited';
  for (const [unit, n] of [
    ['TB', TB],
    ['GB', GB],
    ['MB', MB],
    ['KB', KB],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes}B`;
}
