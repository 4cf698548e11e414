import assert from "node:assert/strict";
import { hostname } from "node:os";
import { test } from "node:test";
import { sign } from "../protocol/signature.js";
import { scratchPostgres } from "../store/test-support/databases.js";
import {
  BridgeProcess,
  bridgeConfig,
  countById,
  freePort,
  HELPDESK_SECRET,
  helpdeskId,
  message,
  PHONE,
  postInbound,
  startRecorder,
  tempDir,
  withPostgresLock,
} from "./test-support/faults-harness.js";
import { eventually } from "./test-support/loop.js";

/**
 * Scale-out on PostgreSQL: three `smsbridge serve` processes on one database behave as one bridge. 20,000
 * webhooks are spread over them, one is killed with SIGKILL mid-run, and the helpdesk end (which records
 * every POST with the sending instance) must get every acknowledged message; a message may arrive twice
 * only when the first copy came from the killed process (its lease expired), and never from two processes
 * at once.
 */

const TOTAL = 20_000;
const KILL_AT = 7_000;

test(
  "3 processes on one PostgreSQL, one killed: every message delivered, none by two at once",
  {
    timeout: 420_000,
  },
  () =>
    withPostgresLock(async () => {
      const scratch = await scratchPostgres();
      const tmp = tempDir("scaleout");
      const recorder = await startRecorder();
      const bridges: BridgeProcess[] = [];
      try {
        for (let n = 0; n < 3; n++) {
          const port = await freePort();
          bridges.push(
            new BridgeProcess(
              tmp.dir,
              `bridge${n}`,
              port,
              // A slow poll: wake-ups between instances must come from LISTEN/NOTIFY, polling is the backstop.
              bridgeConfig({
                port,
                database: scratch.url,
                incomingUrl: recorder.url,
                forwarder: { pollMs: 2_000 },
              }),
            ),
          );
        }
        // The first start migrates; the others then start together.
        await bridges[0]!.start();
        await Promise.all(bridges.slice(1).map((b) => b.start()));
        const instances = bridges.map((b) => b.instance(hostname()));
        const victim = bridges[1]!;
        const victimInstance = instances[1]!;

        const acked = new Set<number>();
        let next = 0;
        let killedAt = 0;
        let failovers = 0;
        const started = Date.now();
        await Promise.all(
          Array.from({ length: 48 }, async (_, w) => {
            for (;;) {
              const i = next++;
              if (i >= TOTAL) return;
              if (i === KILL_AT) {
                killedAt = Date.now();
                void victim.kill9();
              }
              // Like a load balancer: round-robin, and a failed attempt goes to the next process.
              for (let attempt = 0; ; attempt++) {
                const b = bridges[(i + w + attempt) % bridges.length]!;
                const status = await postInbound(b.url, message("SMs", i, 500));
                if (status >= 200 && status < 300) {
                  acked.add(i);
                  break;
                }
                failovers++;
                assert.ok(attempt < 50, `message ${i} was never acknowledged (last answer ${status})`);
                if (attempt % 3 === 2) await new Promise((r) => setTimeout(r, 100));
              }
            }
          }),
        );
        const ingestMs = Date.now() - started;
        assert.equal(acked.size, TOTAL);
        const want = Array.from({ length: TOTAL }, (_, i) => helpdeskId(`SMs${i}`));
        await eventually(
          `all ${TOTAL} messages at the helpdesk`,
          async () => {
            const got = recorder.delivered();
            return want.every((id) => got.has(id)) ? true : undefined;
          },
          120_000,
        );
        const drainedMs = Date.now() - started;

        const byId = countById(recorder.deliveries.filter((d) => d.status === 200));
        let duplicates = 0;
        const illegal: string[] = [];
        for (const [id, list] of byId) {
          if (list.length < 2) continue;
          duplicates += list.length - 1;
          // Survivors may deliver a message at most once; any extra copy must have come from the killed process.
          const bySurvivors = list.filter((d) => d.instance !== victimInstance);
          if (bySurvivors.length > 1)
            illegal.push(`${id}: delivered ${bySurvivors.length} times by live processes`);
          // No two processes had it in flight at the same time.
          const sorted = [...list].sort((a, b) => a.at - b.at);
          for (let k = 1; k < sorted.length; k++)
            if (sorted[k]!.at < sorted[k - 1]!.answeredAt && sorted[k]!.instance !== sorted[k - 1]!.instance)
              illegal.push(
                `${id}: in flight at ${sorted[k - 1]!.instance} and ${sorted[k]!.instance} at once`,
              );
        }
        const perInstance = instances.map(
          (inst) => recorder.deliveries.filter((d) => d.instance === inst).length,
        );
        console.log(
          `# scale-out: ${TOTAL} messages over 3 processes on PostgreSQL, one SIGKILLed after ${KILL_AT}; ` +
            `ingest ${(ingestMs / 1000).toFixed(1)} s, all delivered after ${(drainedMs / 1000).toFixed(1)} s, ` +
            `per process ${perInstance.join("/")}, failovers ${failovers}, duplicates ${duplicates} (all from the killed process), ` +
            `kill to drain ${((Date.now() - killedAt) / 1000).toFixed(1)} s`,
        );
        assert.equal(recorder.badSignatures, 0);
        assert.deepEqual(
          illegal,
          [],
          "a message was delivered twice outside a lease expiry on the killed process",
        );
        assert.ok(
          perInstance.every((n) => n > 0),
          `every process should have delivered a share: ${perInstance.join("/")}`,
        );
        for (const b of [bridges[0]!, bridges[2]!])
          assert.ok(b.alive(), `a surviving bridge died:\n${b.logTail()}`);
        // And nothing is left behind in the shared outbox.
        const metrics = await (await fetch(`${bridges[0]!.url}/metrics`)).text();
        assert.match(metrics, /smsbridge_outbox_pending\{channel="support"\} 0\b/);
      } finally {
        await Promise.all(bridges.map((b) => b.kill9()));
        await recorder.close();
        tmp.remove();
        await scratch.drop();
      }
    }),
);

test(
  "3 processes on one PostgreSQL: the same staff reply sent to all three at once is one SMS",
  {
    timeout: 180_000,
  },
  () =>
    withPostgresLock(async () => {
      const scratch = await scratchPostgres();
      const tmp = tempDir("scaleout-reply");
      const recorder = await startRecorder();
      const bridges: BridgeProcess[] = [];
      try {
        for (let n = 0; n < 3; n++) {
          const port = await freePort();
          bridges.push(
            new BridgeProcess(
              tmp.dir,
              `bridge${n}`,
              port,
              bridgeConfig({ port, database: scratch.url, incomingUrl: recorder.url }),
            ),
          );
        }
        await bridges[0]!.start();
        await Promise.all(bridges.slice(1).map((b) => b.start()));
        const REPLIES = 40;
        const COPIES = 3;
        const answers = new Map<number, number>();
        // Each reply's exact bytes reach every process twice over, all at once (a helpdesk retrying a slow
        // webhook through a load balancer). The idempotency record in the shared database must let one through.
        await Promise.all(
          Array.from({ length: REPLIES }, async (_, r) => {
            const body = JSON.stringify({
              to: { phone: `+1510555${String(2000 + r).padStart(4, "0")}` },
              from: { phone: PHONE },
              body: `staff reply ${r}`,
              conversation: { slug: `conv-${r}` },
              attachments: [],
              created_at: "2026-01-01T00:00:00+0000",
              thread_id: `thread-${r}`,
            });
            const headers = {
              "content-type": "application/json",
              "x-reamaze-hmac-sha256": sign(body, HELPDESK_SECRET),
            };
            await Promise.all(
              Array.from({ length: bridges.length * COPIES }, async (_, k) => {
                const res = await fetch(`${bridges[k % bridges.length]!.url}/channels/support/reamaze`, {
                  method: "POST",
                  headers,
                  body,
                });
                await res.arrayBuffer();
                answers.set(res.status, (answers.get(res.status) ?? 0) + 1);
              }),
            );
          }),
        );
        // Every SMS the three processes' carriers (the simulator networks) were asked to send.
        const sent = new Map<string, number>();
        for (const b of bridges) {
          const { messages } = (await (await fetch(`${b.url}/simulator/api/messages`)).json()) as {
            messages: Array<{ direction: string; body: string }>;
          };
          for (const m of messages.filter((x) => x.direction === "mt"))
            sent.set(m.body, (sent.get(m.body) ?? 0) + 1);
        }
        const twice = [...sent].filter(([, n]) => n > 1).map(([b, n]) => `${b}: ${n} SMS`);
        console.log(
          `# scale-out replies: ${REPLIES} replies × ${bridges.length * COPIES} concurrent copies over 3 processes; ` +
            `answers ${[...answers].map(([s, n]) => `${s}×${n}`).join(" ")}; SMS sent ${[...sent.values()].reduce((a, b) => a + b, 0)}`,
        );
        assert.deepEqual(twice, [], "a staff reply was sent as more than one SMS");
        assert.equal(sent.size, REPLIES, "every reply was sent once");
        const wrong = [...answers.keys()].filter((s) => s !== 201 && s !== 503);
        assert.deepEqual(wrong, [], "copies must get the first answer (201) or 'still being sent' (503)");
      } finally {
        await Promise.all(bridges.map((b) => b.kill9()));
        await recorder.close();
        tmp.remove();
        await scratch.drop();
      }
    }),
);
