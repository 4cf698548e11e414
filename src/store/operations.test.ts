import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { openStore } from "./open.js";
import type { SentRecord, Store } from "./store.js";
import { DIALECTS, type ScratchDb } from "./test-support/databases.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const HOUR = 3_600_000;

function sent(over: Partial<SentRecord> & { providerIds: string[] }): SentRecord {
  return {
    channelId: "support",
    direction: "reply",
    provider: "simulator",
    customer: "+15105559999",
    channelNumber: "+16501234567",
    body: "Your order shipped.",
    createdAt: T0,
    ...over,
  };
}

for (const dialect of DIALECTS) {
  describe(`store operations on ${dialect.name}`, () => {
    let scratch: ScratchDb;
    let store: Store;
    before(async () => {
      scratch = await dialect.make();
      store = openStore(scratch.url);
      await store.migrate();
      // Table: one message per case; the delivery report decides whether it counts as a failure.
      const cases: Array<{
        pid: string;
        channel: string;
        state: string;
        error?: string;
        at: number;
        dir?: "reply" | "outbound";
      }> = [
        {
          pid: "SM-failed",
          channel: "support",
          state: "failed",
          error: "30006: Landline or unreachable carrier",
          at: T0 + HOUR,
        },
        {
          pid: "SM-undeliv",
          channel: "support",
          state: "undelivered",
          error: "30003: Unreachable destination handset",
          at: T0 + 2 * HOUR,
          dir: "outbound",
        },
        { pid: "SM-ok", channel: "support", state: "delivered", at: T0 + 3 * HOUR },
        { pid: "SM-old", channel: "support", state: "failed", error: "30005", at: T0 - 48 * HOUR },
        { pid: "SM-sales", channel: "sales", state: "failed", error: "21610: opted out", at: T0 + 4 * HOUR },
      ];
      for (const c of cases) {
        await store.recordSent(
          sent({ channelId: c.channel, providerIds: [c.pid], direction: c.dir ?? "reply" }),
        );
        const found = await store.recordDelivery(c.channel, "simulator", c.pid, {
          state: c.state,
          providerStatus: c.state,
          ...(c.error ? { error: c.error } : {}),
          at: c.at,
        });
        assert.equal(found, true, c.pid);
      }
      // A customer's message never counts, whatever its columns say.
      await store.ingest({
        channelId: "support",
        provider: "simulator",
        providerMessageId: "SM-in",
        customer: "+15105559999",
        channelNumber: "+16501234567",
        body: "hi",
        createdAt: T0 + HOUR,
        threading: { mode: "session", idleHours: 24 },
        payload: () => Buffer.from("{}"),
      });
    });
    after(async () => {
      await store.close();
      await scratch.drop();
    });

    test("deliveryFailures lists failed and undelivered sends in the window, newest first", async () => {
      const rows = await store.deliveryFailures({ since: T0 - HOUR });
      assert.deepEqual(
        rows.map((r) => [r.channelId, r.providerMessageId, r.state, r.error, r.at]),
        [
          ["sales", "SM-sales", "failed", "21610: opted out", T0 + 4 * HOUR],
          ["support", "SM-undeliv", "undelivered", "30003: Unreachable destination handset", T0 + 2 * HOUR],
          ["support", "SM-failed", "failed", "30006: Landline or unreachable carrier", T0 + HOUR],
        ],
      );
      assert.equal(rows[1]?.direction, "outbound");
      assert.equal(rows[2]?.body, "Your order shipped.");
      assert.equal(typeof rows[0]?.messageId, "number");
    });

    test("deliveryFailures filters by channel and limit", async () => {
      const support = await store.deliveryFailures({ since: 0, channelId: "support" });
      assert.deepEqual(
        support.map((r) => r.providerMessageId),
        ["SM-undeliv", "SM-failed", "SM-old"],
      );
      const one = await store.deliveryFailures({ since: 0, limit: 1 });
      assert.deepEqual(
        one.map((r) => r.providerMessageId),
        ["SM-sales"],
      );
    });

    test("deliveryFailureCounts counts per channel within the window", async () => {
      assert.deepEqual(await store.deliveryFailureCounts(T0 - HOUR), [
        { channelId: "sales", failures: 1 },
        { channelId: "support", failures: 2 },
      ]);
      assert.deepEqual(await store.deliveryFailureCounts(0), [
        { channelId: "sales", failures: 1 },
        { channelId: "support", failures: 3 },
      ]);
      assert.deepEqual(await store.deliveryFailureCounts(T0 + 5 * HOUR), []);
    });

    test("replayDeadOfChannel requeues one channel's dead rows, optionally only those dead since a time", async () => {
      // Table: channel, when it went dead.
      const rows: Array<[string, number]> = [
        ["replay-a", T0],
        ["replay-a", T0 + 2 * HOUR],
        ["replay-b", T0 + 2 * HOUR],
      ];
      for (const [channel, deadAt] of rows) {
        await store.ingest({
          channelId: channel,
          provider: "simulator",
          providerMessageId: `SM-${channel}-${deadAt}`,
          customer: "+15105559999",
          channelNumber: "+16501234567",
          body: "hi",
          createdAt: T0,
          threading: { mode: "helpdesk", idleHours: 24 },
          payload: () => Buffer.from("{}"),
        });
        const [claimed] = await store.claim({ limit: 1, leaseMs: 60_000, now: T0, channels: [channel] });
        assert.ok(claimed);
        assert.equal(await store.markDead(claimed.id, claimed.token, 422, "rejected", "{}", deadAt), true);
      }
      const now = T0 + 3 * HOUR;
      assert.equal(await store.replayDeadOfChannel("replay-a", T0 + HOUR, now), 1, "only the recent one");
      assert.equal(await store.replayDeadOfChannel("replay-a", T0 + HOUR, now), 0, "already requeued");
      assert.equal(await store.replayDeadOfChannel("replay-a", undefined, now), 1, "the older one");
      const stats = await store.channelStats();
      assert.deepEqual(
        stats.filter((s) => s.channelId.startsWith("replay-")).map((s) => [s.channelId, s.pending, s.dead]),
        [
          ["replay-a", 2, 0],
          ["replay-b", 0, 1],
        ],
      );
      const [again] = await store.claim({ limit: 5, leaseMs: 60_000, now, channels: ["replay-a"] });
      assert.equal(again?.attempts, 1, "a fresh retry budget");
    });
  });
}
