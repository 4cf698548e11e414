import { Worker } from "node:worker_threads";
import type { Outcome } from "../protocol/client.js";

export interface DeliveryJob {
  id: number;
  url: string;
  secret: string;
  payload: Uint8Array;
  timeoutMs: number;
  headers: Record<string, string>;
}

/**
 * Runs the forwarder's HTTP on a worker thread. Signing, writing the request, parsing the answer and
 * undici's bookkeeping were ~18% of the main thread while ingesting at full speed, on the event loop that
 * also answers providers; here they use another core. Claims, outcomes and the breaker stay on the main
 * thread: the thread only turns a job into an Outcome, exactly as `deliverSigned` would in-process.
 *
 * If the thread dies, every job in flight ends as a retry (its row is delivered again later, with the same
 * id) and the next job starts a new thread.
 */
export class Deliverer {
  private worker: Worker | undefined;
  /**
   * Each job's callback, by slot; its slot number is the job's id on the thread. Slots are reused (a free
   * list), not a Map keyed by an ever-growing id: the Map's tables were re-allocated as entries came and went,
   * and those tables, like promises held across a delivery, outlived a scavenge and piled up in the old
   * generation while a backlog drained (see `send`).
   */
  private readonly slots: Array<((o: Outcome) => void) | undefined> = [];
  private readonly free: number[] = [];
  private queued: DeliveryJob[] = [];
  private closed = false;

  /** `nice`: how many nice steps below the process the thread runs (thread-priority.ts); 0 = the same. */
  constructor(private readonly opts: { nice?: number } = {}) {}

  /**
   * Hands a job to the thread; `done` is called once, with its outcome, never synchronously. A callback
   * rather than a promise: a delivery takes milliseconds, long enough for what waits on it to be promoted
   * to the old generation, and at 15k deliveries a second the async frames and promises waiting on each one
   * were most of what grew the main thread's heap between major collections.
   */
  send(job: Omit<DeliveryJob, "id">, done: (o: Outcome) => void): void {
    if (this.closed) {
      queueMicrotask(() => done({ kind: "retry", reason: "the bridge is stopping" }));
      return;
    }
    const id = this.free.pop() ?? this.slots.length;
    this.slots[id] = done;
    const p = job.payload;
    // A view crosses to the thread with its whole underlying buffer (Node pools small Buffers): copy just
    // the job's bytes.
    const payload = p.byteOffset === 0 && p.byteLength === p.buffer.byteLength ? p : new Uint8Array(p);
    // Jobs dispatched in one turn (a claimed batch) cross to the thread as one message.
    const queued = this.queued.push({
      id,
      url: job.url,
      secret: job.secret,
      payload,
      timeoutMs: job.timeoutMs,
      headers: job.headers,
    });
    if (queued === 1) queueMicrotask(() => this.flush());
  }

  /** `send` as a promise. */
  post(job: Omit<DeliveryJob, "id">): Promise<Outcome> {
    return new Promise((resolve) => this.send(job, resolve));
  }

  private settle(id: number, outcome: Outcome): void {
    const done = this.slots[id];
    if (!done) return;
    this.slots[id] = undefined;
    this.free.push(id);
    done(outcome);
  }

  private flush(): void {
    const jobs = this.queued;
    this.queued = [];
    if (jobs.length) this.thread().postMessage(jobs);
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = startThread(this.opts.nice ?? 0);
    worker.on("message", (batch: Array<[number, Outcome]>) => {
      // A thread that already died has had its jobs settled as retries; its slots may be reused.
      if (this.worker !== worker) return;
      for (const [id, outcome] of batch) this.settle(id, outcome);
    });
    const died = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (let id = 0; id < this.slots.length; id++)
        this.settle(id, { kind: "retry", reason: `delivery thread ${why}` });
    };
    worker.on("error", (err) => died(`failed: ${err.message}`));
    worker.on("exit", (code) => died(`exited (${code})`));
    // Idle, the thread must not keep the process alive; jobs in flight are awaited by the forwarder itself.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /**
   * Call once nothing is in flight (Forwarder.stop waits for its deliveries first). Jobs posted while it
   * closes end as retries; a job posted afterwards starts a new thread (a forwarder started again).
   */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    try {
      await worker?.terminate();
    } finally {
      this.closed = false;
    }
  }
}

/**
 * The compiled bridge runs dist/bridge/delivery-thread.js. Run from source (the tests, through tsx), the
 * thread loads the .ts file and registers tsx first: a worker does not inherit the parent's loader hooks.
 */
function startThread(nice: number): Worker {
  const fromSource = import.meta.url.endsWith(".ts");
  const entry = new URL(`./delivery-thread.${fromSource ? "ts" : "js"}`, import.meta.url).href;
  const tsx = fromSource ? import.meta.resolve("tsx/esm/api") : undefined;
  return new Worker(
    `const { workerData } = require("node:worker_threads");
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.entry);
})();`,
    {
      eval: true,
      workerData: { entry, tsx, nice },
      // A second V8 heap: left to its defaults, its young generation alone grew to tens of MB between
      // scavenges and pushed the bridge past its 256 MB budget while draining a 1M backlog. What it holds
      // at any time is a batch of jobs and their answers.
      resourceLimits: { maxYoungGenerationSizeMb: 8 },
    },
  );
}
