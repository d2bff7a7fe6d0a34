/** The logger every adapter writes to. */

/** Pino-compatible: pino's `Logger` satisfies it; only the `(object, message)` call form is used. */
export interface AdapterLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): AdapterLogger;
}
