/**
 * `mta-policy milter-check --connect inet:PORT@HOST --facts F`: an admin's smoke test of a
 * running milter. It plays the MTA (as Postfix does: a MACRO packet before each command, the
 * full version-6 offer) for one SMTP conversation described by an `eval` facts document
 * (README, "Facts") and prints the milter's answer at each stage, one line each.
 *
 * Facts → what the MTA sends (the macros Postfix and Sendmail send, adapters/spec/milter-v6.md):
 * - `local` → `{daemon_addr}`/`{daemon_port}` (the connector), `remote` → CONNECT's address
 *   and `{client_addr}`; `helo` → HELO (default `milter-check.invalid`).
 * - `tls` → `{tls_version}`, `{cipher}` at HELO and MAIL; `tls.client_cert` → `{cert_subject}`,
 *   `{cert_issuer}` and `{verify}` (`OK` when verified, else `FAIL`), as Sendmail sends them.
 * - `auth` (result success) → `{auth_type}`/`{auth_authen}` at MAIL: an AUTH the MTA ran.
 * - `mail_from` + `mail_params` → MAIL; `rcpt_to` (one address or, here only, a list) → RCPT
 *   each; `headers` → HEADER each, then EOH; `message_size` → a body that brings the message
 *   to that size (default a one-line body); then end of message.
 * `counters` are not sent: the milter's engine keeps its own.
 *
 * As an MTA would, it stops after a refusal at CONNECT, HELO or MAIL, and before DATA when no
 * recipient was accepted. Exit 0 when the conversation ran (whatever the verdicts), 1 when the
 * milter cannot be reached or breaks the protocol, 2 for a bad address or bad facts.
 */
import { MilterClient, type MacroPairs } from '../../adapters/milter/client.js';
import type { AddressFamily } from '../../adapters/milter/commands.js';
import { MilterProtocolError } from '../../adapters/milter/errors.js';
import { formatListen, parseListen, type ListenAddress } from '../../adapters/milter/listen.js';
import { parseReplyText } from '../../adapters/milter/reply-text.js';
import { EVENT_BITS } from '../../adapters/milter/negotiate.js';
import type { MilterReply } from '../../adapters/milter/replies.js';
import { MtaPolicyError } from '../../engine/errors.js';
import { isParseFailure, parseHostPort, parseIp } from '../../engine/ip.js';
import type { AuthFacts, Facts, TlsFacts } from '../../engine/types.js';
import type { Io } from '../program.js';
import { EXIT } from '../program.js';
import { readJsonFile } from './common.js';

/** Options of {@link milterCheckCommand}. */
export interface MilterCheckOptions {
  /** `inet:PORT@HOST`, `inet6:PORT@HOST` or `unix:/path`. */
  readonly connect: string;
  /** An `eval` facts JSON file (- for standard input). */
  readonly facts: string;
  /** Per-reply wait in ms (default 10 000). */
  readonly timeout?: number;
}

/** The stages `milter-check` reports, in order. */
export type MilterCheckStage = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data' | 'header' | 'eoh' | 'body' | 'eom';

/** What the MTA sends for `facts`; throws `MtaPolicyError('INPUT_INVALID')` for facts it cannot play. */
export function conversation(facts: Facts, file: string): Conversation {
  const bad = (why: string): MtaPolicyError => new MtaPolicyError('INPUT_INVALID', `${file}: ${why} (see README, "Facts")`);
  const local = typeof facts.local === 'string' ? parseHostPort(facts.local) : { error: 'local must be a string like "192.0.2.10:25"' };
  if (isParseFailure(local)) throw bad(`local: ${local.error}`);
  if (local.port === null) throw bad('local needs its port: it selects the connector');
  const remoteText = typeof facts.remote === 'string' ? facts.remote : '';
  const remote = parseIp(remoteText) ?? (() => {
    const hp = parseHostPort(remoteText);
    return isParseFailure(hp) ? null : hp;
  })();
  if (remote === null) throw bad('remote must be the client IP address');
  const family: AddressFamily = remote.family === 6 ? 'inet6' : 'inet';
  const rcpts = facts.rcpt_to === undefined ? [] : Array.isArray(facts.rcpt_to) ? (facts.rcpt_to as unknown[]) : [facts.rcpt_to];
  if (!rcpts.every((r): r is string => typeof r === 'string')) throw bad('rcpt_to must be an address or a list of addresses');
  if (facts.mail_from !== undefined && typeof facts.mail_from !== 'string') throw bad('mail_from must be a string');
  const tls = tlsMacros(facts.tls);
  const auth = authMacros(facts.auth);
  const mailArgs = facts.mail_from === undefined ? undefined : [angle(facts.mail_from), ...Object.entries(facts.mail_params ?? {}).map(([k, v]) => (v === true || v === null ? k : `${k}=${String(v)}`))];
  return {
    connect: {
      hostname: `[${remote.text}]`,
      family,
      address: remote.text,
      macros: { j: 'milter-check.invalid', _: `[${remote.text}]`, '{daemon_addr}': local.text, '{daemon_port}': String(local.port), '{client_addr}': remote.text },
    },
    helo: { name: facts.helo ?? 'milter-check.invalid', macros: tls },
    ...(mailArgs === undefined ? {} : { mail: { args: mailArgs, macros: { ...tls, ...auth, '{mail_addr}': bare(facts.mail_from ?? '') } } }),
    rcpts: rcpts.map(angle),
    headers: headerList(facts.headers, bad),
    ...(facts.message_size === undefined ? {} : { messageSize: facts.message_size }),
  };
}

/** One SMTP conversation as the MTA plays it. */
export interface Conversation {
  readonly connect: { readonly hostname: string; readonly family: AddressFamily; readonly address: string; readonly macros: Record<string, string> };
  readonly helo: { readonly name: string; readonly macros: Record<string, string> };
  readonly mail?: { readonly args: readonly string[]; readonly macros: Record<string, string> };
  readonly rcpts: readonly string[];
  readonly headers: readonly (readonly [string, string])[];
  readonly messageSize?: number;
}

const angle = (a: string): string => (a.startsWith('<') ? a : `<${a}>`);
const bare = (a: string): string => a.replace(/^<(.*)>$/, '$1');

function tlsMacros(tls: TlsFacts | null | false | undefined): Record<string, string> {
  if (tls === undefined || tls === null || tls === false || typeof tls !== 'object') return {};
  const m: Record<string, string> = { '{tls_version}': tls.version ?? 'TLSv1.3', '{cipher}': tls.cipher ?? 'TLS_AES_256_GCM_SHA384' };
  const cert = tls.client_cert;
  if (cert !== undefined && cert !== null) {
    m['{verify}'] = cert.verified ? 'OK' : 'FAIL';
    if (cert.subject !== undefined) m['{cert_subject}'] = cert.subject;
    if (cert.issuer !== undefined) m['{cert_issuer}'] = cert.issuer;
  }
  return m;
}

function authMacros(auth: AuthFacts | null | undefined): Record<string, string> {
  if (auth === undefined || auth === null || (auth.result ?? 'success') !== 'success') return {};
  return { '{auth_type}': auth.mechanism, '{auth_authen}': auth.user };
}

function headerList(headers: Facts['headers'], bad: (why: string) => MtaPolicyError): [string, string][] {
  if (headers === undefined) return [];
  const out: [string, string][] = [];
  const entries: readonly (readonly [string, unknown])[] = Array.isArray(headers) ? (headers as readonly (readonly [string, unknown])[]) : Object.entries(headers);
  for (const [name, value] of entries) {
    for (const v of Array.isArray(value) ? (value as unknown[]) : [value]) {
      if (typeof name !== 'string' || typeof v !== 'string') throw bad('headers must map names to strings (or lists of strings)');
      out.push([name, v]);
    }
  }
  return out;
}

/** A reply as one line: `continue`, `reject 550 5.7.1 text`, `add header X: v`, … */
export function describeReply(r: MilterReply): string {
  switch (r.kind) {
    case 'replyCode': {
      const p = parseReplyText(r.text);
      if (p instanceof MilterProtocolError) return `reply ${r.text}`;
      const verdict = p.code >= 500 ? 'reject' : p.code === 421 ? 'disconnect' : 'tempfail';
      return `${verdict} ${p.code} ${p.enhanced} ${p.lines.join(' / ')}`;
    }
    case 'addHeader':
      return `add header ${r.name}: ${r.value}`;
    case 'insHeader':
      return `insert header #${r.index} ${r.name}: ${r.value}`;
    case 'chgHeader':
      return r.value === '' ? `remove header ${r.name} #${r.index}` : `change header ${r.name} #${r.index}: ${r.value}`;
    case 'quarantine':
      return `quarantine ${r.reason}`;
    case 'reject':
      return 'reject (the MTA\'s default 5xx)';
    case 'tempfail':
      return 'tempfail (the MTA\'s default 4xx)';
    default:
      return r.kind;
  }
}

const passes = (r: MilterReply | undefined): boolean => r === undefined || r.kind === 'continue' || r.kind === 'skip';

/** Plays `c` against the milter at `address`, writing one line per stage to `out`. */
export async function playConversation(address: string | ListenAddress, c: Conversation, out: (line: string) => void, timeoutMs = 10_000): Promise<void> {
  const client = await MilterClient.open(address, { timeoutMs });
  const line = (stage: string, r: MilterReply | undefined): void => out(`${stage.padEnd(8)} ${r === undefined ? '(no reply: negotiated away)' : describeReply(r)}`);
  try {
    const n = await client.negotiate();
    out(`${'optneg'.padEnd(8)} version ${n.version}, actions 0x${n.actions.toString(16)}, protocol 0x${n.protocol.toString(16)}`);
    const step = async (stage: MilterCheckStage, send: () => Promise<MilterReply | undefined>): Promise<boolean> => {
      const r = await send();
      line(stage, r);
      return passes(r);
    };
    const k = c.connect;
    if (!(await step('connect', () => client.connect(k.hostname, k.family, k.address, 0, k.macros)))) return;
    if (!(await step('helo', () => client.helo(c.helo.name, c.helo.macros)))) return;
    const mail = c.mail;
    if (mail === undefined) return;
    if (!(await step('mail', () => client.mail(mail.args, mail.macros)))) return;
    let accepted = 0;
    for (const rcpt of c.rcpts) {
      const r = await client.rcpt([rcpt], { '{rcpt_addr}': bare(rcpt) } satisfies MacroPairs);
      out(`${'rcpt'.padEnd(8)} ${rcpt} ${r === undefined ? '(no reply)' : describeReply(r)}`);
      if (passes(r)) accepted++;
    }
    if (accepted === 0) {
      out(`${'data'.padEnd(8)} not sent: no recipient accepted`);
      client.abort();
      return;
    }
    // SMFIP_NO*: an MTA does not send what the milter negotiated away (only DATA may be).
    if ((n.protocol & EVENT_BITS.data.no) === 0 && !(await step('data', () => client.data({})))) return;
    let headerBytes = 2;
    for (const [name, value] of c.headers) {
      headerBytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 4;
      const r = await client.header(name, value, {});
      if (!passes(r)) return line('header', r);
    }
    if (!(await step('eoh', () => client.eoh({})))) return;
    const body = c.messageSize === undefined ? 'milter-check\r\n' : 'x'.repeat(Math.max(0, c.messageSize - headerBytes));
    for (let at = 0; at === 0 || at < body.length; at += 65_535) {
      const r = await client.body(body.slice(at, at + 65_535), {});
      if (!passes(r)) return line('body', r);
    }
    const eom = await client.eom({});
    for (const m of eom.modifications) line('eom', m);
    line('eom', eom.verdict);
  } finally {
    await client.quit().catch(() => client.destroy());
  }
}

/** `mta-policy milter-check`. */
export async function milterCheckCommand(opts: MilterCheckOptions, io: Io): Promise<number> {
  let address: ListenAddress;
  let plan: Conversation;
  try {
    address = parseListen(opts.connect);
    const facts = await readJsonFile(opts.facts);
    if (typeof facts !== 'object' || facts === null || Array.isArray(facts)) {
      throw new MtaPolicyError('INPUT_INVALID', `${opts.facts}: facts must be a JSON object (see README, "Facts")`);
    }
    plan = conversation(facts as Facts, opts.facts);
  } catch (e) {
    if (!(e instanceof MtaPolicyError)) throw e;
    io.stderr.write(`mta-policy: ${e.message}\n`);
    return EXIT.usage;
  }
  try {
    await playConversation(address, plan, (l) => io.stdout.write(`${l}\n`), opts.timeout);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new MtaPolicyError('MILTER_CHECK_FAILED', `milter at ${formatListen(address)}: ${why}`, { cause: e });
  }
  return EXIT.ok;
}
