import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

/** The local PostgreSQL the tests use (DESIGN.md: 127.0.0.1:5432, user postgres, trust auth). */
export const PG_ADMIN_URL = process.env.SMSBRIDGE_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/test";

export interface ScratchDb {
  name: "sqlite" | "postgres";
  url: string;
  drop(): Promise<void>;
}

/** A fresh SQLite file in a temp folder. */
export function scratchSqlite(): ScratchDb {
  const dir = mkdtempSync(join(tmpdir(), "smsbridge-test-"));
  return {
    name: "sqlite",
    url: `sqlite:${join(dir, "test.db")}`,
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A fresh PostgreSQL database, dropped afterwards. */
export async function scratchPostgres(): Promise<ScratchDb> {
  const name = `smsbridge_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name: "postgres",
    url: url.href,
    async drop() {
      const c = new pg.Client({ connectionString: PG_ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** Both dialects, for suites that must pass on each. */
export const DIALECTS: Array<{ name: "sqlite" | "postgres"; make: () => Promise<ScratchDb> }> = [
  { name: "sqlite", make: async () => scratchSqlite() },
  { name: "postgres", make: scratchPostgres },
];
