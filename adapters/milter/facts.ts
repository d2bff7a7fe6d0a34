/**
 * Milter macros and callback arguments → the engine's facts. Pure and total: a value an MTA
 * sends in an unexpected form gives `undefined` (the caller then refuses, never guesses).
 *
 * What the two MTAs send (adapters/spec/milter-v6.md §4.3, and the captures in
 * test/fixtures/milter/):
 * - `{client_addr}` / `{daemon_addr}`: Postfix writes IPv6 as `IPv6:::1`, Sendmail as
 *   `IPv6:0:0:0:0:0:0:0:1` (uncompressed); `sendmail -bs` sends `[UNIX: localhost]`.
 * - TLS (HELO stage): `{tls_version}`, `{cipher}`, `{cipher_bits}`; `{cert_subject}` and
 *   `{cert_issuer}` — Postfix sends them only for a *trusted* client certificate and as the
 *   bare CN (smtpd_milter.c `IF_TRUSTED(peer_CN)`); Sendmail sends the DN (`/C=…/CN=…`) of any
 *   presented certificate and the verification result in `{verify}` (`OK` = verified).
 * - AUTH (MAIL stage): `{auth_type}` (the SASL mechanism) and `{auth_authen}` (the login).
 *   `{auth_author}` is MAIL FROM's `AUTH=` parameter (RFC 4954 §5), not a login: not used.
 */
import { canonicalIp } from '../../engine/ip.js';
import type { ClientCertFacts, MailFacts, TlsFacts } from '../../engine/types.js';
import type { Macros } from './macros.js';
import type { MacroStage } from './negotiate.js';

const TLS_MACROS = ['{tls_version}', '{cipher}', '{cipher_bits}', '{cert_subject}', '{cert_issuer}', '{verify}'] as const;

/**
 * The macros requested per stage (SMFIF_SETSYMLIST, which replaces the MTA's configured list
 * for that stage). The TLS macros are asked for at MAIL as well, so that TLS is seen even when a
 * client sends MAIL after STARTTLS without a new EHLO.
 */
export const MILTER_MACROS: Readonly<Record<MacroStage, readonly string[]>> = {
  connect: ['{daemon_addr}', '{daemon_port}', 'j', '_', '{client_addr}', '{client_port}'],
  helo: TLS_MACROS,
  mail: ['{auth_type}', '{auth_authen}', '{mail_addr}', ...TLS_MACROS],
  rcpt: ['{rcpt_addr}'],
  data: [],
  eoh: [],
  eom: [],
};

/**
 * The one log line for an MTA that does not send the connector-selection macros: the settings
 * to add, for both MTAs (the milter cannot tell which one it talks to before these arrive).
 */
export const DAEMON_MACROS_HINT =
  'add to Postfix main.cf: milter_connect_macros = j {daemon_name} {daemon_addr} {daemon_port} {client_addr} {client_port} v _ (Postfix >= 3.2); ' +
  "Sendmail .mc: define(`confMILTER_MACROS_CONNECT', `j, _, {daemon_name}, {daemon_addr}, {daemon_port}, {client_addr}, {client_port}')";

/** A macro's value, or undefined when absent or empty (both MTAs send only what has a value). */
function value(macros: Macros, name: string): string | undefined {
  const v = macros.get(name);
  return v === undefined || v === '' ? undefined : v;
}

/**
 * An IP address as either MTA writes it — `192.0.2.1`, `::1`, `IPv6:::1`,
 * `IPv6:0:0:0:0:0:0:0:1`, optionally in brackets — in canonical form, or undefined.
 */
export function normaliseIp(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  let t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  if (t.slice(0, 5).toLowerCase() === 'ipv6:') t = t.slice(5);
  return canonicalIp(t) ?? undefined;
}

/** `ip:port` (or `[v6]:port`) of the MTA's listener the client connected to, from `{daemon_addr}`/`{daemon_port}`. */
export function daemonEndpoint(macros: Macros): string | undefined {
  const ip = normaliseIp(value(macros, '{daemon_addr}'));
  const portText = value(macros, '{daemon_port}');
  if (ip === undefined || portText === undefined || !/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The client's IP: CONNECT's address for inet/inet6, else `{client_addr}`. */
export function clientIp(address: string | undefined, macros: Macros): string | undefined {
  return normaliseIp(address) ?? normaliseIp(value(macros, '{client_addr}'));
}

/** The TLS state the macros describe, or null for cleartext (no `{tls_version}` and no `{cipher}`). */
export function tlsFromMacros(macros: Macros): TlsFacts | null {
  const version = value(macros, '{tls_version}');
  const cipher = value(macros, '{cipher}');
  if (version === undefined && cipher === undefined) return null;
  const subject = value(macros, '{cert_subject}');
  const issuer = value(macros, '{cert_issuer}');
  const verify = value(macros, '{verify}');
  let cert: ClientCertFacts | null = null;
  if (verify !== undefined) {
    // Sendmail: OK verified; FAIL presented but not verified; NO/NOT/NONE/… no certificate to judge.
    if (verify === 'OK' || (verify === 'FAIL' && subject !== undefined)) cert = certFacts(verify === 'OK', subject, issuer);
  } else if (subject !== undefined) {
    // Postfix: the macro exists only for a trusted certificate.
    cert = certFacts(true, subject, issuer);
  }
  return { ...(version === undefined ? {} : { version }), ...(cipher === undefined ? {} : { cipher }), client_cert: cert };
}

function certFacts(verified: boolean, subject: string | undefined, issuer: string | undefined): ClientCertFacts {
  // Postfix sends the bare CN; the engine reads names from a DN's CN, so give it one.
  const dn = subject === undefined ? undefined : subject.includes('=') ? subject : `CN=${subject}`;
  return { verified, ...(dn === undefined ? {} : { subject: dn }), ...(issuer === undefined ? {} : { issuer }) };
}

/** A key that changes whenever the TLS facts do (to notice STARTTLS between two EHLOs). */
export function tlsKey(tls: TlsFacts | null): string {
  return tls === null ? '' : JSON.stringify(tls);
}

/** The AUTH the MTA performed, from `{auth_authen}` (login) and `{auth_type}` (mechanism), or null. */
export function authFromMacros(macros: Macros): { readonly mechanism: string; readonly user: string } | null {
  const user = value(macros, '{auth_authen}');
  if (user === undefined) return null;
  return { mechanism: value(macros, '{auth_type}') ?? '', user };
}

/** SMFIC_MAIL's argv → the reverse-path as typed and the ESMTP parameters. */
export function mailArgs(args: readonly string[]): { readonly from: string; readonly params: NonNullable<MailFacts['mail_params']> } {
  const params: Record<string, string | true> = {};
  for (const p of args.slice(1)) {
    const eq = p.indexOf('=');
    const key = eq < 0 ? p : p.slice(0, eq);
    if (key === '' || Object.hasOwn(params, key)) continue; // the MTA parsed the command; keep the first
    params[key] = eq < 0 ? true : p.slice(eq + 1);
  }
  return { from: args[0] ?? '', params };
}
