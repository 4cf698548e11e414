import type Database from "better-sqlite3";
import { type Kysely, sql } from "kysely";
import type { Database as Schema } from "./schema.js";

/** What one batch of `pruneMessages` did. */
export interface MessagesPruned {
  /** Messages read, in id order, above the cursor (at most the limit). */
  scanned: number;
  /** Those of them created before the cutoff, deleted. */
  deleted: number;
  /** Their provider refs (the ids that delivery reports name), deleted with them. */
  refs: number;
  /** The last id read: the next batch starts above it. */
  lastId: number;
}

/**
 * Deletes what the bridge no longer keeps, one short transaction per call, each found through an index
 * (migration 0007), so a batch costs what it deletes however large the tables are. The sweep that calls these
 * (src/bridge/retention.ts) decides the cutoffs; nothing here deletes a pending outbox row: that is work.
 */
export interface Retention {
  /**
   * Reads up to `limit` messages above `afterId` in id order and deletes those created before `before`, with
   * their provider refs. Ids follow arrival, so the old messages come first; a caller goes on from `lastId`
   * until a batch holds none (one message with an odd `created_at`, a provider's clock, does not stop it).
   */
  pruneMessages(afterId: number, before: number, limit: number): Promise<MessagesPruned>;
  /** Deletes up to `limit` dead outbox rows (kept for replay) that died before `before`. */
  pruneDead(before: number, limit: number): Promise<number>;
  /** Deletes up to `limit` staff-reply idempotency records created before `before`. */
  pruneReplies(before: number, limit: number): Promise<number>;
}

/**
 * SQLite: each batch is a write on the hot path's queue (`write`), so it commits in the same transaction as
 * the webhooks arriving with it instead of beside them (one writer), and resolves once committed: a deletion
 * lost to a power cut is simply done again by the next sweep.
 */
export function sqliteRetention(raw: Database.Database, write: <T>(fn: () => T) => Promise<T>): Retention {
  // Prepared on first use: the tables exist only once the migrations ran.
  let prepared: ReturnType<typeof prepare> | undefined;
  const prepare = () => ({
    scan: raw.prepare("SELECT id, created_at FROM messages WHERE id > ? ORDER BY id LIMIT ?"),
    message: raw.prepare("DELETE FROM messages WHERE id = ?"),
    refs: raw.prepare("DELETE FROM provider_refs WHERE message_id = ?"),
    dead: raw.prepare(
      `DELETE FROM outbox WHERE id IN
         (SELECT id FROM outbox WHERE state = 'dead' AND finished_at < ? ORDER BY finished_at LIMIT ?)`,
    ),
    replies: raw.prepare(
      `DELETE FROM replies WHERE (channel_id, body_hash) IN
         (SELECT channel_id, body_hash FROM replies WHERE created_at < ? ORDER BY created_at LIMIT ?)`,
    ),
  });
  const s = () => {
    prepared ??= prepare();
    return prepared;
  };
  return {
    pruneMessages: (afterId, before, limit) =>
      write(() => {
        const st = s();
        const rows = st.scan.all(afterId, limit) as Array<{ id: number; created_at: number }>;
        let deleted = 0;
        let refs = 0;
        for (const r of rows) {
          if (r.created_at >= before) continue;
          refs += st.refs.run(r.id).changes;
          deleted += st.message.run(r.id).changes;
        }
        return { scanned: rows.length, deleted, refs, lastId: rows.at(-1)?.id ?? afterId };
      }),
    pruneDead: (before, limit) => write(() => s().dead.run(before, limit).changes),
    pruneReplies: (before, limit) => write(() => s().replies.run(before, limit).changes),
  };
}

/**
 * PostgreSQL: several instances sweep the same database; `SKIP LOCKED` lets each take rows the others are
 * not deleting (or that a replay or a staff reply holds) instead of waiting for them.
 */
export function postgresRetention(db: Kysely<Schema>): Retention {
  const count = (r: { numAffectedRows?: bigint }) => Number(r.numAffectedRows ?? 0n);
  return {
    pruneMessages: (afterId, before, limit) =>
      db.transaction().execute(async (trx) => {
        const rows = await trx
          .selectFrom("messages")
          .select(["id", "created_at"])
          .where("id", ">", afterId)
          .orderBy("id")
          .limit(limit)
          .forUpdate()
          .skipLocked()
          .execute();
        const old = rows.filter((r) => r.created_at < before).map((r) => r.id);
        if (old.length === 0)
          return { scanned: rows.length, deleted: 0, refs: 0, lastId: rows.at(-1)?.id ?? afterId };
        const refs = await trx.deleteFrom("provider_refs").where("message_id", "in", old).executeTakeFirst();
        const msgs = await trx.deleteFrom("messages").where("id", "in", old).executeTakeFirst();
        return {
          scanned: rows.length,
          deleted: Number(msgs.numDeletedRows),
          refs: Number(refs.numDeletedRows),
          lastId: rows.at(-1)!.id,
        };
      }),
    pruneDead: async (before, limit) =>
      count(
        await sql`DELETE FROM outbox WHERE id IN
          (SELECT id FROM outbox WHERE state = 'dead' AND finished_at < ${before}
           ORDER BY finished_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)`.execute(db),
      ),
    pruneReplies: async (before, limit) =>
      count(
        await sql`DELETE FROM replies WHERE (channel_id, body_hash) IN
          (SELECT channel_id, body_hash FROM replies WHERE created_at < ${before}
           ORDER BY created_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)`.execute(db),
      ),
  };
}

/** What a sweep with these cutoffs would delete, counted without deleting (`smsbridge prune --dry-run`). */
export async function countPrunable(
  db: Kysely<Schema>,
  cutoff: { messages?: number; replies: number },
): Promise<{
  messages?: number;
  deadOutbox?: number;
  replies: number;
  totalMessages: number;
  oldest?: number;
}> {
  // Reads only: on SQLite they run beside the hot path's writes (WAL), never inside its transaction.
  const n = (row: { n: string | number | bigint } | undefined) => Number(row?.n ?? 0);
  const replies = n(
    await db
      .selectFrom("replies")
      .select((eb) => eb.fn.countAll().as("n"))
      .where("created_at", "<", cutoff.replies)
      .executeTakeFirst(),
  );
  const all = await db
    .selectFrom("messages")
    .select((eb) => [eb.fn.countAll().as("n"), eb.fn.min("created_at").as("oldest")])
    .executeTakeFirst();
  const out = {
    replies,
    totalMessages: n(all),
    ...(all?.oldest != null ? { oldest: Number(all.oldest) } : {}),
  };
  if (cutoff.messages === undefined) return out;
  const messages = n(
    await db
      .selectFrom("messages")
      .select((eb) => eb.fn.countAll().as("n"))
      .where("created_at", "<", cutoff.messages)
      .executeTakeFirst(),
  );
  const deadOutbox = n(
    await db
      .selectFrom("outbox")
      .select((eb) => eb.fn.countAll().as("n"))
      .where("state", "=", "dead")
      .where("finished_at", "<", cutoff.messages)
      .executeTakeFirst(),
  );
  return { ...out, messages, deadOutbox };
}
