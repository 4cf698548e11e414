import assert from "node:assert/strict";
import { test } from "node:test";
import { sql } from "kysely";
import pg from "pg";
import { PG_ADMIN_URL } from "../test-support/databases.js";
import { openPostgres } from "./postgres.js";

/**
 * A connection the server drops while it is checked out of the pool (inside a transaction, between two
 * statements) — what a PostgreSQL shutdown or restart does to every open session. pg emits that as an
 * 'error' event on the client, which the pool listens for only while the client is idle; unheard, it is
 * an uncaught exception and the bridge exits with 1 in the middle of a database outage.
 */
test("a checked-out connection the server terminates is an error for that transaction, not a crash", async () => {
  // Unheard, the 'error' event is an uncaught exception, which node:test reports against this test.
  const { db } = openPostgres(PG_ADMIN_URL, 2);
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    const failed = await db
      .transaction()
      .execute(async (tx) => {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx);
        await admin.query("select pg_terminate_backend($1)", [rows[0]?.pid]);
        // Between statements: the client is checked out and idle when the server's FATAL arrives.
        await new Promise((r) => setTimeout(r, 200));
        await sql`select 1`.execute(tx);
      })
      .then(
        () => undefined,
        (e: Error) => e,
      );
    assert.ok(failed, "the transaction on the terminated connection should fail");
    // The pool drops the dead client; the next query gets a fresh connection.
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(db);
    assert.equal(rows[0]?.one, 1);
  } finally {
    await admin.end();
    await db.destroy();
  }
});
