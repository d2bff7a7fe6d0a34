/**
 * Shared set-up for the adversarial review tests (test/review/): an engine on the real
 * committed policy.wasm with a configuration written inline, and a session driver.
 */
import { parseConfig } from '../../engine/config/load.js';
import type { Counters } from '../../engine/counters.js';
import { Engine } from '../../engine/engine.js';
import type { Session } from '../../engine/session.js';

/** A small Northwind-like configuration: submission on 587, inbound on 25. */
export const BASE_YAML = `
server:
  fqdn: mx.northwind.test
  local_addresses: [192.0.2.10]
accepted_domains:
  - { domain: northwind.test, type: authoritative }
identities:
  unlisted_logins: reject
  users:
    - name: nancy
      addresses: [nancy@northwind.test]
      logins: [NORTHWIND\\nancy]
    - name: andrew
      addresses: [andrew@northwind.test]
connectors:
  - name: Client
    usage: client
    message_rate_limit: 1
  - name: Internet
    usage: internet
    bindings: ["0.0.0.0:25"]
`;

export function engineFor(yaml: string = BASE_YAML, options: { sessionCache?: boolean; counters?: Counters } = {}): Promise<Engine> {
  return Engine.create({ config: parseConfig(yaml, 'review.yaml'), ...options });
}

export const CLIENT = { local: '192.0.2.10:587', remote: '198.51.100.7', tls: { version: 'TLSv1.3' } } as const;
export const INBOUND = { local: '192.0.2.10:25', remote: '198.51.100.7' } as const;

/** CONNECT + EHLO, asserting both continue. */
export async function opened(engine: Engine, init: Parameters<Engine['session']>[0] = CLIENT): Promise<Session> {
  const s = engine.session(init);
  const c = await s.connect();
  if (c.decision !== 'continue') throw new Error(`connect: ${c.decision} ${c.reason}`);
  const h = await s.helo('client.example.test');
  if (h.decision !== 'continue') throw new Error(`ehlo: ${h.decision} ${h.reason}`);
  return s;
}

/** One whole message through an open session; returns the end-of-message decision kind. */
export async function sendOne(s: Session, from: string, to: string): Promise<string> {
  const m = await s.mail(from);
  if (m.decision !== 'continue') return `mail:${m.decision}:${m.reason}`;
  const r = await s.rcpt(to);
  if (r.decision !== 'continue') return `rcpt:${r.decision}:${r.reason}`;
  const h = await s.headers([['From', from.replace(/^<|>$/g, '')]]);
  if (h.decision !== 'continue') return `headers:${h.decision}:${h.reason}`;
  const e = await s.eom(1000);
  if (e.decision === 'accept') await s.messageAccepted();
  return `eom:${e.decision}:${e.reason}`;
}
