/** Polling and time bounds for integration tests: wait for a condition, never for a fixed time. */

export class TimeoutError extends Error {
  override name = "TimeoutError";
}

export interface WaitOptions {
  /** Poll interval in ms (default 50). */
  intervalMs?: number;
  /** Shown in the timeout error. */
  message?: string;
}

/**
 * Polls `fn` until it returns a value other than `false`, `null` or `undefined` (or a promise
 * of one), and returns that value. An exception thrown by `fn` counts as "not yet" and is
 * reported as the cause if the deadline passes. Throws `TimeoutError` after `timeoutMs`.
 */
export async function waitFor<T>(
  fn: () => T | false | null | undefined | Promise<T | false | null | undefined>,
  timeoutMs: number,
  opts: WaitOptions = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  const interval = opts.intervalMs ?? 50;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== false && v !== null && v !== undefined) return v;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const left = deadline - performance.now();
    if (left <= 0) {
      const what = opts.message ?? "condition";
      const why = lastError instanceof Error ? `: last error: ${lastError.message}` : "";
      throw new TimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}${why}`, {
        cause: lastError,
      });
    }
    await delay(Math.min(interval, left));
  }
}

/** Resolves after `ms`; resolves early (without throwing) when `signal` aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Races `promise` against a deadline; throws `TimeoutError` naming `what` when it passes.
 * The timer is always cleared, so no timer leaks into the test sanitizer.
 */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what = "operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
