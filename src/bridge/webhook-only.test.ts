import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import pg from "pg";
import { DIALECTS, PG_ADMIN_URL } from "../store/test-support/databases.js";
import {
  customerSends,
  eventually,
  json,
  type Loop,
  sandboxExternalIds,
  startLoop,
} from "./test-support/loop.js";

const CUSTOMER = "+15105550123";

/** PostgreSQL sessions on this database that LISTEN for outbox changes (one per forwarding instance). */
async function listeners(url: string): Promise<number> {
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    const r = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'LISTEN%'",
      [new URL(url).pathname.slice(1)],
    );
    return r.rows[0].n as number;
  } finally {
    await admin.end();
  }
}

/** Messages a bridge's forwarder took for delivery (smsbridge_outbox_claimed_total, both ways). */
async function claimedBy(loop: Loop): Promise<number> {
  return (await loop.bridge.metrics.claimed.get()).values.reduce((n, v) => n + v.value, 0);
}

// `forwarder.enabled: false` (deployment.md, "Webhook-only instances"): the instance stores and acknowledges
// webhooks and delivers nothing; an instance with the forwarder on the same database delivers them.
for (const dialect of DIALECTS) {
  describe(`a webhook-only instance, ${dialect.name}`, () => {
    const open: Loop[] = [];
    const dbs: Array<{ drop(): Promise<void> }> = [];
    after(async () => {
      for (const l of open.splice(0)) await l.close();
      for (const d of dbs.splice(0)) await d.drop();
    });

    test("stores and acknowledges without delivering; a forwarding instance on the same database delivers", async () => {
      const db = await dialect.make();
      dbs.push(db);
      const webhooksOnly = await startLoop({ database: db.url, forwarder: { enabled: false } });
      open.push(webhooksOnly);
      assert.match(webhooksOnly.logs(), /forwarder\.enabled is false/);

      await customerSends(webhooksOnly, CUSTOMER, "stored by the webhook-only instance");
      const stats = await eventually("the message pending in the outbox", async () => {
        const s = await webhooksOnly.bridge.store.channelStats();
        return s.find((c) => c.channelId === "support" && c.pending === 1);
      });
      assert.equal(stats.pending, 1);
      // Its forwarder never started: several of its poll intervals (50 ms here) later, still nothing sent.
      await new Promise((r) => setTimeout(r, 400));
      assert.deepEqual(await sandboxExternalIds(webhooksOnly), []);
      assert.equal(await claimedBy(webhooksOnly), 0);

      const forwarding = await startLoop({ database: db.url });
      open.push(forwarding);
      const ids = await eventually("the message delivered by the forwarding instance", async () => {
        const got = await sandboxExternalIds(forwarding);
        return got.length ? got : undefined;
      });
      assert.equal(ids.length, 1);
      assert.equal(await claimedBy(forwarding), 1);
      // Only the forwarding instance keeps a connection to be woken by NOTIFY; the webhook-only one needs none.
      if (dialect.name === "postgres") assert.equal(await listeners(db.url), 1);
      const { conversations } = await json<{ conversations: Array<{ customer: { phone: string } }> }>(
        await fetch(`${forwarding.sandbox.url}/api/conversations`),
      );
      assert.deepEqual(
        conversations.map((c) => c.customer.phone),
        [CUSTOMER],
      );
      // Still nothing from the webhook-only one; the delivery recorded (its outcome commits after the answer).
      assert.deepEqual(await sandboxExternalIds(webhooksOnly), []);
      await eventually("the outbox empty", async () => {
        const left = await forwarding.bridge.store.channelStats();
        return (left.find((c) => c.channelId === "support")?.pending ?? 0) === 0 ? true : undefined;
      });
    });
  });
}
