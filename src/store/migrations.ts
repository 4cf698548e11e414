import { type Kysely, type Migration, type MigrationProvider, sql } from "kysely";

/**
 * Migrations live in code (not files) so the compiled package carries them. Append only; never edit a
 * migration that has shipped. Types are chosen to mean the same on SQLite and PostgreSQL.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations run before the typed schema exists
type Db = Kysely<any>;

const initial: Migration = {
  async up(db: Db) {
    const pg = isPostgres(db);
    const idType = pg ? "bigserial" : "integer";
    const blob = pg ? "bytea" : "blob";
    await db.schema
      .createTable("messages")
      .addColumn("id", sql.raw(idType), (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
      .addColumn("channel_id", "text", (c) => c.notNull())
      .addColumn("direction", "text", (c) => c.notNull())
      .addColumn("provider", "text", (c) => c.notNull())
      .addColumn("provider_message_id", "text")
      .addColumn("customer", "text", (c) => c.notNull())
      .addColumn("channel_number", "text", (c) => c.notNull())
      .addColumn("body", "text", (c) => c.notNull())
      .addColumn("thread_id", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("delivery_state", "text")
      .addColumn("delivery_status", "text")
      .addColumn("delivery_error", "text")
      .addColumn("delivery_updated_at", "bigint")
      .addColumn("meta", "text")
      .execute();
    // Deduplication of provider webhooks: one inbound message per provider message id and channel.
    await sql`CREATE UNIQUE INDEX messages_inbound_dedupe ON messages (channel_id, provider, provider_message_id) WHERE direction = 'inbound'`.execute(
      db,
    );
    await db.schema
      .createTable("outbox")
      .addColumn("id", sql.raw(idType), (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
      .addColumn("message_id", "bigint", (c) => c.notNull())
      .addColumn("channel_id", "text", (c) => c.notNull())
      .addColumn("payload", sql.raw(blob), (c) => c.notNull())
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
      .addColumn("claim_token", "text")
      .addColumn("queued_at", "bigint", (c) => c.notNull())
      .addColumn("last_status", "integer")
      .addColumn("last_error", "text")
      .addColumn("last_answer", "text")
      .addColumn("finished_at", "bigint")
      .execute();
    // Claims read only due pending rows in due order: a partial index keeps that O(log n) however large the
    // delivered history grows.
    await sql`CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending'`.execute(db);
    await sql`CREATE INDEX outbox_dead ON outbox (channel_id, finished_at) WHERE state = 'dead'`.execute(db);
    await sql`CREATE INDEX outbox_pending_channel ON outbox (channel_id, queued_at) WHERE state = 'pending'`.execute(
      db,
    );
    await db.schema
      .createTable("provider_refs")
      .addColumn("channel_id", "text", (c) => c.notNull())
      .addColumn("provider", "text", (c) => c.notNull())
      .addColumn("provider_message_id", "text", (c) => c.notNull())
      .addColumn("message_id", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("provider_refs_pk", ["channel_id", "provider", "provider_message_id"])
      .execute();
    await db.schema
      .createTable("threads")
      .addColumn("channel_id", "text", (c) => c.notNull())
      .addColumn("customer", "text", (c) => c.notNull())
      .addColumn("thread_id", "text", (c) => c.notNull())
      .addColumn("last_activity", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("threads_pk", ["channel_id", "customer"])
      .execute();
    await db.schema
      .createTable("opt_outs")
      .addColumn("channel_id", "text", (c) => c.notNull())
      .addColumn("customer", "text", (c) => c.notNull())
      .addColumn("opted_out", "integer", (c) => c.notNull())
      .addColumn("keyword", "text", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addPrimaryKeyConstraint("opt_outs_pk", ["channel_id", "customer"])
      .execute();
    await db.schema
      .createTable("replies")
      .addColumn("channel_id", "text", (c) => c.notNull())
      .addColumn("body_hash", "text", (c) => c.notNull())
      .addColumn("state", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("lease_until", "bigint", (c) => c.notNull())
      .addColumn("answer_status", "integer")
      .addColumn("answer_body", "text")
      .addColumn("message_id", "bigint")
      .addPrimaryKeyConstraint("replies_pk", ["channel_id", "body_hash"])
      .execute();
  },
};

function isPostgres(db: Db): boolean {
  return db.getExecutor().adapter.constructor.name.startsWith("Postgres");
}

// `smsbridge status` lists replies the provider reported failed; without this it scans every message.
const deliveryFailures: Migration = {
  async up(db: Db) {
    await sql`CREATE INDEX messages_delivery_failed ON messages (channel_id, delivery_updated_at) WHERE delivery_state IN ('failed', 'undelivered')`.execute(
      db,
    );
  },
};

// Claims are per channel: with only (next_attempt_at, id) or (channel_id, queued_at) to choose from, SQLite
// picked the latter and sorted every pending row — 1.3 ms at 1k pending, ~250 ms at 1M. This index serves
// "this channel's due rows in due order" directly.
const claimIndex: Migration = {
  async up(db: Db) {
    await sql`CREATE INDEX outbox_due_channel ON outbox (channel_id, next_attempt_at, id) WHERE state = 'pending'`.execute(
      db,
    );
    await sql`DROP INDEX outbox_pending_channel`.execute(db);
  },
};

/**
 * SQLite: the four tables looked up only by their primary key become WITHOUT ROWID, so each row lives in its
 * key's B-tree instead of in a rowid table plus a separate index on the key. A write then dirties one page
 * where it dirtied two, and every dirty page is written whole to the WAL at each commit: measured on the
 * reply bench, bytes written per staff reply went from ~45 to ~30 KiB, and fewer bytes per commit mean fewer
 * of the disk stalls that set the reply path's p99. PostgreSQL stores every table as a heap beside its
 * indexes; there is nothing to change there.
 */
const keyedTables: Migration = {
  async up(db: Db) {
    if (isPostgres(db)) return;
    const tables: Array<{ name: string; columns: string; key: string }> = [
      {
        name: "provider_refs",
        columns:
          "channel_id text NOT NULL, provider text NOT NULL, provider_message_id text NOT NULL, message_id bigint NOT NULL",
        key: "CONSTRAINT provider_refs_pk PRIMARY KEY (channel_id, provider, provider_message_id)",
      },
      {
        name: "threads",
        columns:
          "channel_id text NOT NULL, customer text NOT NULL, thread_id text NOT NULL, last_activity bigint NOT NULL",
        key: "CONSTRAINT threads_pk PRIMARY KEY (channel_id, customer)",
      },
      {
        name: "opt_outs",
        columns:
          "channel_id text NOT NULL, customer text NOT NULL, opted_out integer NOT NULL, keyword text NOT NULL, updated_at bigint NOT NULL",
        key: "CONSTRAINT opt_outs_pk PRIMARY KEY (channel_id, customer)",
      },
      {
        name: "replies",
        columns:
          "channel_id text NOT NULL, body_hash text NOT NULL, state text NOT NULL, created_at bigint NOT NULL, lease_until bigint NOT NULL, answer_status integer, answer_body text, message_id bigint",
        key: "CONSTRAINT replies_pk PRIMARY KEY (channel_id, body_hash)",
      },
    ];
    // SQLite migrations run outside a transaction (Kysely's SQLite adapter): rebuild all four in one, so a
    // crash leaves either the old tables or the new ones.
    await db.transaction().execute(async (trx) => {
      for (const t of tables) {
        const names = t.columns
          .split(", ")
          .map((c) => c.split(" ")[0])
          .join(", ");
        await sql.raw(`CREATE TABLE ${t.name}_rebuilt (${t.columns}, ${t.key}) WITHOUT ROWID`).execute(trx);
        await sql.raw(`INSERT INTO ${t.name}_rebuilt (${names}) SELECT ${names} FROM ${t.name}`).execute(trx);
        await sql.raw(`DROP TABLE ${t.name}`).execute(trx);
        await sql.raw(`ALTER TABLE ${t.name}_rebuilt RENAME TO ${t.name}`).execute(trx);
      }
    });
  },
};

/**
 * `outbox_due (next_attempt_at, id)` served only the forwarder's "when is the next retry due" question, which
 * `outbox_due_channel` answers per channel as well. Every outbox row was entered in it on insert, moved on
 * each claim and removed on its outcome: dropping it took ~10% off the CPU of claiming and finishing a row
 * (measured on SQLite, docs/performance-history.md round 5). Dropping an index is instant on both dialects.
 */
const dropGlobalDueIndex: Migration = {
  async up(db: Db) {
    await sql`DROP INDEX IF EXISTS outbox_due`.execute(db);
  },
};

/**
 * A delivered outbox row is now deleted when its delivery is recorded (store.ts `markDelivered`), as
 * graphile-worker deletes a completed job: nothing read it again, yet it kept its payload — the helpdesk
 * JSON, most of a message's bytes — for ever, and its outcome rewrote the whole row. Measured by the bridge
 * bench (docs/performance-history.md round 10): the database keeps half as much per message. This drops the
 * rows earlier releases kept; the messages themselves stay in `messages`. SQLite reuses the freed pages; the file
 * shrinks only with `VACUUM` (operations.md).
 */
const dropDeliveredRows: Migration = {
  async up(db: Db) {
    await sql`DELETE FROM outbox WHERE state = 'delivered'`.execute(db);
  },
};

/**
 * Retention (src/store/retention.ts) deletes old rows in small batches, each found through an index: a
 * message's provider refs by `message_id`, expired staff-reply records by `created_at`. Without these the
 * batches would scan whole tables, and on SQLite that scan runs on the event loop. Each costs one index entry
 * per staff reply (a reply writes one ref and one record), nothing on ingest. Creating them reads the two
 * tables once: on PostgreSQL it holds their writes for that long (deployment.md: build them beforehand).
 */
const retentionIndexes: Migration = {
  async up(db: Db) {
    // IF NOT EXISTS: on a large PostgreSQL database an operator may have built them CONCURRENTLY beforehand.
    await sql`CREATE INDEX IF NOT EXISTS provider_refs_message ON provider_refs (message_id)`.execute(db);
    await sql`CREATE INDEX IF NOT EXISTS replies_created ON replies (created_at)`.execute(db);
  },
};

export const migrations: Record<string, Migration> = {
  "0001_initial": initial,
  "0002_delivery_failures_index": deliveryFailures,
  "0003_claim_index": claimIndex,
  "0004_keyed_tables_without_rowid": keyedTables,
  "0005_drop_global_due_index": dropGlobalDueIndex,
  "0006_drop_delivered_outbox_rows": dropDeliveredRows,
  "0007_retention_indexes": retentionIndexes,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
