import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Database as Schema } from "../schema.js";

/** int8 → number: our bigints are epoch milliseconds and row ids, far below 2^53. */
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === 20) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

export function openPostgres(url: string, poolSize = 10): { db: Kysely<Schema>; pool: pg.Pool } {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types });
  // An idle client losing its server (restart, outage) must not crash the process; the next query reconnects.
  pool.on("error", () => {});
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  return { db, pool };
}
