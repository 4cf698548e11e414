import assert from "node:assert/strict";
import { test } from "node:test";
import { parseIsoTimestamp } from "../protocol/payloads.js";
import { scratchSqlite } from "../store/test-support/databases.js";
import {
  BridgeProcess,
  bridgeConfig,
  countById,
  type Fault,
  freePort,
  helpdeskId,
  message,
  postInbound,
  type Recorder,
  startRecorder,
  tempDir,
} from "./test-support/faults-harness.js";
import { eventually } from "./test-support/loop.js";

/**
 * Helpdesk faults against a real `smsbridge serve`: 503 storms, timeouts, slow answers, connection resets
 * and 429 with Retry-After. Whatever the helpdesk does, nothing is dropped (every message ends delivered,
 * none dead), the circuit breaker opens during a storm and closes after it, and every copy carries the
 * customer's original `created_at`, so the helpdesk orders the conversation right however late or out of
 * order the copies arrive.
 */

const N = 80;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome {
  recorder: Recorder;
  breakerSeen: Set<0 | 1>;
  outOfOrder: number;
}

async function scenario(
  name: string,
  behaviour: (rec: Recorder) => Recorder["behaviour"],
  opts: { timeoutMs?: number; breakerThreshold?: number } = {},
): Promise<Outcome> {
  const tmp = tempDir(`helpdesk-${name}`);
  const scratch = scratchSqlite();
  const recorder = await startRecorder();
  recorder.behaviour = behaviour(recorder);
  const port = await freePort();
  const bridge = new BridgeProcess(
    tmp.dir,
    "bridge",
    port,
    bridgeConfig({
      port,
      database: scratch.url,
      incomingUrl: recorder.url,
      timeoutMs: opts.timeoutMs ?? 2_000,
      forwarder: { breakerThreshold: opts.breakerThreshold ?? 5, breakerCooldownMs: 300 },
    }),
  );
  const prefix = `SMh${name.replace(/\W/g, "")}`;
  const breakerSeen = new Set<0 | 1>();
  let watching = true;
  try {
    await bridge.start();
    // The breaker as an operator sees it: the smsbridge_breaker_open gauge on /metrics.
    const watcher = (async () => {
      while (watching) {
        try {
          const m = /smsbridge_breaker_open\{channel="support"\} (\d)/.exec(
            await (await fetch(`${bridge.url}/metrics`)).text(),
          );
          if (m) breakerSeen.add(Number(m[1]) as 0 | 1);
        } catch {}
        await sleep(20);
      }
    })();
    for (let i = 0; i < N; i++) {
      const status = await postInbound(bridge.url, message(prefix, i, 4));
      assert.equal(status, 200, `the bridge did not acknowledge message ${i}`);
    }
    const want = Array.from({ length: N }, (_, i) => helpdeskId(`${prefix}${i}`));
    await eventually(
      `all ${N} messages delivered despite the ${name}`,
      async () => {
        const got = recorder.delivered();
        return want.every((id) => got.has(id)) ? true : undefined;
      },
      60_000,
    );
    // Let the gauge catch up with the last (successful) deliveries.
    await eventually("the breaker to be closed after the fault", async () =>
      breakerSeen.has(0) &&
      /smsbridge_breaker_open\{channel="support"\} 0/.test(
        await (await fetch(`${bridge.url}/metrics`)).text(),
      )
        ? true
        : undefined,
    );
    watching = false;
    await watcher;
    // The helpdesk has them all; the bridge records the last outcomes a moment later.
    const metrics = await eventually("the outbox to be empty", async () => {
      const text = await (await fetch(`${bridge.url}/metrics`)).text();
      return /smsbridge_outbox_pending\{channel="support"\} 0\b/.test(text) ? text : undefined;
    });
    assert.match(metrics, /smsbridge_outbox_dead\{channel="support"\} 0\b/, "messages given up as dead");
    assert.equal(recorder.badSignatures, 0);

    // Ordering: each copy carries the customer's created_at, and sorting by it gives the order they were sent.
    const firstDelivery = new Map<string, number>();
    recorder.deliveries.forEach((d, k) => {
      if (d.status === 200 && !firstDelivery.has(d.id)) firstDelivery.set(d.id, k);
    });
    for (const d of recorder.deliveries) {
      const i = Number(d.id.slice(`simulator:${prefix}`.length));
      assert.equal(
        parseIsoTimestamp(d.createdAt ?? "")?.getTime(),
        Date.parse(message(prefix, i).sentAt),
        `${d.id}: created_at ${d.createdAt} is not the customer's send time`,
      );
    }
    const arrival = [...firstDelivery.keys()];
    const byCreated = [...arrival].sort(
      (a, b) =>
        (parseIsoTimestamp(recorder.deliveries[firstDelivery.get(a)!]!.createdAt ?? "")?.getTime() ?? 0) -
        (parseIsoTimestamp(recorder.deliveries[firstDelivery.get(b)!]!.createdAt ?? "")?.getTime() ?? 0),
    );
    assert.deepEqual(byCreated, want, "ordering by created_at does not give the send order");
    const outOfOrder = arrival.filter((id, k) => id !== want[k]).length;
    assert.ok(bridge.alive(), bridge.logTail());
    return { recorder, breakerSeen, outOfOrder };
  } finally {
    watching = false;
    await bridge.kill9();
    await recorder.close();
    await scratch.drop();
    tmp.remove();
  }
}

function summary(name: string, o: Outcome) {
  const tally = new Map<string, number>();
  for (const d of o.recorder.deliveries) tally.set(String(d.status), (tally.get(String(d.status)) ?? 0) + 1);
  const dup = [...countById(o.recorder.deliveries.filter((d) => d.status === 200)).values()].filter(
    (l) => l.length > 1,
  ).length;
  console.log(
    `# helpdesk ${name}: ${N} messages, helpdesk saw ${[...tally].map(([s, n]) => `${s}×${n}`).join(" ")}, ` +
      `delivered all, ${dup} delivered twice, breaker states seen ${[...o.breakerSeen].sort().join("/") || "-"}, ` +
      `${o.outOfOrder} arrived out of send order (created_at restores it)`,
  );
}

/** The fault for the first `k` attempts of each id, then 200. */
function firstAttempts(rec: Recorder, k: number, fault: Fault): Recorder["behaviour"] {
  return (id) =>
    rec.deliveries.filter((d) => d.id === id).length <= k ? fault : { kind: "answer", status: 200 };
}

test("503 storm: the breaker opens, closes again, nothing is dropped", { timeout: 120_000 }, async () => {
  let stormUntil = 0;
  const o = await scenario("503 storm", () => () => {
    stormUntil ||= Date.now() + 2_000;
    return Date.now() < stormUntil ? { kind: "answer", status: 503 } : { kind: "answer", status: 200 };
  });
  summary("503 storm (2 s)", o);
  assert.ok(o.breakerSeen.has(1), "the breaker never opened during a 2 s storm of 503s");
  assert.ok(o.breakerSeen.has(0), "the breaker never closed after the storm");
  const storm = o.recorder.deliveries.filter((d) => d.status === 503).length;
  // With the breaker open the helpdesk is left alone: far fewer attempts than messages × retries.
  assert.ok(storm > 0 && storm < N * 4, `${storm} attempts hit the helpdesk during the storm`);
});

test("timeouts: a helpdesk that stops answering is timed out, paused and retried", {
  timeout: 120_000,
}, async () => {
  // A window, not "every first attempt": the breaker's probe is the oldest due message, so a helpdesk that
  // hangs on every new message would be probed one message per timeout + cool-down, by design.
  let hangUntil = 0;
  const o = await scenario(
    "timeouts",
    () => () => {
      hangUntil ||= Date.now() + 1_500;
      return Date.now() < hangUntil ? { kind: "hang" } : { kind: "answer", status: 200 };
    },
    { timeoutMs: 400 },
  );
  summary("timeouts (no answer for 1.5 s, timeout 400 ms)", o);
  assert.ok(
    o.recorder.deliveries.some((d) => d.status === "hang"),
    "no request hung",
  );
  assert.ok(o.breakerSeen.has(1), "the breaker never opened while the helpdesk hung");
});

test("slow answers under the timeout: delivered once each, no premature retry", {
  timeout: 120_000,
}, async () => {
  const o = await scenario("slow", () => () => ({ kind: "answer", status: 200, delayMs: 400 }), {
    timeoutMs: 2_000,
  });
  summary("slow answers (400 ms, timeout 2 s)", o);
  assert.equal(o.recorder.deliveries.length, N, "a slow but successful answer was retried");
});

test("connection resets: retried until delivered", { timeout: 120_000 }, async () => {
  // Faults per message, not a helpdesk outage: a high breaker threshold keeps the breaker (tested above) out
  // of it; otherwise each half-open probe would take one message's reset per cool-down.
  const o = await scenario("resets", (rec) => firstAttempts(rec, 2, { kind: "reset" }), {
    breakerThreshold: 1_000,
  });
  summary("connection resets (first two attempts)", o);
  assert.equal(o.recorder.deliveries.filter((d) => d.status === "reset").length, N * 2);
});

test("429 with Retry-After: the next attempt waits at least that long", { timeout: 120_000 }, async () => {
  const o = await scenario(
    "429",
    (rec) => firstAttempts(rec, 1, { kind: "answer", status: 429, headers: { "retry-after": "1" } }),
    { breakerThreshold: 1_000 },
  );
  summary("429 Retry-After: 1", o);
  const early: string[] = [];
  for (const [id, list] of countById(o.recorder.deliveries)) {
    const first = list[0]!;
    const second = list[1];
    assert.equal(first.status, 429);
    assert.ok(second, `${id} was not retried after 429`);
    // Lower bound only (the bridge may wait longer): 50 ms of slack for timer granularity between processes.
    if (second.at - first.answeredAt < 950)
      early.push(`${id}: retried after ${second.at - first.answeredAt} ms`);
  }
  assert.deepEqual(early, [], "retried sooner than Retry-After allowed");
});
