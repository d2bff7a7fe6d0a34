/**
 * Verifying a password against a parsed hash (password-hash.ts) at AUTH time: the Rust argon2
 * and bcrypt crates, and unixcrypt's SHA-crypt on a worker thread.
 */
import { verify as argon2Verify } from '@node-rs/argon2';
import { verify as bcryptVerify } from '@node-rs/bcrypt';
import { Worker } from 'node:worker_threads';
import { MtaPolicyError } from '../../engine/errors.js';
import { MAX_PASSWORD_BYTES, type PasswordHash } from './password-hash.js';

export * from './password-hash.js';

/** Verification could not run (library or worker failure): the caller answers 454 4.7.0, never 535. */
export class PasswordError extends MtaPolicyError {
  declare readonly code: 'PASSWORD_VERIFY_FAILED';
  constructor(message: string, options?: { cause?: unknown }) {
    super('PASSWORD_VERIFY_FAILED', message, options);
  }
}

/**
 * True when `password` matches `hash`. Empty, over-long (> MAX_PASSWORD_BYTES) or NUL-carrying
 * passwords are false without hashing. Comparison is constant-time in every back end: the Rust
 * argon2 and bcrypt crates compare with `subtle`, unixcrypt with `crypto.timingSafeEqual`.
 * Rejects with `PasswordError` only when verification itself could not run.
 */
export async function verifyPassword(hash: PasswordHash, password: string): Promise<boolean> {
  if (password === '' || password.includes('\0') || Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) return false;
  try {
    switch (hash.kind) {
      case 'argon2':
        return await argon2Verify(hash.encoded, password);
      case 'bcrypt':
        return await bcryptVerify(password, hash.encoded);
      case 'sha-crypt':
        return await shaCryptPool.verify(hash.encoded, password);
    }
  } catch (e) {
    if (e instanceof PasswordError) throw e;
    throw new PasswordError(`${hash.scheme} verification failed`, { cause: e });
  }
}

/**
 * unixcrypt is synchronous JavaScript (about 20-35 ms per default-cost SHA512-CRYPT here), so it
 * runs on one worker thread: the event loop keeps serving SMTP sessions and TLS handshakes. The
 * worker starts on first use, is unref'd while idle, and is replaced after a crash.
 */
class ShaCryptPool {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (ok: boolean) => void; reject: (e: Error) => void }>();

  verify(encoded: string, password: string): Promise<boolean> {
    const w = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise<boolean>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.ref();
      w.postMessage({ id, encoded, password });
    });
  }

  private start(): Worker {
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const ready = import(workerData.unixcrypt);
      parentPort.on('message', async ({ id, encoded, password }) => {
        try { const { verify } = await ready; parentPort.postMessage({ id, ok: verify(password, encoded) === true }); }
        catch (e) { parentPort.postMessage({ id, error: String((e && e.message) || e) }); }
      });`;
    const w = new Worker(source, { eval: true, workerData: { unixcrypt: import.meta.resolve('unixcrypt') } });
    w.unref();
    w.on('message', (m: { id: number; ok?: boolean; error?: string }) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      if (m.error === undefined) p.resolve(m.ok === true);
      else p.reject(new PasswordError(`SHA-crypt verification failed: ${m.error}`));
    });
    const lost = (e: unknown): void => {
      if (this.worker !== w) return;
      this.worker = undefined;
      for (const p of this.pending.values()) p.reject(new PasswordError('SHA-crypt worker stopped', { cause: e }));
      this.pending.clear();
    };
    w.on('error', lost);
    w.on('exit', lost);
    this.worker = w;
    return w;
  }
}

const shaCryptPool = new ShaCryptPool();
