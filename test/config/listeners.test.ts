import { describe, expect, it } from 'vitest';
import { parseListen, parseNextHop, parseAuthSocket } from '../../engine/config/endpoints.js';
import { Engine } from '../../engine/engine.js';
import { listenerSpecs } from '../../engine/listeners.js';
import { FILE, failure, issueAt, lineOf, ok } from './helpers.js';

const base = (extra: string, connectors = '  - { name: C, usage: client }\n'): string => `server: { fqdn: mx.test }\n${extra}connectors:\n${connectors}`;

describe('milter and postfix_policy listeners', () => {
  it('inet:PORT@HOST with an IPv4 or IPv6 address, or unix:/absolute/path', () => {
    expect(parseListen('inet:8891@127.0.0.1')).toEqual({ kind: 'inet', host: '127.0.0.1', port: 8891 });
    expect(parseListen(' inet:10040@::1 ')).toEqual({ kind: 'inet', host: '::1', port: 10040 });
    expect(parseListen('inet:10040@[::FFFF:127.0.0.1]')).toEqual({ kind: 'inet', host: '127.0.0.1', port: 10040 });
    expect(parseListen('unix:/run/mta-policy/milter.sock')).toEqual({ kind: 'unix', path: '/run/mta-policy/milter.sock' });
    expect(failure(parseListen('unix:run/milter.sock')).error).toContain('not absolute');
    expect(failure(parseListen('inet:8891@localhost')).error).toContain('not an IP address');
    expect(failure(parseListen('inet:8891')).error).toContain('not inet:PORT@HOST');
    expect(failure(parseListen('inet:0@127.0.0.1')).error).toContain('not a port');
    expect(failure(parseListen('inet:127.0.0.1:8891')).error).toContain('not inet:PORT@HOST');
    expect(failure(parseListen('tcp:8891@127.0.0.1')).fix).toContain('inet:PORT@HOST');
  });

  it('are decoded into the Config, with their source', () => {
    const text = base('milter: { listen: "inet:8891@127.0.0.1" }\npostfix_policy:\n  listen: unix:/run/mta-policy/policy.sock\n');
    const config = ok(text);
    expect(config.milter).toEqual({ listen: { kind: 'inet', host: '127.0.0.1', port: 8891 }, source: { file: FILE, line: 2, path: 'milter' } });
    expect(config.postfixPolicy?.listen).toEqual({ kind: 'unix', path: '/run/mta-policy/policy.sock' });
    expect(ok(base('')).milter).toBeUndefined();
  });

  it('errors name the line and key', () => {
    const text = base('milter:\n  listen: "inet:8891@localhost"\npostfix_policy: { listn: "inet:1@127.0.0.1" }\n');
    const i = issueAt(text, 'milter.listen');
    expect(i.line).toBe(lineOf(text, 'localhost'));
    expect(issueAt(text, 'postfix_policy.listn').fix).toBe('did you mean `listen`?');
    expect(issueAt(text, 'postfix_policy').message).toContain('missing required key `listen`');
  });
});

describe('connector listen and implicit_tls', () => {
  const two = '  - { name: Sub, usage: client }\n  - { name: Smtps, usage: client, bindings: ["0.0.0.0:465", "[::]:465"] }\n';

  it('listen defaults to true without milter and postfix_policy, else false', () => {
    expect(ok(base('', two)).connectors.map((c) => c.listen)).toEqual([true, true]);
    expect(ok(base('milter: { listen: "inet:8891@127.0.0.1" }\n', two)).connectors.map((c) => c.listen)).toEqual([false, false]);
    expect(ok(base('postfix_policy: { listen: "inet:10040@127.0.0.1" }\n', two)).connectors.map((c) => c.listen)).toEqual([false, false]);
    const explicit = '  - { name: A, usage: client, listen: true }\n  - { name: B, usage: client, bindings: ["0.0.0.0:2587"], listen: false }\n';
    expect(ok(base('milter: { listen: "unix:/run/m.sock" }\n', explicit)).connectors.map((c) => c.listen)).toEqual([true, false]);
  });

  it('implicit_tls defaults to true on port 465 (RFC 8314), and a mix must say which', () => {
    expect(ok(base('', two)).connectors.map((c) => c.implicitTls)).toEqual([false, true]);
    const mixed = base('', '  - { name: M, usage: client, bindings: ["0.0.0.0:465", "0.0.0.0:587"] }\n');
    expect(issueAt(mixed, 'connectors[0].bindings').message).toContain('mix port 465');
    const said = base('', '  - { name: M, usage: client, bindings: ["0.0.0.0:465", "0.0.0.0:587"], implicit_tls: false }\n');
    expect(ok(said).connectors[0]?.implicitTls).toBe(false);
  });
});

describe('engine.listeners (what an adapter opens)', () => {
  it('says which listener is implicit TLS and which mta-policy serves itself', async () => {
    const served = ok(base('', '  - { name: Submission, usage: client }\n  - { name: Smtps, usage: client, bindings: ["0.0.0.0:465"] }\n'));
    expect(listenerSpecs(served).map((l) => [l.binding, l.implicitTls, l.listen])).toEqual([['0.0.0.0:587', false, true], ['[::]:587', false, true], ['0.0.0.0:465', true, true]]);
    const fronted = ok(base('milter: { listen: "inet:8891@127.0.0.1" }\n', '  - { name: Inbound, usage: internet, bindings: ["0.0.0.0:25"] }\n'));
    expect(listenerSpecs(fronted).map((l) => [l.port, l.listen])).toEqual([[25, false]]);
    // The engine exports the same.
    const engine = await Engine.create({ config: served });
    expect(engine.listeners.find((l) => l.port === 465)).toMatchObject({ implicitTls: true, listen: true, starttls: true });
  });
});

describe('next hops', () => {
  it('parse into a typed union', () => {
    expect(parseNextHop('smtp://127.0.0.1:10025', FILE)).toEqual({ kind: 'smtp', address: { kind: 'inet', host: '127.0.0.1', port: 10025 }, text: 'smtp://127.0.0.1:10025' });
    expect(parseNextHop('smtp://Relay.Northwind.TEST:587', FILE)).toMatchObject({ kind: 'smtp', address: { kind: 'inet', host: 'relay.northwind.test', port: 587 } });
    expect(parseNextHop('lmtp://[::1]:24', FILE)).toMatchObject({ kind: 'lmtp', address: { kind: 'inet', host: '::1', port: 24 } });
    expect(parseNextHop('lmtp:/run/dovecot/lmtp', FILE)).toMatchObject({ kind: 'lmtp', address: { kind: 'unix', path: '/run/dovecot/lmtp' } });
    expect(parseNextHop('maildir:/var/mail/northwind', FILE)).toMatchObject({ kind: 'maildir', dir: '/var/mail/northwind' });
    expect(parseNextHop('maildir:mail', '/etc/mta-policy/config.yaml')).toMatchObject({ kind: 'maildir', dir: '/etc/mta-policy/mail' });
    expect(failure(parseNextHop('smtp://127.0.0.1', FILE)).error).toContain('needs HOST:PORT');
    expect(failure(parseNextHop('smtp://user@relay.test:25', FILE)).error).toContain('user part');
    expect(failure(parseNextHop('smtp://relay.test:25/x', FILE)).error).toContain('path');
    expect(failure(parseNextHop('smtp://relay..test:25', FILE)).error).toContain('not an IP address or host name');
    expect(failure(parseNextHop('lmtp:run/lmtp', FILE)).error).toContain('not absolute');
    expect(failure(parseNextHop('maildir:', FILE)).error).toContain('names no directory');
    expect(failure(parseNextHop('ftp://x:21', FILE)).fix).toContain('smtp://host:port');
  });

  it('server.next_hop is every connector\'s default; a connector may override it', () => {
    const text =
      'server: { fqdn: mx.test, next_hop: "smtp://127.0.0.1:10025" }\nconnectors:\n' +
      '  - { name: A, usage: client }\n  - { name: B, usage: client, bindings: ["0.0.0.0:2587"], next_hop: "lmtp:/run/dovecot/lmtp" }\n';
    const config = ok(text);
    expect(config.server.nextHop?.text).toBe('smtp://127.0.0.1:10025');
    expect(config.connectors.map((c) => c.nextHop?.text)).toEqual(['smtp://127.0.0.1:10025', 'lmtp:/run/dovecot/lmtp']);
    expect(ok(base('')).connectors[0]?.nextHop).toBeNull();
    const bad = base('', '  - { name: A, usage: client, next_hop: "smtp:/x" }\n');
    expect(issueAt(bad, 'connectors[0].next_hop').message).toContain('is not a next hop');
  });
});

describe('the Dovecot auth socket', () => {
  it('is unix:/path or inet:HOST:PORT', () => {
    expect(parseAuthSocket('unix:/run/dovecot/auth-client')).toEqual({ kind: 'unix', path: '/run/dovecot/auth-client' });
    expect(parseAuthSocket('inet:127.0.0.1:12345')).toEqual({ kind: 'inet', host: '127.0.0.1', port: 12345 });
    expect(parseAuthSocket('inet:[::1]:12345')).toEqual({ kind: 'inet', host: '::1', port: 12345 });
    expect(parseAuthSocket('inet:auth.northwind.test:12345')).toEqual({ kind: 'inet', host: 'auth.northwind.test', port: 12345 });
    expect(failure(parseAuthSocket('inet:127.0.0.1')).error).toContain('needs HOST:PORT');
    expect(failure(parseAuthSocket('inet:::1:12345')).error).toContain('needs HOST:PORT');
    expect(failure(parseAuthSocket('unix:auth-client')).error).toContain('not absolute');
    expect(failure(parseAuthSocket('/run/dovecot/auth-client')).fix).toContain('unix:/run/dovecot/auth-client');
    const text = 'server: { fqdn: mx.test }\nidentities:\n  dovecot_auth: "unix:/run/dovecot/auth-client"\nconnectors: []\n';
    expect(ok(text).dovecotAuth).toEqual({ kind: 'unix', path: '/run/dovecot/auth-client' });
  });
});
