import type { Config, ConnectorConfig } from './config/types.js';

/**
 * What an adapter needs at start-up to open or describe listeners: one entry per binding of
 * every enabled connector, with the limits the listener enforces before asking the policy. A
 * listener that serves SMTP itself opens only the entries with `listen` (the others belong to
 * the MTA in front, which asks through the milter or the policy service).
 */
export interface ListenerSpec {
  readonly connector: string;
  /** Canonical `ip:port` / `[v6]:port` text as in the configuration. */
  readonly binding: string;
  /** Local IP to bind (null: every address of the family). */
  readonly ip: string | null;
  readonly family: 4 | 6;
  readonly port: number;
  /**
   * mta-policy serves this binding itself (connector `listen`; by default only when neither
   * `milter` nor `postfix_policy` is configured).
   */
  readonly listen: boolean;
  /** TLS from the first byte (RFC 8314 §3.3; connector `implicit_tls`, default on port 465): no STARTTLS. */
  readonly implicitTls: boolean;
  /** Banner / EHLO host name. */
  readonly fqdn: string;
  /** SIZE to advertise and enforce while streaming (bytes), or null for none. */
  readonly maxMessageSize: number | null;
  readonly maxHeaderSize: number | null;
  /** Auth mechanism Tls: TLS is offered (STARTTLS, or from the first byte with `implicitTls`). */
  readonly starttls: boolean;
  /** SASL mechanisms for BasicAuth, empty when BasicAuth is off. */
  readonly saslMechanisms: readonly string[];
  /** AUTH only after STARTTLS (BasicAuthRequireTLS). */
  readonly authRequiresTls: boolean;
  readonly requireTls: boolean;
  /** Ask for a client certificate (Domain Secure). */
  readonly requestClientCertificate: boolean;
  readonly maxRecipientsPerMessage: number | null;
}

function specs(c: ConnectorConfig): ListenerSpec[] {
  const basic = c.authMechanisms.includes('BasicAuth');
  return c.bindings.map((b) => ({
    connector: c.name,
    binding: b.text,
    ip: b.ip,
    family: b.family,
    port: b.port,
    listen: c.listen,
    implicitTls: c.implicitTls,
    fqdn: c.fqdn,
    maxMessageSize: c.maxMessageSize,
    maxHeaderSize: c.maxHeaderSize,
    starttls: c.authMechanisms.includes('Tls'),
    saslMechanisms: basic ? c.basicAuthMechanisms : [],
    authRequiresTls: c.authMechanisms.includes('BasicAuthRequireTLS'),
    requireTls: c.requireTls,
    requestClientCertificate: c.domainSecureEnabled,
    maxRecipientsPerMessage: c.maxRecipientsPerMessage,
  }));
}

export function listenerSpecs(config: Config): ListenerSpec[] {
  return config.connectors.filter((c) => c.enabled).flatMap(specs);
}
