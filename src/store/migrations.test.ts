import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Migrator } from "kysely";
import pg from "pg";
import { openPostgres } from "./dialect/postgres.js";
import { openSqlite } from "./dialect/sqlite.js";
import { migrationProvider } from "./migrations.js";
import { openStore } from "./open.js";
import { scratchPostgres } from "./test-support/databases.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "smsbridge-migrate-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("0004 rebuilds the keyed tables WITHOUT ROWID on a populated SQLite database, keeping every row", async () => {
  const file = join(dir, "upgrade.db");
  // A database as the previous release left it: migrated to 0003, with rows in each of the four tables.
  const old = openSqlite(file);
  const migrator = new Migrator({ db: old.db, provider: migrationProvider });
  const { error } = await migrator.migrateTo("0003_claim_index");
  assert.equal(error, undefined);
  old.raw.exec(`
    INSERT INTO provider_refs VALUES ('support', 'twilio', 'SM1', 1), ('support', 'twilio', 'SM2', 2);
    INSERT INTO threads VALUES ('support', '+15105550001', 't-1', 1000);
    INSERT INTO opt_outs VALUES ('support', '+15105550002', 1, 'STOP', 2000);
    INSERT INTO replies VALUES ('support', 'abc', 'done', 3000, 4000, 201, '{"id":"SM1"}', 1);
  `);
  const isWithoutRowid = (table: string) =>
    /WITHOUT ROWID/i.test(
      (
        old.raw.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) as {
          sql: string;
        }
      ).sql,
    );
  assert.equal(isWithoutRowid("replies"), false);
  await old.checkpointer?.close();
  await old.db.destroy();

  const store = openStore(`sqlite:${file}`);
  try {
    assert.deepEqual(await store.migrate(), [
      "0004_keyed_tables_without_rowid",
      "0005_drop_global_due_index",
      "0006_drop_delivered_outbox_rows",
      "0007_retention_indexes",
    ]);
    const reopened = openSqlite(file);
    try {
      const raw = reopened.raw;
      for (const table of ["provider_refs", "threads", "opt_outs", "replies"]) {
        const row = raw
          .prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?")
          .get(table) as {
          sql: string;
        };
        assert.match(row.sql, /WITHOUT ROWID/i, table);
      }
      assert.equal(
        raw.prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'outbox_due'").get(),
        undefined,
        "0005 dropped the global due index",
      );
      const leftovers = raw
        .prepare("SELECT count(*) AS n FROM sqlite_master WHERE name LIKE '%_rebuilt'")
        .get() as {
        n: number;
      };
      assert.equal(leftovers.n, 0);
      assert.deepEqual(raw.prepare("SELECT * FROM provider_refs ORDER BY provider_message_id").all(), [
        { channel_id: "support", provider: "twilio", provider_message_id: "SM1", message_id: 1 },
        { channel_id: "support", provider: "twilio", provider_message_id: "SM2", message_id: 2 },
      ]);
      assert.equal(
        (raw.prepare("SELECT thread_id FROM threads").get() as { thread_id: string }).thread_id,
        "t-1",
      );
      assert.equal(
        (raw.prepare("SELECT keyword FROM opt_outs").get() as { keyword: string }).keyword,
        "STOP",
      );
      assert.equal(
        (raw.prepare("SELECT answer_body FROM replies").get() as { answer_body: string }).answer_body,
        '{"id":"SM1"}',
      );
      // The keys still hold: the same reply hash cannot be stored twice.
      assert.throws(
        () =>
          raw
            .prepare("INSERT INTO replies VALUES ('support', 'abc', 'sending', 1, 2, NULL, NULL, NULL)")
            .run(),
        /UNIQUE constraint failed/,
      );
    } finally {
      await reopened.checkpointer?.close();
      await reopened.db.destroy();
    }
    // And the store works on the rebuilt tables: the stored answer comes back for a repeat.
    const claim = await store.claimReply("support", "abc", 3_500, 1_000);
    assert.deepEqual(claim, { kind: "done", status: 201, body: '{"id":"SM1"}' });
    assert.deepEqual(await store.optOut("support", "+15105550002"), { keyword: "STOP", at: 2000 });
  } finally {
    await store.close();
  }
});

test("0006 drops the delivered outbox rows earlier releases kept, and only those", async () => {
  const file = join(dir, "delivered.db");
  const old = openSqlite(file);
  const migrator = new Migrator({ db: old.db, provider: migrationProvider });
  assert.equal((await migrator.migrateTo("0005_drop_global_due_index")).error, undefined);
  old.raw.exec(`
    INSERT INTO messages (id, channel_id, direction, provider, provider_message_id, customer, channel_number, body, created_at)
      VALUES (1, 'support', 'inbound', 'twilio', 'SM1', '+15105550001', '+15105550100', 'a', 1000),
             (2, 'support', 'inbound', 'twilio', 'SM2', '+15105550001', '+15105550100', 'b', 2000),
             (3, 'support', 'inbound', 'twilio', 'SM3', '+15105550001', '+15105550100', 'c', 3000);
    INSERT INTO outbox (id, message_id, channel_id, payload, state, attempts, next_attempt_at, queued_at)
      VALUES (1, 1, 'support', x'7b7d', 'delivered', 1, 1000, 1000),
             (2, 2, 'support', x'7b7d', 'pending', 0, 2000, 2000),
             (3, 3, 'support', x'7b7d', 'dead', 5, 3000, 3000);
  `);
  await old.checkpointer?.close();
  await old.db.destroy();
  const store = openStore(`sqlite:${file}`);
  try {
    assert.deepEqual(await store.migrate(), ["0006_drop_delivered_outbox_rows", "0007_retention_indexes"]);
    assert.equal(await store.outboxRow(1), undefined, "the delivered row is gone");
    assert.equal((await store.outboxRow(2))?.state, "pending");
    assert.equal((await store.outboxRow(3))?.state, "dead");
    const messages = await store.db.selectFrom("messages").select("id").orderBy("id").execute();
    assert.deepEqual(
      messages.map((m) => m.id),
      [1, 2, 3],
      "the messages themselves stay",
    );
  } finally {
    await store.close();
  }
});

test("0007 on PostgreSQL: with the indexes built CONCURRENTLY beforehand (deployment.md), it only records itself", async () => {
  const scratch = await scratchPostgres();
  try {
    const old = openPostgres(scratch.url);
    const migrator = new Migrator({ db: old.db, provider: migrationProvider });
    assert.equal((await migrator.migrateTo("0006_drop_delivered_outbox_rows")).error, undefined);
    await old.db.destroy();
    const admin = new pg.Client({ connectionString: scratch.url });
    await admin.connect();
    try {
      await admin.query(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS provider_refs_message ON provider_refs (message_id)",
      );
      await admin.query("CREATE INDEX CONCURRENTLY IF NOT EXISTS replies_created ON replies (created_at)");
      const store = openStore(scratch.url);
      try {
        assert.deepEqual(await store.migrate(), ["0007_retention_indexes"]);
      } finally {
        await store.close();
      }
      const { rows } = await admin.query(
        "SELECT indexname FROM pg_indexes WHERE indexname IN ('provider_refs_message', 'replies_created') ORDER BY 1",
      );
      assert.deepEqual(
        rows.map((r: { indexname: string }) => r.indexname),
        ["provider_refs_message", "replies_created"],
      );
    } finally {
      await admin.end();
    }
  } finally {
    await scratch.drop();
  }
});
