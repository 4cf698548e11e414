import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type BetterSqlite3 from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import type { Database as Schema } from "../schema.js";
import { Database } from "./better-sqlite3.js";

/**
 * SQLite through better-sqlite3: WAL, and synchronous=FULL so a commit is on disk before it returns —
 * an acknowledged message survives a power cut. Throughput comes from group commit, not weaker syncing.
 */
export function openSqlite(file: string): { db: Kysely<Schema>; raw: BetterSqlite3.Database } {
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true });
  const raw = new Database(file);
  raw.pragma("journal_mode = WAL");
  raw.pragma("synchronous = FULL");
  raw.pragma("busy_timeout = 5000");
  raw.pragma("foreign_keys = ON");
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: cachingPrepare(raw) }) });
  return { db, raw };
}

/**
 * Kysely prepares every statement it runs; preparing costs more than running one of our small statements.
 * Our queries are a small fixed set of SQL texts (values are parameters), so a statement cache keyed by the
 * SQL makes each query a lookup. Bounded in case a caller builds SQL with inlined values.
 */
function cachingPrepare(raw: BetterSqlite3.Database) {
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
      return stmt;
    },
  };
}
