/**
 * Enforcement transcripts: the real policy.wasm with examples/northwind.yaml, a milter server on
 * 127.0.0.1:0, and the MTA-side client sending what Postfix and Sendmail send (macros
 * included). Every reply is compared exactly: code, enhanced code, text, header edits.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FULL_OFFER, MilterClient, type MacroPairs } from '../../adapters/milter/client.js';
import * as C from '../../adapters/milter/constants.js';
import { startMilter, type MilterEngine, type StartMilterOptions } from '../../adapters/milter/enforce.js';
import type { MilterReply } from '../../adapters/milter/replies.js';
import type { MilterServer } from '../../adapters/milter/server.js';
import { loadConfig } from '../../engine/config/load.js';
import { MemoryCounters, type Counters } from '../../engine/counters.js';
import { Engine } from '../../engine/engine.js';
import { NORTHWIND, NORTHWIND_FILE, northwindConfig } from '../bench/milter-config.js';
import { recordingLogger, type LogLine } from './helpers.js';

const servers: MilterServer[] = [];
const clients: MilterClient[] = [];
let engine: Engine;
const decisions: LogLine[] = [];

beforeAll(async () => {
  engine = await Engine.create({ config: await loadConfig(NORTHWIND_FILE), logger: recordingLogger(decisions) });
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close(200)));
});
afterAll(() => undefined);

async function serve(e: MilterEngine = engine, opts: Partial<StartMilterOptions> = {}): Promise<{ server: MilterServer; log: ReturnType<typeof recordingLogger> }> {
  const log = recordingLogger();
  const server = await startMilter(e, { listen: 'inet:0@127.0.0.1', logger: log, ...opts });
  servers.push(server);
  return { server, log };
}

async function client(server: MilterServer): Promise<MilterClient> {
  const c = await MilterClient.open(server.address);
  clients.push(c);
  await c.negotiate();
  return c;
}

/** CONNECT macros as Postfix sends them (SETSYMLIST list, values present). */
function connectMacros(daemon: string, port: number, clientIp: string): MacroPairs {
  return { '{daemon_addr}': daemon, '{daemon_port}': String(port), j: 'mx.northwind.test', _: `unknown [${clientIp}]`, '{client_addr}': clientIp, '{client_port}': '40001' };
}
const TLS13 = { '{tls_version}': 'TLSv1.3', '{cipher}': 'TLS_AES_256_GCM_SHA384', '{cipher_bits}': '256' };

/** CONNECT + EHLO from `ip` to the MTA listener `daemon:port`. */
async function greet(c: MilterClient, daemon: string, port: number, ip: string, heloMacros?: MacroPairs): Promise<[MilterReply | undefined, MilterReply | undefined]> {
  const family = ip.includes(':') ? 'inet6' : 'inet';
  const a = await c.connect(`[${ip}]`, family, ip, 40001, connectMacros(daemon, port, ip));
  const b = await c.helo('client.example.test', heloMacros);
  return [a, b];
}

const reply = (text: string): MilterReply => ({ kind: 'replyCode', text });
const CONTINUE: MilterReply = { kind: 'continue' };

/** DATA phase as Postfix sends it with DATA switched off: headers, EOH, body, EOM. */
async function content(c: MilterClient, headers: readonly [string, string][], body = 'hello\r\n'): Promise<{ eoh: MilterReply | undefined; eom: Awaited<ReturnType<MilterClient['eom']>> | undefined }> {
  for (const [n, v] of headers) expect(await c.header(n, v)).toEqual(CONTINUE);
  const eoh = await c.eoh();
  if (eoh?.kind !== 'continue') return { eoh, eom: undefined };
  // As the MTAs do: chunks of at most 65535 bytes (MILTER_CHUNK_SIZE).
  for (let off = 0; off < body.length; off += C.MILTER_CHUNK_SIZE) expect(await c.body(body.slice(off, off + C.MILTER_CHUNK_SIZE))).toEqual(CONTINUE);
  return { eoh, eom: await c.eom() };
}

describe('milter enforcement: negotiation', () => {
  it('asks for header edits and its macro lists, and switches off DATA and UNKNOWN', async () => {
    const { server } = await serve();
    const c = await MilterClient.open(server.address);
    clients.push(c);
    const n = await c.negotiate();
    expect(n.actions).toBe(C.SMFIF_ADDHDRS | C.SMFIF_CHGHDRS | C.SMFIF_SETSYMLIST);
    expect(n.protocol).toBe(C.SMFIP_NODATA | C.SMFIP_NOUNKNOWN);
    expect(Object.fromEntries(n.macros)).toEqual({
      [C.SMFIM_CONNECT]: '{daemon_addr} {daemon_port} j _ {client_addr} {client_port}',
      [C.SMFIM_HELO]: '{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer} {verify}',
      [C.SMFIM_ENVFROM]: '{auth_type} {auth_authen} {mail_addr} {tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer} {verify}',
      [C.SMFIM_ENVRCPT]: '{rcpt_addr}',
    });
  });

  it('refuses an MTA that cannot change headers (the firewall could not be applied): the connection closes', async () => {
    const { server } = await serve();
    const c = await MilterClient.open(server.address);
    clients.push(c);
    c.write({ kind: 'optneg', ...FULL_OFFER, actions: C.SMFIF_ADDHDRS | C.SMFIF_SETSYMLIST });
    await expect(c.readReply()).rejects.toMatchObject({ code: 'MILTER_CONNECTION_CLOSED' });
  });

  it('with noReply, the MTA need not wait for header and body replies', async () => {
    const { server } = await serve(engine, { noReply: ['header', 'body'] });
    const c = await client(server);
    expect(c.negotiated?.protocol).toBe(C.SMFIP_NODATA | C.SMFIP_NOUNKNOWN | C.SMFIP_NR_HDR | C.SMFIP_NR_BODY);
    await greet(c, '192.0.2.10', 25, '198.51.100.7');
    expect(await c.mail(['<a@example.net>'])).toEqual(CONTINUE);
    expect(await c.rcpt(['<nancy@northwind.test>'])).toEqual(CONTINUE);
    expect(await c.header('Subject', 'x')).toBeUndefined();
    expect(await c.header('X-MTA-Policy-Bypass-Anti-Spam', 'true')).toBeUndefined();
    expect(await c.eoh()).toEqual(CONTINUE);
    expect(await c.body('b\r\n')).toBeUndefined();
    const eom = await c.eom();
    expect(eom.verdict).toEqual({ kind: 'accept' });
    expect(eom.modifications).toEqual([
      { kind: 'chgHeader', index: 1, name: 'X-MTA-Policy-Bypass-Anti-Spam', value: '' },
      { kind: 'addHeader', name: 'X-MTA-Policy-Auth-As', value: 'Anonymous' },
    ]);
  });
});

describe('milter enforcement: the Internet connector (Default Frontend)', () => {
  it('refuses anonymous relay, takes mail for an accepted domain, strips forged trust headers in any case and adds its own', async () => {
    const { server } = await serve();
    const c = await client(server);
    expect(await greet(c, '192.0.2.10', 25, '198.51.100.7')).toEqual([CONTINUE, CONTINUE]);
    expect(await c.mail(['<alice@example.net>', 'BODY=8BITMIME', 'SIZE=200'], { '{mail_addr}': 'alice@example.net' })).toEqual(CONTINUE);
    expect(await c.rcpt(['<bob@example.org>'])).toEqual(reply('550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain'));
    expect(await c.rcpt(['<nancy@northwind.test>'])).toEqual(CONTINUE);
    const { eom } = await content(c, [
      ['From', 'Alice <alice@example.net>'],
      ['x-mta-policy-AUTH-as', 'Internal'],
      ['Subject', 'hi'],
      ['X-MS-Exchange-Organization-SCL', '-1'],
      ['X-MTA-Policy-Auth-As', 'Partner'],
    ]);
    expect(eom?.verdict).toEqual({ kind: 'accept' });
    expect(eom?.modifications).toEqual([
      { kind: 'chgHeader', index: 2, name: 'X-MTA-Policy-Auth-As', value: '' },
      { kind: 'chgHeader', index: 1, name: 'x-mta-policy-AUTH-as', value: '' },
      { kind: 'chgHeader', index: 1, name: 'X-MS-Exchange-Organization-SCL', value: '' },
      { kind: 'addHeader', name: 'X-MTA-Policy-Auth-As', value: 'Anonymous' },
    ]);
    // Postfix's ABORT after the message, then a second message on the same SMTP connection.
    c.abort();
    expect(await c.mail(['<carol@example.net>'])).toEqual(CONTINUE);
    expect(await c.rcpt(['<andrew@northwind.test>'])).toEqual(CONTINUE);
    const second = await content(c, [['Subject', 'two']]);
    expect(second.eom?.modifications).toEqual([{ kind: 'addHeader', name: 'X-MTA-Policy-Auth-As', value: 'Anonymous' }]);
    await c.quit();
  });

  it('refuses a message over max_message_size by its counted size (headers and body) at end of message', async () => {
    const small = await Engine.create({ config: northwindConfig({ [NORTHWIND.internet]: { max_message_size: '64KB' } }) });
    const { server } = await serve(small);
    const c = await client(server);
    await greet(c, '192.0.2.10', 25, '198.51.100.7');
    const send = async (bodyBytes: number): Promise<MilterReply | undefined> => {
      expect(await c.mail(['<a@example.net>'])).toEqual(CONTINUE);
      expect(await c.rcpt(['<nancy@northwind.test>'])).toEqual(CONTINUE);
      const { eom } = await content(c, [['Subject', 'size']], 'x'.repeat(bodyBytes - 2) + '\r\n');
      c.abort();
      return eom?.verdict;
    };
    // 64KB = 65536 bytes; the header block here is 2 + "Subject: size\r\n" = 17 bytes.
    expect(await send(65536 - 17)).toEqual({ kind: 'accept' });
    expect(await send(65536 - 16)).toEqual(reply('552 5.3.4 Message size exceeds fixed maximum message size'));
    // SIZE= announced at MAIL is checked there.
    expect(await c.mail(['<a@example.net>', 'SIZE=65537'])).toEqual(reply('552 5.3.4 Message size exceeds fixed maximum message size'));
  });

  it('refuses a header block beyond the engine input bounds with a temporary failure', async () => {
    const { server, log } = await serve();
    const c = await client(server);
    await greet(c, '192.0.2.10', 25, '198.51.100.7');
    await c.mail(['<a@example.net>']);
    await c.rcpt(['<nancy@northwind.test>']);
    expect(await c.header('X-Big', 'y'.repeat(engine.limits.headerValueBytes + 1))).toEqual(CONTINUE);
    expect(await c.eoh()).toEqual({ kind: 'tempfail' });
    expect(log.lines.filter((l) => l.obj['code'] === 'MILTER_HEADERS_TOO_LARGE')).toHaveLength(1);
  });
});

describe('milter enforcement: connector selection', () => {
  it('without {daemon_addr}/{daemon_port}: 421 at CONNECT, one log line naming the setting, no connector guessed', async () => {
    const { server, log } = await serve();
    const c = await client(server);
    const before = decisions.length;
    expect(await c.connect('[198.51.100.7]', 'inet', '198.51.100.7', 40001, { j: 'mx', '{client_addr}': '198.51.100.7' })).toEqual(
      reply('421 4.3.0 Temporary policy failure, try again later'),
    );
    // Postfix then refuses every command itself; should anything come, it gets the same verdict.
    expect(await c.helo('x')).toEqual(reply('421 4.3.0 Temporary policy failure, try again later'));
    const lines = log.lines.filter((l) => l.obj['code'] === 'MILTER_MACROS_MISSING');
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe('error');
    expect(lines[0]?.msg).toMatch(/milter_connect_macros = .*\{daemon_addr\} \{daemon_port\}/);
    expect(lines[0]?.msg).toMatch(/confMILTER_MACROS_CONNECT/);
    expect(decisions.length).toBe(before); // the engine was never asked
  });

  it('Sendmail IPv6 macros (IPv6: prefix, uncompressed) select the IPv6 LAN connector, which may relay', async () => {
    const { server } = await serve();
    const c = await client(server);
    const m = { '{daemon_addr}': 'IPv6:2001:db8:10:0:0:0:0:25', '{daemon_port}': '25', '{client_addr}': 'IPv6:2001:db8:20:0:0:0:0:5', j: 'mx' };
    expect(await c.connect('app.lan', 'inet6', '2001:db8:20:0:0:0:0:5', 40001, m)).toEqual(CONTINUE);
    expect(await c.helo('app.lan')).toEqual(CONTINUE);
    expect(await c.mail(['<app@example.net>'])).toEqual(CONTINUE);
    expect(await c.rcpt(['<someone@example.org>'])).toEqual(CONTINUE);
    const { eom } = await content(c, [['From', 'app@example.net']]);
    expect(eom?.modifications).toContainEqual({ kind: 'addHeader', name: 'X-MTA-Policy-Auth-As', value: 'Internal' });
    expect(decisions.at(-1)?.obj).toMatchObject({ stage: 'eom', connector: NORTHWIND.lan, adapter: 'milter' });
  });

  it('takes the client address from {client_addr} (Postfix IPv6: form) when CONNECT carries none', async () => {
    const { server } = await serve();
    const c = await client(server);
    const m = { '{daemon_addr}': '::1', '{daemon_port}': '25', '{client_addr}': 'IPv6:2001:db8:20::9' };
    expect(await c.connect('localhost', 'unknown', undefined, undefined, m)).toEqual(CONTINUE);
    expect(await c.helo('h')).toEqual(CONTINUE);
    expect(decisions.at(-1)?.obj).toMatchObject({ stage: 'ehlo', connector: NORTHWIND.lan });
  });

  it('a client without an IP address (sendmail -bs: [UNIX: localhost]) is refused with 421 and one log line', async () => {
    const { server, log } = await serve();
    const c = await client(server);
    const m = { j: 'mx', '{daemon_addr}': '127.0.0.1', '{daemon_port}': '25', '{client_addr}': '[UNIX: localhost]' };
    expect(await c.connect('localhost', 'unix', '', 0, m)).toEqual(reply('421 4.3.0 Temporary policy failure, try again later'));
    expect(log.lines.filter((l) => l.obj['code'] === 'MILTER_CLIENT_UNKNOWN')).toHaveLength(1);
  });
});

describe('milter enforcement: submission (Client Frontend, BasicAuthRequireTLS)', () => {
  it('refuses mail without AUTH with the exact 530, and keeps refusing on that connection without asking again', async () => {
    const { server } = await serve();
    const c = await client(server);
    await greet(c, '192.0.2.10', 587, '198.51.100.23');
    const refused = reply('530 5.7.1 Client was not authenticated');
    expect(await c.mail(['<nancy@northwind.test>'])).toEqual(refused);
    c.abort();
    const before = decisions.length;
    expect(await c.mail(['<nancy@northwind.test>'])).toEqual(refused);
    expect(decisions.length).toBe(before);
  });

  it('refuses an AUTH the MTA did in plaintext (seen at MAIL from {auth_authen})', async () => {
    const { server } = await serve();
    const c = await client(server);
    await greet(c, '192.0.2.10', 587, '198.51.100.23');
    expect(await c.mail(['<nancy@northwind.test>'], { '{auth_type}': 'PLAIN', '{auth_authen}': 'nancy' })).toEqual(
      reply('530 5.7.0 Authentication over an unencrypted connection is not permitted'),
    );
  });

  it('after STARTTLS (TLS macros at the second EHLO) an MTA AUTH submits and relays; the flag headers say Internal', async () => {
    const { server } = await serve();
    const c = await client(server);
    await greet(c, '192.0.2.10', 587, '198.51.100.23');
    expect(await c.helo('laptop.example.test', TLS13)).toEqual(CONTINUE);
    expect(await c.mail(['<nancy@northwind.test>'], { '{auth_type}': 'LOGIN', '{auth_authen}': 'NORTHWIND\\nancy' })).toEqual(CONTINUE);
    expect(await c.rcpt(['<customer@example.test>'])).toEqual(CONTINUE);
    const { eom } = await content(c, [['From', 'Nancy <nancy@northwind.test>'], ['X-MTA-Policy-Bypass-Anti-Spam', 'false']]);
    expect(eom?.verdict).toEqual({ kind: 'accept' });
    expect(eom?.modifications).toEqual([
      { kind: 'chgHeader', index: 1, name: 'X-MTA-Policy-Bypass-Anti-Spam', value: '' },
      { kind: 'addHeader', name: 'X-MTA-Policy-Auth-As', value: 'Internal' },
      { kind: 'addHeader', name: 'X-MTA-Policy-Bypass-Anti-Spam', value: 'true' },
    ]);
  });

  it('counts accepted messages: the sixth MAIL in a minute is refused with 421 (message_rate_limit 5)', async () => {
    const e = await Engine.create({ config: await loadConfig(NORTHWIND_FILE) });
    const { server } = await serve(e);
    const c = await client(server);
    await greet(c, '192.0.2.10', 587, '198.51.100.23', TLS13);
    const auth = { '{auth_type}': 'PLAIN', '{auth_authen}': 'andrew' };
    for (let i = 0; i < 5; i++) {
      expect(await c.mail(['<andrew@northwind.test>'], auth)).toEqual(CONTINUE);
      expect(await c.rcpt(['<x@example.test>'])).toEqual(CONTINUE);
      expect((await content(c, [['From', 'andrew@northwind.test']])).eom?.verdict).toEqual({ kind: 'accept' });
      c.abort();
    }
    expect(await c.mail(['<andrew@northwind.test>'], auth)).toEqual(reply('421 4.4.2 Message submission rate for this client has exceeded the configured limit'));
  });
});

describe('milter enforcement: partner connector (require_tls, Domain Secure)', () => {
  it('MAIL before STARTTLS: the 451 disconnect is sent as 421', async () => {
    const { server } = await serve();
    const c = await client(server);
    await greet(c, '192.0.2.10', 25, '203.0.113.20');
    expect(await c.mail(['<a@fabrikam.test>'])).toEqual(reply('421 4.7.3 STARTTLS is required to send mail'));
  });

  it('a trusted certificate (Postfix: bare CN) for fabrikam.test is accepted; an unverified one (Sendmail {verify}=FAIL) is not', async () => {
    const { server } = await serve();
    const good = await client(server);
    await greet(good, '192.0.2.10', 25, '203.0.113.20', { ...TLS13, '{cert_subject}': 'mail.fabrikam.test', '{cert_issuer}': 'Fabrikam CA' });
    expect(await good.mail(['<a@fabrikam.test>'])).toEqual(CONTINUE);
    const bad = await client(server);
    await greet(bad, '192.0.2.10', 25, '203.0.113.20', { ...TLS13, '{cert_subject}': '/C=US/O=Fabrikam/CN=mail.fabrikam.test', '{verify}': 'FAIL' });
    expect(await bad.mail(['<a@fabrikam.test>'])).toEqual(reply('454 4.7.5 Certificate validation failure'));
  });
});

describe('milter enforcement: failures are temporary, never an accept', () => {
  /** A counter store whose chosen method fails (or never answers). */
  function brokenCounters(method: keyof Counters, how: 'throw' | 'hang'): Counters {
    const real = new MemoryCounters();
    return new Proxy(real, {
      get(target, prop, recv) {
        if (prop === method) return () => (how === 'throw' ? Promise.reject(new Error('counter store down')) : new Promise(() => undefined));
        const v = Reflect.get(target, prop, recv) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  it('an engine failure at MAIL is the engine fail-safe 451 4.3.0; at CONNECT its 421', async () => {
    const atMail = await Engine.create({ config: await loadConfig(NORTHWIND_FILE), counters: brokenCounters('messagesLastMinute', 'throw') });
    const s1 = (await serve(atMail)).server;
    const c = await client(s1);
    await greet(c, '192.0.2.10', 587, '198.51.100.23');
    expect(await c.mail(['<nancy@northwind.test>'])).toEqual(reply('451 4.3.0 Temporary policy failure, try again later'));
    const atConnect = await Engine.create({ config: await loadConfig(NORTHWIND_FILE), counters: brokenCounters('openConnection', 'throw') });
    const s2 = (await serve(atConnect)).server;
    const d = await client(s2);
    expect((await greet(d, '192.0.2.10', 25, '198.51.100.7'))[0]).toEqual(reply('421 4.3.0 Temporary policy failure, try again later'));
  });

  it('an engine call that outlives the handler deadline is SMFIR_TEMPFAIL', async () => {
    const slow = await Engine.create({ config: await loadConfig(NORTHWIND_FILE), counters: brokenCounters('messagesLastMinute', 'hang') });
    const { server, log } = await serve(slow, { handlerTimeoutMs: 150 });
    const c = await client(server);
    await greet(c, '192.0.2.10', 587, '198.51.100.23');
    expect(await c.mail(['<nancy@northwind.test>'])).toEqual({ kind: 'tempfail' });
    expect(log.lines.some((l) => l.obj['code'] === 'MILTER_HANDLER_FAILED' && l.level === 'error')).toBe(true);
  });

  it('an adapter failure (the engine throws where it never should) is SMFIR_TEMPFAIL', async () => {
    const throwing: MilterEngine = {
      limits: engine.limits,
      session: () => {
        throw new Error('unexpected');
      },
    };
    const { server } = await serve(throwing);
    const c = await client(server);
    expect((await greet(c, '192.0.2.10', 25, '198.51.100.7'))[0]).toEqual({ kind: 'tempfail' });
  });

  it('over maxConnections SMTP connections, CONNECT is refused with 421 until one closes', async () => {
    const { server, log } = await serve(engine, { maxConnections: 1 });
    const a = await client(server);
    expect((await greet(a, '192.0.2.10', 25, '198.51.100.7'))[0]).toEqual(CONTINUE);
    const b = await client(server);
    expect((await greet(b, '192.0.2.10', 25, '198.51.100.8'))[0]).toEqual(reply('421 4.3.0 Temporary policy failure, try again later'));
    expect(log.lines.filter((l) => l.obj['code'] === 'MILTER_OVERLOAD')).toHaveLength(1);
    await a.quit();
    await b.quit();
    const d = await client(server);
    await expect.poll(async () => (await d.connect('[198.51.100.9]', 'inet', '198.51.100.9', 1, connectMacros('192.0.2.10', 25, '198.51.100.9')))?.kind).toBe('continue');
  });
});

describe('milter enforcement: connection life cycle', () => {
  it('QUIT_NC starts a new SMTP connection with its own session and connector', async () => {
    const { server } = await serve();
    const c = await client(server);
    await greet(c, '192.0.2.10', 587, '198.51.100.23');
    expect(await c.mail(['<a@northwind.test>'])).toEqual(reply('530 5.7.1 Client was not authenticated'));
    c.quitNc();
    await greet(c, '192.0.2.10', 25, '198.51.100.7');
    expect(await c.mail(['<a@example.net>'])).toEqual(CONTINUE);
    expect(decisions.at(-1)?.obj).toMatchObject({ stage: 'mail', connector: NORTHWIND.internet, smtp: 2 });
  });

  it('ABORT (RSET) ends the transaction: RCPT after it is refused by the MTA, and a new MAIL opens a fresh one', async () => {
    const { server } = await serve();
    const c = await client(server);
    await greet(c, '192.0.2.10', 25, '198.51.100.7');
    expect(await c.mail(['<a@example.net>'])).toEqual(CONTINUE);
    expect(await c.rcpt(['<nancy@northwind.test>'])).toEqual(CONTINUE);
    expect(await c.header('X-MTA-Policy-Auth-As', 'Internal')).toEqual(CONTINUE);
    c.abort();
    expect(await c.mail(['<b@example.net>'])).toEqual(CONTINUE);
    expect(await c.rcpt(['<andrew@northwind.test>'])).toEqual(CONTINUE);
    // The aborted message's header is not carried into this one.
    const { eom } = await content(c, [['Subject', 'fresh']]);
    expect(eom?.modifications).toEqual([{ kind: 'addHeader', name: 'X-MTA-Policy-Auth-As', value: 'Anonymous' }]);
  });
});
