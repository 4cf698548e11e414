// Retention (src/bridge/retention.ts): what a sweep costs, and what it does to webhooks arriving meanwhile.
// One process, SQLite files (synchronous=FULL durability), 50 concurrent callers:
//   1. a store holding BENCH_RETENTION_MESSAGES old messages, delivered (outbox rows gone, as the bridge
//      leaves them); ingest alone for a few seconds: its latency and the event loop's delay, the baseline;
//   2. the same ingest while a sweep deletes every old message: the same figures, as ratios to (1), and the
//      sweep's rate against the ingest rate of (1);
//   3. a staff reply's store writes (claimReply + recordSent) with and without migration 0007's two indexes,
//      alternating: CPU per reply, the indexes' cost on the reply path.
//
// Environment: BENCH_RETENTION_MESSAGES (default 100000), BENCH_RETENTION_SECONDS (default 3 per run),
// BENCH_RETENTION_BATCH (default 200, the config's default).
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { sql } from "kysely";
import pino from "pino";
import { createMetrics } from "../src/bridge/metrics.js";
import { RetentionSweeper } from "../src/bridge/retention.js";
import { openStore } from "../src/store/open.js";
import type { Store } from "../src/store/store.js";
import { ingestItem } from "./backlog.bench.js";
import { type BenchResult, median, percentile, withBaseline } from "./lib.js";

const MESSAGES = Number(process.env.BENCH_RETENTION_MESSAGES ?? 100_000);
const SECONDS = Number(process.env.BENCH_RETENTION_SECONDS ?? 3);
const CALLERS = 50;
const BATCH = Number(process.env.BENCH_RETENTION_BATCH ?? 200);
const DAY = 86_400_000;

/** 50 callers ingesting fresh messages until `until()` says stop: each ingest's latency (ms) and the loop's delay. */
async function ingestWhile(store: Store, until: () => boolean) {
  const latencies: number[] = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (!until()) {
        const t = performance.now();
        const r = await store.ingest(ingestItem());
        if (r.status !== "stored") throw new Error(`ingest answered ${r.status}`);
        latencies.push(performance.now() - t);
      }
    }),
  );
  loop.disable();
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    rate: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    loopMaxMs: loop.max / 1e6,
    loopP99Ms: loop.percentile(99) / 1e6,
  };
}

async function fillOld(store: Store, n: number): Promise<void> {
  let left = n;
  const old = Date.now() - 40 * DAY;
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (left-- > 0) await store.ingest({ ...ingestItem(), createdAt: old });
    }),
  );
  // As the bridge leaves them once delivered: the outbox row is deleted, the message stays.
  await store.db.deleteFrom("outbox").execute();
}

async function sweepCost(dir: string) {
  const store = openStore(`sqlite:${join(dir, "sweep.db")}`);
  try {
    await store.migrate();
    await fillOld(store, MESSAGES);
    const alone = await ingestWhile(store, deadline(SECONDS));
    const sweeper = new RetentionSweeper(
      store,
      { days: 30, sweepMinutes: 60, batch: BATCH },
      createMetrics(),
      pino({ level: "silent" }),
      Date.now,
    );
    let swept: { messages: number; seconds: number } | undefined;
    const t = performance.now();
    const sweeping = sweeper.sweep().then((c) => {
      swept = { messages: c.messages, seconds: (performance.now() - t) / 1000 };
    });
    const during = await ingestWhile(store, () => swept !== undefined);
    await sweeping;
    if (!swept || swept.messages !== MESSAGES)
      throw new Error(`the sweep deleted ${swept?.messages} of ${MESSAGES} old messages`);
    return { alone, during, swept };
  } finally {
    await store.close();
  }
}

const deadline = (seconds: number) => {
  const end = performance.now() + seconds * 1000;
  return () => performance.now() >= end;
};

/** CPU per staff reply of the store's two reply writes, 50 callers for SECONDS. */
async function replyCpu(store: Store): Promise<number> {
  let done = 0;
  const stop = deadline(SECONDS);
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CALLERS }, async (_, caller) => {
      while (!stop()) {
        const hash = randomBytes(32).toString("hex");
        const now = Date.now();
        const claim = await store.claimReply("bench", hash, now, 15_000);
        if (claim.kind !== "new") throw new Error(`claimReply answered ${claim.kind}`);
        await store.recordSent(
          {
            channelId: "bench",
            direction: "reply",
            provider: "twilio",
            customer: `+1415555${String(caller).padStart(4, "0")}`,
            channelNumber: "+14155550100",
            body: "Thanks, your order ships tomorrow.",
            providerIds: [`SM${randomBytes(16).toString("hex")}`],
            createdAt: now,
            adoptThread: true,
          },
          { hash, status: 201, body: '{"id":"SM"}' },
        );
        done++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / done;
}

async function indexCost(dir: string) {
  const withIdx = openStore(`sqlite:${join(dir, "with.db")}`);
  const without = openStore(`sqlite:${join(dir, "without.db")}`);
  const cpu = { with: [] as number[], without: [] as number[] };
  try {
    await withIdx.migrate();
    await without.migrate();
    await sql`DROP INDEX provider_refs_message`.execute(without.db);
    await sql`DROP INDEX replies_created`.execute(without.db);
    await replyCpu(withIdx); // warm-up
    await replyCpu(without);
    for (let k = 0; k < 3; k++) {
      // Alternate which goes first, so a machine getting busier or quieter favours neither.
      const order = k % 2 ? (["without", "with"] as const) : (["with", "without"] as const);
      for (const way of order) cpu[way].push(await replyCpu(way === "with" ? withIdx : without));
    }
  } finally {
    await withIdx.close();
    await without.close();
  }
  return cpu;
}

export default async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "smsbridge-retention-"));
  try {
    const { alone, during, swept } = await sweepCost(dir);
    const idx = await indexCost(dir);
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(", ");
    const ms = (x: number) => `${x.toFixed(2)} ms`;
    const sweepRate = swept.messages / swept.seconds;
    return [
      withBaseline(
        {
          name: `retention sweep: old messages deleted per second (${MESSAGES.toLocaleString("en-US")}, batches of ${BATCH}) while 50 callers ingest`,
          value: sweepRate,
          unit: "msg/s",
          note: `${swept.seconds.toFixed(1)} s; baseline: ingest alone into the same store, ${CALLERS} callers, SQLite synchronous=FULL`,
        },
        { name: "ingest alone, msg/s", value: alone.rate },
      ),
      withBaseline(
        {
          name: "ingest p99 while the sweep runs",
          value: during.p99,
          unit: "ms",
          note: `p50 ${ms(during.p50)} (alone ${ms(alone.p50)}); ingest ${Math.round(during.rate)} msg/s (alone ${Math.round(alone.rate)})`,
        },
        { name: "ingest p99 alone", value: alone.p99 },
      ),
      withBaseline(
        {
          name: "event-loop delay p99 while the sweep runs",
          value: during.loopP99Ms,
          unit: "ms",
          note: `longest ${ms(during.loopMaxMs)} (alone ${ms(alone.loopMaxMs)})`,
        },
        { name: "event-loop delay p99, ingest alone", value: alone.loopP99Ms },
      ),
      withBaseline(
        {
          name: "staff reply's store writes, CPU per reply, with migration 0007's indexes",
          value: median(idx.with),
          unit: "µs",
          note: `median of 3 runs of ${SECONDS} s (${fmt(idx.with)}), ${CALLERS} callers, one process; without: ${fmt(idx.without)}`,
        },
        { name: "without them", value: median(idx.without) },
      ),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
