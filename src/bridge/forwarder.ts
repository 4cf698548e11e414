import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import { type RetryPolicy, retryDelay, retryExpired } from "../core/retry.js";
import type { Outcome } from "../protocol/client.js";
import type { ClaimedRow, Store } from "../store/store.js";
import { Breaker } from "./breaker.js";
import type { Channel } from "./channels.js";
import type { BridgeConfig } from "./config.js";
import { Deliverer } from "./deliverer.js";
import type { Metrics } from "./metrics.js";

const INSTANCE = `${hostname()}:${process.pid}`;
/** Which instance sent it: lets an operator (and the scale-out tests) trace a delivery to a process. */
const DELIVERY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "x-smsbridge-instance": INSTANCE,
});
/** Least time between two claims of a partly filled batch (see `loop`). */
const MIN_CLAIM_GAP_MS = 2;

/** Free delivery slots at which a channel is claimed for again. */
const refillAt = (ch: Channel) => Math.max(1, Math.floor(ch.config.concurrency / 2));

/** One channel's deliveries as this forwarder holds them. */
interface Lane {
  ch: Channel;
  breaker: Breaker;
  /** POSTs sent and not yet recorded (at most `concurrency`). */
  inflight: number;
  /** Hand-offs reserved whose ingest is still committing. */
  reserved: number;
  /** Rows claimed at insert, durable, waiting for a delivery slot. */
  ready: ClaimedRow[];
}

const pause = (ms: number) => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve());

/**
 * Moves the outbox to the helpdesk: claims due rows per channel (bounded by the channel's concurrency and
 * its breaker), signs the stored bytes, POSTs them, and records the outcome under the claim's token.
 */
export class Forwarder {
  private running = false;
  private readonly lanes = new Map<string, Lane>();
  readonly breakers = new Map<string, Breaker>();
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private loopDone: Promise<void> | undefined;
  /** Rows held — reserved, ready or in flight — over all channels; `stop` waits until none is left. */
  private holding = 0;
  private readonly allRecorded: Array<() => void> = [];
  /**
   * Whether the outbox may hold rows the loop should claim now. A finished delivery wakes the loop only then:
   * with fresh messages handed off, waking it on every one was an empty claim and a `nextDue` query each.
   */
  private outboxWork = true;
  private readonly policy: RetryPolicy;
  private readonly deliverer: Deliverer;
  /** Claim tokens for rows claimed at insert: unique per process start, then a counter (see `reserve`). */
  private readonly tokenPrefix = randomUUID();
  private tokens = 0;

  constructor(
    private readonly store: Store,
    private readonly channels: Map<string, Channel>,
    private readonly cfg: BridgeConfig["forwarder"],
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** `threadNice`: nice steps below the process for the delivery thread (config `server.backgroundNice`). */
    opts: { threadNice?: number } = {},
  ) {
    this.deliverer = new Deliverer({ nice: opts.threadNice ?? 0 });
    this.policy = { baseMs: cfg.retryBaseMs, capMs: cfg.retryCapMs, maxAgeMs: cfg.maxAgeHours * 3_600_000 };
    for (const [id, ch] of channels) {
      const breaker = new Breaker(cfg.breakerThreshold, cfg.breakerCooldownMs);
      this.breakers.set(id, breaker);
      this.lanes.set(id, { ch, breaker, inflight: 0, reserved: 0, ready: [] });
    }
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Stops claiming and waits for deliveries in flight to be recorded. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loopDone;
    if (this.holding > 0) await new Promise<void>((r) => this.allRecorded.push(r));
    await this.deliverer.close();
  }

  /** New work arrived (an ingest in this process, a NOTIFY from another): claim now instead of at the next poll. */
  wake(): void {
    this.outboxWork = true;
    this.woken = true;
    this.wakeUp?.();
  }

  /**
   * The hand-off: a message about to be ingested on a channel whose breaker is closed is inserted already
   * claimed by this forwarder (IngestItem.claim), and comes back here through `deliver` once it is durable. A
   * fresh message is then delivered without the claim's UPDATE … RETURNING, which wrote its outbox row and
   * index entry a second time and read its payload back (~4–5% of the main thread while ingesting). The row is
   * leased and fenced as any claimed row: if this process dies first, the lease expires and any instance
   * delivers it.
   *
   * Rows claimed this way and not yet sending — their ingest still committing, or durable and waiting for a
   * delivery slot — are at most the channel's `concurrency`, so what this process holds under lease stays
   * bounded (2 × concurrency with the deliveries in flight) and each is sent long before its lease ends.
   * Beyond that, messages are stored unclaimed and the loop claims them. `release` gives a reservation back
   * when nothing was stored (a duplicate, a failed commit).
   */
  reserve(channelId: string): { token: string; leaseUntil: number } | undefined {
    const lane = this.lanes.get(channelId);
    if (!this.running || !lane) return undefined;
    const now = this.now();
    // Only while the breaker is closed: a half-open channel gets its single probe from the loop.
    if (
      lane.reserved + lane.ready.length >= lane.ch.config.concurrency ||
      lane.breaker.current(now) !== "closed"
    )
      return undefined;
    lane.reserved++;
    this.holding++;
    return { token: `${this.tokenPrefix}.${++this.tokens}`, leaseUntil: now + this.cfg.leaseMs };
  }

  /** Delivers a row claimed at insert under a reservation from `reserve`: now, or when a slot frees. */
  deliver(row: ClaimedRow): void {
    const lane = this.lanes.get(row.channelId)!;
    lane.reserved--;
    this.metrics.claimed.inc({ channel: lane.ch.id, by: "ingest" });
    if (lane.breaker.current(this.now()) !== "closed") this.giveBack(row);
    else if (lane.inflight < lane.ch.config.concurrency) this.send(lane, row);
    else lane.ready.push(row);
  }

  /**
   * A row claimed at insert whose channel's breaker opened before it was sent goes back to the outbox, due
   * now and unclaimed, for the loop to send when the breaker lets it: while the breaker is open nothing but its
   * probe reaches the helpdesk. (Its attempt count keeps the claim, as a claim whose worker died does.)
   */
  private giveBack(row: ClaimedRow): void {
    this.outboxWork = true;
    this.store
      .markRetry(row.id, row.token, this.now(), null, "not sent: the circuit breaker opened")
      .catch((err) =>
        this.log.error(
          { err, outbox: row.id },
          "could not give a message back to the outbox; its lease will expire and it will be retried",
        ),
      )
      .finally(() => this.dropHold());
  }

  /** Gives back a reservation from `reserve` that got no row. */
  release(channelId: string): void {
    const lane = this.lanes.get(channelId)!;
    lane.reserved--;
    this.dropHold();
  }

  private async loop(): Promise<void> {
    while (this.running) {
      this.woken = false;
      // Set again by wake() (rows stored unclaimed, a NOTIFY), a retry, or below if this round leaves work.
      this.outboxWork = false;
      let claimed = 0;
      // A channel skipped because its deliveries are in flight wakes the loop when they finish.
      let waitingOnDeliveries = false;
      // A claim that came back full means a backlog: claim again at once. Otherwise new rows trickle in
      // (one ingest commit, one finished delivery at a time); claiming on each of those wake-ups cost a write
      // per message or two. Waiting MIN_CLAIM_GAP_MS between such claims lets them gather.
      let full = false;
      const claimStarted = performance.now();
      let sleepMs = this.cfg.pollMs;
      try {
        const now = this.now();
        for (const lane of this.lanes.values()) {
          const { ch, breaker } = lane;
          // Rows handed off and waiting for a slot go first: they are claimed already.
          const busy = lane.inflight + lane.ready.length;
          const free = ch.config.concurrency - busy;
          // Refill in batches (below half full), not one claim per finished delivery: each claim is a write.
          if (busy > 0 && free < refillAt(ch)) {
            waitingOnDeliveries = true;
            continue;
          }
          const allowance = Math.min(this.cfg.batch, breaker.allowance(now, free));
          this.metrics.breakerOpen.set({ channel: ch.id }, breaker.current(now) === "closed" ? 0 : 1);
          if (breaker.current(now) === "open")
            sleepMs = Math.min(sleepMs, Math.max(10, breaker.reopensIn(now)));
          if (allowance <= 0) continue;
          const rows = await this.store.claim({
            limit: allowance,
            leaseMs: this.cfg.leaseMs,
            now,
            channels: [ch.id],
          });
          claimed += rows.length;
          if (rows.length) this.metrics.claimed.inc({ channel: ch.id, by: "claim" }, rows.length);
          if (rows.length === allowance) full = true;
          for (const row of rows) this.dispatch(lane, row);
        }
        if (full || waitingOnDeliveries) this.outboxWork = true;
        // Nothing claimed and nothing in flight to wake us: sleep until the next retry falls due. (With
        // deliveries in flight, asking was a query per wake-up, ~2% of the main thread under load.)
        if (claimed === 0 && !waitingOnDeliveries) {
          const due = await this.store.nextDue(this.channels.keys());
          if (due !== undefined) sleepMs = Math.min(sleepMs, Math.max(0, due - this.now()));
        }
      } catch (err) {
        // Database trouble: nothing is lost (rows stay pending); try again after a poll interval.
        this.outboxWork = true;
        this.log.error({ err }, "forwarder could not claim from the outbox");
      }
      if (!this.running) break;
      if (full && this.hasRoom()) continue;
      if (!this.woken) await this.sleep(claimed > 0 ? this.cfg.pollMs : sleepMs);
      if (this.running && this.hasRoom()) await pause(claimStarted + MIN_CLAIM_GAP_MS - performance.now());
    }
  }

  private hasRoom(): boolean {
    for (const lane of this.lanes.values())
      if (lane.inflight + lane.ready.length < lane.ch.config.concurrency) return true;
    return false;
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = undefined;
        done();
      };
    });
  }

  /**
   * Nothing waits on a delivery but the callback: no promise or async frame per message is held across the
   * HTTP round trip (Deliverer.send says why that matters for memory).
   */
  private dispatch(lane: Lane, row: ClaimedRow): void {
    this.holding++;
    this.send(lane, row);
  }

  /** Sends a row already counted in `holding`, in a slot of its own. */
  private send(lane: Lane, row: ClaimedRow): void {
    const { ch, breaker } = lane;
    lane.inflight++;
    breaker.onStart(this.now());
    this.deliverer.send(
      {
        url: ch.config.reamaze.incomingUrl,
        secret: ch.config.reamaze.secrets[0]!,
        payload: row.payload,
        timeoutMs: ch.config.reamaze.timeoutMs,
        headers: DELIVERY_HEADERS,
      },
      (outcome) =>
        void this.record(ch, row, breaker, outcome)
          .catch((err) =>
            this.log.error(
              { err, outbox: row.id },
              "delivery bookkeeping failed; the lease will expire and it will be retried",
            ),
          )
          .finally(() => this.recorded(lane)),
    );
  }

  private recorded(lane: Lane): void {
    lane.inflight--;
    // A row handed off and waiting takes the slot at once, unless the breaker has opened meanwhile.
    if (lane.breaker.current(this.now()) === "closed") {
      const next = lane.ready.shift();
      if (next) this.send(lane, next);
    } else {
      for (const row of lane.ready.splice(0)) this.giveBack(row);
    }
    this.dropHold();
    // The loop refills a channel once it is half empty (see `loop`); waking it sooner, or when the outbox has
    // nothing for it, does nothing.
    const free = lane.ch.config.concurrency - lane.inflight - lane.ready.length;
    if (this.outboxWork && free >= refillAt(lane.ch)) this.wake();
  }

  private dropHold(): void {
    if (--this.holding === 0) for (const r of this.allRecorded.splice(0)) r();
  }

  /** Stores a delivery's outcome under the row's claim token, and tells the breaker. */
  private async record(ch: Channel, row: ClaimedRow, breaker: Breaker, outcome: Outcome): Promise<void> {
    const now = this.now();
    let recorded: boolean;
    let label: string;
    if (outcome.kind === "delivered") {
      breaker.success();
      recorded = await this.store.markDelivered(row.id, row.token);
      label = "delivered";
    } else if (outcome.kind === "rejected") {
      // The helpdesk is up and said no: retrying the same bytes cannot help. Keep it, with the answer.
      breaker.success();
      recorded = await this.store.markDead(
        row.id,
        row.token,
        outcome.status || null,
        outcome.reason,
        outcome.body,
        now,
      );
      label = "dead";
      this.log.warn(
        { channel: ch.id, outbox: row.id, status: outcome.status, answer: outcome.body },
        "helpdesk rejected a message; kept as dead",
      );
    } else if (retryExpired(row.queuedAt, now, this.policy)) {
      breaker.failure(now);
      recorded = await this.store.markDead(
        row.id,
        row.token,
        outcome.status ?? null,
        `gave up after ${row.attempts} attempts: ${outcome.reason}`,
        outcome.body ?? "",
        now,
      );
      label = "dead";
      this.log.error(
        { channel: ch.id, outbox: row.id, attempts: row.attempts },
        "gave up delivering a message; kept as dead",
      );
    } else {
      breaker.failure(now);
      const delay = retryDelay(row.attempts, this.policy, outcome.retryAfterMs);
      recorded = await this.store.markRetry(
        row.id,
        row.token,
        now + delay,
        outcome.status ?? null,
        outcome.reason,
        outcome.body,
      );
      label = "retry";
      // The row is due again soon: the loop must look (its next wake-up is when `recorded` runs).
      this.outboxWork = true;
      this.log.info(
        { channel: ch.id, outbox: row.id, attempt: row.attempts, reason: outcome.reason, retryInMs: delay },
        "helpdesk delivery will be retried",
      );
    }
    this.metrics.forwardAttempts.inc({ channel: ch.id, outcome: recorded ? label : "lost_claim" });
  }
}
