/**
 * Per-connection socket helpers shared by the adapters' I/O shells (milter, Postfix policy
 * server); protocol-independent.
 */
import type { Socket } from 'node:net';

/**
 * Write `buf` and resolve once the socket has taken it (at once, or on `drain`), so a peer that
 * does not read cannot make us buffer without bound. If neither `drain` nor `close` comes
 * within `timeoutMs`, `onTimeout` runs (it should destroy the socket) and the promise resolves.
 * Never rejects: a socket error surfaces as `close`.
 */
export function writeDrained(socket: Socket, buf: Buffer, timeoutMs: number, onTimeout: () => void): Promise<void> {
  if (socket.write(buf)) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      onTimeout();
      finish();
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      socket.off('drain', finish);
      socket.off('close', finish);
      resolve();
    };
    socket.once('drain', finish);
    socket.once('close', finish);
  });
}
