/**
 * A one-producer, one-consumer byte pipe with backpressure whose end is decided late: the
 * producer pushes chunks as the client sends them, and only after the last one decides whether
 * the message is complete (`end`) or must not be delivered (`fail`). The consumer (the next-hop
 * client) reads it as an `AsyncIterable<Buffer>`; on `fail` its iteration throws, so it never
 * sends the final dot (or renames the Maildir file) for a message the client did not get a 250
 * for. Pure (no I/O).
 */

/** Thrown into the consumer when the producer abandons the message. */
export class PipeAborted extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'PipeAborted';
  }
}

type Settled = { readonly kind: 'end' } | { readonly kind: 'fail'; readonly error: Error };

export class MessagePipe implements AsyncIterable<Buffer> {
  private readonly queue: Buffer[] = [];
  private settled: Settled | null = null;
  private wakeConsumer: (() => void) | null = null;
  private wakeProducer: (() => void) | null = null;
  private consumerGone = false;

  /** Bytes queued before `push` waits for the consumer. */
  constructor(private readonly highWater = 256 * 1024) {}

  private queued = 0;

  /**
   * Queues a chunk; resolves once the queue is below the high-water mark. Resolves at once (and
   * drops the chunk) when the consumer stopped reading: the caller learns that from the
   * consumer's own result.
   */
  async push(chunk: Buffer): Promise<void> {
    if (this.settled !== null || this.consumerGone) return;
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.wake();
    while (this.queued >= this.highWater && !this.consumerGone && this.settled === null) {
      await new Promise<void>((resolve) => (this.wakeProducer = resolve));
    }
  }

  /** The message is complete: the consumer may finish it. */
  end(): void {
    if (this.settled === null) this.settled = { kind: 'end' };
    this.wake();
  }

  /** The message must not be delivered: the consumer's iteration throws `PipeAborted`. */
  fail(reason: string): void {
    if (this.settled === null) this.settled = { kind: 'fail', error: new PipeAborted(reason) };
    this.queue.length = 0;
    this.queued = 0;
    this.wake();
  }

  private wake(): void {
    const c = this.wakeConsumer;
    this.wakeConsumer = null;
    c?.();
    const p = this.wakeProducer;
    this.wakeProducer = null;
    p?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    try {
      for (;;) {
        const next = this.queue.shift();
        if (next !== undefined) {
          this.queued -= next.length;
          const p = this.wakeProducer;
          this.wakeProducer = null;
          p?.();
          yield next;
          continue;
        }
        const s = this.settled;
        if (s !== null) {
          if (s.kind === 'fail') throw s.error;
          return;
        }
        await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
      }
    } finally {
      this.consumerGone = true;
      this.queue.length = 0;
      this.queued = 0;
      const p = this.wakeProducer;
      this.wakeProducer = null;
      p?.();
    }
  }
}
