/**
 * An SMTP reply as data: the one definition the reply catalogue, the configuration's reply
 * overrides and the engine's decisions share.
 */
export interface Reply {
  /** Reply code, 200–599 (RFC 5321 §4.2). */
  readonly code: number;
  /** Enhanced status code `class.subject.detail` (RFC 3463); empty only for 2xx/3xx replies. */
  readonly enhanced: string;
  /** One line of text; may contain `{fqdn}` and `{client_ip}`, filled in by the engine. */
  readonly text: string;
  /** Close the session after sending this reply. */
  readonly disconnect?: boolean;
}
