// The worker side of deliverer.ts: POSTs signed payloads to the helpdesk and sends each outcome back.
// Jobs and outcomes travel in batches (one message per turn of either event loop), not one message each.
import { type MessagePort, parentPort, workerData } from "node:worker_threads";
import { deliverSigned, type Outcome } from "../protocol/client.js";
import type { DeliveryJob } from "./deliverer.js";
import { lowerThisThreadPriority } from "./thread-priority.js";

if (!parentPort) throw new Error("delivery-thread.ts runs as a worker thread (see deliverer.ts)");
const port: MessagePort = parentPort;
// Forwarding can wait a few ms; the main thread's webhooks cannot (thread-priority.ts).
lowerThisThreadPriority((workerData as { nice?: number } | undefined)?.nice ?? 0);

let results: Array<[number, Outcome]> = [];
let flushing = false;

function reply(id: number, outcome: Outcome): void {
  results.push([id, outcome]);
  if (flushing) return;
  flushing = true;
  setImmediate(() => {
    flushing = false;
    const batch = results;
    results = [];
    port.postMessage(batch);
  });
}

port.on("message", (jobs: DeliveryJob[]) => {
  for (const job of jobs) {
    deliverSigned({
      url: job.url,
      secret: job.secret,
      payload: job.payload,
      timeoutMs: job.timeoutMs,
      headers: job.headers,
    }).then(
      (outcome) => reply(job.id, outcome),
      (err: unknown) =>
        reply(job.id, { kind: "retry", reason: `delivery failed: ${(err as Error).message}` }),
    );
  }
});
