/**
 * The trusted flag headers: the one place their names are defined. At end of message an adapter
 * removes every inbound copy (any letter case) and adds the engine's own, so a downstream
 * filter can trust them (Exchange's X-MS-Exchange-Organization-AuthAs model).
 *
 * Rule: `X-MTA-Policy-Auth-As` is always added (`Anonymous`, `Internal` or `Partner`); each
 * boolean flag is added, with the value `true`, only when it is set. A downstream rule such as
 * "skip spam scanning when X-MTA-Policy-Bypass-Anti-Spam: true" is therefore safe: the header
 * can only come from mta-policy.
 */
import type { AddHeader, HeaderAction, MessageFlags } from './types.js';

export const FLAG_HEADERS = {
  auth_as: 'X-MTA-Policy-Auth-As',
  bypass_anti_spam: 'X-MTA-Policy-Bypass-Anti-Spam',
  accept_authentication_flag: 'X-MTA-Policy-Authentication-Flag',
  bypass_message_size_limit: 'X-MTA-Policy-Bypass-Size-Limit',
} as const satisfies Record<keyof MessageFlags, string>;

/** The header-name prefix of every mta-policy header (a default organization header prefix too). */
export const OWN_HEADER_PREFIX = 'X-MTA-Policy-';

const FLAG_NAMES_LOWER: ReadonlySet<string> = new Set(Object.values(FLAG_HEADERS).map((n) => n.toLowerCase()));

/** The flag headers for these flags, in a fixed order. */
export function flagHeaders(flags: MessageFlags): AddHeader[] {
  const out: AddHeader[] = [{ name: FLAG_HEADERS.auth_as, value: flags.auth_as }];
  if (flags.bypass_anti_spam) out.push({ name: FLAG_HEADERS.bypass_anti_spam, value: 'true' });
  if (flags.accept_authentication_flag) out.push({ name: FLAG_HEADERS.accept_authentication_flag, value: 'true' });
  if (flags.bypass_message_size_limit) out.push({ name: FLAG_HEADERS.bypass_message_size_limit, value: 'true' });
  return out;
}

/**
 * Lower-case names of the fields present in the message that must be removed: the policy's
 * header firewall, plus every inbound copy of a flag header. `present` holds the message's
 * field names lower-cased.
 */
export function headersToRemove(actions: readonly HeaderAction[], present: Iterable<string>): string[] {
  const out = new Set(actions.map((a) => a.name));
  for (const name of present) if (FLAG_NAMES_LOWER.has(name)) out.add(name);
  return [...out].sort();
}
