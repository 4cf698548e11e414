/**
 * Retry schedule for helpdesk deliveries: exponential backoff with full jitter (AWS Architecture Blog,
 * "Exponential Backoff And Jitter"), never sooner than the helpdesk's Retry-After, given up after maxAgeMs.
 */
export interface RetryPolicy {
  baseMs: number;
  capMs: number;
  maxAgeMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 1_000, capMs: 10 * 60_000, maxAgeMs: 72 * 3_600_000 };

/** Delay before attempt `attempt + 1` (attempt counts from 1). `random` is injectable for tests. */
export function retryDelay(
  attempt: number,
  policy: RetryPolicy = DEFAULT_RETRY,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt - 1, 30));
  const jittered = Math.floor(random() * ceiling);
  return Math.max(jittered, retryAfterMs ?? 0);
}

/** True when a message first queued at `firstQueuedAt` should stop being retried at `now`. */
export function retryExpired(
  firstQueuedAt: number,
  now: number,
  policy: RetryPolicy = DEFAULT_RETRY,
): boolean {
  return now - firstQueuedAt >= policy.maxAgeMs;
}
