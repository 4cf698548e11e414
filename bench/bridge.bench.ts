// Bridge throughput, each figure next to a baseline measured in the same run:
// - durable ingest: Twilio-signed form webhooks (each a different message) → verified → committed with
//   synchronous=FULL → acknowledged, while the forwarder runs; baseline: a bare node:http server. Next to it,
//   the CPU each process spent per message (bridge, generator, sink) against the bare server's per request.
//   Then once more at 50 connections with wrk as the generator, against wrk's bare figure (when wrk is
//   installed): autocannon's own CPU caps its bare figure at about a third of the server's capacity. And once
//   at the first level with the forwarder off (a webhook-only instance): ingest's cost alone.
// - forwarding: a standing backlog drained to a bare sink, each body signed; baseline: a plain keep-alive
//   client POSTing the same bodies to the same sink at the same concurrency. Next to it, the bridge's CPU per
//   forwarded message against the client's per request (steadier than the rates on a shared machine).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { sign } from "../src/protocol/signature.js";
import { Database } from "../src/store/dialect/better-sqlite3.js";
import { openStore } from "../src/store/open.js";
import {
  type BenchResult,
  benchServerConfig,
  type ChildServer,
  cpuSeconds,
  gcBetween,
  ioWriteBytes,
  load,
  type RuntimeSample,
  roundCounters,
  runtimeSample,
  smsbridgeCommand,
  startBare,
  startChild,
  withBaseline,
} from "./lib.js";
import { ACCOUNT, PHONE, PUBLIC, TOKEN, twilioWebhook } from "./twilio-webhook.js";
import { wrkInstalled, wrkRun, wrkScript } from "./wrk.js";

const SECRET = "bench-reamaze-secret";
const CONNECTION_LEVELS = (process.env.BENCH_CONNECTIONS ?? "50,256").split(",").filter(Boolean).map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 20_000);
const WRK_CONNECTIONS = 50;
/** Distinct pre-signed posts for the wrk ingest run: more than the bridge takes in BENCH_SECONDS here. */
const WRK_POSTS = Number(process.env.BENCH_WRK_POSTS ?? 150_000);

function config(dir: string, sinkUrl: string, db: string, forwarder = true) {
  const file = join(dir, `bridge-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      server: benchServerConfig(PUBLIC),
      database: `sqlite:${db}`,
      log: { level: "info" },
      ...(forwarder ? {} : { forwarder: { enabled: false } }),
      channels: [
        {
          id: "bench",
          numbers: [PHONE],
          reamaze: { incomingUrl: `${sinkUrl}/incoming/sms`, secrets: [SECRET] },
          provider: { type: "twilio", accountSid: ACCOUNT, authToken: TOKEN },
          threading: { mode: "pair" },
          concurrency: 64,
        },
      ],
    }),
  );
  return file;
}

function startBridge(configFile: string) {
  return startChild(
    [...smsbridgeCommand(), "serve", "--config", configFile],
    {},
    /"url":"(http:\/\/[^"]+)"[^\n]*smsbridge listening|smsbridge listening[^\n]*"url":"(http:\/\/[^"]+)"/,
  );
}

/**
 * Durable ingest with wrk as the generator. autocannon spends ~45 µs of CPU per request building and signing it,
 * on the same two cores as the bridge, and caps the bare server at about a third of what it can do; wrk spends a
 * few µs. So this pair is the ratio with a generator that takes almost nothing from the machine, against the
 * bare server's real capacity. wrk cannot sign, so it sends posts signed beforehand, each a different message:
 * a repeat would be answered as a duplicate, which is cheaper.
 */
async function wrkIngest(dir: string, sink: ChildServer, bare: ChildServer): Promise<BenchResult[]> {
  const connections = WRK_CONNECTIONS;
  const script = wrkScript(dir, WRK_POSTS);
  const bareRun = await wrkRun(bare.url, bare.pid, script, SECONDS, connections);
  if (bareRun.bad) throw new Error(`wrk → bare: ${bareRun.bad} errors or non-2xx answers`);
  const bridge = await startBridge(config(dir, sink.url, join(dir, "ingest-wrk.db")));
  let run: Awaited<ReturnType<typeof wrkRun>>;
  let sinkCpu: number;
  let rounds: Rounds;
  try {
    // Warm-up with autocannon: its posts are other messages, so wrk's all stay new.
    await load({ url: bridge.url, connections, durationSec: 1, requests: twilioWebhook });
    const rounds0 = await roundCounters(bridge.url);
    const sink0 = cpuSeconds(sink.pid);
    run = await wrkRun(bridge.url, bridge.pid, script, SECONDS, connections);
    sinkCpu = cpuSeconds(sink.pid) - sink0;
    rounds = since(rounds0, await roundCounters(bridge.url));
  } finally {
    await bridge.close();
  }
  if (run.bad) throw new Error(`wrk → bridge: ${run.bad} errors or non-2xx answers`);
  const repeats = Math.max(0, run.total - WRK_POSTS);
  const us = (seconds: number) => Math.round((seconds * 1e6) / run.total);
  return [
    withBaseline(
      {
        name: `durable ingest by wrk, ${connections} connections (Twilio webhooks → commit → ack)`,
        value: run.rps,
        unit: "msg/s",
        note: `p50 ${run.p50.toFixed(2)} ms, p99 ${run.p99.toFixed(2)} ms; forwarder running; ${repeats ? `${repeats} of ${run.total} posts were repeats (raise BENCH_WRK_POSTS)` : `${run.total} distinct posts`}; per message: bridge ${us(run.serverCpu)} µs, wrk ${us(run.genCpu)} µs, sink ${us(sinkCpu)} µs of CPU, ${((run.serverCpu + run.genCpu + sinkCpu) / run.wall).toFixed(2)} of ${availableParallelism()} cores in all; ${perRound(run.total, rounds)}`,
      },
      { name: "bare node:http by wrk", value: bareRun.rps },
    ),
  ];
}

type Rounds = Awaited<ReturnType<typeof roundCounters>>;

/** What the counters moved by between two reads of /metrics. */
function since(a: Rounds, b: Rounds): Rounds {
  return {
    syncs: b.syncs - a.syncs,
    atIngest: b.atIngest - a.atIngest,
    fromOutbox: b.fromOutbox - a.fromOutbox,
    delivered: b.delivered - a.delivered,
  };
}

/**
 * Messages per commit round (one WAL sync each): bigger rounds write fewer bytes per message, though round 18
 * found that rounds twice as big leave the CPU per message where it was (docs/PERFORMANCE.md). And how the
 * forwarder took them: handed off as they were stored, or claimed from the outbox (round 9).
 */
function perRound(messages: number, r: Rounds, forwarder = true): string {
  const syncs = `${(messages / r.syncs).toFixed(1)} messages per WAL sync (${r.syncs} syncs)`;
  if (!forwarder) return syncs;
  const claimed = r.atIngest + r.fromOutbox;
  const share = claimed ? `${Math.round((100 * r.atIngest) / claimed)}%` : "n/a";
  // The forwarder's pace beside ingest's: under 100% the outbox grew during the run (it drains afterwards).
  const kept = `the forwarder delivered ${Math.round((100 * r.delivered) / messages)}% as many messages meanwhile`;
  return `${syncs}; ${share} of the rows forwarded meanwhile were claimed at ingest; ${kept}`;
}

/** Cores busy on average over a run, all three processes together. */
function cpuCores(cpu: { bridge: number; sink: number; gen: number }, seconds: number): string {
  return ((cpu.bridge + cpu.sink + cpu.gen) / seconds).toFixed(2);
}

async function pendingCount(db: string): Promise<number> {
  const raw = new Database(db, { readonly: true, fileMustExist: true });
  try {
    return (raw.prepare("select count(*) n from outbox where state = 'pending'").get() as { n: number }).n;
  } finally {
    raw.close();
  }
}

/**
 * What the database keeps per stored message once the run is over: its pages in use (the file less its free
 * pages, which SQLite reuses) over the messages stored, warm-up included.
 */
function storedBytesPerMessage(db: string): number {
  const raw = new Database(db, { readonly: true, fileMustExist: true });
  try {
    const n = (raw.prepare("select count(*) n from messages").get() as { n: number }).n;
    const pages =
      (raw.pragma("page_count", { simple: true }) as number) -
      (raw.pragma("freelist_count", { simple: true }) as number);
    return (pages * (raw.pragma("page_size", { simple: true }) as number)) / n;
  } finally {
    raw.close();
  }
}

export default async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "smsbridge-bench-"));
  const sink = await startBare();
  const bare = await startBare();
  const results: BenchResult[] = [];
  try {
    // ---- durable ingest ----
    // Two concurrency levels, the same for both servers: a bare server is CPU-bound and gains nothing from
    // more connections; a durable one acknowledges after a disk sync, so its throughput grows with how many
    // webhooks arrive together (they share a commit). Providers deliver webhooks concurrently.
    // Then once more at the first level with the forwarder off (`forwarder.enabled: false`, a webhook-only
    // instance, deployment.md): what ingest costs alone, and so what forwarding each message adds beside it.
    const ingestRuns = CONNECTION_LEVELS.map((connections) => ({ connections, forwarder: true }));
    if (CONNECTION_LEVELS.length)
      ingestRuns.push({ connections: CONNECTION_LEVELS[0] as number, forwarder: false });
    for (const { connections, forwarder } of ingestRuns) {
      const label = forwarder
        ? `${connections} connections`
        : `${connections} connections, webhook-only instance`;
      const bareCpu0 = cpuSeconds(bare.pid);
      const bareRun = await load({
        url: bare.url,
        connections,
        durationSec: SECONDS,
        requests: twilioWebhook,
      });
      const bareCpu = cpuSeconds(bare.pid) - bareCpu0;
      const db = join(dir, `ingest-${connections}${forwarder ? "" : "-webhook-only"}.db`);
      const bridge = await startBridge(config(dir, sink.url, db, forwarder));
      let ingest: Awaited<ReturnType<typeof load>>;
      let cpu: { bridge: number; sink: number; gen: number };
      let written: number;
      let rounds: Rounds;
      let runtime: [RuntimeSample, RuntimeSample];
      try {
        await load({ url: bridge.url, connections, durationSec: 1, requests: twilioWebhook }); // warm-up
        // Read /metrics outside the CPU window: answering it is not ingest work.
        const rounds0 = await roundCounters(bridge.url);
        const runtime0 = await runtimeSample(bridge.url);
        const cpu0 = { bridge: cpuSeconds(bridge.pid), sink: cpuSeconds(sink.pid), gen: process.cpuUsage() };
        const written0 = ioWriteBytes(bridge.pid);
        ingest = await load({ url: bridge.url, connections, durationSec: SECONDS, requests: twilioWebhook });
        written = ioWriteBytes(bridge.pid) - written0;
        const gen = process.cpuUsage(cpu0.gen);
        cpu = {
          bridge: cpuSeconds(bridge.pid) - cpu0.bridge,
          sink: cpuSeconds(sink.pid) - cpu0.sink,
          gen: (gen.user + gen.system) / 1e6,
        };
        rounds = since(rounds0, await roundCounters(bridge.url));
        runtime = [runtime0, await runtimeSample(bridge.url)];
      } finally {
        await bridge.close();
      }
      if (ingest.non2xx || ingest.errors)
        throw new Error(`ingest: ${ingest.non2xx} non-2xx answers, ${ingest.errors} errors`);
      const kept = storedBytesPerMessage(db);
      const gc = gcBetween(runtime[0], runtime[1]);
      const busy = runtime[1].busySeconds - runtime[0].busySeconds;
      results.push(
        withBaseline(
          {
            name: `durable ingest, ${label} (Twilio webhooks → commit → ack)`,
            value: ingest.rps,
            unit: "msg/s",
            note: `p50 ${ingest.p50} ms, p99 ${ingest.p99} ms; ${forwarder ? "forwarder running" : "forwarder off (forwarder.enabled false): stored, acknowledged, not delivered"}`,
          },
          { name: "bare node:http", value: bareRun.rps },
        ),
      );
      // What bounds it, measured in the same run: CPU per message of every process on the machine (the
      // kernel's count, all threads), next to what the bare server spends per request.
      const us = (seconds: number, n: number) => (n > 0 ? (seconds * 1e6) / n : Number.NaN);
      results.push(
        withBaseline(
          {
            name: `bridge CPU per ingested message, ${label}`,
            value: us(cpu.bridge, ingest.total),
            unit: "µs",
            note: `all threads; meanwhile the generator used ${Math.round(us(cpu.gen, ingest.total))} µs and the sink ${Math.round(us(cpu.sink, ingest.total))} µs per message, ${cpuCores(cpu, SECONDS)} of ${availableParallelism()} cores in all; the bridge wrote ${(written / ingest.total / 1024).toFixed(1)} KiB to disk per message (WAL and checkpoints) and its database keeps ${(kept / 1024).toFixed(2)} KiB per message; the main thread's event loop was busy ${Math.round(us(busy, ingest.total))} µs per message (${Math.round((100 * busy) / SECONDS)}% of the run), GC paused it ${(gc.totalMs / SECONDS).toFixed(0)} ms per second; ${perRound(ingest.total, rounds, forwarder)}`,
          },
          { name: "bare node:http CPU per request", value: us(bareCpu, bareRun.total) },
        ),
      );
    }

    // ---- durable ingest driven by wrk ----
    if (wrkInstalled() && CONNECTION_LEVELS.length) results.push(...(await wrkIngest(dir, sink, bare)));

    // ---- forwarding from a standing backlog ----
    const backlogDb = join(dir, "backlog.db");
    const store = openStore(`sqlite:${backlogDb}`);
    await store.migrate();
    // In the past: a standing backlog is due now (a row is due at its created_at).
    const t0 = Date.now() - BACKLOG - 60_000;
    const items = Array.from({ length: BACKLOG }, (_, i) => {
      const body = Buffer.from(
        JSON.stringify({
          id: `bench:${i}`,
          to: { phone: PHONE },
          from: { phone: `+1510555${String(i % 10_000).padStart(4, "0")}` },
          body: `backlog ${i}`,
          created_at: new Date(t0 + i).toISOString(),
        }),
      );
      return store.ingest({
        channelId: "bench",
        provider: "twilio",
        providerMessageId: `SMbacklog${i}`,
        customer: `+1510555${String(i % 10_000).padStart(4, "0")}`,
        channelNumber: PHONE,
        body: `backlog ${i}`,
        createdAt: t0 + i,
        threading: { mode: "helpdesk", idleHours: 24 },
        payload: () => body,
      });
    });
    await Promise.all(items);
    await store.close();
    const sample = Buffer.from(
      JSON.stringify({
        id: "bench:x",
        to: { phone: PHONE },
        from: { phone: "+15105550000" },
        body: "backlog x",
      }),
    );
    const clientCpu0 = process.cpuUsage();
    const client = await load({
      url: sink.url,
      connections: 64,
      durationSec: SECONDS,
      requests: () => ({
        method: "POST",
        path: "/incoming/sms",
        headers: { "content-type": "application/json", "x-reamaze-hmac-sha256": sign(sample, SECRET) },
        body: sample,
      }),
    });
    const clientCpu = process.cpuUsage(clientCpu0);
    const fwd = await startBridge(config(dir, sink.url, backlogDb));
    // From the moment the process is ready: start-up (tsx, migrations) is not forwarding.
    const started = performance.now();
    const fwdCpu0 = cpuSeconds(fwd.pid);
    let drained: number;
    let pendingAtStart: number;
    let fwdCpu: number;
    try {
      pendingAtStart = await pendingCount(backlogDb);
      for (;;) {
        const left = await pendingCount(backlogDb);
        if (left === 0) break;
        if (performance.now() - started > 120_000)
          throw new Error(`forwarding: ${left} still pending after 120 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      drained = pendingAtStart / ((performance.now() - started) / 1000);
      fwdCpu = cpuSeconds(fwd.pid) - fwdCpu0;
    } finally {
      await fwd.close();
    }
    results.push(
      withBaseline(
        {
          name: `forwarding ${BACKLOG.toLocaleString("en-US")} backlog → bare sink (signed)`,
          value: drained,
          unit: "msg/s",
          note: "from process ready to empty outbox",
        },
        { name: "plain keep-alive client → same sink", value: client.rps },
      ),
      // The rates above swing with what else the shared machine does; CPU per message does much less.
      withBaseline(
        {
          name: "bridge CPU per forwarded message",
          value: (fwdCpu * 1e6) / pendingAtStart,
          unit: "µs",
          note: "all threads (claim, sign, POST, record), from process ready to empty outbox",
        },
        {
          name: "plain client CPU per request",
          value: (clientCpu.user + clientCpu.system) / client.total,
        },
      ),
    );
  } finally {
    await sink.close();
    await bare.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
