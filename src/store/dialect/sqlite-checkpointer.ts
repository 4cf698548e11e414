import { Worker } from "node:worker_threads";
import { betterSqlite3Path } from "./better-sqlite3.js";

/**
 * Copies the WAL back into the database file from a worker thread, on its own connection.
 *
 * Left to itself SQLite checkpoints inside the commit that crosses `wal_autocheckpoint` (1,000 pages): that
 * commit copies ~4 MB into the database file and fsyncs it, on the event loop, stalling every request in
 * flight for milliseconds — at 1,000 staff replies/s that happened many times a second. A PASSIVE checkpoint
 * on another connection never blocks the writer (WAL lets both run), and once it has copied every frame the
 * next commit starts the WAL over from its beginning, so the file stays small.
 */
export class SqliteCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  /** Bumped after each commit of ours; the worker checkpoints only when it changed. */
  private readonly commits = new Int32Array(new SharedArrayBuffer(4));

  constructor(file: string, intervalMs = 50) {
    this.worker = new Worker(WORKER, {
      eval: true,
      // The same better-sqlite3 build the main connection uses (better-sqlite3.ts explains the two majors).
      workerData: { file, module: betterSqlite3Path, intervalMs, commits: this.commits },
    });
    // A checkpointer must never keep the process alive, nor take it down: the main connection falls back
    // to nothing worse than a growing WAL.
    this.worker.unref();
    this.worker.on("error", () => {});
    this.exited = new Promise((r) => this.worker.once("exit", () => r()));
  }

  /**
   * Tells the worker there is something to checkpoint. It checkpoints nothing otherwise: an idle bridge costs
   * nothing, and while the disk refuses writes (a read-only or full file system) the worker does not touch
   * the WAL index either — with the file made immutable, a write to its memory map kills the process (SIGBUS).
   */
  committed(): void {
    Atomics.add(this.commits, 0, 1);
  }

  /** Stops after the checkpoint in progress, closing the worker's connection. */
  async close(): Promise<void> {
    // Unref'd, the worker's exit would not keep the event loop alive for this await.
    this.worker.ref();
    this.worker.postMessage("stop");
    await this.exited;
  }
}

const WORKER = `
const { workerData, parentPort } = require("node:worker_threads");
const Database = require(workerData.module);
const { accessSync, constants } = require("node:fs");
const db = new Database(workerData.file);
// A checkpoint writes the WAL index through its memory map; if the file was made read-only meanwhile, that
// write is a SIGBUS, not an error. Check first (the file system answers EROFS or EPERM), and skip.
const writable = () => {
  try {
    accessSync(workerData.file, constants.W_OK);
    accessSync(workerData.file + "-shm", constants.W_OK);
    return true;
  } catch {
    return false;
  }
};
db.pragma("busy_timeout = 1000");
let timer;
let seen = 0;
const tick = () => {
  const now = Atomics.load(workerData.commits, 0);
  if (now !== seen && writable()) {
    seen = now;
    try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
  }
  timer = setTimeout(tick, workerData.intervalMs);
};
timer = setTimeout(tick, workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearTimeout(timer);
  db.close();
  process.exit(0);
});
`;
