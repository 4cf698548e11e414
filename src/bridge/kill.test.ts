import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { createSimulatorSignature } from "../providers/simulator/index.js";
import { type RunningSandbox, startSandbox } from "../sandbox/server.js";
import { eventually, freePort } from "./test-support/loop.js";

/**
 * kill -9 of a real bridge process while messages flow: every webhook the bridge acknowledged must reach the
 * helpdesk after a restart, with the same id (at-least-once, deduplicated downstream).
 */

const MAIN = fileURLToPath(new URL("../cli/main.ts", import.meta.url));
const PHONE = "+16501234567";
const CUSTOMER = "+15105558888";
const SECRET = "kill-test-reamaze-secret";
const SIM = "kill-test-simulator-secret";

let dir: string;
let sandbox: RunningSandbox;
let port: number;
let child: ChildProcess | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "smsbridge-kill-"));
  port = await freePort();
  sandbox = await startSandbox({
    port: 0,
    logger: false,
    config: {
      channels: [
        {
          name: "Support",
          phone: PHONE,
          secret: SECRET,
          webhookUrl: `http://127.0.0.1:${port}/channels/support/reamaze`,
        },
      ],
      staff: [],
    },
  });
  writeFileSync(
    join(dir, "smsbridge.json"),
    JSON.stringify({
      server: { port, host: "127.0.0.1" },
      database: `sqlite:${join(dir, "bridge.db")}`,
      log: { level: "warn" },
      forwarder: { retryBaseMs: 20, retryCapMs: 200, pollMs: 50, leaseMs: 2_000 },
      channels: [
        {
          id: "support",
          numbers: [PHONE],
          reamaze: { incomingUrl: `${sandbox.url}/incoming/sms`, secrets: [SECRET] },
          provider: { type: "simulator", secret: SIM },
          threading: { mode: "pair" },
        },
      ],
    }),
  );
});

after(async () => {
  child?.kill("SIGKILL");
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
});

async function startBridgeProcess(): Promise<ChildProcess> {
  const p = spawn(
    process.execPath,
    ["--import", "tsx", MAIN, "serve", "--config", join(dir, "smsbridge.json")],
    {
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  await eventually(
    "the bridge process to listen",
    async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok ? true : undefined),
    30_000,
  );
  return p;
}

async function post(i: number): Promise<boolean> {
  const body = JSON.stringify({
    type: "message",
    id: `SMkill${i}`,
    from: CUSTOMER,
    to: PHONE,
    body: `message ${i}`,
    media: [],
    sent_at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
  });
  const ts = String(Math.floor(Date.now() / 1000));
  try {
    const r = await fetch(`http://127.0.0.1:${port}/channels/support/inbound`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-simulator-timestamp": ts,
        "x-simulator-signature": createSimulatorSignature(SIM, ts, body),
      },
      body,
    });
    return r.ok;
  } catch {
    return false;
  }
}

// Generous: two bridge start-ups through tsx beside the rest of the suite took most of 90 s once on a loaded
// machine. Nothing here is timed; the limit only stops a hung run.
test("kill -9 while messages flow: every acknowledged message reaches the helpdesk", {
  timeout: 180_000,
}, async () => {
  child = await startBridgeProcess();
  const acked = new Set<number>();
  const total = 400;
  let killedAt = -1;
  // Eight concurrent senders, like a provider; the process is killed mid-stream.
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < total) {
        const i = next++;
        if (i === 150 && killedAt < 0) {
          killedAt = i;
          child?.kill("SIGKILL");
        }
        if (await post(i)) acked.add(i);
      }
    }),
  );
  assert.ok(killedAt > 0);
  assert.ok(acked.size >= 100 && acked.size < total, `acked ${acked.size} of ${total}`);
  child = await startBridgeProcess();
  // The provider retries what was not acknowledged (a provider would); the rest must already be safe.
  for (let i = 0; i < total; i++) if (!acked.has(i) && (await post(i))) acked.add(i);
  assert.equal(acked.size, total);
  const ids = await eventually(
    "every acknowledged message in the helpdesk",
    async () => {
      const list = (await (await fetch(`${sandbox.url}/api/conversations`)).json()) as {
        conversations: Array<{ slug: string }>;
      };
      const seen = new Set<string>();
      for (const c of list.conversations) {
        const conv = (await (await fetch(`${sandbox.url}/api/conversations/${c.slug}`)).json()) as {
          conversation: { messages: Array<{ external_id: string }> };
        };
        for (const m of conv.conversation.messages) seen.add(m.external_id);
      }
      return seen.size >= total ? seen : undefined;
    },
    45_000,
  );
  for (const i of acked)
    assert.ok(
      ids.has(`simulator:SMkill${i}`),
      `message ${i} was acknowledged but never reached the helpdesk`,
    );
});
