// The store's share of moving one message from a provider to the helpdesk, with and without the hand-off
// (Forwarder.reserve): ingest, claim, record the delivery — or ingest already claimed, record the delivery.
// In one process against a SQLite file (synchronous=FULL durability), 50 concurrent callers, the two ways
// interleaved; the figure is the process's CPU per message (all threads: the main one and libuv's syncs).
// No HTTP: this isolates what the hand-off removes from what the bridge bench's rates bury in noise.
//
// Environment: BENCH_HANDOFF_SECONDS (default 3 per run), BENCH_HANDOFF_ROUNDS (default 3 pairs).
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../src/store/open.js";
import type { ClaimedRow, Store } from "../src/store/store.js";
import { ingestItem } from "./backlog.bench.js";
import { type BenchResult, median, withBaseline } from "./lib.js";

const CALLERS = 50;
const SECONDS = Number(process.env.BENCH_HANDOFF_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_HANDOFF_ROUNDS ?? 3);
const LEASE_MS = 60_000;

type Way = "claim after ingest" | "claimed at ingest";

/**
 * Claims for callers whose messages are stored, as the forwarder's loop does: one claim per gathering of
 * waiters (each caller's row is whichever due row the claim returns; every stored row is due).
 */
class Claimer {
  private waiting: Array<(row: ClaimedRow) => void> = [];
  private running = false;
  constructor(private readonly store: Store) {}

  next(): Promise<ClaimedRow> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.waiting.length) {
      const want = this.waiting.splice(0);
      const rows = await this.store.claim({
        limit: want.length,
        leaseMs: LEASE_MS,
        now: Date.now(),
        channels: ["bench"],
      });
      // A row committed after the claim's snapshot comes in the next one.
      for (const [i, row] of rows.entries()) want[i]?.(row);
      if (rows.length < want.length) this.waiting.unshift(...want.slice(rows.length));
    }
    this.running = false;
  }
}

async function runOnce(store: Store, way: Way): Promise<{ perMessageUs: number; messages: number }> {
  const claimer = new Claimer(store);
  let tokens = 0;
  const prefix = randomUUID();
  let done = 0;
  const cpu0 = process.cpuUsage();
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (performance.now() < end) {
        const item = ingestItem();
        if (way === "claimed at ingest")
          item.claim = { token: `${prefix}.${++tokens}`, leaseUntil: Date.now() + LEASE_MS };
        const r = await store.ingest(item);
        if (r.status !== "stored") throw new Error(`ingest: fresh message answered ${r.status}`);
        const row = r.claimed ?? (await claimer.next());
        if (!(await store.markDelivered(row.id, row.token)))
          throw new Error(`markDelivered refused row ${row.id}`);
        done++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { perMessageUs: (cpu.user + cpu.system) / done, messages: done };
}

export default async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "smsbridge-handoff-"));
  try {
    const store = openStore(`sqlite:${join(dir, "handoff.db")}`);
    const cpu: Record<Way, number[]> = { "claim after ingest": [], "claimed at ingest": [] };
    let messages = 0;
    try {
      await store.migrate();
      await runOnce(store, "claim after ingest"); // warm-up (JIT, file growth)
      await runOnce(store, "claimed at ingest");
      for (let k = 0; k < ROUNDS; k++) {
        // Alternate which goes first, so a machine getting busier or quieter favours neither.
        const order: Way[] =
          k % 2 ? ["claimed at ingest", "claim after ingest"] : ["claim after ingest", "claimed at ingest"];
        for (const way of order) {
          const r = await runOnce(store, way);
          cpu[way].push(r.perMessageUs);
          messages += r.messages;
        }
      }
    } finally {
      await store.close();
    }
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(", ");
    const base = median(cpu["claim after ingest"]);
    const handoff = median(cpu["claimed at ingest"]);
    return [
      withBaseline(
        {
          name: "store CPU per message, claimed at ingest (hand-off): ingest + record",
          value: handoff,
          unit: "µs",
          note: `median of ${ROUNDS} runs of ${SECONDS} s (${fmt(cpu["claimed at ingest"])}), ${CALLERS} callers, one process, SQLite synchronous=FULL; baseline runs ${fmt(cpu["claim after ingest"])}; ${messages} messages in all`,
        },
        { name: "ingest, then claim, then record", value: base },
      ),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
