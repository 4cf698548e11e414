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
  // A client losing its server (restart, outage) must not crash the process. The pool hears an idle
  // client's 'error' event; a checked-out one (a transaction between statements) emits it with nobody
  // listening, which is an uncaught exception. The statement in flight fails, the pool drops the client.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  return { db, pool };
}

export const OUTBOX_CHANNEL = "smsbridge_outbox";

/**
 * LISTEN on a dedicated connection: every instance's forwarder wakes as soon as any instance commits new
 * outbox rows, instead of waiting for its next poll. Reconnects after errors (a database restart); polling
 * remains the backstop while it is down.
 */
export function listenForOutbox(
  url: string,
  onNotify: () => void,
  onError: (e: Error) => void,
): () => Promise<void> {
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const connect = async () => {
    if (stopped) return;
    const c = new pg.Client({ connectionString: url });
    client = c;
    c.on("notification", () => onNotify());
    c.on("error", (e) => {
      onError(e);
      schedule();
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${OUTBOX_CHANNEL}`);
      // Anything committed while we were not listening is found by the first claim after this.
      onNotify();
    } catch (e) {
      onError(e as Error);
      schedule();
    }
  };
  const schedule = () => {
    if (stopped || retry) return;
    client?.end().catch(() => {});
    retry = setTimeout(() => {
      retry = undefined;
      void connect();
    }, 1_000);
  };
  void connect();
  return async () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    await client?.end().catch(() => {});
  };
}
