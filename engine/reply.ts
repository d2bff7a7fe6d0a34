/**
 * An SMTP reply as data: the one reply type used by the catalogue, configuration overrides and
 * decisions. Only adapters render it to the wire.
 */
export interface Reply {
  /** RFC 5321 reply code, 200-599. */
  readonly code: number;
  /** RFC 3463 enhanced status code `class.subject.detail`; empty only for 2xx/3xx replies. */
  readonly enhanced: string;
  /** One line of text, without the codes. */
  readonly text: string;
  /** Close the session after sending this reply. */
  readonly disconnect?: boolean;
}
