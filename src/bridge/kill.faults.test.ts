import assert from "node:assert/strict";
import { test } from "node:test";
import { type ScratchDb, scratchPostgres, scratchSqlite } from "../store/test-support/databases.js";
import {
  BridgeProcess,
  bridgeConfig,
  countById,
  freePort,
  helpdeskId,
  message,
  postInbound,
  startRecorder,
  tempDir,
  withPostgresLock,
} from "./test-support/faults-harness.js";
import { eventually } from "./test-support/loop.js";

/**
 * kill -9 loop: a real `smsbridge serve` is killed ten times while a provider keeps posting webhooks. Every
 * message the bridge acknowledged (2xx) must reach the helpdesk; the provider re-posts what was not
 * acknowledged, as real providers do. Re-sent duplicates (same id) are allowed and counted.
 */

const KILLS = 10;
const PER_ROUND = 100;

async function killLoop(dbName: "sqlite" | "postgres", scratch: ScratchDb) {
  const tmp = tempDir(`kill-${dbName}`);
  const recorder = await startRecorder();
  // A fixed port across restarts: the provider's webhook URL does not change.
  const port = await freePort();
  const b = new BridgeProcess(
    tmp.dir,
    "bridge",
    port,
    bridgeConfig({ port, database: scratch.url, incomingUrl: recorder.url }),
  );
  const acked = new Set<number>();
  const retry: number[] = [];
  let next = 0;
  let running = true;
  let refused = 0;
  try {
    await b.start();
    const load = Promise.all(
      Array.from({ length: 16 }, async () => {
        while (running) {
          const i = retry.shift() ?? next++;
          const status = await postInbound(b.url, message("SMk", i));
          if (status >= 200 && status < 300) acked.add(i);
          else {
            refused++;
            retry.push(i);
            // Back off like a provider would; hammering a restarting process only slows its start.
            await new Promise((r) => setTimeout(r, status === 0 ? 250 : 20));
          }
        }
      }),
    );
    const restarts: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const target = acked.size + PER_ROUND;
      await eventually(
        `${PER_ROUND} more acknowledgements (round ${k + 1})`,
        async () => (acked.size >= target ? true : undefined),
        20_000,
      );
      await b.kill9();
      const t = Date.now();
      await b.start();
      restarts.push(Date.now() - t);
    }
    running = false;
    await load;
    // What was never acknowledged, the provider posts again now that the bridge is up.
    for (const i of retry.splice(0)) {
      const status = await postInbound(b.url, message("SMk", i));
      assert.ok(status >= 200 && status < 300, `re-posting message ${i} answered ${status}`);
      acked.add(i);
    }
    const want = [...acked].map((i) => helpdeskId(`SMk${i}`));
    await eventually(
      `all ${want.length} acknowledged messages at the helpdesk`,
      async () => {
        const got = recorder.delivered();
        return want.every((id) => got.has(id)) ? true : undefined;
      },
      90_000,
    );
    const byId = countById(recorder.deliveries.filter((d) => d.status === 200));
    const duplicates = [...byId.values()].reduce((n, list) => n + list.length - 1, 0);
    const ids = [...byId.keys()];
    console.log(
      `# kill-9 loop (${dbName}): ${KILLS} kills, ${acked.size} acknowledged, ${recorder.delivered().size} delivered, ` +
        `${duplicates} re-sent duplicates, ${refused} provider posts refused/failed while down, ` +
        `restart to ready ${Math.min(...restarts)}–${Math.max(...restarts)} ms`,
    );
    assert.equal(recorder.badSignatures, 0);
    for (const i of acked)
      assert.ok(
        byId.has(helpdeskId(`SMk${i}`)),
        `message ${i} was acknowledged but never reached the helpdesk`,
      );
    // Nothing that was never acknowledged-then-stored appears from nowhere.
    for (const id of ids) assert.match(id, /^simulator:SMk\d+$/);
    assert.ok(b.alive(), `the last bridge process died:\n${b.logTail()}`);
  } finally {
    running = false;
    await b.kill9();
    await recorder.close();
    tmp.remove();
  }
}

test("kill -9 loop on SQLite: every acknowledged message arrives", { timeout: 240_000 }, async () => {
  const scratch = scratchSqlite();
  try {
    await killLoop("sqlite", scratch);
  } finally {
    await scratch.drop();
  }
});

test("kill -9 loop on PostgreSQL: every acknowledged message arrives", { timeout: 300_000 }, () =>
  withPostgresLock(async () => {
    const scratch = await scratchPostgres();
    try {
      await killLoop("postgres", scratch);
    } finally {
      await scratch.drop();
    }
  }),
);
