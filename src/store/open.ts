import { openPostgres } from "./dialect/postgres.js";
import { openSqlite } from "./dialect/sqlite.js";
import { SqliteHotPath } from "./dialect/sqlite-hot.js";
import { Store, type StoreOptions } from "./store.js";

/**
 * Opens the store named by a database URL: `sqlite:./data/smsbridge.db` (a file; `sqlite::memory:` for
 * throwaway use) or `postgres://user@host:5432/db`.
 */
export function openStore(url: string, opts: StoreOptions = {}): Store {
  if (url.startsWith("sqlite:")) {
    const file = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
    const { db, raw, mode, checkWritable, checkpointer } = openSqlite(file || ":memory:", {
      checkpoint: { nice: opts.backgroundNice ?? 0 },
    });
    const hot = new SqliteHotPath(raw, mode, {
      checkWritable,
      ...(opts.onWalSync ? { onSync: opts.onWalSync } : {}),
      ...(checkpointer
        ? { onCommit: () => checkpointer.committed(), beforeCommit: () => checkpointer.beforeCommit(raw) }
        : {}),
    });
    return new Store(
      db,
      "sqlite",
      async () => {
        await hot.close();
        await checkpointer?.close();
        await db.destroy();
        if (raw.open) raw.close();
      },
      opts,
      hot,
    );
  }
  if (url.startsWith("postgres://") || url.startsWith("postgresql://")) {
    const { db } = openPostgres(url);
    return new Store(db, "postgres", () => db.destroy(), opts, undefined, url);
  }
  throw new Error(`database: "${url}" is not a sqlite: or postgres:// URL (e.g. sqlite:./data/smsbridge.db)`);
}
