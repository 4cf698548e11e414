// Bridge throughput, each figure next to a baseline measured in the same run:
// - durable ingest: Twilio-signed form webhooks (each a different message) → verified → committed with
//   synchronous=FULL → acknowledged, while the forwarder runs; baseline: a bare node:http server. Next to it,
//   the CPU each process spent per message (bridge, generator, sink) against the bare server's per request.
// - forwarding: a standing backlog drained to a bare sink, each body signed; baseline: a plain keep-alive
//   client POSTing the same bodies to the same sink at the same concurrency.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { sign } from "../src/protocol/signature.js";
import { computeSignature } from "../src/providers/twilio/signature.js";
import { Database } from "../src/store/dialect/better-sqlite3.js";
import { openStore } from "../src/store/open.js";
import {
  type BenchResult,
  cpuSeconds,
  load,
  smsbridgeCommand,
  startBare,
  startChild,
  withBaseline,
} from "./lib.js";

const ACCOUNT = "AC0123456789abcdef0123456789abcdef";
const TOKEN = "bench-twilio-auth-token";
const SECRET = "bench-reamaze-secret";
const PHONE = "+16501234567";
const PUBLIC = "https://sms.example.test";
const CONNECTION_LEVELS = (process.env.BENCH_CONNECTIONS ?? "50,256").split(",").map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 20_000);

function config(dir: string, sinkUrl: string, db: string) {
  const file = join(dir, `bridge-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      server: { port: 0, host: "127.0.0.1", publicUrl: PUBLIC },
      database: `sqlite:${db}`,
      log: { level: "info" },
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

let seq = 0;
function twilioWebhook() {
  const i = seq++;
  const params: Array<[string, string]> = [
    ["ToCountry", "US"],
    ["SmsMessageSid", `SM${i.toString(16).padStart(32, "0")}`],
    ["NumMedia", "0"],
    ["SmsSid", `SM${i.toString(16).padStart(32, "0")}`],
    ["SmsStatus", "received"],
    ["Body", `Hello from customer ${i % 1000}, message ${i}`],
    ["To", PHONE],
    ["NumSegments", "1"],
    ["MessageSid", `SM${i.toString(16).padStart(32, "0")}`],
    ["AccountSid", ACCOUNT],
    ["From", `+1510555${String(i % 10_000).padStart(4, "0")}`],
    ["ApiVersion", "2010-04-01"],
  ];
  const path = "/channels/bench/inbound";
  return {
    method: "POST",
    path,
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": computeSignature(TOKEN, PUBLIC + path, params),
    },
    body: new URLSearchParams(params).toString(),
  };
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
    for (const connections of CONNECTION_LEVELS) {
      const bareCpu0 = cpuSeconds(bare.pid);
      const bareRun = await load({
        url: bare.url,
        connections,
        durationSec: SECONDS,
        requests: twilioWebhook,
      });
      const bareCpu = cpuSeconds(bare.pid) - bareCpu0;
      const db = join(dir, `ingest-${connections}.db`);
      const bridge = await startBridge(config(dir, sink.url, db));
      let ingest: Awaited<ReturnType<typeof load>>;
      let cpu: { bridge: number; sink: number; gen: number };
      try {
        await load({ url: bridge.url, connections, durationSec: 1, requests: twilioWebhook }); // warm-up
        const cpu0 = { bridge: cpuSeconds(bridge.pid), sink: cpuSeconds(sink.pid), gen: process.cpuUsage() };
        ingest = await load({ url: bridge.url, connections, durationSec: SECONDS, requests: twilioWebhook });
        const gen = process.cpuUsage(cpu0.gen);
        cpu = {
          bridge: cpuSeconds(bridge.pid) - cpu0.bridge,
          sink: cpuSeconds(sink.pid) - cpu0.sink,
          gen: (gen.user + gen.system) / 1e6,
        };
      } finally {
        await bridge.close();
      }
      if (ingest.non2xx || ingest.errors)
        throw new Error(`ingest: ${ingest.non2xx} non-2xx answers, ${ingest.errors} errors`);
      results.push(
        withBaseline(
          {
            name: `durable ingest, ${connections} connections (Twilio webhooks → commit → ack)`,
            value: ingest.rps,
            unit: "msg/s",
            note: `p50 ${ingest.p50} ms, p99 ${ingest.p99} ms; forwarder running`,
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
            name: `bridge CPU per ingested message, ${connections} connections`,
            value: us(cpu.bridge, ingest.total),
            unit: "µs",
            note: `all threads; meanwhile the generator used ${Math.round(us(cpu.gen, ingest.total))} µs and the sink ${Math.round(us(cpu.sink, ingest.total))} µs per message, ${cpuCores(cpu, SECONDS)} of ${availableParallelism()} cores in all`,
          },
          { name: "bare node:http CPU per request", value: us(bareCpu, bareRun.total) },
        ),
      );
    }

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
    const fwd = await startBridge(config(dir, sink.url, backlogDb));
    // From the moment the process is ready: start-up (tsx, migrations) is not forwarding.
    const started = performance.now();
    let drained: number;
    try {
      const pendingAtStart = await pendingCount(backlogDb);
      for (;;) {
        const left = await pendingCount(backlogDb);
        if (left === 0) break;
        if (performance.now() - started > 120_000)
          throw new Error(`forwarding: ${left} still pending after 120 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      drained = pendingAtStart / ((performance.now() - started) / 1000);
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
    );
  } finally {
    await sink.close();
    await bare.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
