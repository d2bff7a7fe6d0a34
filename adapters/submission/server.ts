/**
 * The submission listener's I/O shell (the one file of this adapter that touches sockets and
 * TLS): one smtp-server per binding of every enabled connector with `listen: true`, each
 * connection driven by a {@link SubmissionSession} (session.ts).
 *
 * smtp-server 3.21 is used for what it does well — command parsing, SASL PLAIN/LOGIN decoding,
 * STARTTLS with the plaintext-injection fix, dot-unstuffing with backpressure, timeouts — and
 * overridden where its behaviour is not the policy's (the traps in its handling of AUTH and
 * STARTTLS, its fixed reply texts and enhanced-code table):
 * - EHLO/HELO, STARTTLS, AUTH and RSET are our handlers; the greeting, EHLO keywords, and every
 *   MAIL/RCPT/AUTH/DATA reply come from the decision (replies.ts renders them).
 * - `authOptional` and `allowInsecureAuth` are on so smtp-server's own gates never answer for
 *   the policy; session.ts asks the policy at every stage and re-checks TLS and AUTH itself.
 * - ENHANCEDSTATUSCODES stays hidden in smtp-server (its table would prefix a second code) and
 *   is advertised by our EHLO; replies smtp-server writes itself get a code in `send`.
 * - No 100 ms early-talker delay and no reverse DNS (RFC 6409 submission is authenticated;
 *   Postfix's submission service has neither).
 */
import { readFile } from 'node:fs/promises';
import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { ConnectorConfig } from '../../engine/config/types.js';
import type { Engine } from '../../engine/engine.js';
import type { ListenerSpec } from '../../engine/listeners.js';
import type { ClientCertFacts, SmtpReply, TlsFacts } from '../../engine/types.js';
import { CredentialStore } from './credentials.js';
import { ensureMaildir } from './maildir.js';
import { createRelay } from './relay.js';
import { LOCAL, replyText, withEnhancedCode, type Outcome } from './replies.js';
import { SubmissionSession, type ListenerContext } from './session.js';
import { DEFAULTS, SubmissionError, type SubmissionAddress, type SubmissionListener, type SubmissionOptions } from './options.js';

export { SubmissionError, type SubmissionAddress, type SubmissionListener, type SubmissionOptions } from './options.js';

/** The connections of all listeners, keyed by smtp-server's session object (stable per connection). */
const CONNECTIONS = new WeakMap<object, PolicyConnection>();

type Callback = () => void;

/** One client connection: smtp-server's, with our handlers where the policy answers. */
class PolicyConnection extends SMTPConnection {
  glue: SubmissionSession | null = null;
  greeting: SmtpReply | null = null;
  /** The decision's reply for the 2xx smtp-server is about to send (MAIL, RCPT, AUTH). */
  nextOk: SmtpReply | null = null;
  draining = false;
  implicitTls = false;
  sessionTimer: NodeJS.Timeout | undefined;

  constructor(server: SMTPServer, socket: net.Socket | tls.TLSSocket, options?: ConstructorParameters<typeof SMTPConnection>[2]) {
    super(server, socket, options);
    CONNECTIONS.set(this.session, this);
  }

  override init(): void {
    this._setListeners(() => {
      const max = this._server.options.maxClients;
      if (max !== undefined && this._server.connections.size > max) return this.send(421, `${this.name} Too many connected clients, try again in a moment`);
      setImmediate(() => this.connectionReady());
    });
  }

  override _sendGreeting(): void {
    this.reply({ reply: this.greeting ?? LOCAL.internal, close: this.greeting === null });
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    const ok = this.nextOk;
    if (ok !== null && code >= 200 && code < 300 && !Array.isArray(data)) {
      this.nextOk = null;
      super.send(ok.code, replyText(ok), false);
      return;
    }
    super.send(code, typeof data === 'string' ? withEnhancedCode(code, data) : data, false);
    void context;
  }

  /** Sends a reply exactly as given; closes after it when asked (421 closes anyway). */
  reply(o: Outcome): void {
    super.send(o.reply.code, replyText(o.reply), false);
    if (o.close) this.close();
  }

  /** Runs an async handler; any failure is a 451, and the parser resumes once it is done. */
  private run(callback: Callback, f: (glue: SubmissionSession) => Promise<void>): void {
    const glue = this.glue;
    if (glue === null) {
      this.reply({ reply: LOCAL.internal, close: true });
      return callback();
    }
    f(glue).then(callback, () => {
      this.reply({ reply: LOCAL.internal, close: false });
      callback();
    });
  }

  override handler_EHLO(command: Buffer, callback: Callback): void {
    this.hello('EHLO', command, callback);
  }

  override handler_HELO(command: Buffer, callback: Callback): void {
    this.hello('HELO', command, callback);
  }

  private hello(verb: 'EHLO' | 'HELO', command: Buffer, callback: Callback): void {
    const parts = command.toString().trim().split(/\s+/);
    const name = parts[1];
    if (parts.length !== 2 || name === undefined) {
      this.reply({ reply: verb === 'EHLO' ? LOCAL.ehloSyntax : LOCAL.heloSyntax, close: false });
      return callback();
    }
    this.run(callback, async (glue) => {
      const { outcome, keywords } = await glue.hello(verb, name);
      if (outcome.reply.code >= 400) return this.reply(outcome);
      this.hostNameAppearsAs = name.toLowerCase();
      this._resetSession();
      if (keywords === null) return this.reply(outcome);
      super.send(outcome.reply.code, [replyText(outcome.reply), ...keywords], false);
    });
  }

  override handler_STARTTLS(command: Buffer, callback: Callback): void {
    const refusal = this.glue === null ? { reply: LOCAL.internal, close: true } : this.glue.starttlsRefusal();
    if (refusal !== null) {
      this.reply(refusal);
      return callback();
    }
    super.handler_STARTTLS(command, callback);
  }

  override handler_AUTH(command: Buffer, callback: Callback): void {
    const glue = this.glue;
    const mechanism = (command.toString().trim().split(/\s+/)[1] ?? '').toUpperCase();
    if (glue === null) return this.run(callback, () => Promise.resolve());
    glue.authRefusal(mechanism, this.session.user).then(
      (refusal) => {
        if (refusal === null) return super.handler_AUTH(command, callback);
        this.reply(refusal);
        callback();
      },
      () => {
        this.reply({ reply: LOCAL.internal, close: false });
        callback();
      },
    );
  }

  override handler_RSET(command: Buffer, callback: Callback): void {
    this.run(callback, async (glue) => {
      await glue.rset();
      super.handler_RSET(command, () => undefined);
    });
  }

  /** A transaction ended (or the session was reset): a draining connection may go now. */
  override _resetSession(): void {
    super._resetSession();
    if (this.draining && this.glue?.inFlight !== true) setImmediate(() => this.shutdown());
  }

  shutdown(): void {
    if (!this._closing && !this._closed) this.reply({ reply: LOCAL.shuttingDown, close: true });
  }
}

/** smtp-server, creating our connections. */
class PolicyServer extends SMTPServer {
  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: ConstructorParameters<typeof SMTPConnection>[2]): void {
    const connection = new PolicyConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: unknown) => this._onClientConnect(data as Parameters<SMTPServer['_onClientConnect']>[0]));
    connection.init();
  }
}

function tlsFacts(socket: tls.TLSSocket, requested: boolean): TlsFacts {
  const version = socket.getProtocol() ?? undefined;
  const cipher = socket.getCipher()?.standardName;
  let client_cert: ClientCertFacts | null = null;
  if (requested) {
    const peer = socket.getPeerCertificate();
    if (peer !== null && Object.keys(peer).length > 0) {
      const dns = (peer.subjectaltname ?? '').split(/,\s*/).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4));
      const cn = (v: unknown): string | undefined => (typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined);
      const subject = cn(peer.subject?.CN);
      const issuer = cn(peer.issuer?.CN);
      client_cert = { verified: socket.authorized, ...(subject === undefined ? {} : { subject }), ...(issuer === undefined ? {} : { issuer }), san_dns: dns };
    }
  }
  return { ...(version === undefined ? {} : { version }), ...(cipher === undefined ? {} : { cipher }), client_cert };
}

const smtpError = (o: Outcome): Error & { responseCode: number } => Object.assign(new Error(replyText(o.reply)), { responseCode: o.reply.code });

function connectionOf(session: SMTPServerSession): PolicyConnection | undefined {
  return CONNECTIONS.get(session);
}

async function listenerFor(engine: Engine, spec: ListenerSpec, connector: ConnectorConfig, credentials: CredentialStore, o: SubmissionOptions): Promise<{ server: PolicyServer; address: SubmissionAddress }> {
  const hop = connector.nextHop;
  if (hop === null) throw new SubmissionError('SUBMISSION_NO_NEXT_HOP', `connector ${connector.name}: no next_hop (set it on the connector or in server.next_hop)`);
  if (hop.kind === 'maildir') await ensureMaildir(hop.dir);
  const files = connector.tls === null ? null : { key: await readFile(connector.tls.key), cert: await readFile(connector.tls.cert) };
  if (connector.implicitTls && files === null) throw new SubmissionError('SUBMISSION_NO_CERT', `connector ${connector.name}: implicit_tls needs a certificate (tls: or server.tls:)`);
  const ctx: ListenerContext = {
    engine,
    spec,
    connector,
    credentials,
    relay: () => createRelay(hop, spec.fqdn, o.nextHop ?? {}),
    tlsAvailable: files !== null,
    authFailureDelayMs: o.authFailureDelayMs ?? DEFAULTS.authFailureDelayMs,
  };
  const sessionTimeout = o.sessionTimeoutMs ?? DEFAULTS.sessionTimeoutMs;
  const server: PolicyServer = new PolicyServer({
    ...(files ?? {}),
    secure: connector.implicitTls,
    minVersion: 'TLSv1.2',
    ...(spec.requestClientCertificate ? { requestCert: true, rejectUnauthorized: false } : {}),
    name: spec.fqdn,
    logger: false,
    disableReverseLookup: true,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: true,
    allowInsecureAuth: true,
    hideENHANCEDSTATUSCODES: true,
    hideDSN: true,
    hideREQUIRETLS: true,
    disabledCommands: ['XCLIENT', 'XFORWARD', 'WIZ', 'SHELL', 'KILL', ...(files === null ? ['STARTTLS'] : [])],
    socketTimeout: o.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    maxClients: o.maxConnections ?? DEFAULTS.maxConnections,
    onConnect(session, cb) {
      const c = connectionOf(session);
      if (c === undefined) return cb(smtpError({ reply: LOCAL.internal, close: true }));
      c.implicitTls = connector.implicitTls;
      const tlsNow = connector.implicitTls ? tlsFacts(c._socket as tls.TLSSocket, spec.requestClientCertificate) : null;
      const glue = new SubmissionSession(ctx, { id: c.id, local: { ip: c.localAddress, port: c.localPort }, remote: { ip: c.remoteAddress, port: c.remotePort }, tls: tlsNow });
      c.glue = glue;
      c.sessionTimer = setTimeout(() => c.reply({ reply: LOCAL.sessionTimeout, close: true }), sessionTimeout);
      c.sessionTimer.unref();
      glue.connect().then(
        (out) => {
          if (out.close) return cb(smtpError(out));
          c.greeting = out.reply;
          cb();
        },
        () => cb(smtpError({ reply: LOCAL.internal, close: true })),
      );
    },
    onSecure(socket, session, cb) {
      const c = connectionOf(session);
      if (c === undefined || c.glue === null) return cb(smtpError({ reply: LOCAL.internal, close: true }));
      if (c.implicitTls) {
        c.implicitTls = false; // the handshake before the greeting; CONNECT knew it
        return cb();
      }
      c.glue.secured(tlsFacts(socket as tls.TLSSocket, spec.requestClientCertificate)).then(() => cb(), () => cb(smtpError({ reply: LOCAL.internal, close: true })));
    },
    onAuth(auth, session, cb) {
      const c = connectionOf(session);
      if (c?.glue == null) return cb(smtpError({ reply: LOCAL.internal, close: true }));
      const glue = c.glue;
      const attempt = { mechanism: auth.method, username: auth.username ?? '', password: auth.password ?? '', ...(auth.authzid === undefined ? {} : { authzid: auth.authzid }) };
      glue.authenticate(attempt).then(
        (r) => {
          if (r.ok) {
            c.nextOk = r.outcome.reply;
            cb(null, { user: r.user });
          } else {
            cb(null, { user: undefined, responseCode: r.outcome.reply.code, message: replyText(r.outcome.reply) } as never);
            if (r.outcome.close) c.close();
          }
        },
        () => cb(smtpError({ reply: LOCAL.internal, close: false })),
      );
    },
    onMailFrom(address, session, cb) {
      const c = connectionOf(session);
      if (c?.glue == null) return cb(smtpError({ reply: LOCAL.internal, close: true }));
      const args = (address.args === false ? {} : address.args) as Record<string, string | boolean>;
      c.glue.mail({ address: address.address, args }, c.secure, session.user).then((o) => answer(c, o, cb), () => cb(smtpError({ reply: LOCAL.internal, close: false })));
    },
    onRcptTo(address, session, cb) {
      const c = connectionOf(session);
      if (c?.glue == null) return cb(smtpError({ reply: LOCAL.internal, close: true }));
      c.glue.rcpt(address.address, c.secure, session.user).then((o) => answer(c, o, cb), () => cb(smtpError({ reply: LOCAL.internal, close: false })));
    },
    onData(stream: SMTPServerDataStream, session, cb) {
      const c = connectionOf(session);
      if (c?.glue == null) {
        stream.resume();
        return cb(smtpError({ reply: LOCAL.internal, close: true }));
      }
      c.glue.data(stream, c.secure, session.user).then(
        (o) => {
          if (o.reply.code === 250) cb(null, replyText(o.reply));
          else cb(smtpError(o));
          if (o.close) c.close();
        },
        () => cb(smtpError({ reply: LOCAL.internal, close: false })),
      );
    },
    onClose(session) {
      const c = connectionOf(session);
      if (c === undefined) return;
      clearTimeout(c.sessionTimer);
      void c.glue?.close();
    },
  });
  server.on('error', (err: Error) => o.logger?.warn({ connector: connector.name, binding: spec.binding, err: err.message }, 'submission connection error'));
  const host = spec.ip ?? (spec.family === 6 ? '::' : '0.0.0.0');
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => reject(new SubmissionError('SUBMISSION_LISTEN', `connector ${connector.name}: cannot listen on ${spec.binding}: ${e.message}`, { cause: e }));
    server.server.once('error', onError);
    server.listen(spec.port, host, () => {
      server.server.off('error', onError);
      resolve();
    });
  });
  const bound = server.server.address() as net.AddressInfo;
  return { server, address: { connector: connector.name, binding: spec.binding, host: bound.address, port: bound.port, implicitTls: connector.implicitTls } };
}

/** MAIL/RCPT: the decision's 2xx replaces smtp-server's "Accepted"; anything else is the error reply. */
function answer(c: PolicyConnection, o: Outcome, cb: (err?: Error | null) => void): void {
  if (o.reply.code >= 200 && o.reply.code < 300) {
    c.nextOk = o.reply;
    return cb();
  }
  cb(smtpError(o));
  if (o.close) c.close();
}

/**
 * Starts the submission listener on every binding of every enabled connector with `listen: true`
 * (engine.listeners, the connector's TLS and next hop from engine.config). Resolves once all are
 * bound; rejects with SubmissionError (after closing what was opened) when one cannot be.
 */
export async function startSubmission(engine: Engine, options: SubmissionOptions = {}): Promise<SubmissionListener> {
  const credentials = options.credentials ?? (await CredentialStore.open(engine.config));
  const started: Array<{ server: PolicyServer; address: SubmissionAddress }> = [];
  try {
    for (const spec of engine.listeners) {
      const connector = engine.config.connectors.find((c) => c.name === spec.connector);
      if (connector === undefined || !connector.listen) continue;
      started.push(await listenerFor(engine, spec, connector, credentials, options));
    }
  } catch (e) {
    for (const s of started) s.server.server.close();
    if (options.credentials === undefined) credentials.close();
    throw e;
  }
  for (const s of started) options.logger?.debug({ connector: s.address.connector, binding: s.address.binding, port: s.address.port, implicit_tls: s.address.implicitTls }, 'submission listener started');
  let closing: Promise<void> | null = null;
  return {
    addresses: started.map((s) => s.address),
    close(deadlineMs = 30_000) {
      closing ??= shutdown(started.map((s) => s.server), deadlineMs).finally(() => {
        if (options.credentials === undefined) credentials.close();
      });
      return closing;
    },
  };
}

async function shutdown(servers: readonly PolicyServer[], deadlineMs: number): Promise<void> {
  const closed = servers.map((s) => new Promise<void>((resolve) => s.server.close(() => resolve())));
  const all = (): PolicyConnection[] => servers.flatMap((s) => [...s.connections] as PolicyConnection[]);
  for (const s of servers) for (const pending of s._pendingSockets.values()) pending.destroy();
  for (const c of all()) {
    if (c.glue?.inFlight === true) c.draining = true;
    else c.shutdown();
  }
  const end = Date.now() + deadlineMs;
  while (all().length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  for (const c of all()) c.shutdown();
  const hard = Date.now() + 2_000;
  while (all().length > 0 && Date.now() < hard) await new Promise((r) => setTimeout(r, 20));
  for (const c of all()) c._socket.destroy();
  await Promise.all(closed);
}
