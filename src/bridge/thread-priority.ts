import { readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/**
 * Lowers the calling thread's scheduling priority by `steps` nice steps (capped at 19), leaving the rest of
 * the process as it is; returns the thread's nice value afterwards, or undefined where it cannot be done.
 *
 * Why (config `server.backgroundNice`, off by default): on a machine short of cores, the kernel shares a core
 * equally between the main thread (which takes provider webhooks and acknowledges them once they are on disk)
 * and a busy background thread; during a saturated ingest run the main thread was preempted ~900 times a
 * second. Lowered, work that can wait — forwarding is asynchronous and durable, a checkpoint is housekeeping —
 * yields to the work a provider is waiting for: ~20% more webhooks acknowledged at saturation, while the
 * forwarder falls behind by about as much and catches up afterwards. It moves capacity, it adds none
 * (docs/performance-history.md, round 13).
 *
 * Linux only: `/proc/thread-self` names the thread's id, and setpriority(2) on a thread id sets that thread
 * alone. Lowering a priority needs no privilege; raising it back would, so it is done once, at the thread's
 * start.
 */
export function lowerThisThreadPriority(steps: number): number | undefined {
  if (steps <= 0) return undefined;
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (!Number.isInteger(tid) || tid <= 0) return undefined;
    setPriority(tid, Math.min(19, getPriority(tid) + steps));
    return getPriority(tid);
  } catch {
    // Not Linux (no /proc/thread-self), or a sandbox that forbids it: the thread keeps the process's priority.
    return undefined;
  }
}
