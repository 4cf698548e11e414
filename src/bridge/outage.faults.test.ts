import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { type ScratchDb, scratchPostgres, scratchSqlite } from "../store/test-support/databases.js";
import {
  BridgeProcess,
  bridgeConfig,
  ensurePostgresUp,
  freePort,
  helpdeskId,
  message,
  pgCluster,
  pgReady,
  pgVersion,
  postInbound,
  startRecorder,
  tempDir,
  withPostgresLock,
} from "./test-support/faults-harness.js";
import { eventually } from "./test-support/loop.js";

/**
 * Database outage under load: PostgreSQL stopped for 10 s (the machine's own cluster, `pg_ctlcluster`), and
 * SQLite made read-only (`chattr +i`, which even root cannot write through). While the database is gone
 * the providers must hear 503 (so they retry) — never a dropped connection or another 5xx; nothing that was
 * acknowledged may be lost; and the same process must recover by itself, without a restart.
 */

const OUTAGE_MS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// If this process dies mid-outage, do not leave the machine without its PostgreSQL.
let pgStoppedByUs = false;
process.on("exit", () => {
  if (!pgStoppedByUs) return;
  try {
    execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", pgVersion(), "main", "start"], {
      stdio: "ignore",
    });
  } catch {}
});

interface Run {
  acked: Set<number>;
  answers: Map<number, number>;
  duringOutage: Map<number, number>;
  recoveryMs: number;
}

/** Load before, during and after `outage()`; returns what the provider saw. */
async function underLoad(
  bridge: BridgeProcess,
  prefix: string,
  outage: () => Promise<void>,
  restore: () => Promise<void>,
): Promise<Run> {
  const acked = new Set<number>();
  const answers = new Map<number, number>();
  const duringOutage = new Map<number, number>();
  const retry: number[] = [];
  let next = 0;
  let running = true;
  let phase: "before" | "outage" | "after" = "before";
  let restoredAt = 0;
  let recoveredAt = 0;
  const load = Promise.all(
    Array.from({ length: 8 }, async () => {
      while (running) {
        const i = retry.shift() ?? next++;
        const status = await postInbound(bridge.url, message(prefix, i));
        answers.set(status, (answers.get(status) ?? 0) + 1);
        if (phase === "outage") duringOutage.set(status, (duringOutage.get(status) ?? 0) + 1);
        if (status >= 200 && status < 300) {
          acked.add(i);
          if (phase === "after" && !recoveredAt) recoveredAt = Date.now();
        } else {
          retry.push(i);
          await sleep(50);
        }
      }
    }),
  );
  try {
    await eventually("200 acknowledgements before the outage", async () =>
      acked.size >= 200 ? true : undefined,
    );
    phase = "outage";
    try {
      await outage();
      await sleep(OUTAGE_MS);
    } finally {
      await restore();
      restoredAt = Date.now();
      phase = "after";
    }
    const target = acked.size + 200;
    await eventually(
      "200 acknowledgements after the database came back",
      async () => {
        // Say so if it is not a slow recovery but a dead process (e.g. SIGBUS on SQLite's WAL index map).
        if (!bridge.alive())
          throw new Error(
            `the bridge died (${bridge.child?.signalCode ?? bridge.child?.exitCode}); log:\n${bridge.logTail()}`,
          );
        return acked.size >= target ? true : undefined;
      },
      60_000,
    );
  } finally {
    running = false;
    await load;
  }
  for (const i of retry.splice(0)) {
    const status = await postInbound(bridge.url, message(prefix, i));
    assert.ok(status >= 200 && status < 300, `re-posting ${i} after recovery answered ${status}`);
    acked.add(i);
  }
  return { acked, answers, duringOutage, recoveryMs: recoveredAt - restoredAt };
}

async function outageCase(
  name: "postgres" | "sqlite",
  scratch: ScratchDb,
  outage: () => Promise<void>,
  restore: () => Promise<void>,
) {
  const tmp = tempDir(`outage-${name}`);
  const recorder = await startRecorder();
  const port = await freePort();
  const bridge = new BridgeProcess(
    tmp.dir,
    "bridge",
    port,
    bridgeConfig({ port, database: scratch.url, incomingUrl: recorder.url }),
  );
  try {
    await bridge.start();
    const pid = bridge.pid;
    const run = await underLoad(bridge, `SMo${name}`, outage, restore);
    const want = [...run.acked].map((i) => helpdeskId(`SMo${name}${i}`));
    const t = Date.now();
    await eventually(
      `all ${want.length} acknowledged messages at the helpdesk`,
      async () => {
        const got = recorder.delivered();
        return want.every((id) => got.has(id)) ? true : undefined;
      },
      60_000,
    );
    const fmt = (m: Map<number, number>) =>
      [...m]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s || "conn-fail"}×${n}`)
        .join(" ");
    console.log(
      `# database outage (${name}, ${OUTAGE_MS / 1000} s): provider answers ${fmt(run.answers)}; during the outage ${fmt(run.duringOutage)}; ` +
        `first acknowledgement ${run.recoveryMs} ms after the database returned; ${run.acked.size} acknowledged, all delivered ` +
        `(outbox drained ${Date.now() - t} ms after the load stopped)`,
    );
    assert.ok(
      bridge.alive() && bridge.pid === pid,
      `the bridge process did not survive:\n${bridge.logTail()}`,
    );
    assert.ok((run.duringOutage.get(503) ?? 0) > 0, "no 503 during the outage: the outage did not bite");
    const wrong = [...run.answers.keys()].filter((s) => s !== 503 && (s < 200 || s >= 300));
    assert.deepEqual(wrong, [], `providers got answers other than 2xx/503: ${fmt(run.answers)}`);
    assert.equal(recorder.badSignatures, 0);
  } finally {
    await bridge.kill9();
    await recorder.close();
    tmp.remove();
  }
}

test(
  "PostgreSQL stopped for 10 s under load: 503s, nothing acknowledged lost, recovery without restart",
  {
    timeout: 240_000,
  },
  () =>
    withPostgresLock(async () => {
      await ensurePostgresUp();
      const scratch = await scratchPostgres();
      try {
        await outageCase(
          "postgres",
          scratch,
          async () => {
            pgStoppedByUs = true;
            pgCluster("stop");
            assert.equal(pgReady(), false, "PostgreSQL still accepts connections after pg_ctlcluster stop");
          },
          async () => {
            await ensurePostgresUp();
            pgStoppedByUs = false;
          },
        );
      } finally {
        await ensurePostgresUp();
        pgStoppedByUs = false;
        await scratch.drop();
      }
    }),
);

test("SQLite made read-only under load: 503s, nothing acknowledged lost, recovery without restart", {
  timeout: 180_000,
}, async () => {
  const scratch = scratchSqlite();
  const file = scratch.url.slice("sqlite:".length);
  // The directory too: SQLite must not be able to create a journal beside the database either.
  const targets = () => [file, `${file}-wal`, `${file}-shm`].filter(existsSync).concat(join(file, ".."));
  const chattr = (flag: "+i" | "-i") => {
    for (const f of targets()) execFileSync("chattr", [flag, f], { stdio: "ignore" });
  };
  try {
    await outageCase(
      "sqlite",
      scratch,
      async () => chattr("+i"),
      async () => chattr("-i"),
    );
  } finally {
    try {
      chattr("-i");
    } catch {}
    await scratch.drop();
  }
});
