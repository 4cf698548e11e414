import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import { sql } from "kysely";
import { openStore } from "./open.js";
import type { IngestItem, Store } from "./store.js";
import { DIALECTS, type ScratchDb } from "./test-support/databases.js";
import { inboundItem } from "./test-support/items.js";

const DAY = 86_400_000;
const NOW = Date.parse("2026-06-01T00:00:00Z");
const CUTOFF = NOW - 30 * DAY;
const OLD = CUTOFF - DAY;
const YOUNG = CUTOFF + DAY;

async function stored(store: Store, item: IngestItem): Promise<number> {
  const r = await store.ingest(item);
  assert.equal(r.status, "stored");
  return (r as { messageId: number }).messageId;
}

async function sent(store: Store, providerIds: string[], createdAt: number): Promise<number> {
  const r = await store.recordSent({
    channelId: "support",
    direction: "reply",
    provider: "simulator",
    customer: "+15105559999",
    channelNumber: "+16501234567",
    body: "a reply",
    providerIds,
    createdAt,
  });
  return r.messageId;
}

async function ids(store: Store, table: "messages" | "outbox"): Promise<number[]> {
  const rows = await store.db.selectFrom(table).select("id").orderBy("id").execute();
  return rows.map((r) => r.id);
}

/** Runs `pruneMessages` the way the sweep does: from the start, on from each batch's last id, until a batch deletes nothing. */
async function sweepMessages(store: Store, limit: number) {
  let after = 0;
  const batches: Array<{ scanned: number; deleted: number; refs: number }> = [];
  for (;;) {
    const r = await store.retention.pruneMessages(after, CUTOFF, limit);
    batches.push({ scanned: r.scanned, deleted: r.deleted, refs: r.refs });
    if (r.scanned < limit || r.deleted === 0) return batches;
    after = r.lastId;
  }
}

for (const dialect of DIALECTS) {
  describe(`retention on ${dialect.name}`, () => {
    let scratch: ScratchDb;
    let store: Store;
    before(async () => {
      scratch = await dialect.make();
      store = openStore(scratch.url);
      await store.migrate();
    });
    after(async () => {
      await store.close();
      await scratch.drop();
    });
    beforeEach(async () => {
      for (const t of ["messages", "outbox", "provider_refs", "replies", "threads", "opt_outs"] as const)
        await store.db.deleteFrom(t).execute();
    });

    test("messages created before the cutoff go with their provider refs; younger ones, outbox rows, threads and opt-outs stay", async () => {
      const oldIn = await stored(store, inboundItem("old-1", OLD));
      await stored(store, inboundItem("old-2", OLD - DAY));
      // An opt-out outlives the messages that made it.
      await store.setOptOut("support", "+15105559999", true, "STOP", OLD);
      const oldSent = await sent(store, ["SMold-a", "SMold-b"], OLD);
      const youngIn = await stored(store, inboundItem("young-1", YOUNG));
      const youngSent = await sent(store, ["SMyoung"], YOUNG);
      const outboxBefore = await ids(store, "outbox");

      const batches = await sweepMessages(store, 100);

      assert.deepEqual(batches, [{ scanned: 5, deleted: 3, refs: 2 }]);
      assert.deepEqual(await ids(store, "messages"), [youngIn, youngSent]);
      assert.ok(!(await ids(store, "messages")).includes(oldIn));
      assert.ok(!(await ids(store, "messages")).includes(oldSent));
      // A late delivery report for a deleted message finds nothing; one for a kept message still applies.
      const report = { state: "delivered", providerStatus: "delivered", at: NOW };
      assert.equal(await store.recordDelivery("support", "simulator", "SMold-b", report), false);
      assert.equal(await store.recordDelivery("support", "simulator", "SMyoung", report), true);
      // Pending outbox rows are work, whatever their message's age: the helpdesk-bound bytes are in the row.
      assert.deepEqual(await ids(store, "outbox"), outboxBefore);
      assert.ok(await store.optOut("support", "+15105559999"));
      assert.equal((await store.db.selectFrom("threads").selectAll().execute()).length, 1);
    });

    // Each row: messages' created_at in id order, the batch size, and the batches a sweep makes.
    const cases: Array<{
      name: string;
      ages: number[];
      limit: number;
      batches: Array<{ scanned: number; deleted: number }>;
      kept: number[];
    }> = [
      {
        name: "a large backlog goes in batches of the limit, and the sweep stops at the first batch with nothing old",
        ages: [OLD, OLD, OLD, OLD, OLD, YOUNG, YOUNG, YOUNG],
        limit: 2,
        batches: [
          { scanned: 2, deleted: 2 },
          { scanned: 2, deleted: 2 },
          { scanned: 2, deleted: 1 },
          { scanned: 2, deleted: 0 },
        ],
        kept: [5, 6, 7],
      },
      {
        name: "a message with a later created_at among old ones (a provider's clock) does not stop the sweep",
        ages: [OLD, YOUNG, OLD, OLD, OLD, YOUNG],
        limit: 3,
        batches: [
          { scanned: 3, deleted: 2 },
          { scanned: 3, deleted: 2 },
          { scanned: 0, deleted: 0 },
        ],
        kept: [1, 5],
      },
      {
        name: "nothing old: one batch reads the oldest messages and deletes nothing",
        ages: [YOUNG, YOUNG, YOUNG],
        limit: 2,
        batches: [{ scanned: 2, deleted: 0 }],
        kept: [0, 1, 2],
      },
      {
        name: "the cutoff itself is kept (deleted only when created before it)",
        ages: [CUTOFF - 1, CUTOFF, CUTOFF + 1],
        limit: 10,
        batches: [{ scanned: 3, deleted: 1 }],
        kept: [1, 2],
      },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        const made: number[] = [];
        for (const [i, age] of c.ages.entries()) made.push(await stored(store, inboundItem(`m${i}`, age)));
        const batches = await sweepMessages(store, c.limit);
        assert.deepEqual(
          batches.map((b) => ({ scanned: b.scanned, deleted: b.deleted })),
          c.batches,
        );
        assert.deepEqual(
          await ids(store, "messages"),
          c.kept.map((i) => made[i]),
        );
      });
    }

    test("dead outbox rows that died before the cutoff go, at most `limit` per call; pending and younger dead rows stay", async () => {
      for (let i = 0; i < 5; i++) await stored(store, inboundItem(`d${i}`, OLD, "dead-ch"));
      const rows = await store.claim({ limit: 10, leaseMs: 60_000, now: NOW, channels: ["dead-ch"] });
      assert.equal(rows.length, 5);
      const [a, b, c, d, pending] = rows as [
        (typeof rows)[0],
        (typeof rows)[0],
        (typeof rows)[0],
        (typeof rows)[0],
        (typeof rows)[0],
      ];
      for (const [row, at] of [
        [a, OLD],
        [b, OLD],
        [c, OLD - DAY],
        [d, YOUNG],
      ] as const)
        assert.ok(await store.markDead(row.id, row.token, 400, "refused", "{}", at));

      assert.equal(await store.retention.pruneDead(CUTOFF, 2), 2);
      assert.equal(await store.retention.pruneDead(CUTOFF, 2), 1);
      assert.equal(await store.retention.pruneDead(CUTOFF, 2), 0);
      assert.deepEqual(
        await ids(store, "outbox"),
        [d.id, pending.id].sort((x, y) => x - y),
      );
      // The young dead row is still replayable.
      assert.equal(await store.replayDead({ id: d.id }, NOW), 1);
    });

    test("staff-reply records created before the cutoff go, at most `limit` per call; younger ones still answer a repeat", async () => {
      const hour = 3_600_000;
      for (const [hash, at] of [
        ["h-old-1", NOW - 30 * hour],
        ["h-old-2", NOW - 26 * hour],
        ["h-old-3", NOW - 48 * hour],
        ["h-young", NOW - 2 * hour],
      ] as const) {
        assert.deepEqual(await store.claimReply("support", hash, at, 15_000), { kind: "new" });
        await store.finishReply("support", hash, 201, `{"id":"${hash}"}`);
      }
      const before = NOW - 25 * hour;
      assert.equal(await store.retention.pruneReplies(before, 2), 2);
      assert.equal(await store.retention.pruneReplies(before, 2), 1);
      assert.equal(await store.retention.pruneReplies(before, 2), 0);
      const left = await store.db.selectFrom("replies").select("body_hash").execute();
      assert.deepEqual(
        left.map((r) => r.body_hash),
        ["h-young"],
      );
      assert.deepEqual(await store.claimReply("support", "h-young", NOW, 15_000), {
        kind: "done",
        status: 201,
        body: '{"id":"h-young"}',
      });
    });

    if (dialect.name === "sqlite") {
      // Each batch costs what it deletes only if SQLite finds the rows through an index, not a table scan.
      const plans: Array<{ what: string; query: string; uses: RegExp }> = [
        {
          what: "messages in id order from the cursor",
          query: "SELECT id, created_at FROM messages WHERE id > 0 ORDER BY id LIMIT 10",
          uses: /USING INTEGER PRIMARY KEY/,
        },
        {
          what: "a message's provider refs",
          query: "DELETE FROM provider_refs WHERE message_id = 1",
          uses: /USING (COVERING )?INDEX provider_refs_message/,
        },
        {
          what: "expired staff-reply records",
          query:
            "SELECT channel_id, body_hash FROM replies WHERE created_at < 0 ORDER BY created_at LIMIT 10",
          uses: /USING (COVERING )?INDEX replies_created/,
        },
        {
          what: "dead outbox rows",
          query:
            "SELECT id FROM outbox WHERE state = 'dead' AND finished_at < 0 ORDER BY finished_at LIMIT 10",
          uses: /USING (COVERING )?INDEX outbox_dead/,
        },
      ];
      for (const p of plans) {
        test(`SQLite finds ${p.what} through an index`, async () => {
          const rows = await sql<{ detail: string }>`EXPLAIN QUERY PLAN ${sql.raw(p.query)}`.execute(
            store.db,
          );
          const detail = rows.rows.map((r) => r.detail).join(" | ");
          assert.match(detail, p.uses, detail);
        });
      }
    }
  });
}
