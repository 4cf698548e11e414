import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { openStore } from "../store/open.js";
import type { ClaimedRow, IngestItem, Store } from "../store/store.js";
import { type ScratchDb, scratchPostgres, scratchSqlite } from "../store/test-support/databases.js";
import { withPostgresLock } from "./test-support/faults-harness.js";

/**
 * Store-level delivery guarantees (the failure tests of Svix and Convoy): several consumers on one database
 * never hold the same row at once, a stuck claim is reclaimed once its lease runs out, and a heartbeat
 * (`extendLease`) cannot renew a claim it does not hold. PostgreSQL runs the concurrent-consumer case with
 * several Store instances (pools) as several bridge processes would; both dialects run the lease rules.
 */

const T0 = Date.parse("2026-01-01T00:00:00Z");
const ROWS = 3_000;
const CONSUMERS = 4;

function item(i: number): IngestItem {
  const pmid = `SMclaim${i}`;
  return {
    channelId: "support",
    provider: "simulator",
    providerMessageId: pmid,
    customer: `+1510555${String(1000 + (i % 40)).padStart(4, "0")}`,
    channelNumber: "+16501234567",
    body: `m${i}`,
    createdAt: T0 + i,
    threading: { mode: "pair", idleHours: 24 },
    payload: () => Buffer.from(JSON.stringify({ id: `simulator:${pmid}` })),
  };
}

test("PostgreSQL: concurrent consumers claim every row exactly once while leased", { timeout: 180_000 }, () =>
  withPostgresLock(async () => {
    const scratch = await scratchPostgres();
    const stores: Store[] = [];
    try {
      for (let i = 0; i < CONSUMERS; i++) stores.push(openStore(scratch.url));
      await stores[0]!.migrate();
      await Promise.all(Array.from({ length: ROWS }, (_, i) => stores[i % CONSUMERS]!.ingest(item(i))));

      // Each consumer claims small batches as fast as it can, all at once, each holding its rows (long lease)
      // and finishing them with its token, like a forwarder. A row claimed by two consumers is the failure.
      const owner = new Map<number, number>();
      const twice: string[] = [];
      let lostFinishes = 0;
      const now = T0 + ROWS + 1;
      await Promise.all(
        stores.map(async (store, c) => {
          for (;;) {
            const rows: ClaimedRow[] = await store.claim({
              limit: 20,
              leaseMs: 600_000,
              now,
              channels: ["support"],
            });
            if (rows.length === 0) break;
            for (const r of rows) {
              const prev = owner.get(r.id);
              if (prev !== undefined) twice.push(`row ${r.id}: consumers ${prev} and ${c}`);
              owner.set(r.id, c);
            }
            const ok = await Promise.all(rows.map((r) => store.markDelivered(r.id, r.token)));
            lostFinishes += ok.filter((x) => !x).length;
          }
        }),
      );
      const perConsumer = Array.from(
        { length: CONSUMERS },
        (_, c) => [...owner.values()].filter((o) => o === c).length,
      );
      console.log(
        `# claims: ${ROWS} rows, ${CONSUMERS} consumers on PostgreSQL, per consumer ${perConsumer.join("/")}, claimed twice ${twice.length}`,
      );
      assert.deepEqual(twice, [], "a row was claimed by two consumers while its lease was valid");
      assert.equal(owner.size, ROWS, "every row was claimed");
      assert.equal(lostFinishes, 0, "a consumer holding a valid claim could not record its outcome");
      assert.ok(
        perConsumer.filter((n) => n > 0).length >= 2,
        `the work was not shared: ${perConsumer.join("/")} (SKIP LOCKED should let consumers proceed in parallel)`,
      );
      const stats = await stores[0]!.channelStats();
      assert.equal(stats.find((s) => s.channelId === "support")?.pending ?? 0, 0);
    } finally {
      await Promise.all(stores.map((s) => s.close().catch(() => {})));
      await scratch.drop();
    }
  }),
);

for (const dialect of ["sqlite", "postgres"] as const) {
  describe(`${dialect}: leases`, () => {
    let scratch: ScratchDb;
    let a: Store;
    let b: Store;
    let release: () => void = () => {};
    before(async () => {
      if (dialect === "postgres") {
        // Hold the PostgreSQL lock for the whole group (the outage suite must not stop the server under it).
        await new Promise<void>((ready) => {
          void withPostgresLock(
            () =>
              new Promise<void>((done) => {
                release = done;
                ready();
              }),
          );
        });
      }
      scratch = dialect === "sqlite" ? scratchSqlite() : await scratchPostgres();
      a = openStore(scratch.url);
      await a.migrate();
      b = openStore(scratch.url);
    });
    after(async () => {
      await a.close();
      await b.close();
      await scratch.drop();
      release();
    });

    async function oneRow(i: number): Promise<void> {
      const r = await a.ingest(item(i));
      assert.equal(r.status, "stored");
    }

    test("a stuck claim (its worker died) is reclaimed after the lease, and the old token is fenced off", async () => {
      await oneRow(100_001);
      const t = T0 + 10_000_000;
      const [stuck] = await a.claim({ limit: 10, leaseMs: 1_000, now: t, channels: ["support"] });
      assert.ok(stuck, "the row was claimed");
      // While the lease runs, nobody else gets it.
      assert.deepEqual(await b.claim({ limit: 10, leaseMs: 1_000, now: t + 999, channels: ["support"] }), []);
      // The lease ran out: another consumer reclaims it, with a new token and the attempt counted.
      const [again] = await b.claim({ limit: 10, leaseMs: 1_000, now: t + 1_000, channels: ["support"] });
      assert.ok(again, "the expired claim was reclaimed");
      assert.equal(again.id, stuck.id);
      assert.notEqual(again.token, stuck.token);
      assert.equal(again.attempts, stuck.attempts + 1);
      // The first worker comes back from the dead: none of its writes may land.
      assert.equal(await a.markDelivered(stuck.id, stuck.token), false);
      assert.equal(await a.markRetry(stuck.id, stuck.token, t + 5_000, 503, "late"), false);
      assert.equal(await a.markDead(stuck.id, stuck.token, 400, "late", "", t + 1_100), false);
      assert.equal(await a.extendLease(stuck.id, stuck.token, t + 60_000), false);
      // The current holder finishes normally.
      assert.equal(await b.markDelivered(again.id, again.token), true);
      assert.equal(await a.outboxRow(again.id), undefined, "delivered, so deleted");
    });

    test("the retry budget counts from receipt, not from the provider's (old) send time", async () => {
      // A carrier's late delivery: sent 100 days ago, received now. Its outbox age starts now, or the first
      // retryable failure would make it dead (maxAgeHours 72) — found by the helpdesk fault suite.
      const received = T0 + 30_000_000;
      const r = await a.ingest({
        ...item(100_003),
        createdAt: received - 100 * 86_400_000,
        receivedAt: received,
      });
      assert.equal(r.status, "stored");
      const [row] = await a.claim({ limit: 1, leaseMs: 1_000, now: received, channels: ["support"] });
      assert.ok(row, "due on receipt");
      assert.equal(row.queuedAt, received);
      assert.equal(await a.markDelivered(row.id, row.token), true);
    });

    test("a heartbeat renews only the caller's own claim", async () => {
      await oneRow(100_002);
      const t = T0 + 20_000_000;
      const [mine] = await a.claim({ limit: 10, leaseMs: 1_000, now: t, channels: ["support"] });
      assert.ok(mine);
      // A foreign token (another worker's, or a guessed one) cannot extend it.
      assert.equal(await b.extendLease(mine.id, "00000000-0000-4000-8000-000000000000", t + 600_000), false);
      assert.deepEqual((await a.outboxRow(mine.id))?.next_attempt_at, t + 1_000, "the lease is unchanged");
      // The holder's heartbeat works, and keeps the row from being reclaimed when the first lease would expire.
      assert.equal(await a.extendLease(mine.id, mine.token, t + 5_000), true);
      assert.deepEqual(
        await b.claim({ limit: 10, leaseMs: 1_000, now: t + 1_500, channels: ["support"] }),
        [],
      );
      // Past the extended lease it is fair game again, and the old holder's heartbeat is refused.
      const [taken] = await b.claim({ limit: 10, leaseMs: 1_000, now: t + 5_000, channels: ["support"] });
      assert.equal(taken?.id, mine.id);
      assert.equal(await a.extendLease(mine.id, mine.token, t + 60_000), false);
      // Nor can anyone extend a finished row.
      assert.equal(await b.markDelivered(taken!.id, taken!.token), true);
      assert.equal(await b.extendLease(taken!.id, taken!.token, t + 60_000), false);
    });
  });
}
