import { randomBytes } from "node:crypto";

/**
 * Which thread_id a customer's message carries to the helpdesk (DESIGN.md "Threading modes"):
 * - session: keep the pair's current thread while it has activity within idleHours, else start a new one;
 * - pair: one thread per (channel, customer), forever;
 * - helpdesk: no thread_id; the helpdesk's own one-hour rule decides.
 */
export type ThreadingMode = "session" | "pair" | "helpdesk";

export interface ThreadingConfig {
  mode: ThreadingMode;
  idleHours: number;
}

export interface ThreadState {
  threadId: string;
  lastActivity: number;
}

export function pairThreadId(channelId: string, customer: string): string {
  return `${channelId}:${customer}`;
}

export function newSessionThreadId(channelId: string, customer: string, now: number): string {
  return `${channelId}:${customer}:${now.toString(36)}${randomBytes(3).toString("hex")}`;
}

/**
 * Whether `threadFor` looks at the pair's current thread: only sessions do. Pair and helpdesk threads follow
 * from the message alone, so their stores skip reading the thread row (one index lookup per message).
 */
export function readsCurrentThread(cfg: ThreadingConfig): boolean {
  return cfg.mode === "session";
}

/** The thread for a new customer message, and the state to store (undefined: leave state alone). */
export function threadFor(
  cfg: ThreadingConfig,
  channelId: string,
  customer: string,
  current: ThreadState | undefined,
  now: number,
): { threadId: string | undefined; state: ThreadState | undefined } {
  switch (cfg.mode) {
    case "helpdesk":
      return { threadId: undefined, state: undefined };
    case "pair": {
      const threadId = pairThreadId(channelId, customer);
      return { threadId, state: { threadId, lastActivity: now } };
    }
    case "session": {
      const fresh = current && now - current.lastActivity < cfg.idleHours * 3_600_000;
      const threadId = fresh ? current.threadId : newSessionThreadId(channelId, customer, now);
      return { threadId, state: { threadId, lastActivity: now } };
    }
  }
}
