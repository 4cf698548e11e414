import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { ThreadingConfig } from "../core/threading.js";
import { openStore } from "./open.js";
import type { IngestItem, Store } from "./store.js";
import { DIALECTS, type ScratchDb } from "./test-support/databases.js";

const session: ThreadingConfig = { mode: "session", idleHours: 24 };
const T0 = Date.parse("2026-01-01T00:00:00Z");

function item(over: Partial<IngestItem> = {}): IngestItem {
  const pmid = over.providerMessageId ?? `SM${Math.random().toString(36).slice(2)}`;
  return {
    channelId: "support",
    provider: "simulator",
    providerMessageId: pmid,
    customer: "+15105559999",
    channelNumber: "+16501234567",
    body: "hello",
    createdAt: T0,
    threading: session,
    payload: (threadId) => Buffer.from(JSON.stringify({ id: `simulator:${pmid}`, thread_id: threadId })),
    ...over,
  };
}

for (const dialect of DIALECTS) {
  describe(`store on ${dialect.name}`, () => {
    let scratch: ScratchDb;
    let store: Store;
    before(async () => {
      scratch = await dialect.make();
      store = openStore(scratch.url);
      assert.deepEqual(await store.migrate(), [
        "0001_initial",
        "0002_delivery_failures_index",
        "0003_claim_index",
        "0004_keyed_tables_without_rowid",
        "0005_drop_global_due_index",
        "0006_drop_delivered_outbox_rows",
        "0007_retention_indexes",
      ]);
      assert.deepEqual(await store.migrate(), [], "migrations are applied once");
      assert.deepEqual(await store.ready(), { ok: true });
    });
    after(async () => {
      await store.close();
      await scratch.drop();
    });

    test("ingest stores once per provider message id, even when the copies arrive together", async () => {
      const it = item({ providerMessageId: "SMdup" });
      const results = await Promise.all([store.ingest(it), store.ingest(it), store.ingest(it)]);
      assert.equal(results.filter((r) => r.status === "stored").length, 1);
      assert.equal(results.filter((r) => r.status === "duplicate").length, 2);
      assert.equal((await store.ingest(it)).status, "duplicate");
      const stats = await store.channelStats();
      assert.equal(stats.find((s) => s.channelId === "support")?.pending, 1);
    });

    test("the same provider id on another channel is another message", async () => {
      const r = await store.ingest(item({ providerMessageId: "SMdup", channelId: "sales" }));
      assert.equal(r.status, "stored");
    });

    test("session threading keeps a thread while active and starts a new one after idleHours", async () => {
      const c = "+15550001111";
      const a = await store.ingest(item({ customer: c, createdAt: T0 }));
      const b = await store.ingest(item({ customer: c, createdAt: T0 + 23 * 3_600_000 }));
      const d = await store.ingest(item({ customer: c, createdAt: T0 + 48 * 3_600_000 }));
      assert.ok(a.status === "stored" && b.status === "stored" && d.status === "stored");
      assert.equal(a.threadId, b.threadId);
      assert.notEqual(b.threadId, d.threadId);
    });

    test("opt-out keywords change state in the ingest transaction", async () => {
      const c = "+15550002222";
      const r = await store.ingest(item({ customer: c, body: " Stop! " }));
      assert.ok(r.status === "stored" && r.keyword === "opt-out");
      assert.equal((await store.optOut("support", c))?.keyword, "Stop!");
      await store.ingest(item({ customer: c, body: "start" }));
      assert.equal(await store.optOut("support", c), undefined);
    });

    test("claims are fenced: a stale token cannot complete a re-claimed row", async () => {
      const r = await store.ingest(item({ channelId: "fence", createdAt: T0 }));
      assert.equal(r.status, "stored");
      const [first] = await store.claim({ limit: 10, leaseMs: 1_000, now: T0, channels: ["fence"] });
      assert.ok(first);
      assert.equal(first.attempts, 1);
      assert.deepEqual(
        await store.claim({ limit: 10, leaseMs: 1_000, now: T0 + 500, channels: ["fence"] }),
        [],
        "leased row is not due",
      );
      const [second] = await store.claim({ limit: 10, leaseMs: 1_000, now: T0 + 1_001, channels: ["fence"] });
      assert.ok(second, "an expired lease makes the row due again");
      assert.notEqual(second.token, first.token);
      assert.equal(await store.markDelivered(first.id, first.token), false);
      assert.equal(await store.extendLease(first.id, first.token, T0 + 9_000), false);
      assert.equal(await store.extendLease(second.id, second.token, T0 + 9_000), true);
      assert.equal(await store.markDelivered(second.id, second.token), true);
      assert.equal(await store.outboxRow(second.id), undefined, "a delivered row is deleted");
    });

    test("a row claimed at insert is leased and fenced like a claimed one", async () => {
      const claim = { token: "handoff-1", leaseUntil: T0 + 1_000 };
      const r = await store.ingest(
        item({ channelId: "handoff", providerMessageId: "SMhandoff", createdAt: T0, claim }),
      );
      assert.equal(r.status, "stored");
      const held = r.status === "stored" ? r.claimed : undefined;
      assert.ok(held, "the stored result carries the claimed row");
      assert.equal(held.token, "handoff-1");
      assert.equal(held.attempts, 1);
      assert.equal(held.channelId, "handoff");
      assert.equal(held.messageId, r.status === "stored" ? r.messageId : -1);
      assert.equal(held.queuedAt, T0);
      const row = await store.outboxRow(held.id);
      assert.deepEqual(
        [row?.state, row?.attempts, row?.next_attempt_at, Buffer.from(row?.payload ?? []).toString()],
        ["pending", 1, T0 + 1_000, held.payload.toString()],
      );
      assert.deepEqual(
        await store.claim({ limit: 10, leaseMs: 1_000, now: T0 + 999, channels: ["handoff"] }),
        [],
        "a row claimed at insert is not due until its lease ends",
      );
      const [again] = await store.claim({
        limit: 10,
        leaseMs: 1_000,
        now: T0 + 1_000,
        channels: ["handoff"],
      });
      assert.ok(again, "its lease expiring makes it due, as any claim's");
      assert.equal(again.attempts, 2);
      assert.equal(await store.markDelivered(held.id, held.token), false, "fenced");
      assert.equal(await store.markDelivered(again.id, again.token), true);
      const dup = await store.ingest(
        item({
          channelId: "handoff",
          providerMessageId: "SMhandoff",
          claim: { token: "handoff-2", leaseUntil: T0 + 9_000 },
        }),
      );
      assert.deepEqual(dup, { status: "duplicate" }, "a duplicate claims nothing");
    });

    test("retry, dead, replay", async () => {
      await store.ingest(item({ channelId: "dead", createdAt: T0 }));
      const [c1] = await store.claim({ limit: 1, leaseMs: 1_000, now: T0, channels: ["dead"] });
      assert.ok(c1);
      assert.equal(await store.markRetry(c1.id, c1.token, T0 + 5_000, 503, "HTTP 503", "busy"), true);
      assert.deepEqual(
        await store.claim({ limit: 1, leaseMs: 1_000, now: T0 + 4_999, channels: ["dead"] }),
        [],
      );
      const [c2] = await store.claim({ limit: 1, leaseMs: 1_000, now: T0 + 5_000, channels: ["dead"] });
      assert.ok(c2);
      assert.equal(c2.attempts, 2);
      assert.equal(
        await store.markDead(c2.id, c2.token, 422, "HTTP 422", '{"error":"bad"}', T0 + 5_100),
        true,
      );
      const dead = await store.listDead({ channelId: "dead" });
      assert.equal(dead.length, 1);
      assert.equal(dead[0]?.last_answer, '{"error":"bad"}');
      assert.equal((await store.channelStats()).find((s) => s.channelId === "dead")?.dead, 1);
      assert.equal(await store.replayDead({ id: c2.id }, T0 + 6_000), 1);
      const [c3] = await store.claim({ limit: 1, leaseMs: 1_000, now: T0 + 6_000, channels: ["dead"] });
      assert.equal(c3?.id, c2.id);
      assert.equal(c3?.attempts, 1, "replay restores the retry budget");
    });

    test("nextDue: the soonest due time among the given channels' pending rows", async () => {
      await store.ingest(item({ channelId: "due-a", createdAt: T0 + 300 }));
      await store.ingest(item({ channelId: "due-b", createdAt: T0 + 200 }));
      await store.ingest(item({ channelId: "due-c", createdAt: T0 + 100 }));
      assert.equal(await store.nextDue(["due-a"]), T0 + 300);
      assert.equal(await store.nextDue(["due-a", "due-b"]), T0 + 200);
      assert.equal(await store.nextDue(["nothing-here"]), undefined);
      const [c] = await store.claim({ limit: 1, leaseMs: 1_000, now: T0 + 100, channels: ["due-c"] });
      assert.ok(c);
      assert.equal(
        await store.nextDue(["due-c"]),
        T0 + 1_100,
        "a claimed row is due again when its lease ends",
      );
      assert.equal(await store.markDelivered(c.id, c.token), true);
      assert.equal(await store.nextDue(["due-c"]), undefined, "a delivered row is due never");
    });

    test("claims come out in due order and respect the limit", async () => {
      for (let i = 0; i < 5; i++) await store.ingest(item({ channelId: "order", createdAt: T0 + (5 - i) }));
      const got = await store.claim({ limit: 3, leaseMs: 1_000, now: T0 + 10, channels: ["order"] });
      assert.equal(got.length, 3);
      const rest = await store.claim({ limit: 10, leaseMs: 1_000, now: T0 + 10, channels: ["order"] });
      assert.equal(rest.length, 2);
    });

    test("reply idempotency: new, busy, done, abandoned, interrupted, expired window", async () => {
      assert.deepEqual(await store.claimReply("support", "h1", T0, 10_000), { kind: "new" });
      assert.deepEqual(await store.claimReply("support", "h1", T0 + 1, 10_000), { kind: "busy" });
      await store.finishReply("support", "h1", 201, '{"id":"x"}');
      assert.deepEqual(await store.claimReply("support", "h1", T0 + 2, 10_000), {
        kind: "done",
        status: 201,
        body: '{"id":"x"}',
      });
      assert.deepEqual(
        await store.claimReply("support", "h1", T0 + 25 * 3_600_000, 10_000),
        { kind: "new" },
        "after 24 h it is a new reply",
      );
      assert.deepEqual(await store.claimReply("support", "h2", T0, 10_000), { kind: "new" });
      await store.abandonReply("support", "h2");
      assert.deepEqual(await store.claimReply("support", "h2", T0 + 1, 10_000), { kind: "new" });
      assert.deepEqual(await store.claimReply("support", "h2", T0 + 20_000, 10_000), { kind: "interrupted" });
    });

    test("sent messages: provider refs take delivery reports; replies adopt their thread", async () => {
      const sent = await store.recordSent({
        channelId: "support",
        direction: "reply",
        provider: "simulator",
        customer: "+15550003333",
        channelNumber: "+16501234567",
        body: "hi",
        threadId: "helpdesk-thread-9",
        providerIds: ["SMa", "SMb"],
        createdAt: T0,
        adoptThread: true,
      });
      assert.equal((await store.currentThread("support", "+15550003333"))?.threadId, "helpdesk-thread-9");
      assert.equal(
        await store.recordDelivery("support", "simulator", "SMb", {
          state: "failed",
          providerStatus: "undelivered",
          error: "30003",
          at: T0 + 5,
        }),
        true,
      );
      assert.equal(
        await store.recordDelivery("support", "simulator", "nope", {
          state: "failed",
          providerStatus: "x",
          at: T0,
        }),
        false,
      );
      const m = await store.message(sent.messageId);
      assert.equal(m?.delivery_state, "failed");
      assert.equal(m?.delivery_error, "30003");
      // The customer's next message lands in the staff reply's thread.
      const next = await store.ingest(item({ customer: "+15550003333", createdAt: T0 + 60_000 }));
      assert.ok(next.status === "stored");
      assert.equal(next.threadId, "helpdesk-thread-9");
    });
  });
}
