import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { endianness, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import { Database } from "./better-sqlite3.js";
import { openSqlite } from "./sqlite.js";
import { SqliteHotPath } from "./sqlite-hot.js";

describe("SQLite hot path: group-committed writes, sync mode, background checkpoints", () => {
  let dir: string;
  let opened: ReturnType<typeof openSqlite>;
  let hot: SqliteHotPath;
  const file = () => join(dir, "hot.db");
  const walSize = () => statSync(`${file()}-wal`).size;
  // The wal-index header (https://sqlite.org/walformat.html), read as the format documents it: frames in
  // the WAL (mxFrame, offset 16) and how many of them were copied to the database (nBackfill, offset 96).
  const wal = () => {
    const b = readFileSync(`${file()}-shm`).subarray(0, 100);
    const u32 = endianness() === "LE" ? b.readUInt32LE.bind(b) : b.readUInt32BE.bind(b);
    return { frames: u32(16), pending: u32(16) - u32(96) };
  };
  /** Waits (up to 10 s) until the checkpointer has copied every frame into the database file. */
  const checkpointsCaughtUp = async () => {
    const until = Date.now() + 10_000;
    while (wal().pending > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "smsbridge-hot-"));
    // The worker looks at the WAL every 5 ms here (50 ms by default): the test's writes take well under a
    // second on a fast disk, and what it checks must not depend on how many of the worker's looks fit in them.
    opened = openSqlite(file(), { checkpoint: { intervalMs: 5, maxFrames: 256, restartFrames: 1_024 } });
    const checkpointer = opened.checkpointer;
    hot = new SqliteHotPath(opened.raw, opened.mode, {
      checkWritable: opened.checkWritable,
      ...(checkpointer
        ? {
            onCommit: () => checkpointer.committed(),
            beforeCommit: () => checkpointer.beforeCommit(opened.raw),
          }
        : {}),
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

  test("a write that need not wait for the disk resolves once committed and starts no sync of its own", async () => {
    let syncs = 0;
    const counted = new SqliteHotPath(opened.raw, opened.mode, { onSync: () => syncs++ });
    await counted.write(insert("relaxed-1"), { durable: false });
    assert.equal(has("relaxed-1"), true);
    assert.equal(syncs, 0, "nothing waited for the disk");
    await counted.write(insert("durable-1"));
    assert.equal(syncs, 1, "a durable write waits for a WAL sync, which covers the earlier commit too");
    // Beside a durable write: however the two are batched, only the durable one causes a sync.
    await Promise.all([
      counted.write(insert("durable-2")),
      counted.write(insert("relaxed-2"), { durable: false }),
    ]);
    assert.equal(syncs, 2);
  });

  // Another process (here another connection) commits between a transaction's read and its write. Begun
  // deferred, the transaction's snapshot is then stale and its write fails at once with SQLITE_BUSY, which no
  // busy timeout waits out; begun IMMEDIATE, it holds the write lock from the start and the other one waits.
  const interleavings: Array<{ name: string; run: (between: () => void) => Promise<unknown> }> = [
    {
      name: "a hot-path write",
      run: (between) =>
        hot.write(() => {
          opened.raw.prepare("SELECT count(*) FROM t").get();
          between();
          return insert(`hot-${Date.now()}`)();
        }),
    },
    {
      name: "a Kysely transaction",
      run: (between) =>
        opened.db.transaction().execute(async (trx) => {
          await sql`SELECT count(*) FROM t`.execute(trx);
          between();
          await sql`INSERT INTO t (k, v) VALUES (${`kysely-${Date.now()}`}, 'x')`.execute(trx);
        }),
    },
  ];
  for (const c of interleavings) {
    test(`${c.name} that reads, then writes after another connection tried to commit, succeeds`, async () => {
      const other = new Database(file());
      other.pragma("busy_timeout = 50");
      let otherError: unknown;
      try {
        await c.run(() => {
          try {
            other.prepare("INSERT INTO t (k, v) VALUES (?, 'x')").run(`other-${Date.now()}`);
          } catch (e) {
            otherError = e;
          }
        });
      } finally {
        other.close();
      }
      // The other connection waited for the lock this transaction held from its start, and gave up.
      assert.equal((otherError as { code?: string } | undefined)?.code, "SQLITE_BUSY");
    });
  }

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
    // 40 MB (~10,240 pages) through the WAL in 160 synced writes. The checkpointer is set to copy once 256
    // pages wait, so the WAL never holds much more than that; with no checkpoints it would hold everything.
    let maxPending = 0;
    for (let i = 0; i < 160; i++) {
      await hot.write(insert(`big-${i}`, blob));
      maxPending = Math.max(maxPending, wal().pending);
    }
    assert.ok(maxPending < 5_000, `up to ${maxPending} pages waited in the WAL`);
    // And it started over while the writes went on (a checkpoint on another thread alone never sees every
    // frame copied under steady writes): the file holds far less than the 40 MB that went through it.
    assert.ok(walSize() < 20 * 1024 * 1024, `WAL file is ${walSize()} bytes after 40 MB of writes`);
    // Then everything reaches the database file, through the worker alone (wal_autocheckpoint is 0).
    await checkpointsCaughtUp();
    assert.equal(wal().pending, 0, "the checkpointer copied every page");
    assert.ok(dbSize() >= 160 * blob.length, `database file ${dbSize()} bytes`);
    // Everything copied: the next commit starts the WAL over from its beginning instead of appending.
    await hot.write(insert("after"));
    assert.ok(wal().frames < 100, `${wal().frames} frames in the WAL after it started over`);
    assert.equal(has("big-159"), true);
  });

  test("a file made read-only fails the write with an error (not a SIGBUS); writable again, writes go on", async (t) => {
    // This test is about the writing connection's check. The checkpointer thread checks the files just before
    // each checkpoint, which leaves a window of a few ms: a checkpoint already running when the files turn
    // immutable writes the WAL index's memory map, and the process dies of SIGBUS (seen on Node 24 under load,
    // with this suite's 5 ms checkpoint interval; RELIABILITY.md). So the files are frozen only once the worker
    // has copied everything and, with no commit since, has nothing left to do.
    await checkpointsCaughtUp();
    if (wal().pending > 0) throw new Error("the checkpointer did not catch up");
    await new Promise((r) => setTimeout(r, 100));
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
