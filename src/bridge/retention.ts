import type { Logger } from "pino";
import type { Store } from "../store/store.js";
import { REPLY_WINDOW_MS } from "../store/store.js";
import type { BridgeConfig } from "./config.js";
import type { Metrics } from "./metrics.js";

const DAY_MS = 86_400_000;
/** A staff reply's record answers repeats for 24 h; it goes an hour after, so no clock step revives a repeat. */
const REPLY_RECORD_KEEP_MS = REPLY_WINDOW_MS + 3_600_000;
/** The first sweep after start: soon, so a changed setting shows in the log, but not in the start's rush. */
const FIRST_SWEEP_MAX_MS = 30_000;
/**
 * After each batch the sweep rests this many times as long as the batch took: it has the database at most a
 * quarter of the time. Unpaced, back-to-back batches of 500 cut concurrent ingest from 30k to 4.3k msg/s
 * and made its p99 5 ×; paced, in batches of 200, ingest kept ~0.8 × its rate and ~1.4 × its p99 while the
 * sweep still deleted ~35k messages a second (bench/retention.bench.ts), faster than any bridge stores them.
 */
const REST_PER_BATCH = 3;

/** The times a sweep at `now` deletes before: reply records always, messages and dead rows with `days`. */
export function retentionCutoffs(
  now: number,
  days: number | undefined,
): { replies: number; messages?: number } {
  return {
    replies: now - REPLY_RECORD_KEEP_MS,
    ...(days !== undefined ? { messages: now - days * DAY_MS } : {}),
  };
}

export interface SweepCounts {
  messages: number;
  providerRefs: number;
  deadOutbox: number;
  replies: number;
}

/**
 * Deletes what the bridge keeps no longer, every `retention.sweepMinutes`: staff-reply records past their
 * 24 h always; with `retention.days`, messages (and their provider refs) created, and dead outbox rows
 * that died, more than that many days ago. Pending outbox rows are never touched. Works in batches of
 * `retention.batch` rows, each one short transaction, giving the event loop back between them, so webhooks
 * keep being answered during a long first sweep. Every instance on a PostgreSQL database sweeps; they skip
 * each other's rows.
 */
export class RetentionSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly config: BridgeConfig["retention"],
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  start(): void {
    const every = this.config.sweepMinutes * 60_000;
    this.schedule(Math.min(every, FIRST_SWEEP_MAX_MS));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.sweep()
        .catch(() => {}) // counted and logged in sweep
        .finally(() => this.schedule(this.config.sweepMinutes * 60_000));
    }, ms);
    // A pending sweep never keeps the process alive.
    this.timer.unref();
  }

  /** One sweep now; resolves with what it deleted. Errors are logged, counted and thrown. */
  async sweep(): Promise<SweepCounts> {
    const started = performance.now();
    const cutoff = retentionCutoffs(this.now(), this.config.days);
    const counts: SweepCounts = { messages: 0, providerRefs: 0, deadOutbox: 0, replies: 0 };
    const { retention } = this.store;
    const limit = this.config.batch;
    try {
      await this.paced(async () => {
        const n = await retention.pruneReplies(cutoff.replies, limit);
        counts.replies += n;
        return n === limit;
      });
      const before = cutoff.messages;
      if (before !== undefined) {
        await this.paced(async () => {
          const n = await retention.pruneDead(before, limit);
          counts.deadOutbox += n;
          return n === limit;
        });
        let after = 0;
        await this.paced(async () => {
          const r = await retention.pruneMessages(after, before, limit);
          counts.messages += r.deleted;
          counts.providerRefs += r.refs;
          after = r.lastId;
          // Ids follow arrival: a batch with nothing old means the rest is younger too.
          return r.scanned === limit && r.deleted > 0;
        });
      }
    } catch (err) {
      this.metrics.retentionSweeps.inc({ result: "error" });
      this.log.warn({ err, deleted: counts }, "retention sweep failed; the next one tries again");
      throw err;
    } finally {
      this.metrics.retentionDeleted.inc({ kind: "messages" }, counts.messages);
      this.metrics.retentionDeleted.inc({ kind: "provider_refs" }, counts.providerRefs);
      this.metrics.retentionDeleted.inc({ kind: "dead_outbox" }, counts.deadOutbox);
      this.metrics.retentionDeleted.inc({ kind: "replies" }, counts.replies);
    }
    this.metrics.retentionSweeps.inc({ result: "ok" });
    this.metrics.retentionLastSuccess.set(this.now() / 1000);
    const ms = Math.round(performance.now() - started);
    if (counts.messages + counts.deadOutbox + counts.replies > 0)
      this.log.info({ deleted: counts, ms, keepDays: this.config.days ?? null }, "retention sweep");
    else this.log.debug({ ms }, "retention sweep: nothing to delete");
    return counts;
  }

  /** Runs `batch` until it says there is no more (or the sweeper stops), resting after each one. */
  private async paced(batch: () => Promise<boolean>): Promise<void> {
    while (!this.stopped) {
      const t = performance.now();
      if (!(await batch())) return;
      await this.rest(performance.now() - t);
    }
  }

  /** Between batches: the webhooks that arrived during one are taken, and get the database most of the time. */
  private rest(batchMs: number): Promise<void> {
    return new Promise((r) => setTimeout(r, batchMs * REST_PER_BATCH));
  }
}
