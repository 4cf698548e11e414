import { type FileHandle, open } from "node:fs/promises";
import type Database from "better-sqlite3";
import { keywordAction } from "../../core/optout.js";
import { readsCurrentThread, threadFor } from "../../core/threading.js";
import { type Retention, sqliteRetention } from "../retention.js";
import {
  type ClaimedRow,
  claimedAtInsert,
  type FinishOp,
  type IngestItem,
  type IngestResult,
  type ReplyClaim,
  type SentRecord,
} from "../store.js";
import type { SyncMode } from "./sqlite.js";

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** fdatasyncs of the WAL in flight at once (libuv's pool has 4 threads; the rest are for other I/O). */
const MAX_SYNCS = 2;

/**
 * The SQLite paths that run once per message or staff reply — ingest, claim, finish, a reply's idempotency
 * claim and record — as synchronous prepared statements inside better-sqlite3 transactions. Measured: Kysely's async layer over a synchronous driver
 * costs several times what these statements do, and these paths bound the bridge's throughput. The same
 * rules run on PostgreSQL through Kysely (store.ts); the store suite runs both and must see the same results.
 *
 * Durability: an ingest batch is acknowledged only after its commit is on disk. The commit itself runs with
 * synchronous=NORMAL and the WAL is then fdatasync'ed from libuv's thread pool (`syncWal`): the same bytes
 * reach the disk as with synchronous=FULL (which syncs the WAL at commit), but the event loop keeps taking
 * webhooks during the sync instead of blocking in it — those form the next batch. Claims and delivery
 * outcomes are not synced at all: after a power cut they may be lost, which means a message is delivered
 * again with the same id (at-least-once), never that one is lost; the next WAL sync covers them too.
 */
export class SqliteHotPath {
  private prepared: ReturnType<SqliteHotPath["prepare"]> | undefined;
  private readonly finishStatements = new Map<string, Database.Statement>();

  constructor(
    private readonly raw: Database.Database,
    private readonly mode: SyncMode,
    private readonly hooks: {
      /** Throws if the database can no longer be written (sqlite-writable.ts). */
      checkWritable?: () => void;
      /** Runs before each commit, once the files are known to be writable (the checkpointer's catch-up). */
      beforeCommit?: () => void;
      /** Called after each commit (the checkpointer's cue). */
      onCommit?: () => void;
      /** Told how long each WAL sync took, in seconds. */
      onSync?: (seconds: number) => void;
    } = {},
  ) {}

  // Prepared on first use: the tables exist only once migrations ran.
  private get s() {
    this.prepared ??= this.prepare();
    return this.prepared;
  }

  private transactions: ReturnType<SqliteHotPath["transactionFns"]> | undefined;

  // Built once: better-sqlite3's transaction() compiles a new wrapper on every call, which showed in profiles.
  // Run with `.immediate` (BEGIN IMMEDIATE): the write lock is taken, waiting up to busy_timeout, before the
  // first read. A deferred transaction that reads, then writes after another process (`smsbridge prune`,
  // `dead replay`) committed, fails at once with SQLITE_BUSY — the busy handler cannot help a stale snapshot.
  private get tx() {
    this.transactions ??= this.transactionFns();
    return this.transactions;
  }

  private transactionFns() {
    const s = {
      savepoint: this.raw.prepare("SAVEPOINT write"),
      release: this.raw.prepare("RELEASE write"),
      rollbackTo: this.raw.prepare("ROLLBACK TO write"),
    };
    return {
      /** A group-committed batch in one transaction; the first write that throws rolls all of it back. */
      batch: this.raw.transaction((batch: Array<{ fn: () => unknown }>) =>
        batch.map((w): Outcome => ({ ok: true, value: w.fn() })),
      ),
      /** The same batch with a savepoint per write, so a failing one undoes only itself (`commitQueued`). */
      batchGuarded: this.raw.transaction((batch: Array<{ fn: () => unknown }>) =>
        batch.map((w): Outcome => {
          s.savepoint.run();
          try {
            const value = w.fn();
            s.release.run();
            return { ok: true, value };
          } catch (error) {
            // An I/O error (disk full, read-only file system) makes SQLite roll the whole transaction back;
            // the writes after it must not run outside one. The batch fails as a whole.
            if (!this.raw.inTransaction) throw error;
            s.rollbackTo.run();
            s.release.run();
            return { ok: false, error };
          }
        }),
      ),
      finish: this.raw.transaction((ops: FinishOp[]) =>
        ops.map((op) => {
          if (!op.set) return this.s.deleteDelivered.run(op.id, op.token).changes === 1;
          const cols = Object.keys(op.set);
          // Column names come from our own FinishOp keys, never from input.
          const sql = `UPDATE outbox SET ${cols.map((c) => `${c} = ?`).join(", ")} WHERE id = ? AND claim_token = ? AND state = 'pending'`;
          const values = cols.map((c) => (op.set as Record<string, unknown>)[c]);
          const stmt = this.finishStatements.get(sql) ?? this.raw.prepare(sql);
          this.finishStatements.set(sql, stmt);
          return stmt.run(...values, op.id, op.token).changes === 1;
        }),
      ),
    };
  }

  private prepare() {
    const raw = this.raw;
    return {
      thread: raw.prepare(
        "SELECT thread_id, last_activity FROM threads WHERE channel_id = ? AND customer = ?",
      ),
      // The dedupe index decides whether a provider message is new: no row back means a duplicate.
      insertMessage: raw.prepare(
        `INSERT INTO messages (channel_id, direction, provider, provider_message_id, customer, channel_number, body, thread_id, created_at, meta)
         VALUES (?, 'inbound', ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (channel_id, provider, provider_message_id) WHERE direction = 'inbound' DO NOTHING RETURNING id`,
      ),
      saveThread: raw.prepare(
        `INSERT INTO threads (channel_id, customer, thread_id, last_activity) VALUES (?, ?, ?, ?)
         ON CONFLICT (channel_id, customer) DO UPDATE SET thread_id = excluded.thread_id, last_activity = excluded.last_activity`,
      ),
      saveOptOut: raw.prepare(
        `INSERT INTO opt_outs (channel_id, customer, opted_out, keyword, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (channel_id, customer) DO UPDATE SET opted_out = excluded.opted_out, keyword = excluded.keyword, updated_at = excluded.updated_at`,
      ),
      // Claimed at insert (IngestItem.claim), the row is as a claim would leave it: attempts 1, leased, fenced.
      insertOutbox: raw.prepare(
        `INSERT INTO outbox (message_id, channel_id, payload, state, attempts, next_attempt_at, claim_token, queued_at)
         VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)`,
      ),
      optOut: raw.prepare(
        "SELECT opted_out, keyword, updated_at FROM opt_outs WHERE channel_id = ? AND customer = ?",
      ),
      reply: raw.prepare(
        "SELECT state, created_at, lease_until, answer_status, answer_body FROM replies WHERE channel_id = ? AND body_hash = ?",
      ),
      takeReply: raw.prepare(
        `INSERT INTO replies (channel_id, body_hash, state, created_at, lease_until, answer_status, answer_body, message_id)
         VALUES (?, ?, 'sending', ?, ?, NULL, NULL, NULL)
         ON CONFLICT (channel_id, body_hash) DO UPDATE SET state = 'sending', created_at = excluded.created_at,
           lease_until = excluded.lease_until, answer_status = NULL, answer_body = NULL, message_id = NULL`,
      ),
      answerReply: raw.prepare(
        "UPDATE replies SET state = 'done', answer_status = ?, answer_body = ?, message_id = ? WHERE channel_id = ? AND body_hash = ?",
      ),
      dropReply: raw.prepare("DELETE FROM replies WHERE channel_id = ? AND body_hash = ?"),
      // A delivered row is deleted under its claim (store.ts FinishOp).
      deleteDelivered: raw.prepare(
        "DELETE FROM outbox WHERE id = ? AND claim_token = ? AND state = 'pending'",
      ),
      insertSent: raw.prepare(
        `INSERT INTO messages (channel_id, direction, provider, provider_message_id, customer, channel_number, body, thread_id, created_at, delivery_state, delivery_updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'sent', ?) RETURNING id`,
      ),
      insertRef: raw.prepare(
        "INSERT INTO provider_refs (channel_id, provider, provider_message_id, message_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
      ),
      claim: raw.prepare(
        `UPDATE outbox SET next_attempt_at = ?, claim_token = ?, attempts = attempts + 1
         WHERE id IN (SELECT id FROM outbox INDEXED BY outbox_due_channel
                      WHERE state = 'pending' AND next_attempt_at <= ? AND channel_id = ?
                      ORDER BY next_attempt_at, id LIMIT ?)
         RETURNING id, message_id, channel_id, payload, attempts, queued_at`,
      ),
    };
  }

  /**
   * Stores one provider message; resolves once it is on disk. `write` batches the messages that arrive
   * together into one transaction and one sync (no second queue in front of it: that cost a turn of the
   * event loop and a promise chain per batch).
   */
  ingest(item: IngestItem): Promise<IngestResult> {
    return this.write(() => this.ingestOne(item));
  }

  private pendingWrites = 0;
  private drained: Array<() => void> = [];

  /** Resolves when every write queued so far has settled. */
  drain(): Promise<void> {
    if (this.pendingWrites === 0) return Promise.resolve();
    return new Promise((r) => this.drained.push(r));
  }

  private queuedWrites: Array<{
    fn: () => unknown;
    durable: boolean;
    resolve: (v: unknown) => void;
    reject: (e: unknown) => void;
  }> = [];

  /**
   * Runs a synchronous write and resolves once it is on disk. While a WAL sync is running, writes queued in
   * the same turn of the event loop commit together, in one transaction (each inside its own savepoint, so
   * one failing undoes only itself), followed by one WAL sync: at 1,000 staff replies/s a commit per write
   * wrote ~10 WAL pages per reply, most of them the same few B-tree pages again and again.
   *
   * `fn` may run twice — a batch in which another write failed runs again (see `commitQueued`) — so it must
   * do nothing but statements on this connection.
   *
   * `durable: false` resolves once the write is committed (safe from a crash of this process, not yet from a
   * power cut) instead of once it is synced; the sync still runs, and covers it.
   */
  write<T>(fn: () => T, opts: { durable: boolean } = { durable: true }): Promise<T> {
    this.pendingWrites++;
    return new Promise<T>((resolve, reject) => {
      this.queuedWrites.push({
        fn,
        durable: opts.durable,
        resolve: (v) => {
          this.settled();
          resolve(v as T);
        },
        reject: (e) => {
          this.settled();
          reject(e);
        },
      });
      if (this.queuedWrites.length > 1) return;
      // Idle disk: commit now, nothing to share a sync with. Busy: wait for this turn of the loop to end.
      if (this.syncsRunning === 0) void this.commitQueued();
      else setImmediate(() => void this.commitQueued());
    });
  }

  private settled(): void {
    if (--this.pendingWrites === 0) for (const f of this.drained.splice(0)) f();
  }

  private async commitQueued(): Promise<void> {
    const batch = this.queuedWrites.splice(0);
    let outcomes: Outcome[];
    try {
      // Writes almost never fail (conflicts are ON CONFLICT clauses), so the batch first runs without a
      // savepoint per write (two statements fewer per write, ~a third of a short write's statements). If one
      // fails, the whole transaction has rolled back: a write alone is answered with its error; a batch runs
      // again, each write in its own savepoint, so only the failing one is undone.
      try {
        outcomes = this.committed(() => this.tx.batch.immediate(batch));
      } catch (error) {
        if (batch.length === 1 || this.raw.inTransaction) throw error;
        outcomes = this.committed(() => this.tx.batchGuarded.immediate(batch));
      }
    } catch (error) {
      // The commit failed: nothing in the batch may be reported as written.
      for (const w of batch) w.reject(error);
      return;
    }
    const settle = (durable: boolean) => {
      for (const [i, w] of batch.entries()) {
        if (w.durable !== durable) continue;
        const o = outcomes[i]!;
        if (o.ok) w.resolve(o.value);
        else w.reject(o.error);
      }
    };
    settle(false);
    // Nothing here waits for the disk: the next sync (a durable write's, or the checkpoint's) covers this commit.
    if (batch.every((w) => !w.durable)) return;
    try {
      await this.syncWal();
    } catch (error) {
      // Committed but maybe not on disk: none of the durable writes may be reported as written.
      for (const w of batch) if (w.durable) w.reject(error);
      return;
    }
    settle(true);
  }

  private wal: Promise<FileHandle | undefined> | undefined;
  private syncsRunning = 0;
  private queuedSync:
    | { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void }
    | undefined;

  /**
   * Makes every commit so far durable: fdatasync of the WAL file, off the event loop. Up to MAX_SYNCS run at
   * once (a caller need not wait for a sync that started before its commit to end before its own starts);
   * callers that arrive while that many run share the next one, which starts as soon as one ends and covers
   * all their commits: one flush for many waiting transactions, however many there are.
   */
  syncWal(): Promise<void> {
    if (this.raw.memory) return Promise.resolve();
    if (this.syncsRunning < MAX_SYNCS) return this.startSync();
    if (!this.queuedSync) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.queuedSync = { promise, resolve, reject };
    }
    return this.queuedSync.promise;
  }

  private startSync(): Promise<void> {
    this.syncsRunning++;
    return this.flush().finally(() => {
      this.syncsRunning--;
      const queued = this.queuedSync;
      if (queued) {
        this.queuedSync = undefined;
        this.startSync().then(queued.resolve, queued.reject);
      }
    });
  }

  private async flush(): Promise<void> {
    this.wal ??= open(`${this.raw.name}-wal`, "r").catch((e: NodeJS.ErrnoException) => {
      this.wal = undefined;
      if (e.code === "ENOENT") return undefined;
      throw e;
    });
    const fh = await this.wal;
    if (!fh) {
      // No WAL file yet means no commit reached it; fall back to the database file itself.
      this.raw.pragma("wal_checkpoint(FULL)");
      return;
    }
    const started = performance.now();
    await fh.datasync();
    this.hooks.onSync?.((performance.now() - started) / 1000);
  }

  async close(): Promise<void> {
    const fh = await this.wal?.catch(() => undefined);
    await fh?.close();
  }

  private ingestOne(item: IngestItem): IngestResult {
    const s = this.s;
    const row = readsCurrentThread(item.threading)
      ? (s.thread.get(item.channelId, item.customer) as
          | { thread_id: string; last_activity: number }
          | undefined)
      : undefined;
    const current = row ? { threadId: row.thread_id, lastActivity: row.last_activity } : undefined;
    const { threadId, state } = threadFor(
      item.threading,
      item.channelId,
      item.customer,
      current,
      item.createdAt,
    );
    const inserted = s.insertMessage.get(
      item.channelId,
      item.provider,
      item.providerMessageId,
      item.customer,
      item.channelNumber,
      item.body,
      threadId ?? null,
      item.createdAt,
      item.meta ? JSON.stringify(item.meta) : null,
    ) as { id: number } | undefined;
    if (!inserted) return { status: "duplicate" };
    if (state) s.saveThread.run(item.channelId, item.customer, state.threadId, state.lastActivity);
    const keyword = keywordAction(item.body);
    if (keyword === "opt-out" || keyword === "opt-in") {
      s.saveOptOut.run(
        item.channelId,
        item.customer,
        keyword === "opt-out" ? 1 : 0,
        item.body.trim(),
        item.createdAt,
      );
    }
    const queuedAt = item.receivedAt ?? item.createdAt;
    const payload = item.payload(threadId);
    const claim = item.claim;
    const outbox = s.insertOutbox.run(
      inserted.id,
      item.channelId,
      payload,
      claim ? 1 : 0,
      claim ? claim.leaseUntil : queuedAt,
      claim ? claim.token : null,
      queuedAt,
    );
    return {
      status: "stored",
      messageId: inserted.id,
      ...(threadId ? { threadId } : {}),
      ...(keyword ? { keyword } : {}),
      ...(claim
        ? {
            claimed: claimedAtInsert(claim, {
              id: Number(outbox.lastInsertRowid),
              messageId: inserted.id,
              channelId: item.channelId,
              payload,
              queuedAt,
            }),
          }
        : {}),
    };
  }

  /** The opt-out row (store.ts `optOut`), read on every staff reply. */
  optOut(
    channelId: string,
    customer: string,
  ): { opted_out: number; keyword: string; updated_at: number } | undefined {
    return this.s.optOut.get(channelId, customer) as
      | { opted_out: number; keyword: string; updated_at: number }
      | undefined;
  }

  /** Staff-reply idempotency (store.ts `claimReply` has the rules). */
  claimReply(
    channelId: string,
    hash: string,
    now: number,
    leaseMs: number,
    windowMs: number,
  ): Promise<ReplyClaim> {
    return this.write((): ReplyClaim => {
      const row = this.s.reply.get(channelId, hash) as
        | {
            state: string;
            created_at: number;
            lease_until: number;
            answer_status: number | null;
            answer_body: string | null;
          }
        | undefined;
      if (row && now - row.created_at < windowMs) {
        if (row.state === "done")
          return { kind: "done", status: row.answer_status ?? 500, body: row.answer_body ?? "" };
        return row.lease_until > now ? { kind: "busy" } : { kind: "interrupted" };
      }
      this.s.takeReply.run(channelId, hash, now, now + leaseMs);
      return { kind: "new" };
    });
  }

  answerReply(
    channelId: string,
    hash: string,
    status: number,
    body: string,
    messageId?: number,
  ): Promise<void> {
    return this.write(() => {
      this.s.answerReply.run(status, body, messageId ?? null, channelId, hash);
    });
  }

  dropReply(channelId: string, hash: string): Promise<void> {
    return this.write(() => {
      this.s.dropReply.run(channelId, hash);
    });
  }

  /** store.ts `recordSent`: the sent message, its provider refs, thread and stored answer, together. */
  recordSent(
    rec: SentRecord,
    reply?: { hash: string; status: number; body: string },
    opts: { durable: boolean } = { durable: true },
  ): Promise<{ messageId: number; threadId?: string }> {
    return this.write(() => {
      const s = this.s;
      let threadId = rec.threadId ?? undefined;
      if (!threadId && rec.direction === "outbound") {
        threadId = (s.thread.get(rec.channelId, rec.customer) as { thread_id: string } | undefined)
          ?.thread_id;
      }
      const inserted = s.insertSent.get(
        rec.channelId,
        rec.direction,
        rec.provider,
        rec.providerIds[0] ?? null,
        rec.customer,
        rec.channelNumber,
        rec.body,
        threadId ?? null,
        rec.createdAt,
        rec.createdAt,
      ) as { id: number };
      for (const pid of rec.providerIds) s.insertRef.run(rec.channelId, rec.provider, pid, inserted.id);
      if (threadId && (rec.adoptThread || rec.direction === "outbound")) {
        s.saveThread.run(rec.channelId, rec.customer, threadId, rec.createdAt);
      }
      if (rec.payload) {
        s.insertOutbox.run(
          inserted.id,
          rec.channelId,
          rec.payload(threadId),
          0,
          rec.createdAt,
          null,
          rec.createdAt,
        );
      }
      if (reply) s.answerReply.run(reply.status, reply.body, inserted.id, rec.channelId, reply.hash);
      return { messageId: inserted.id, ...(threadId ? { threadId } : {}) };
    }, opts);
  }

  claim(opts: { limit: number; leaseMs: number; now: number; channel: string; token: string }): ClaimedRow[] {
    return this.committed(() => {
      const rows = this.s.claim.all(
        opts.now + opts.leaseMs,
        opts.token,
        opts.now,
        opts.channel,
        opts.limit,
      ) as Array<{
        id: number;
        message_id: number;
        channel_id: string;
        payload: Buffer;
        attempts: number;
        queued_at: number;
      }>;
      return rows
        .map((r) => ({
          id: r.id,
          messageId: r.message_id,
          channelId: r.channel_id,
          payload: r.payload,
          attempts: r.attempts,
          queuedAt: r.queued_at,
          token: opts.token,
        }))
        .sort((a, b) => a.id - b.id);
    });
  }

  /** Retention's batches (src/store/retention.ts), as writes on this queue: committed, not waited for on disk. */
  retention(): Retention {
    return sqliteRetention(this.raw, (fn) => this.write(fn, { durable: false }));
  }

  finish(ops: FinishOp[]): boolean[] {
    return this.committed(() => this.tx.finish.immediate(ops));
  }

  /**
   * Every hot-path commit goes through here: a write batch, and the claims and outcomes (which are not
   * synced). Checks the files first, lets the checkpointer step in, reports the commit to it afterwards.
   */
  private committed<T>(fn: () => T): T {
    this.hooks.checkWritable?.();
    this.hooks.beforeCommit?.();
    // Hot-path writes commit with synchronous=NORMAL; `syncWal` makes them durable before anyone is answered.
    this.mode.normal();
    const result = fn();
    this.hooks.onCommit?.();
    return result;
  }
}
