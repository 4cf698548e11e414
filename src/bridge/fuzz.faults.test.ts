import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { request } from "undici";
import { sign } from "../protocol/signature.js";
import { createSimulatorSignature } from "../providers/simulator/index.js";
import { Database } from "../store/dialect/better-sqlite3.js";
import { scratchSqlite } from "../store/test-support/databases.js";
import {
  ADMIN_TOKEN,
  BridgeProcess,
  bridgeConfig,
  freePort,
  HELPDESK_SECRET,
  mb,
  PHONE,
  providerAgent,
  SIM_SECRET,
  startRecorder,
  tempDir,
} from "./test-support/faults-harness.js";

/**
 * Bad input: a fast-check fuzzer sends ≥ 100,000 malformed, truncated, oversized, wrongly signed and wrongly
 * typed requests across every route of a real `smsbridge serve`. The process must not crash, never answer
 * 5xx, store nothing, and keep its memory flat. Requests are drawn with `fc.sample` in batches (a seed is
 * printed, so a failing run can be replayed) and sent concurrently; the first failing requests are reported.
 */

const TOTAL = Number(process.env.SMSBRIDGE_FUZZ_RUNS ?? 100_000);
const BATCH = 2_000;
const CONCURRENCY = 48;
const BODY_LIMIT = 32 * 1024;
const RSS_SLACK_KB = 64 * 1024;
const HEAP_CAP_MB = Number(process.env.SMSBRIDGE_FUZZ_HEAP_MB ?? 128);

const validInbound = {
  type: "message",
  id: "SMfuzz1",
  from: "+15105559999",
  to: PHONE,
  body: "hi",
  media: [],
  sent_at: "2026-01-01T00:00:00Z",
};
const validStatus = { type: "status", id: "SMfuzz1", status: "delivered" };
const validReply = {
  to: { phone: "+15105559999" },
  from: { phone: PHONE },
  body: "hello",
  conversation: { slug: "c1" },
  attachments: [],
  created_at: "2019-08-06T23:21:15+0000",
  thread_id: "t1",
};
const validAdmin = { to: "+15105559999", body: "hi" };

type Route = {
  path: string;
  kind: "simulator" | "reamaze" | "admin" | "plain";
  template?: object;
  required: string[];
};
const ROUTES: Route[] = [
  {
    path: "/channels/support/inbound",
    kind: "simulator",
    template: validInbound,
    required: ["type", "id", "from", "to", "body"],
  },
  {
    path: "/channels/support/status",
    kind: "simulator",
    template: validStatus,
    required: ["type", "id", "status"],
  },
  { path: "/channels/nope/inbound", kind: "simulator", template: validInbound, required: [] },
  {
    path: "/channels/support/reamaze",
    kind: "reamaze",
    template: validReply,
    required: ["to", "from", "body", "conversation"],
  },
  { path: "/channels/nope/reamaze", kind: "reamaze", template: validReply, required: [] },
  { path: "/api/messages", kind: "admin", template: validAdmin, required: ["to", "body"] },
  { path: "/media/", kind: "plain", required: [] },
  { path: "/healthz", kind: "plain", required: [] },
  { path: "/readyz", kind: "plain", required: [] },
  { path: "/metrics", kind: "plain", required: [] },
  {
    path: "/simulator/api/messages",
    kind: "plain",
    template: { from: "+15105559999", to: PHONE, body: "x" },
    required: ["from", "to"],
  },
  {
    path: "/simulator/provider/messages",
    kind: "plain",
    template: { from: PHONE, to: "+15105559999", body: "x" },
    required: ["from", "to"],
  },
  { path: "/simulator/api/faults", kind: "plain", required: [] },
  { path: "/simulator/api/phones", kind: "plain", required: [] },
  { path: "/nowhere", kind: "plain", required: [] },
];

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
  why: string;
}

const printable = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 60,
});
const nasty = [
  '{"__proto__":{"polluted":true}}',
  '{"constructor":{"prototype":{"polluted":true}}}',
  `${"[".repeat(5000)}${"]".repeat(5000)}`,
  `{"type":"message","id":"${"A".repeat(20_000)}"}`,
  '{"type":"message","id":"x","from":"\\u0000","to":"\\ud800","body":1e309}',
  "null",
  "[]",
  '""',
  "1".repeat(400),
  "\u0000\u0001\u0002",
];

/** A body that is certainly not an acceptable request for `route` (see `why`). */
function badBody(route: Route): fc.Arbitrary<{ body: Buffer; why: string; signable: boolean }> {
  const template = route.template ? Buffer.from(JSON.stringify(route.template)) : Buffer.from("{}");
  const arbs: fc.Arbitrary<{ body: Buffer; why: string; signable: boolean }>[] = [
    fc
      .uint8Array({ maxLength: 600 })
      .map((b) => ({ body: Buffer.from(b), why: "random bytes", signable: true })),
    fc.json({ maxDepth: 3 }).map((s) => ({ body: Buffer.from(s), why: "random JSON", signable: true })),
    fc.nat().map((n) => ({
      body: template.subarray(0, n % template.length),
      why: "truncated valid payload",
      signable: true,
    })),
    fc.constantFrom(...nasty).map((s) => ({ body: Buffer.from(s), why: "hostile JSON", signable: true })),
    fc
      .integer({ min: BODY_LIMIT + 1, max: BODY_LIMIT * 3 })
      .map((n) => ({ body: Buffer.alloc(n, 0x61), why: "oversized", signable: false })),
  ];
  if (route.template && route.required.length) {
    const tpl = route.template as Record<string, unknown>;
    // Wrongly typed: a required field replaced by a value of another type (never undefined or null, which
    // could make an optional field merely absent). Even correctly signed, such a request must be refused.
    arbs.push(
      fc
        .tuple(fc.constantFrom(...route.required), fc.anything({ maxDepth: 2 }))
        .filter(([k, v]) => v !== undefined && v !== null && typeof v !== typeof tpl[k])
        .map(([k, v]) => ({
          body: Buffer.from(JSON.stringify({ ...tpl, [k]: v })),
          why: `wrong type for ${k}`,
          signable: true,
        })),
    );
  }
  return fc.oneof(...arbs);
}

function requests(port: number): fc.Arbitrary<FuzzRequest> {
  void port;
  return fc
    .constantFrom(...ROUTES)
    .chain((route) =>
      fc.record({
        route: fc.constant(route),
        method: fc.constantFrom("POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH"),
        body: badBody(route),
        signing: fc.constantFrom("none", "wrong", "valid", "garbage", "stale"),
        contentType: fc.constantFrom(
          "application/json",
          "application/json",
          "text/plain",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          "application/json; charset=utf-16",
          "",
        ),
        suffix: fc.oneof(
          fc.constant(""),
          printable.map((s) => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
        ),
        junk: printable,
      }),
    )
    .map(({ route, method, body, signing, contentType, suffix, junk }) => {
      const path = route.path === "/media/" ? `/media/${encodeURIComponent(junk)}` : `${route.path}${suffix}`;
      const headers: Record<string, string> = contentType ? { "content-type": contentType } : {};
      const hasBody = method !== "GET" && method !== "DELETE";
      const bytes = hasBody ? body.body : undefined;
      const signed = bytes ?? Buffer.alloc(0);
      const ts = String(Math.floor(Date.now() / 1000) - (signing === "stale" ? 3_600 : 0));
      if (signing !== "none") {
        const good = signing === "valid" || signing === "stale";
        if (route.kind === "simulator") {
          headers["x-simulator-timestamp"] = ts;
          headers["x-simulator-signature"] =
            signing === "garbage"
              ? junk
              : createSimulatorSignature(good ? SIM_SECRET : "wrong-secret", ts, signed.toString("utf8"));
        } else if (route.kind === "reamaze") {
          headers["x-reamaze-hmac-sha256"] =
            signing === "garbage" ? junk : sign(signed, good ? HELPDESK_SECRET : "wrong-secret");
        } else if (route.kind === "admin") {
          headers.authorization =
            signing === "garbage" ? junk : `Bearer ${good ? ADMIN_TOKEN : "wrong-token-0123456789"}`;
        }
      }
      return { method, path, headers, body: bytes, why: `${body.why}, signature ${signing}` };
    });
}

async function send(base: string, r: FuzzRequest): Promise<number> {
  try {
    const res = await request(`${base}${r.path}`, {
      method: r.method as "POST",
      headers: r.headers,
      body: r.body,
      dispatcher: providerAgent,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    await res.body.dump();
    return res.statusCode;
  } catch {
    return 0;
  }
}

function counts(file: string): Record<string, number> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const out: Record<string, number> = {};
    for (const t of ["messages", "outbox", "replies", "threads", "opt_outs", "provider_refs"])
      out[t] = (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
    return out;
  } finally {
    db.close();
  }
}

test(`fuzzer: ${TOTAL} bad requests on every route — no crash, no 5xx, nothing stored, memory flat`, {
  timeout: 480_000,
}, async () => {
  const tmp = tempDir("fuzz");
  const scratch = scratchSqlite();
  const recorder = await startRecorder();
  const port = await freePort();
  const bridge = new BridgeProcess(
    tmp.dir,
    "bridge",
    port,
    bridgeConfig({ port, database: scratch.url, incomingUrl: recorder.url, bodyLimit: BODY_LIMIT }),
    // A capped old generation: V8 otherwise grows its heap lazily (RSS saw-tooths by ±60 MB with no leak),
    // while under the cap a leak has to show as a higher floor or end the process (out of memory).
    [`--max-old-space-size=${HEAP_CAP_MB}`],
  );
  const seed = Number(process.env.SMSBRIDGE_FUZZ_SEED ?? Date.now() % 2 ** 31);
  try {
    await bridge.start();
    const pid = bridge.pid;
    const arb = requests(port);
    const tally = new Map<number, number>();
    const failures: string[] = [];
    let sent = 0;
    let rssStart = 0;
    let rssPeak = 0;
    const trace: number[] = [];
    const started = Date.now();
    for (let b = 0; sent < TOTAL; b++) {
      const batch = fc.sample(arb, { numRuns: Math.min(BATCH, TOTAL - sent), seed: seed + b });
      let k = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (k < batch.length) {
            const r = batch[k++]!;
            const status = await send(bridge.url, r);
            tally.set(status, (tally.get(status) ?? 0) + 1);
            if ((status === 0 || status >= 500) && failures.length < 10)
              failures.push(
                `${status || "connection failed"} for ${r.method} ${r.path} (${r.why}) headers ${JSON.stringify(r.headers)} body ${JSON.stringify((r.body ?? Buffer.alloc(0)).subarray(0, 200).toString("latin1"))}`,
              );
          }
        }),
      );
      sent += batch.length;
      // The baseline is taken after the first batch: startup allocations and JIT warm-up are not a leak.
      const rss = bridge.rssKb();
      if (b === 0) rssStart = rss;
      rssPeak = Math.max(rssPeak, rss);
      trace.push(Math.round(rss / 1024));
      if (failures.length >= 10 || !bridge.alive()) break;
    }
    const rssEnd = bridge.rssKb();
    const secs = (Date.now() - started) / 1000;
    const stored = counts(scratch.url.slice("sqlite:".length));
    console.log(
      `# fuzzer: ${sent} requests in ${secs.toFixed(1)} s (seed ${seed}), answers ${[...tally]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s || "conn-fail"}×${n}`)
        .join(
          " ",
        )}; RSS after warm-up ${mb(rssStart)}, peak ${mb(rssPeak)}, end ${mb(rssEnd)} (${rssEnd >= rssStart ? "+" : ""}${mb(rssEnd - rssStart)}); ` +
        `rows stored ${JSON.stringify(stored)}`,
    );
    if (process.env.SMSBRIDGE_FUZZ_TRACE) console.log(`# RSS per batch (MB): ${trace.join(" ")}`);
    assert.ok(bridge.alive() && bridge.pid === pid, `the bridge died:\n${bridge.logTail()}`);
    assert.deepEqual(failures, [], `5xx or dropped connections (replay with SMSBRIDGE_FUZZ_SEED=${seed})`);
    assert.ok(sent >= TOTAL);
    assert.deepEqual(
      stored,
      { messages: 0, outbox: 0, replies: 0, threads: 0, opt_outs: 0, provider_refs: 0 },
      `bad input was stored (replay with SMSBRIDGE_FUZZ_SEED=${seed})`,
    );
    assert.equal(recorder.deliveries.length, 0, "something reached the helpdesk");
    assert.ok(
      rssEnd - rssStart < RSS_SLACK_KB,
      `memory grew by ${mb(rssEnd - rssStart)} over ${sent} requests (allowed ${mb(RSS_SLACK_KB)})`,
    );
  } finally {
    await bridge.kill9();
    await recorder.close();
    await scratch.drop();
    tmp.remove();
  }
});
