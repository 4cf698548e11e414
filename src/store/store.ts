import { randomUUID } from "node:crypto";
import { type ExpressionBuilder, type Kysely, Migrator, sql, type Transaction } from "kysely";
import { type KeywordAction, keywordAction } from "../core/optout.js";
import { readsCurrentThread, type ThreadingConfig, threadFor } from "../core/threading.js";
import { listenForOutbox, OUTBOX_CHANNEL } from "./dialect/postgres.js";
import type { SqliteHotPath } from "./dialect/sqlite-hot.js";
import { GroupCommit } from "./group-commit.js";
import { migrationProvider } from "./migrations.js";
import { postgresRetention, type Retention } from "./retention.js";
import type { Database, MessageDirection } from "./schema.js";

export type Dialect = "sqlite" | "postgres";

/** A customer's message, ready to be committed together with its outbox row. */
export interface IngestItem {
  channelId: string;
  provider: string;
  providerMessageId: string;
  customer: string;
  channelNumber: string;
  body: string;
  createdAt: number;
  /**
   * When the bridge received it (default createdAt). The outbox's retry budget (maxAgeHours) counts from here:
   * a provider's old `sent_at` (a carrier's late delivery, a replayed backlog) must not make it dead on arrival.
   */
  receivedAt?: number;
  meta?: Record<string, unknown>;
  threading: ThreadingConfig;
  /** Builds the exact helpdesk-bound bytes once the thread is known (inside the transaction). */
  payload(threadId: string | undefined): Buffer;
  /**
   * Insert the outbox row already claimed under this token until `leaseUntil` (the forwarder's hand-off, see
   * Forwarder.reserve): the row is then never claimed by a separate UPDATE that reads it back. Fenced and
   * leased exactly as a claimed row is, so a process that dies before delivering it only delays it.
   */
  claim?: { token: string; leaseUntil: number };
}

/** The outbox row an ingest inserted already claimed (`IngestItem.claim`), as a claim would return it. */
export function claimedAtInsert(
  claim: NonNullable<IngestItem["claim"]>,
  row: Omit<ClaimedRow, "attempts" | "token">,
): ClaimedRow {
  // Spelled out: on Node 20 (V8 11.3) a literal that starts with a spread and adds properties costs ~0.5 µs per
  // property added (docs/performance-history.md, round 17); this runs for every message ingested.
  return {
    id: row.id,
    messageId: row.messageId,
    channelId: row.channelId,
    payload: row.payload,
    attempts: 1,
    queuedAt: row.queuedAt,
    token: claim.token,
  };
}

export type IngestResult =
  | {
      status: "stored";
      messageId: number;
      threadId?: string;
      keyword?: KeywordAction;
      /** The outbox row, claimed at insert, when the item asked for it (`IngestItem.claim`). */
      claimed?: ClaimedRow;
    }
  | { status: "duplicate" };

export interface SentRecord {
  channelId: string;
  direction: Exclude<MessageDirection, "inbound">;
  provider: string;
  customer: string;
  channelNumber: string;
  body: string;
  threadId?: string | null;
  providerIds: string[];
  createdAt: number;
  /** For `outbound` (sent by another system): the helpdesk copy to forward with direction "outbound". */
  payload?(threadId: string | undefined): Buffer;
  /** Make this thread the customer's current one (staff replies). */
  adoptThread?: boolean;
}

export interface ClaimedRow {
  id: number;
  messageId: number;
  channelId: string;
  payload: Buffer;
  attempts: number;
  queuedAt: number;
  token: string;
}

export interface OutboxRow {
  id: number;
  message_id: number;
  channel_id: string;
  payload: Buffer;
  state: string;
  attempts: number;
  next_attempt_at: number;
  queued_at: number;
  last_status: number | null;
  last_error: string | null;
  last_answer: string | null;
  finished_at: number | null;
}

export interface ChannelStats {
  channelId: string;
  pending: number;
  oldestPendingAt: number | null;
  dead: number;
}

export type ReplyClaim =
  | { kind: "new" }
  | { kind: "done"; status: number; body: string }
  | { kind: "busy" }
  | { kind: "interrupted" };

export interface FinishOp {
  id: number;
  token: string;
  /**
   * The row's new columns: a retry or a dead message. None for a delivery, which deletes the row: the outbox
   * is a queue, not a log (architecture.md), and a delivered row was never read again.
   */
  set?: Partial<{
    state: "dead";
    next_attempt_at: number;
    last_status: number | null;
    last_error: string | null;
    last_answer: string | null;
    finished_at: number;
    claim_token: null;
  }>;
}

export interface StoreOptions {
  /** SQLite: told the duration of each WAL sync, in seconds (a metric). */
  onWalSync?: (seconds: number) => void;
  /** How many group-commit transactions may run at once (SQLite has one writer: 1). */
  commitConcurrency?: number;
  maxBatch?: number;
  /** SQLite: nice steps below the process for the checkpointer thread (config `server.backgroundNice`). */
  backgroundNice?: number;
}

/** How long a staff reply's idempotency record answers a repeat (retention deletes it some time after). */
export const REPLY_WINDOW_MS = 24 * 3_600_000;

/**
 * The bridge's persistence: one Kysely query layer over SQLite and PostgreSQL. Every write that
 * acknowledges something to someone is committed before the method resolves.
 */
export class Store {
  private readonly ingestQueue: GroupCommit<IngestItem, IngestResult>;
  private readonly finishQueue: GroupCommit<FinishOp, boolean>;
  /** Deletes what the bridge no longer keeps, in batches (the sweep is src/bridge/retention.ts). */
  readonly retention: Retention;

  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: Dialect,
    private readonly onClose: () => Promise<void>,
    opts: StoreOptions = {},
    private readonly hot?: SqliteHotPath,
    /** Connection URL, for PostgreSQL's LISTEN connection. */
    private readonly url?: string,
  ) {
    this.retention = hot ? hot.retention() : postgresRetention(db);
    this.ingestQueue = new GroupCommit(
      // PostgreSQL only: on SQLite the hot path batches ingest itself.
      (items) => this.tx((trx) => this.ingestBatch(trx, items, true)),
      {
        // Up to 4 transactions in flight on the pool: while one waits for its commit, the next fills.
        concurrency: opts.commitConcurrency ?? 4,
        maxBatch: opts.maxBatch ?? 256,
      },
    );
    // Delivery outcomes are group-committed too: one fsync per batch of finished deliveries, not per message.
    this.finishQueue = new GroupCommit(
      (ops) =>
        hot
          ? Promise.resolve().then(() => hot.finish(ops))
          : this.tx(async (trx) => {
              const out: boolean[] = [];
              for (const op of ops) out.push(await this.applyFinish(trx, op));
              return out;
            }),
      {
        concurrency: opts.commitConcurrency ?? (dialect === "sqlite" ? 1 : 4),
        maxBatch: opts.maxBatch ?? 256,
      },
    );
  }

  /** A Kysely transaction: PostgreSQL only (every SQLite write goes through the synchronous hot path). */
  private tx<T>(fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.db.transaction().execute(fn);
  }

  async migrate(): Promise<string[]> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider });
    const { error, results } = await migrator.migrateToLatest();
    if (error) throw error;
    return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
  }

  /** Database reachable and every migration applied (readiness). */
  async ready(): Promise<{ ok: true } | { ok: false; reason: string }> {
    try {
      const migrator = new Migrator({ db: this.db, provider: migrationProvider });
      const pending = (await migrator.getMigrations()).filter((m) => !m.executedAt);
      if (pending.length)
        return { ok: false, reason: `migrations not applied: ${pending.map((m) => m.name).join(", ")}` };
      return { ok: true };
    } catch (e) {
      return { ok: false, reason: `database unreachable: ${(e as Error).message}` };
    }
  }

  async close(): Promise<void> {
    await this.hot?.drain();
    await this.ingestQueue.drain();
    await this.finishQueue.drain();
    await this.onClose();
  }

  // ---- inbound -------------------------------------------------------------------------------------------

  /** Dedupes, stores the message and its outbox row in one transaction shared with concurrent callers. */
  ingest(item: IngestItem): Promise<IngestResult> {
    return this.hot ? this.hot.ingest(item) : this.ingestQueue.submit(item);
  }

  private async ingestBatch(
    trx: Transaction<Database>,
    items: IngestItem[],
    notify: boolean,
  ): Promise<IngestResult[]> {
    // Rows are locked in one global order (channel, customer, provider id), so concurrent batches — this
    // process's group commits and other instances' — wait for each other instead of deadlocking (40P01).
    const order = items
      .map((item, i) => ({ item, i }))
      .sort((x, y) => keyCompare(x.item, y.item) || x.i - y.i);
    const out: IngestResult[] = new Array(items.length);
    for (const { item, i } of order) out[i] = await this.ingestOne(trx, item);
    // Rows claimed at insert are this process's to deliver: waking the other instances would only cost them a claim.
    if (notify && out.some((r) => r.status === "stored" && !r.claimed)) await this.notifyOutbox(trx);
    return out;
  }

  /** PostgreSQL: wake every instance's forwarder when this transaction commits (NOTIFY is transactional). */
  private async notifyOutbox(db: Kysely<Database>): Promise<void> {
    if (this.dialect === "postgres") await sql`SELECT pg_notify(${OUTBOX_CHANNEL}, '')`.execute(db);
  }

  /**
   * Calls `fn` when another process committed outbox rows (PostgreSQL LISTEN/NOTIFY). SQLite has a single
   * process, which wakes its own forwarder directly; there this is a no-op.
   */
  onOutboxChange(fn: () => void, onError: (e: Error) => void = () => {}): () => Promise<void> {
    if (this.dialect !== "postgres" || !this.url) return async () => {};
    return listenForOutbox(this.url, fn, onError);
  }

  private async ingestOne(trx: Transaction<Database>, item: IngestItem): Promise<IngestResult> {
    const existing = await trx
      .selectFrom("messages")
      .select("id")
      .where("channel_id", "=", item.channelId)
      .where("provider", "=", item.provider)
      .where("provider_message_id", "=", item.providerMessageId)
      .where("direction", "=", "inbound")
      .executeTakeFirst();
    if (existing) return { status: "duplicate" };

    const current = readsCurrentThread(item.threading)
      ? await this.threadState(trx, item.channelId, item.customer)
      : undefined;
    const { threadId, state } = threadFor(
      item.threading,
      item.channelId,
      item.customer,
      current,
      item.createdAt,
    );
    const inserted = await trx
      .insertInto("messages")
      .values({
        channel_id: item.channelId,
        direction: "inbound",
        provider: item.provider,
        provider_message_id: item.providerMessageId,
        customer: item.customer,
        channel_number: item.channelNumber,
        body: item.body,
        thread_id: threadId ?? null,
        created_at: item.createdAt,
        delivery_state: null,
        delivery_status: null,
        delivery_error: null,
        delivery_updated_at: null,
        meta: item.meta ? JSON.stringify(item.meta) : null,
      })
      // Two instances racing on the same webhook: the unique index decides, the loser stores nothing.
      .onConflict((oc) =>
        // The predicate must be literal SQL: SQLite matches it textually against the partial index.
        oc
          .columns(["channel_id", "provider", "provider_message_id"])
          .where(sql<boolean>`direction = 'inbound'`)
          .doNothing(),
      )
      .returning("id")
      .executeTakeFirst();
    if (!inserted) return { status: "duplicate" };
    if (state) await this.saveThread(trx, item.channelId, item.customer, state.threadId, state.lastActivity);
    const keyword = keywordAction(item.body);
    if (keyword === "opt-out" || keyword === "opt-in") {
      await this.writeOptOut(
        trx,
        item.channelId,
        item.customer,
        keyword === "opt-out",
        item.body.trim(),
        item.createdAt,
      );
    }
    const payload = item.payload(threadId);
    const queuedAt = item.receivedAt ?? item.createdAt;
    const outboxId = await this.insertOutbox(trx, inserted.id, item.channelId, payload, queuedAt, item.claim);
    return {
      status: "stored",
      messageId: inserted.id,
      ...(threadId ? { threadId } : {}),
      ...(keyword ? { keyword } : {}),
      ...(item.claim
        ? {
            claimed: claimedAtInsert(item.claim, {
              id: outboxId,
              messageId: inserted.id,
              channelId: item.channelId,
              payload,
              queuedAt,
            }),
          }
        : {}),
    };
  }

  private async insertOutbox(
    trx: Transaction<Database>,
    messageId: number,
    channelId: string,
    payload: Buffer,
    now: number,
    claim?: IngestItem["claim"],
  ): Promise<number> {
    const row = await trx
      .insertInto("outbox")
      .values({
        message_id: messageId,
        channel_id: channelId,
        payload,
        state: "pending",
        attempts: claim ? 1 : 0,
        next_attempt_at: claim ? claim.leaseUntil : now,
        claim_token: claim ? claim.token : null,
        queued_at: now,
        last_status: null,
        last_error: null,
        last_answer: null,
        finished_at: null,
      })
      .returning("id")
      .executeTakeFirstOrThrow();
    return row.id;
  }

  // ---- threads and opt-outs -------------------------------------------------------------------------------

  private async threadState(db: Kysely<Database>, channelId: string, customer: string) {
    const row = await db
      .selectFrom("threads")
      .select(["thread_id", "last_activity"])
      .where("channel_id", "=", channelId)
      .where("customer", "=", customer)
      .executeTakeFirst();
    return row ? { threadId: row.thread_id, lastActivity: row.last_activity } : undefined;
  }

  currentThread(channelId: string, customer: string) {
    return this.threadState(this.db, channelId, customer);
  }

  private async saveThread(
    db: Kysely<Database>,
    channelId: string,
    customer: string,
    threadId: string,
    at: number,
  ) {
    await db
      .insertInto("threads")
      .values({ channel_id: channelId, customer, thread_id: threadId, last_activity: at })
      .onConflict((oc) =>
        oc.columns(["channel_id", "customer"]).doUpdateSet({ thread_id: threadId, last_activity: at }),
      )
      .execute();
  }

  private async writeOptOut(
    db: Kysely<Database>,
    channelId: string,
    customer: string,
    optedOut: boolean,
    keyword: string,
    at: number,
  ) {
    const values = { opted_out: optedOut ? 1 : 0, keyword, updated_at: at };
    await db
      .insertInto("opt_outs")
      .values({ channel_id: channelId, customer, ...values })
      .onConflict((oc) => oc.columns(["channel_id", "customer"]).doUpdateSet(values))
      .execute();
  }

  setOptOut(
    channelId: string,
    customer: string,
    optedOut: boolean,
    keyword: string,
    at: number,
  ): Promise<void> {
    return this.writeOptOut(this.db, channelId, customer, optedOut, keyword, at);
  }

  async optOut(channelId: string, customer: string): Promise<{ keyword: string; at: number } | undefined> {
    const row = this.hot
      ? this.hot.optOut(channelId, customer)
      : await this.db
          .selectFrom("opt_outs")
          .select(["opted_out", "keyword", "updated_at"])
          .where("channel_id", "=", channelId)
          .where("customer", "=", customer)
          .executeTakeFirst();
    return row && Number(row.opted_out) === 1 ? { keyword: row.keyword, at: row.updated_at } : undefined;
  }

  // ---- messages we sent ------------------------------------------------------------------------------------

  /**
   * Records a sent SMS (staff reply or API send), its provider ids for status callbacks, and its outbox copy.
   *
   * With a staff reply's idempotency answer, the record resolves once committed, without waiting for the disk
   * sync (the sync follows and covers it). What that sync protects is only the stored answer: the reply's
   * "sending" claim was durable before the SMS went out, so a power cut in between turns a repeat of this
   * webhook into a 409 ("may have been sent"), never into a second SMS. Waiting would put a second disk sync
   * on every staff reply, and this disk's sync stalls are what set the reply path's p99.
   */
  async recordSent(
    rec: SentRecord,
    /** A staff reply's idempotency answer, stored in the same transaction. */
    reply?: { hash: string; status: number; body: string },
  ): Promise<{ messageId: number; threadId?: string }> {
    const hot = this.hot;
    const durable = !reply;
    if (hot) return hot.recordSent(rec, reply, { durable });
    return this.tx(async (trx) => {
      // PostgreSQL's equivalent: the commit is visible at once and the WAL writer flushes it moments later.
      if (!durable && this.dialect === "postgres") await sql`SET LOCAL synchronous_commit = off`.execute(trx);
      let threadId = rec.threadId ?? undefined;
      if (!threadId && rec.direction === "outbound")
        threadId = (await this.threadState(trx, rec.channelId, rec.customer))?.threadId;
      const inserted = await trx
        .insertInto("messages")
        .values({
          channel_id: rec.channelId,
          direction: rec.direction,
          provider: rec.provider,
          provider_message_id: rec.providerIds[0] ?? null,
          customer: rec.customer,
          channel_number: rec.channelNumber,
          body: rec.body,
          thread_id: threadId ?? null,
          created_at: rec.createdAt,
          delivery_state: "sent",
          delivery_status: null,
          delivery_error: null,
          delivery_updated_at: rec.createdAt,
          meta: null,
        })
        .returning("id")
        .executeTakeFirstOrThrow();
      for (const pid of rec.providerIds) {
        await trx
          .insertInto("provider_refs")
          .values({
            channel_id: rec.channelId,
            provider: rec.provider,
            provider_message_id: pid,
            message_id: inserted.id,
          })
          .onConflict((oc) => oc.doNothing())
          .execute();
      }
      if (threadId && (rec.adoptThread || rec.direction === "outbound")) {
        await this.saveThread(trx, rec.channelId, rec.customer, threadId, rec.createdAt);
      }
      if (rec.payload) {
        await this.insertOutbox(trx, inserted.id, rec.channelId, rec.payload(threadId), rec.createdAt);
        await this.notifyOutbox(trx);
      }
      if (reply)
        await this.writeReplyAnswer(trx, rec.channelId, reply.hash, reply.status, reply.body, inserted.id);
      return { messageId: inserted.id, ...(threadId ? { threadId } : {}) };
    });
  }

  /** Applies a delivery report to the message it belongs to; false when no sent message has that id. */
  async recordDelivery(
    channelId: string,
    provider: string,
    providerMessageId: string,
    update: { state: string; providerStatus: string; error?: string; at: number },
  ): Promise<boolean> {
    const ref = await this.db
      .selectFrom("provider_refs")
      .select("message_id")
      .where("channel_id", "=", channelId)
      .where("provider", "=", provider)
      .where("provider_message_id", "=", providerMessageId)
      .executeTakeFirst();
    if (!ref) return false;
    await this.db
      .updateTable("messages")
      .set({
        delivery_state: update.state,
        delivery_status: update.providerStatus,
        delivery_error: update.error ?? null,
        delivery_updated_at: update.at,
      })
      .where("id", "=", ref.message_id)
      .execute();
    return true;
  }

  async message(id: number) {
    return this.db.selectFrom("messages").selectAll().where("id", "=", id).executeTakeFirst();
  }

  // ---- staff-reply idempotency -----------------------------------------------------------------------------

  /**
   * Takes the right to send a staff reply identified by (channel, hash of its body bytes). A repeat within
   * 24 h gets the first answer back; a concurrent repeat is told to wait; a send interrupted by a crash is
   * never guessed at.
   */
  async claimReply(channelId: string, hash: string, now: number, leaseMs: number): Promise<ReplyClaim> {
    const hot = this.hot;
    // Durable before the caller sends: a crash after sending must find this record.
    if (hot) return hot.claimReply(channelId, hash, now, leaseMs, REPLY_WINDOW_MS);
    return this.tx(async (trx) => {
      const row = await trx
        .selectFrom("replies")
        .selectAll()
        .where("channel_id", "=", channelId)
        .where("body_hash", "=", hash)
        .$if(this.dialect === "postgres", (q) => q.forUpdate())
        .executeTakeFirst();
      if (row && now - row.created_at < REPLY_WINDOW_MS) {
        if (row.state === "done")
          return { kind: "done", status: row.answer_status ?? 500, body: row.answer_body ?? "" };
        return row.lease_until > now ? { kind: "busy" } : { kind: "interrupted" };
      }
      const values = {
        state: "sending" as const,
        created_at: now,
        lease_until: now + leaseMs,
        answer_status: null,
        answer_body: null,
        message_id: null,
      };
      const inserted = await trx
        .insertInto("replies")
        .values({ channel_id: channelId, body_hash: hash, ...values })
        .onConflict((oc) =>
          row ? oc.columns(["channel_id", "body_hash"]).doUpdateSet(values) : oc.doNothing(),
        )
        .returning("body_hash")
        .executeTakeFirst();
      // Lost a race with another instance inserting the same reply: it is sending it.
      return inserted ? { kind: "new" } : { kind: "busy" };
    });
  }

  async finishReply(
    channelId: string,
    hash: string,
    status: number,
    body: string,
    messageId?: number,
  ): Promise<void> {
    const hot = this.hot;
    if (hot) return hot.answerReply(channelId, hash, status, body, messageId);
    await this.tx((trx) => this.writeReplyAnswer(trx, channelId, hash, status, body, messageId));
  }

  private async writeReplyAnswer(
    db: Kysely<Database>,
    channelId: string,
    hash: string,
    status: number,
    body: string,
    messageId?: number,
  ): Promise<void> {
    await db
      .updateTable("replies")
      .set({ state: "done", answer_status: status, answer_body: body, message_id: messageId ?? null })
      .where("channel_id", "=", channelId)
      .where("body_hash", "=", hash)
      .execute();
  }

  /** Forgets a reply attempt that certainly sent nothing (retryable failure), so a repeat may try again. */
  async abandonReply(channelId: string, hash: string): Promise<void> {
    const hot = this.hot;
    if (hot) return hot.dropReply(channelId, hash);
    await this.tx((trx) =>
      trx.deleteFrom("replies").where("channel_id", "=", channelId).where("body_hash", "=", hash).execute(),
    );
  }

  // ---- outbox ----------------------------------------------------------------------------------------------

  /**
   * Claims up to `limit` due rows. A claim moves `next_attempt_at` to the end of the lease, so a row whose
   * worker died becomes due again by itself, and sets a fresh token that every later write must present
   * (fencing: a worker whose lease expired can no longer change the row).
   */
  async claim(opts: {
    limit: number;
    leaseMs: number;
    now: number;
    channels: readonly string[];
  }): Promise<ClaimedRow[]> {
    if (opts.channels.length === 0) return [];
    const token = randomUUID();
    const hot = this.hot;
    if (hot) {
      const channels = opts.channels;
      return channels.flatMap((channel) =>
        hot.claim({ limit: opts.limit, leaseMs: opts.leaseMs, now: opts.now, channel, token }),
      );
    }
    const leaseEnd = opts.now + opts.leaseMs;
    let due = this.db
      .selectFrom("outbox")
      .select("id")
      .where("state", "=", "pending")
      .where("next_attempt_at", "<=", opts.now)
      .orderBy("next_attempt_at")
      .orderBy("id")
      .limit(opts.limit);
    due = due.where("channel_id", "in", opts.channels as string[]);
    if (this.dialect === "postgres") due = due.forUpdate().skipLocked();
    const rows = await this.db
      .updateTable("outbox")
      .set((eb) => ({ next_attempt_at: leaseEnd, claim_token: token, attempts: eb("attempts", "+", 1) }))
      .where("id", "in", due)
      .returning(["id", "message_id", "channel_id", "payload", "attempts", "queued_at"])
      .execute();
    return rows
      .map((r) => ({
        id: r.id,
        messageId: r.message_id,
        channelId: r.channel_id,
        payload: Buffer.from(r.payload),
        attempts: r.attempts,
        queuedAt: r.queued_at,
        token,
      }))
      .sort((a, b) => a.id - b.id);
  }

  /** Extends a lease still held (heartbeat); false when the claim was lost. */
  async extendLease(id: number, token: string, until: number): Promise<boolean> {
    const r = await this.db
      .updateTable("outbox")
      .set({ next_attempt_at: until })
      .where("id", "=", id)
      .where("claim_token", "=", token)
      .where("state", "=", "pending")
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Deletes a delivered row, if the claim is still this token's. */
  async markDelivered(id: number, token: string): Promise<boolean> {
    return this.finishClaim(id, token);
  }

  async markRetry(
    id: number,
    token: string,
    nextAt: number,
    status: number | null,
    error: string,
    answer?: string,
  ): Promise<boolean> {
    return this.finishClaim(id, token, {
      next_attempt_at: nextAt,
      last_status: status,
      last_error: error,
      last_answer: answer ?? null,
      claim_token: null,
    });
  }

  async markDead(
    id: number,
    token: string,
    status: number | null,
    error: string,
    answer: string,
    now: number,
  ): Promise<boolean> {
    return this.finishClaim(id, token, {
      state: "dead",
      last_status: status,
      last_error: error,
      last_answer: answer,
      finished_at: now,
    });
  }

  private finishClaim(id: number, token: string, set?: FinishOp["set"]): Promise<boolean> {
    return this.finishQueue.submit(set ? { id, token, set } : { id, token });
  }

  private async applyFinish(trx: Transaction<Database>, op: FinishOp): Promise<boolean> {
    // Every outcome, a delivery's delete included, lands only while the claim is still this token's (fencing).
    const held = (eb: ExpressionBuilder<Database, "outbox">) =>
      eb.and({ id: op.id, claim_token: op.token, state: "pending" });
    if (!op.set) {
      const r = await trx.deleteFrom("outbox").where(held).executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    }
    const r = await trx.updateTable("outbox").set(op.set).where(held).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async channelStats(): Promise<ChannelStats[]> {
    const pending = await this.db
      .selectFrom("outbox")
      .select((eb) => ["channel_id", eb.fn.countAll<number>().as("n"), eb.fn.min("queued_at").as("oldest")])
      .where("state", "=", "pending")
      .groupBy("channel_id")
      .execute();
    const dead = await this.db
      .selectFrom("outbox")
      .select((eb) => ["channel_id", eb.fn.countAll<number>().as("n")])
      .where("state", "=", "dead")
      .groupBy("channel_id")
      .execute();
    const map = new Map<string, ChannelStats>();
    const get = (c: string) => {
      const s = map.get(c) ?? { channelId: c, pending: 0, oldestPendingAt: null, dead: 0 };
      map.set(c, s);
      return s;
    };
    for (const r of pending)
      Object.assign(get(r.channel_id), {
        pending: Number(r.n),
        oldestPendingAt: r.oldest === null ? null : Number(r.oldest),
      });
    for (const r of dead) get(r.channel_id).dead = Number(r.n);
    return [...map.values()];
  }

  async listDead(opts: { channelId?: string; limit?: number } = {}): Promise<OutboxRow[]> {
    let q = this.db
      .selectFrom("outbox")
      .selectAll()
      .where("state", "=", "dead")
      .orderBy("id")
      .limit(opts.limit ?? 100);
    if (opts.channelId) q = q.where("channel_id", "=", opts.channelId);
    const rows = await q.execute();
    return rows.map((r) => ({ ...r, payload: Buffer.from(r.payload) }));
  }

  async outboxRow(id: number): Promise<OutboxRow | undefined> {
    const r = await this.db.selectFrom("outbox").selectAll().where("id", "=", id).executeTakeFirst();
    return r ? { ...r, payload: Buffer.from(r.payload) } : undefined;
  }

  /** Puts dead rows back in the queue, due now, with a fresh retry budget. */
  async replayDead(
    sel: { id?: number; since?: number; all?: boolean; channelId?: string },
    now: number,
  ): Promise<number> {
    let q = this.db
      .updateTable("outbox")
      .set({
        state: "pending",
        next_attempt_at: now,
        queued_at: now,
        attempts: 0,
        claim_token: null,
        finished_at: null,
      })
      .where("state", "=", "dead");
    if (sel.channelId !== undefined) q = q.where("channel_id", "=", sel.channelId);
    if (sel.id !== undefined) q = q.where("id", "=", sel.id);
    else if (sel.since !== undefined) q = q.where("finished_at", ">=", sel.since);
    else if (!sel.all) return 0;
    const r = await q.executeTakeFirst();
    if (Number(r.numUpdatedRows) > 0) await this.notifyOutbox(this.db);
    return Number(r.numUpdatedRows);
  }

  /**
   * Soonest time a pending row of these channels becomes due, for the forwarder's sleep. One lookup per
   * channel in `outbox_due_channel` (O(log n) each, however large the backlog).
   */
  async nextDue(channels: Iterable<string>): Promise<number | undefined> {
    let soonest: number | undefined;
    for (const channel of channels) {
      const r = await this.db
        .selectFrom("outbox")
        .select("next_attempt_at")
        .where("channel_id", "=", channel)
        // Literal, so that a prepared plan on PostgreSQL can prove the partial index applies.
        .where(sql<boolean>`state = 'pending'`)
        .orderBy("next_attempt_at")
        .orderBy("id")
        .limit(1)
        .executeTakeFirst();
      if (r && (soonest === undefined || r.next_attempt_at < soonest)) soonest = r.next_attempt_at;
    }
    return soonest;
  }

  // ---- operations (CLI) ------------------------------------------------------------------------------------

  /**
   * Messages we sent (staff replies, API sends) whose provider reported `failed` or `undelivered` since `since`,
   * newest first: what `smsbridge status` shows so an operator sees which replies never reached the customer.
   */
  async deliveryFailures(opts: { since: number; channelId?: string; limit?: number }): Promise<
    Array<{
      messageId: number;
      channelId: string;
      direction: MessageDirection;
      customer: string;
      providerMessageId: string | null;
      state: string;
      providerStatus: string | null;
      error: string | null;
      at: number;
      body: string;
    }>
  > {
    let q = this.db
      .selectFrom("messages")
      .select([
        "id",
        "channel_id",
        "direction",
        "customer",
        "provider_message_id",
        "delivery_state",
        "delivery_status",
        "delivery_error",
        "delivery_updated_at",
        "body",
      ])
      .where("direction", "!=", "inbound")
      .where("delivery_state", "in", ["failed", "undelivered"])
      .where("delivery_updated_at", ">=", opts.since)
      .orderBy("delivery_updated_at", "desc")
      .orderBy("id", "desc")
      .limit(opts.limit ?? 20);
    if (opts.channelId) q = q.where("channel_id", "=", opts.channelId);
    const rows = await q.execute();
    return rows.map((r) => ({
      messageId: Number(r.id),
      channelId: r.channel_id,
      direction: r.direction,
      customer: r.customer,
      providerMessageId: r.provider_message_id,
      state: r.delivery_state ?? "",
      providerStatus: r.delivery_status,
      error: r.delivery_error,
      at: Number(r.delivery_updated_at),
      body: r.body,
    }));
  }

  /** How many sent messages per channel the provider reported failed or undelivered since `since`. */
  async deliveryFailureCounts(since: number): Promise<Array<{ channelId: string; failures: number }>> {
    const rows = await this.db
      .selectFrom("messages")
      .select((eb) => ["channel_id", eb.fn.countAll<number>().as("n")])
      .where("direction", "!=", "inbound")
      .where("delivery_state", "in", ["failed", "undelivered"])
      .where("delivery_updated_at", ">=", since)
      .groupBy("channel_id")
      .orderBy("channel_id")
      .execute();
    return rows.map((r) => ({ channelId: r.channel_id, failures: Number(r.n) }));
  }

  /** `replayDead` for one channel's dead rows (all, or those dead since `since`), e.g. after fixing its secret. */
  async replayDeadOfChannel(channelId: string, since: number | undefined, now: number): Promise<number> {
    return this.replayDead(since !== undefined ? { channelId, since } : { channelId, all: true }, now);
  }
}

function keyCompare(a: IngestItem, b: IngestItem): number {
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return (
    cmp(a.channelId, b.channelId) ||
    cmp(a.customer, b.customer) ||
    cmp(a.provider, b.provider) ||
    cmp(a.providerMessageId, b.providerMessageId)
  );
}
