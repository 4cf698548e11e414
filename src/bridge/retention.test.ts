import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { Writable } from "node:stream";
import { after, describe, test } from "node:test";
import type { Store } from "../store/store.js";
import { scratchPostgres } from "../store/test-support/databases.js";
import { inboundItem } from "../store/test-support/items.js";
import { type RunningBridge, startBridge } from "./app.js";
import { validateConfig } from "./config.js";
import {
  bridgeConfig,
  freePort,
  helpdeskId,
  MAIN,
  message,
  postInbound,
  startRecorder,
  tempDir,
} from "./test-support/faults-harness.js";
import { eventually } from "./test-support/loop.js";

const DAY = 86_400_000;

/** Old and young messages, two of the old ones dead, plus an expired and a live staff-reply record. */
async function seed(store: Store, now: number, prefix: string, old: number) {
  for (let i = 0; i < old; i++) await store.ingest(inboundItem(`${prefix}-old-${i}`, now - 40 * DAY));
  for (let i = 0; i < 3; i++) await store.ingest(inboundItem(`${prefix}-young-${i}`, now - DAY));
  const rows = await store.claim({ limit: 2, leaseMs: 60_000, now, channels: ["support"] });
  for (const r of rows) await store.markDead(r.id, r.token, 400, "refused", "{}", now - 35 * DAY);
  await store.claimReply("support", `${prefix}-expired`, now - 2 * DAY, 15_000);
  await store.finishReply("support", `${prefix}-expired`, 201, "{}");
  await store.claimReply("support", `${prefix}-live`, now - 3_600_000, 15_000);
  await store.finishReply("support", `${prefix}-live`, 201, "{}");
}

/** `name{labels} value` lines of /metrics for the retention metrics. */
async function retentionMetrics(bridge: RunningBridge): Promise<Map<string, number>> {
  const text = await (await fetch(`${bridge.url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("smsbridge_retention_")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function start(database: string, retention: Record<string, unknown>, lines?: string[]) {
  const raw = {
    ...bridgeConfig({ port: await freePort(), database, incomingUrl: "http://127.0.0.1:9/" }),
    log: { level: "info" },
    retention,
  };
  const logDestination = new Writable({
    write: (chunk, _e, cb) => {
      lines?.push(...String(chunk).split("\n").filter(Boolean));
      cb();
    },
  });
  return startBridge({ loaded: validateConfig(raw), logDestination, forwarder: false });
}

describe("retention through a running bridge", () => {
  const dir = tempDir("retention");
  after(() => dir.remove());

  test("the sweep runs on its timer: old messages, dead rows and expired reply records go, and /metrics and the log say so", async () => {
    const lines: string[] = [];
    const bridge = await start(
      `sqlite:${dir.dir}/timer.db`,
      { days: 30, sweepMinutes: 0.005, batch: 2 },
      lines,
    );
    try {
      const now = Date.now();
      await seed(bridge.store, now, "t", 5);
      const m = await eventually("the sweep to delete every old message", async () => {
        const metrics = await retentionMetrics(bridge);
        return metrics.get('smsbridge_retention_deleted_total{kind="messages"}') === 5 ? metrics : undefined;
      });
      assert.equal(m.get('smsbridge_retention_deleted_total{kind="dead_outbox"}'), 2);
      assert.equal(m.get('smsbridge_retention_deleted_total{kind="replies"}'), 1);
      assert.ok((m.get('smsbridge_retention_sweeps_total{result="ok"}') ?? 0) >= 1);
      assert.equal(m.get('smsbridge_retention_sweeps_total{result="error"}') ?? 0, 0);
      assert.ok(
        Math.abs((m.get("smsbridge_retention_last_success_timestamp_seconds") ?? 0) - now / 1000) < 60,
      );

      const db = bridge.store.db;
      const messages = await db.selectFrom("messages").select("provider_message_id").execute();
      assert.deepEqual(messages.map((r) => r.provider_message_id).sort(), [
        "t-young-0",
        "t-young-1",
        "t-young-2",
      ]);
      // The old messages' pending outbox rows are work still to do: only the dead ones went.
      const outbox = await db.selectFrom("outbox").select("state").execute();
      assert.deepEqual(
        outbox.map((r) => r.state),
        ["pending", "pending", "pending", "pending", "pending", "pending"],
      );
      const replies = await db.selectFrom("replies").select("body_hash").execute();
      assert.deepEqual(
        replies.map((r) => r.body_hash),
        ["t-live"],
      );
      const logged = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "retention sweep");
      assert.ok(logged.length >= 1, "a sweep that deleted something logs it");
      assert.equal(
        logged.reduce((n, l) => n + l.deleted.messages, 0),
        5,
      );
    } finally {
      await bridge.close();
    }
  });

  test("a message deleted while its copy is still queued for a failing helpdesk is delivered once it recovers", async () => {
    const helpdesk = await startRecorder();
    let recovered = false;
    helpdesk.behaviour = () =>
      recovered ? { kind: "answer", status: 200 } : { kind: "answer", status: 503 };
    const raw = {
      ...bridgeConfig({
        port: await freePort(),
        database: `sqlite:${dir.dir}/queued.db`,
        incomingUrl: helpdesk.url,
      }),
      retention: { days: 30, sweepMinutes: 60 },
    };
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    const bridge = await startBridge({ loaded: validateConfig(raw), logDestination: quiet });
    try {
      // Sent 40 days ago by the customer's phone (a carrier's late delivery), received now.
      const old = Date.now() - 40 * DAY;
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) {
        const m = { ...message("late", i), sentAt: new Date(old + i * 1000).toISOString() };
        assert.equal(await postInbound(bridge.url, m), 200);
        ids.push(helpdeskId(m.id));
      }
      await eventually("the failing helpdesk to be tried", async () =>
        helpdesk.deliveries.length ? true : undefined,
      );
      const swept = await bridge.retention.sweep();
      assert.equal(swept.messages, 10, "the messages are older than retention.days");
      assert.equal((await bridge.store.db.selectFrom("messages").select("id").execute()).length, 0);
      recovered = true;
      await eventually("every queued copy delivered", async () =>
        ids.every((id) => helpdesk.delivered().has(id)) ? true : undefined,
      );
      assert.equal(helpdesk.badSignatures, 0);
    } finally {
      await bridge.close();
      await helpdesk.close();
    }
  });

  test("`smsbridge prune` in another process beside a live bridge on the same SQLite file: both write, nothing acknowledged is lost", async () => {
    const helpdesk = await startRecorder();
    const database = `sqlite:${dir.dir}/beside.db`;
    const raw = bridgeConfig({ port: await freePort(), database, incomingUrl: helpdesk.url });
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    const bridge = await startBridge({ loaded: validateConfig(raw), logDestination: quiet });
    try {
      const now = Date.now();
      const OLD = 1_500;
      for (let i = 0; i < OLD; i++) await bridge.store.ingest(inboundItem(`beside-old-${i}`, now - 40 * DAY));
      // Batches of 25, each a write transaction of its own process, paced: they interleave with the bridge's.
      const file = `${dir.dir}/beside.json`;
      writeFileSync(file, JSON.stringify({ ...raw, retention: { batch: 25 } }));
      const child = spawn(
        process.execPath,
        ["--import", "tsx", MAIN, "prune", "-c", file, "--days", "30", "--json"],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c));
      child.stderr.on("data", (c: Buffer) => (stderr += c));
      const exited = once(child, "close");
      let done = false;
      void exited.then(() => (done = true));
      // Webhooks the whole time the prune runs (and at least 200): each must be acknowledged and delivered.
      const ids: string[] = [];
      const statuses: number[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (!done || ids.length < 200) {
            // Sent now: `message()` dates its messages in January 2026, which 30 days of retention would delete.
            const m = { ...message("beside-new-", ids.length), sentAt: new Date().toISOString() };
            ids.push(helpdeskId(m.id));
            statuses.push(await postInbound(bridge.url, m));
          }
        }),
      );
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, stderr);
      assert.equal(
        JSON.parse(stdout).deleted.messages,
        OLD,
        "every old message deleted by the other process",
      );
      assert.deepEqual(new Set(statuses), new Set([200]), "every webhook acknowledged");
      await eventually("every acknowledged webhook delivered", async () =>
        ids.every((id) => helpdesk.delivered().has(id)) ? true : undefined,
      );
      const kept = await bridge.store.db.selectFrom("messages").select("provider_message_id").execute();
      assert.equal(kept.length, ids.length, "the new messages, all stored; the old ones gone");
      assert.ok(kept.every((r) => r.provider_message_id?.startsWith("beside-new-")));
    } finally {
      await bridge.close();
      await helpdesk.close();
    }
  });

  test("without `days`, messages and dead rows are kept; only expired reply records go", async () => {
    const bridge = await start(`sqlite:${dir.dir}/keep.db`, { sweepMinutes: 60 });
    try {
      const now = Date.now();
      await seed(bridge.store, now, "k", 4);
      assert.deepEqual(await bridge.retention.sweep(), {
        messages: 0,
        providerRefs: 0,
        deadOutbox: 0,
        replies: 1,
      });
      assert.equal((await bridge.store.db.selectFrom("messages").select("id").execute()).length, 7);
    } finally {
      await bridge.close();
    }
  });

  test("two instances on one PostgreSQL database sweep at once: every old row is deleted, once in all", async () => {
    const pg = await scratchPostgres();
    const bridges: RunningBridge[] = [];
    try {
      // Batches of 3 over 40 old messages: the two sweeps interleave many times.
      bridges.push(await start(pg.url, { days: 30, sweepMinutes: 60, batch: 3 }));
      bridges.push(await start(pg.url, { days: 30, sweepMinutes: 60, batch: 3 }));
      const now = Date.now();
      await seed(bridges[0]!.store, now, "pg", 40);
      const results = await Promise.all(bridges.map((b) => b.retention.sweep()));
      const total = (k: keyof (typeof results)[0]) => results.reduce((n, r) => n + r[k], 0);
      // A sweep may stop early when the other holds the rows it would read next; a second pass finishes.
      const again = await bridges[0]!.retention.sweep();
      assert.equal(total("messages") + again.messages, 40);
      assert.equal(total("deadOutbox") + again.deadOutbox, 2);
      assert.equal(total("replies") + again.replies, 1);
      const left = await bridges[0]!.store.db.selectFrom("messages").select("provider_message_id").execute();
      assert.deepEqual(left.map((r) => r.provider_message_id).sort(), [
        "pg-young-0",
        "pg-young-1",
        "pg-young-2",
      ]);
    } finally {
      for (const b of bridges) await b.close();
      await pg.drop();
    }
  });
});
