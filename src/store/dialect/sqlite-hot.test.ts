import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import { openSqlite } from "./sqlite.js";
import { SqliteHotPath } from "./sqlite-hot.js";

describe("SQLite hot path: group-committed writes, sync mode, background checkpoints", () => {
  let dir: string;
  let opened: ReturnType<typeof openSqlite>;
  let hot: SqliteHotPath;
  const file = () => join(dir, "hot.db");
  const walSize = () => statSync(`${file()}-wal`).size;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "smsbridge-hot-"));
    opened = openSqlite(file());
    const checkpointer = opened.checkpointer;
    hot = new SqliteHotPath(opened.raw, opened.mode, {
      checkWritable: opened.checkWritable,
      ...(checkpointer ? { onCommit: () => checkpointer.committed() } : {}),
    });
    opened.raw.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB)");
  });
  after(async () => {
    await hot.close();
    await opened.checkpointer?.close();
    await opened.db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const insert =
    (k: string, v: Buffer | string = "x") =>
    () =>
      opened.raw.prepare("INSERT INTO t (k, v) VALUES (?, ?)").run(k, v).changes;
  const has = (k: string) => opened.raw.prepare("SELECT 1 FROM t WHERE k = ?").get(k) !== undefined;

  test("writes queued together each get their own result; one that fails is undone alone", async () => {
    const results = await Promise.allSettled([
      hot.write(insert("a")),
      hot.write(() => {
        insert("b")();
        insert("a")(); // duplicate key: this write fails after its first statement
      }),
      hot.write(insert("c")),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ["fulfilled", "rejected", "fulfilled"],
    );
    assert.equal((results[0] as PromiseFulfilledResult<number>).value, 1);
    assert.match(String((results[1] as PromiseRejectedResult).reason), /UNIQUE constraint failed/);
    assert.equal(has("a"), true);
    assert.equal(has("b"), false, "the failed write's first statement is rolled back with it");
    assert.equal(has("c"), true);
  });

  test("hot writes commit with synchronous=NORMAL (then a WAL sync); Kysely's writes with FULL", async () => {
    await hot.write(insert("mode-1"));
    assert.equal(opened.raw.pragma("synchronous", { simple: true }), 1);
    await sql`SELECT count(*) FROM t`.execute(opened.db);
    assert.equal(opened.raw.pragma("synchronous", { simple: true }), 1, "a read changes nothing");
    await sql`INSERT INTO t (k, v) VALUES ('mode-2', 'x')`.execute(opened.db);
    assert.equal(opened.raw.pragma("synchronous", { simple: true }), 2);
    await hot.write(insert("mode-3"));
    assert.equal(opened.raw.pragma("synchronous", { simple: true }), 1);
  });

  test("the WAL stays small: a worker checkpoints it, so it starts over instead of growing", async () => {
    assert.equal(opened.raw.pragma("wal_autocheckpoint", { simple: true }), 0);
    const blob = Buffer.alloc(256 * 1024, 7);
    const dbSize = () => statSync(file()).size;
    // 40 MB through the WAL in ten rounds; with no checkpoints at all the WAL file would hold all of it.
    for (let round = 1; round <= 10; round++) {
      for (let i = 0; i < 16; i++) await hot.write(insert(`big-${round}-${i}`, blob));
      // The checkpointer copies the pages into the database file; wait until it has (no fixed sleep).
      const want = round * 16 * blob.length;
      const until = Date.now() + 10_000;
      while (dbSize() < want && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.ok(
        dbSize() >= want,
        `round ${round}: database file ${dbSize()} bytes, no checkpoint reached it`,
      );
    }
    // The WAL starts over only after a checkpoint that copied everything; on a busy machine some rounds miss
    // that moment, so the bound is "well under what went through", not one round's worth.
    assert.ok(walSize() < 20 * 1024 * 1024, `WAL is ${walSize()} bytes after 40 MB of writes`);
    assert.equal(has("big-10-15"), true);
  });

  test("a file made read-only fails the write with an error (not a SIGBUS); writable again, writes go on", async (t) => {
    const files = [file(), `${file()}-wal`, `${file()}-shm`].filter(existsSync);
    const chattr = (flag: string) => execFileSync("chattr", [flag, ...files], { stdio: "ignore" });
    try {
      chattr("+i");
    } catch {
      t.skip("chattr is not available on this file system");
      return;
    }
    try {
      await assert.rejects(hot.write(insert("ro-1")), /is not writable \(EPERM\)/);
      assert.throws(
        () => hot.claim({ limit: 1, leaseMs: 1, now: 0, channel: "x", token: "t" }),
        /not writable/,
      );
      await assert.rejects(sql`INSERT INTO t (k, v) VALUES ('ro-2', 'x')`.execute(opened.db), /not writable/);
    } finally {
      chattr("-i");
    }
    await hot.write(insert("ro-3"));
    assert.equal(has("ro-1"), false);
    assert.equal(has("ro-3"), true);
  });
});
