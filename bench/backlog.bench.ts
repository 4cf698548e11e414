// Scale with backlog: with 1k / 100k / 1M pending outbox rows, how fast are claims and ingest? Each figure is
// a ratio against the same figure at 1k, measured in the same run. With the largest backlog, a real bridge
// process drains it to a bare sink while its RSS is sampled (budget: < 256 MB and flat).
//
// Environment: BENCH_BACKLOG_SIZES (default "1000,100000,1000000"), BENCH_DRAIN_SECONDS (default 25).
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { helpdeskId } from "../src/bridge/payload.js";
import { formatIsoTimestamp } from "../src/protocol/payloads.js";
import { Database } from "../src/store/dialect/better-sqlite3.js";
import { openStore } from "../src/store/open.js";
import type { IngestItem, Store } from "../src/store/store.js";
import {
  type BenchResult,
  benchServerConfig,
  percentile,
  smsbridgeCommand,
  startBare,
  startChild,
  withBaseline,
} from "./lib.js";

const CHANNEL = "bench";
const PHONE = "+16501234567";
const ACCOUNT = "AC0123456789abcdef0123456789abcdef";
const SIZES = (process.env.BENCH_BACKLOG_SIZES ?? "1000,100000,1000000")
  .split(",")
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n > 0);
const CLAIM_BATCH = 256;
const CLAIM_WARMUP = 20;
const CLAIM_SAMPLES = 300;
const CLAIM_MIN_SAMPLES = 10;
const CLAIM_WARMUP_MS = 2_000;
const CLAIM_BUDGET_MS = 10_000;
const INGEST_CALLERS = 50;
const INGEST_SECONDS = 3;
const DRAIN_SECONDS = Number(process.env.BENCH_DRAIN_SECONDS ?? 25);
const RSS_EVERY_MS = 500;
const RSS_BUDGET_MB = 256;

const fmtN = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n));

/**
 * A backlog of `n` pending inbound messages with their outbox rows, generated inside SQLite by a recursive
 * CTE (the point is a large backlog, not ingest speed: 1M rows take seconds this way, far longer through
 * `Store.ingest`). The schema comes from the real migrations; payloads have the bridge's JSON shape and size.
 */
async function fill(file: string, n: number): Promise<number> {
  const started = performance.now();
  const store = openStore(`sqlite:${file}`);
  await store.migrate();
  await store.close();
  const raw = new Database(file);
  try {
    // Setup only; the measured paths reopen the file through openStore with synchronous=FULL.
    raw.pragma("synchronous = OFF");
    const t0 = Date.now() - n - 60_000;
    raw.transaction(() => {
      raw
        .prepare(
          `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?)
           INSERT INTO messages (id, channel_id, direction, provider, provider_message_id, customer, channel_number, body, thread_id, created_at)
           SELECT i, ?, 'inbound', 'twilio', printf('SM%032x', i), printf('+1510555%04d', i % 10000), ?,
                  'Hello from customer ' || (i % 10000) || ', backlog message ' || i,
                  ? || ':' || printf('+1510555%04d', i % 10000), ? + i
           FROM seq`,
        )
        .run(n, CHANNEL, PHONE, CHANNEL, t0);
      // The payload is what helpdeskPayload() would have stored: the exact bytes the forwarder signs and POSTs.
      raw
        .prepare(
          `INSERT INTO outbox (message_id, channel_id, payload, state, attempts, next_attempt_at, queued_at)
           SELECT id, channel_id,
                  CAST(json_object('id', 'twilio:' || provider_message_id, 'direction', 'inbound',
                                   'to', json_object('phone', channel_number), 'from', json_object('phone', customer),
                                   'body', body, 'thread_id', thread_id,
                                   'created_at', strftime('%Y-%m-%dT%H:%M:%S+0000', created_at / 1000, 'unixepoch')) AS BLOB),
                  'pending', 0, created_at, created_at
           FROM messages ORDER BY id`,
        )
        .run();
    })();
    raw.pragma("wal_checkpoint(TRUNCATE)");
    const pending = (
      raw.prepare("SELECT count(*) AS n FROM outbox WHERE state = 'pending'").get() as { n: number }
    ).n;
    if (pending !== n) throw new Error(`backlog fill: expected ${n} pending rows, found ${pending}`);
  } finally {
    raw.close();
  }
  return performance.now() - started;
}

/**
 * Claim latency at a constant backlog: each claim takes the 256 oldest due rows; with a zero lease they are due
 * again at once, behind the rest, so the backlog neither shrinks nor grows while it is measured. The work per
 * claim (index range scan, 256 index updates, 256 rows returned) is what the forwarder does per batch.
 */
async function measureClaims(store: Store, n: number): Promise<{ p50: number; p99: number; count: number }> {
  const expect = Math.min(CLAIM_BATCH, n);
  const claim = async () => {
    const t = performance.now();
    const rows = await store.claim({ limit: CLAIM_BATCH, leaseMs: 0, now: Date.now(), channels: [CHANNEL] });
    const dt = (performance.now() - t) * 1000;
    if (rows.length !== expect)
      throw new Error(`claim at ${n} pending returned ${rows.length} rows, expected ${expect}`);
    return dt;
  };
  // Both phases are also bounded in time, so a slow claim (a missing index) cannot stretch the bench to minutes.
  const warmEnd = performance.now() + CLAIM_WARMUP_MS;
  for (let k = 0; k < CLAIM_WARMUP && performance.now() < warmEnd; k++) await claim();
  const us: number[] = [];
  const end = performance.now() + CLAIM_BUDGET_MS;
  while (us.length < CLAIM_SAMPLES && (us.length < CLAIM_MIN_SAMPLES || performance.now() < end))
    us.push(await claim());
  us.sort((a, b) => a - b);
  return { p50: percentile(us, 50), p99: percentile(us, 99), count: us.length };
}

let ingestSeq = 0;
/** A fresh Twilio-like message for Store.ingest (also used by handoff.bench.ts). */
export function ingestItem(): IngestItem {
  const i = ingestSeq++;
  const customer = `+1415555${String(i % 10_000).padStart(4, "0")}`;
  // Real MessageSids are random: new keys land anywhere in the dedupe index, not only at its end.
  const sid = `SM${randomBytes(16).toString("hex")}`;
  const body = `Hello from customer ${i % 10_000}, message ${i}`;
  const createdAt = Date.now();
  return {
    channelId: CHANNEL,
    provider: "twilio",
    providerMessageId: sid,
    customer,
    channelNumber: PHONE,
    body,
    createdAt,
    threading: { mode: "session", idleHours: 24 },
    payload: (threadId) =>
      Buffer.from(
        JSON.stringify({
          id: helpdeskId("twilio", sid),
          direction: "inbound",
          to: { phone: PHONE },
          from: { phone: customer },
          body,
          ...(threadId ? { thread_id: threadId } : {}),
          created_at: formatIsoTimestamp(new Date(createdAt)),
        }),
      ),
  };
}

/** Ingest through the Store API (group commit, synchronous=FULL) from 50 concurrent callers. */
async function measureIngest(store: Store, seconds: number): Promise<{ rate: number; p99: number }> {
  const lat: number[] = [];
  let done = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: INGEST_CALLERS }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const r = await store.ingest(ingestItem());
        if (r.status !== "stored") throw new Error(`ingest: fresh message answered ${r.status}`);
        lat.push(performance.now() - t);
        done++;
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { rate: done / ((performance.now() - started) / 1000), p99: percentile(lat, 99) };
}

function rssMb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Least-squares slope of (t seconds, MB) points, in MB per minute. */
function slopePerMin(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mt = points.reduce((s, p) => s + p[0], 0) / n;
  const mv = points.reduce((s, p) => s + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, v] of points) {
    num += (t - mt) * (v - mv);
    den += (t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}

function pendingCount(file: string): number {
  const raw = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (raw.prepare("SELECT count(*) AS n FROM outbox WHERE state = 'pending'").get() as { n: number }).n;
  } finally {
    raw.close();
  }
}

/** A real bridge process drains the backlog to a bare sink; its RSS is read from /proc every 500 ms. */
async function drain(dir: string, file: string, n: number): Promise<BenchResult[]> {
  const sink = await startBare();
  const configFile = join(dir, "bridge.json");
  writeFileSync(
    configFile,
    JSON.stringify({
      server: benchServerConfig("https://sms.example.test"),
      database: `sqlite:${file}`,
      log: { level: "info" },
      channels: [
        {
          id: CHANNEL,
          numbers: [PHONE],
          reamaze: { incomingUrl: `${sink.url}/incoming/sms`, secrets: ["bench-reamaze-secret"] },
          provider: { type: "twilio", accountSid: ACCOUNT, authToken: "bench-twilio-auth-token" },
          concurrency: 64,
        },
      ],
    }),
  );
  const before = pendingCount(file);
  const launched = performance.now();
  const bridge = await startChild(
    [...smsbridgeCommand(), "serve", "--config", configFile],
    {},
    /smsbridge listening[^\n]*"url":"(http:\/\/[^"]+)"|"url":"(http:\/\/[^"]+)"[^\n]*smsbridge listening/,
  );
  const startupMs = performance.now() - launched;
  const samples: Array<[number, number]> = [];
  let after: number;
  let elapsed: number;
  try {
    const t0 = performance.now();
    while (performance.now() - t0 < DRAIN_SECONDS * 1000) {
      const mb = rssMb(bridge.pid);
      if (mb === undefined) throw new Error(`bridge (pid ${bridge.pid}) exited while draining`);
      samples.push([(performance.now() - t0) / 1000, mb]);
      await new Promise((r) => setTimeout(r, RSS_EVERY_MS));
    }
    elapsed = (performance.now() - t0) / 1000;
    after = pendingCount(file);
  } finally {
    await bridge.close();
    await sink.close();
  }
  const drained = before - after;
  if (drained <= 0)
    throw new Error(`drain: nothing was delivered in ${DRAIN_SECONDS} s (${after} still pending)`);
  const maxRss = Math.max(...samples.map((s) => s[1]));
  // The first seconds are start-up (module loading, JIT, first claims); "flat" is about the steady state.
  const steady = samples.filter((s) => s[0] >= Math.min(5, DRAIN_SECONDS / 4));
  const slope = slopePerMin(steady);
  const first = steady[0]?.[1] ?? Number.NaN;
  const last = steady.at(-1)?.[1] ?? Number.NaN;
  const curve = samples
    .filter((_, i) => i % 10 === 0)
    .map((s) => `${s[0].toFixed(0)}s:${s[1].toFixed(0)}`)
    .join(" ");
  return [
    withBaseline(
      {
        name: `bridge RSS while draining a ${fmtN(n)} backlog (max)`,
        value: maxRss,
        unit: "MB",
        note: `${samples.length} samples every ${RSS_EVERY_MS} ms over ${DRAIN_SECONDS} s; MB by time: ${curve}`,
      },
      { name: "budget", value: RSS_BUDGET_MB },
    ),
    {
      name: `bridge RSS slope while draining a ${fmtN(n)} backlog`,
      value: slope,
      unit: "MB/min",
      note: `least squares over t ≥ ${steady[0]?.[0].toFixed(1) ?? "?"} s; ${first.toFixed(0)} → ${last.toFixed(0)} MB`,
    },
    {
      name: `forwarding rate with a ${fmtN(n)} backlog`,
      value: drained / elapsed,
      unit: "msg/s",
      note: `${drained.toLocaleString("en-US")} delivered in ${elapsed.toFixed(1)} s after a ${(startupMs / 1000).toFixed(1)} s start; concurrency 64`,
    },
  ];
}

export default async function run(): Promise<BenchResult[]> {
  if (SIZES.length === 0)
    throw new Error("BENCH_BACKLOG_SIZES: give comma-separated row counts, e.g. 1000,100000");
  const results: BenchResult[] = [];
  let claimBase: { name: string; value: number } | undefined;
  let claimP99Base: { name: string; value: number } | undefined;
  let ingestBase: { name: string; value: number } | undefined;
  const largest = Math.max(...SIZES);
  for (const n of SIZES) {
    const dir = mkdtempSync(join(tmpdir(), "smsbridge-backlog-"));
    try {
      const file = join(dir, "backlog.db");
      const fillMs = await fill(file, n);
      const store = openStore(`sqlite:${file}`);
      let claims: Awaited<ReturnType<typeof measureClaims>>;
      let ingest: { rate: number; p99: number };
      try {
        claims = await measureClaims(store, n);
        // Warm-up: the first size would otherwise also pay for JIT compilation and look slowest.
        await measureIngest(store, 1);
        ingest = await measureIngest(store, INGEST_SECONDS);
      } finally {
        await store.close();
      }
      const label = fmtN(n);
      claimBase ??= { name: `claim p50 at ${label}`, value: claims.p50 };
      claimP99Base ??= { name: `claim p99 at ${label}`, value: claims.p99 };
      ingestBase ??= { name: `ingest at ${label}`, value: ingest.rate };
      results.push(
        withBaseline(
          {
            name: `claim ${CLAIM_BATCH} rows, ${label} pending (p50)`,
            value: claims.p50,
            unit: "µs",
            note: `${claims.count} claims; backlog filled in ${(fillMs / 1000).toFixed(1)} s`,
          },
          claimBase,
        ),
        withBaseline(
          { name: `claim ${CLAIM_BATCH} rows, ${label} pending (p99)`, value: claims.p99, unit: "µs" },
          claimP99Base,
        ),
        withBaseline(
          {
            name: `ingest into a store with ${label} pending`,
            value: ingest.rate,
            unit: "msg/s",
            note: `Store.ingest, ${INGEST_CALLERS} callers, ${INGEST_SECONDS} s, synchronous=FULL; p99 ${ingest.p99.toFixed(1)} ms`,
          },
          ingestBase,
        ),
      );
      if (n === largest && DRAIN_SECONDS > 0) results.push(...(await drain(dir, file, n)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return results;
}
