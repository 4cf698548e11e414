import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type BetterSqlite3 from "better-sqlite3";
import {
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  Kysely,
  SqliteDialect,
  SqliteDriver,
} from "kysely";
import type { Database as Schema } from "../schema.js";
import { Database } from "./better-sqlite3.js";
import { SqliteCheckpointer } from "./sqlite-checkpointer.js";
import { writableCheck } from "./sqlite-writable.js";

/**
 * SQLite through better-sqlite3: WAL, and synchronous=FULL so a commit is on disk before it returns —
 * an acknowledged message survives a power cut. Throughput comes from group commit, not weaker syncing.
 */
export function openSqlite(
  file: string,
  opts: { checkpoint?: ConstructorParameters<typeof SqliteCheckpointer>[1] } = {},
): {
  db: Kysely<Schema>;
  raw: BetterSqlite3.Database;
  mode: SyncMode;
  /** Throws if the files can no longer be written (sqlite-writable.ts); call before each write. */
  checkWritable: () => void;
  checkpointer?: SqliteCheckpointer;
} {
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
  const raw = new Database(file);
  raw.pragma("journal_mode = WAL");
  raw.pragma("synchronous = FULL");
  raw.pragma("busy_timeout = 5000");
  raw.pragma("foreign_keys = ON");
  const mode = new SyncMode(raw);
  const checkWritable = file === ":memory:" ? () => {} : writableCheck(file);
  const db = new Kysely<Schema>({
    dialect: new ImmediateSqliteDialect({ database: cachingPrepare(raw, mode, checkWritable) }),
  });
  if (file === ":memory:") return { db, raw, mode, checkWritable };
  // Checkpoints run on a worker thread (sqlite-checkpointer.ts says why), never inside one of our commits.
  raw.pragma("wal_autocheckpoint = 0");
  return {
    db,
    raw,
    mode,
    checkWritable,
    checkpointer: new SqliteCheckpointer(file, opts.checkpoint),
  };
}

/**
 * The connection's `synchronous` setting, changed only when it must be. Kysely's writes commit with FULL (synced
 * as they return); the hot path's with NORMAL followed by a shared WAL sync (sqlite-hot.ts). Both share one
 * connection, so each side asks for its mode before it writes; a reply or an ingest batch that follows another
 * hot-path write costs no pragma at all (measured: two pragmas per transaction were ~20 µs of a reply).
 */
export class SyncMode {
  private current: "FULL" | "NORMAL" = "FULL";
  constructor(private readonly raw: BetterSqlite3.Database) {}
  full(): void {
    if (this.current === "FULL") return;
    this.raw.pragma("synchronous = FULL");
    this.current = "FULL";
  }
  normal(): void {
    if (this.current === "NORMAL") return;
    this.raw.pragma("synchronous = NORMAL");
    this.current = "NORMAL";
  }
}

/**
 * Kysely prepares every statement it runs; preparing costs more than running one of our small statements.
 * Our queries are a small fixed set of SQL texts (values are parameters), so a statement cache keyed by the
 * SQL makes each query a lookup. Bounded in case a caller builds SQL with inlined values.
 */
function cachingPrepare(raw: BetterSqlite3.Database, mode: SyncMode, checkWritable: () => void) {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => raw.close(),
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (!stmt) {
        stmt = raw.prepare(sql);
        if (cache.size >= 500) cache.clear();
        cache.set(sql, stmt);
      }
      // Kysely's writes are durable when they return: FULL before any statement that writes.
      if (!stmt.reader) {
        checkWritable();
        mode.full();
      }
      return stmt;
    },
  };
}

/**
 * Kysely's SQLite dialect, with transactions begun IMMEDIATE instead of its plain (deferred) BEGIN: the write
 * lock is taken first, so a transaction that reads and then writes waits for another process's writer instead
 * of failing with SQLITE_BUSY (sqlite-hot.ts says why).
 */
class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly cfg: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(cfg);
  }
  override createDriver(): Driver {
    return new (class extends SqliteDriver {
      override async beginTransaction(connection: DatabaseConnection): Promise<void> {
        await connection.executeQuery(CompiledQuery.raw("begin immediate"));
      }
    })(this.cfg);
  }
}
