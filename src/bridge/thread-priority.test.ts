import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { getPriority } from "node:os";
import { Writable } from "node:stream";
import { after, describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { startBridge } from "./app.js";
import { validateConfig } from "./config.js";
import {
  bridgeConfig,
  freePort,
  helpdeskId,
  message,
  postInbound,
  startRecorder,
  tempDir,
} from "./test-support/faults-harness.js";
import { eventually } from "./test-support/loop.js";

const linux = existsSync("/proc/thread-self");

/** Every thread of this process and its nice value, as the kernel reports it (field 19 of /proc/…/stat). */
function threadNices(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      // The thread's name (field 2) may hold spaces; the fields after its closing parenthesis start at 3.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(Number(tid), Number(fields[19 - 3]));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** Threads running below the main thread's priority. */
const lowered = (base: number) => [...threadNices().values()].filter((n) => n > base).length;

/**
 * Runs lowerThisThreadPriority(steps) on a new worker thread and returns what it returned and the thread's
 * nice as /proc shows it, read while the thread still runs.
 */
async function onThread(steps: number): Promise<{ returned: number | undefined; nice: number | undefined }> {
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
(async () => {
  (await import(workerData.tsx)).register();
  const { lowerThisThreadPriority } = await import(workerData.module);
  const returned = lowerThisThreadPriority(workerData.steps);
  const tid = Number(require("node:fs").readlinkSync("/proc/thread-self").split("/").pop());
  parentPort.postMessage({ returned, tid });
  parentPort.once("message", () => process.exit(0));
})();`,
    {
      eval: true,
      workerData: {
        steps,
        tsx: import.meta.resolve("tsx/esm/api"),
        module: new URL("./thread-priority.ts", import.meta.url).href,
      },
    },
  );
  try {
    const { returned, tid } = await new Promise<{ returned: number | undefined; tid: number }>((res, rej) => {
      worker.once("message", res);
      worker.once("error", rej);
    });
    return { returned, nice: threadNices().get(tid) };
  } finally {
    worker.postMessage("done");
    await new Promise((r) => worker.once("exit", r));
  }
}

describe("background threads run below the main thread's priority", { skip: !linux && "Linux only" }, () => {
  const base = getPriority();

  const cases: Array<{ steps: number; nice: number; returned: number | undefined }> = [
    { steps: 0, nice: base, returned: undefined },
    { steps: 3, nice: Math.min(19, base + 3), returned: Math.min(19, base + 3) },
    { steps: 10, nice: Math.min(19, base + 10), returned: Math.min(19, base + 10) },
    { steps: 40, nice: 19, returned: 19 },
  ];
  for (const c of cases) {
    test(`lowering a thread by ${c.steps} steps leaves it at nice ${c.nice}, the main thread at ${base}`, async () => {
      const { returned, nice } = await onThread(c.steps);
      assert.equal(nice, c.nice);
      assert.equal(returned, c.returned);
      assert.equal(threadNices().get(process.pid), base, "the main thread keeps its priority");
    });
  }

  const dir = tempDir("smsbridge-nice-");
  after(() => dir.remove());

  for (const backgroundNice of [undefined, 0, 4, 10]) {
    const expected = backgroundNice ?? 0; // the default, configuration.md
    test(`a bridge with server.backgroundNice ${backgroundNice ?? "unset"}: delivery and checkpointer threads at +${expected}`, async () => {
      assert.equal(lowered(base), 0, "no thread of this process is lowered before the bridge starts");
      const recorder = await startRecorder();
      const port = await freePort();
      const cfg = bridgeConfig({
        port,
        database: `sqlite:${dir.dir}/nice-${expected}-${port}.db`,
        incomingUrl: recorder.url,
      });
      const server = cfg.server as Record<string, unknown>;
      if (backgroundNice !== undefined) server.backgroundNice = backgroundNice;
      const bridge = await startBridge({
        loaded: validateConfig(cfg),
        logDestination: new Writable({ write: (_c, _e, cb) => cb() }),
      });
      try {
        // One delivery starts the delivery thread; the checkpointer starts with the store.
        assert.equal(await postInbound(bridge.url, message("nice-", expected)), 200);
        await eventually("the message delivered", async () =>
          recorder.delivered().has(helpdeskId(`nice-${expected}`)) ? true : undefined,
        );
        const nices = [...threadNices().values()];
        assert.equal(
          nices.filter((n) => n === Math.min(19, base + expected) && n !== base).length,
          expected && base < 19 ? 2 : 0,
          `threads lowered by ${expected}: the delivery thread and the checkpointer (nices: ${nices.join(",")})`,
        );
        assert.equal(lowered(base), expected && base < 19 ? 2 : 0, "no other thread is lowered");
        assert.equal(threadNices().get(process.pid), base, "the main thread keeps its priority");
      } finally {
        await bridge.close();
        await recorder.close();
      }
      await eventually("the bridge's threads ended", async () => (lowered(base) === 0 ? true : undefined));
    });
  }
});
