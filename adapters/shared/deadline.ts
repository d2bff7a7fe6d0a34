/**
 * A handler or decision bounded in time, as every adapter needs it (a slow engine or handler
 * must become a 4xx, never a hang). Protocol-independent.
 */

/** How `work` ended within the deadline: its value, or `late`. */
export type Settled<T> = { readonly late: false; readonly value: T } | { readonly late: true };

/**
 * `work`'s value, or `{ late: true }` when it has not settled within `ms`. A rejection before
 * the deadline rejects; one after it is swallowed (it must not go unhandled). The timer never
 * outlives the call.
 */
export async function settleWithin<T>(work: Promise<T>, ms: number): Promise<Settled<T>> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ late: true }), ms);
  });
  work.catch(() => undefined);
  try {
    return await Promise.race([work.then((value): Settled<T> => ({ late: false, value })), late]);
  } finally {
    clearTimeout(timer);
  }
}
