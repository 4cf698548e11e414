import { getEventListeners } from "node:events";

/** A provider call's deadline: `signal` aborts once it passes; `end()` once the call settled, exactly once. */
export interface Deadline {
  readonly signal: AbortSignal;
  end(): void;
}

/** Controllers kept for reuse; more than this many calls in flight at once simply make new ones. */
const MAX_SPARE = 256;
const spare: AbortController[] = [];

/**
 * Starts a deadline whose signal comes from a reused AbortController when one is free. Why: a fresh
 * AbortController per staff reply was most of what the reply path left in V8's old generation — V8's sampling
 * heap profile of objects collected by major GCs (docs/performance-history.md, round 14) — and so most of its
 * major GCs, one every 5–10 s at 1,000 replies/s. A signal that fired, or that anything still listens to, is
 * never reused, so a call that kept it sees only its own deadline.
 */
export function startDeadline(ms: number, reason: () => unknown): Deadline {
  const controller = spare.pop() ?? new AbortController();
  const timer = setTimeout(() => controller.abort(reason()), ms);
  let ended = false;
  return {
    signal: controller.signal,
    end() {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      const s = controller.signal;
      if (!s.aborted && spare.length < MAX_SPARE && getEventListeners(s, "abort").length === 0)
        spare.push(controller);
    },
  };
}
