import { endianness } from "node:os";
import { Worker } from "node:worker_threads";
import { betterSqlite3Path } from "./better-sqlite3.js";

/**
 * Copies the WAL back into the database file from a worker thread, on its own connection.
 *
 * Left to itself SQLite checkpoints inside the commit that crosses `wal_autocheckpoint` (1,000 pages): that
 * commit copies ~4 MB into the database file and fsyncs it, on the event loop, stalling every request in
 * flight for milliseconds — at 1,000 staff replies/s that happened many times a second. A PASSIVE checkpoint
 * on another connection never blocks the writer (WAL lets both run), and once it has copied every frame the
 * next commit starts the WAL over from its beginning.
 *
 * When: once a second if anything was committed, or sooner once the WAL holds `maxFrames` pages not yet
 * copied (which bounds its size under bulk writes). Not more often: a checkpoint's random page writes and
 * fsync queue on the same disk as the WAL syncs that every acknowledgement waits for — measured here, a
 * 4 KB append's fdatasync went from p99 0.4 ms alone to 2.7 ms beside 100-page checkpoints every 50 ms and
 * 11.7 ms beside 1,000-page ones — while the hot pages (B-tree roots, the newest leaves) are rewritten by
 * almost every commit, so a checkpoint a second copies each of them once instead of twenty times.
 */
export class SqliteCheckpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;
  /**
   * [0] bumped after each commit of ours (the worker checkpoints only when it changed); [1] set by the worker
   * when the WAL should start over and only a few frames stand in the way (see `beforeCommit`).
   */
  private readonly shared = new Int32Array(new SharedArrayBuffer(8));

  constructor(
    file: string,
    opts: {
      intervalMs?: number;
      maxFrames?: number;
      restartFrames?: number;
      /** Nice steps below the process at which the thread runs (bridge/thread-priority.ts says why); 0 = the same. */
      nice?: number;
    } = {},
  ) {
    this.worker = new Worker(WORKER, {
      eval: true,
      // The same better-sqlite3 build the main connection uses (better-sqlite3.ts explains the two majors).
      workerData: {
        file,
        module: betterSqlite3Path,
        intervalMs: opts.intervalMs ?? 1_000,
        // 64 MB at 4 KB pages. At 4,096 (16 MB) a checkpoint came every ~450 ms at 1,000 staff replies/s instead of
        // once a second, and each one's page writes and fsync slow the WAL syncs beside it: measured in three
        // alternating pairs of 30-s runs, 16,384 halved the replies over 5 ms (docs/performance-history.md, round 15).
        maxFrames: opts.maxFrames ?? 16_384,
        // 256 MB at 4 KB pages: the writer copies the last few frames itself (0.5–8.5 ms on its event loop, and the
        // syncs around it slow too) once per that much WAL, not after every checkpoint. At 64 MB this came every
        // ~1.8 s at 1,000 staff replies/s and was the largest source of replies over 5 ms; at 256 MB every ~6.8 s,
        // with 2–3 × fewer of them (docs/performance-history.md, round 15).
        restartFrames: opts.restartFrames ?? 65_536,
        littleEndian: endianness() === "LE",
        nice: opts.nice ?? 0,
        shared: this.shared,
      },
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
    Atomics.add(this.shared, 0, 1);
  }

  /**
   * Call on the writing connection before a commit. The WAL starts over only when a write begins with every
   * frame copied; a checkpoint on another thread never sees that under steady load (frames arrive while it
   * copies), so the file would grow without end. When the worker has left only a few frames and the WAL is
   * long, the writer copies those itself — a few pages and a sync, on the event loop, once per 256 MB of WAL
   * (`restartFrames`) — and the commit that follows starts the WAL over. If the worker cannot get that far
   * (starved of CPU under sustained writes), the writer copies whatever is left once the WAL is twice that long.
   */
  beforeCommit(writer: { pragma(sql: string): unknown }): void {
    if (Atomics.load(this.shared, 1) === 0) return;
    Atomics.store(this.shared, 1, 0);
    writer.pragma("wal_checkpoint(PASSIVE)");
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
const { accessSync, constants, openSync, readSync } = require("node:fs");
const db = new Database(workerData.file);
// Housekeeping yields to the thread that acknowledges webhooks, as bridge/thread-priority.ts does for the
// delivery thread (a worker run from a string cannot import that module). Linux only; elsewhere skipped.
if (workerData.nice > 0) {
  try {
    const os = require("node:os");
    const tid = Number(require("node:fs").readlinkSync("/proc/thread-self").split("/").pop());
    os.setPriority(tid, Math.min(19, os.getPriority(tid) + workerData.nice));
  } catch {}
}
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
// Frames in the WAL, and how many of them are not yet in the database: mxFrame (offset 16) and nBackfill
// (offset 96) of the wal-index header at the start of the -shm file (https://sqlite.org/walformat.html),
// in native byte order.
const header = Buffer.alloc(100);
let shm;
const TICK_MS = Math.min(50, workerData.intervalMs);
const walFrames = () => {
  try {
    shm ??= openSync(workerData.file + "-shm", "r");
    if (readSync(shm, header, 0, 100, 0) < 100) return { frames: 0, pending: 0 };
    const u32 = (at) => (workerData.littleEndian ? header.readUInt32LE(at) : header.readUInt32BE(at));
    return { frames: u32(16), pending: u32(16) - u32(96) };
  } catch {
    return { frames: 0, pending: 0 };
  }
};
/** Few enough frames for the writer to copy on its event loop (~1 MB at 4 KB pages). */
const WRITER_COPIES_AT_MOST = 256;
let timer;
let seen = 0;
let last = Date.now();
const checkpoint = () => {
  try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {}
};
const tick = () => {
  const now = Atomics.load(workerData.shared, 0);
  if (
    now !== seen &&
    (Date.now() - last >= workerData.intervalMs || walFrames().pending >= workerData.maxFrames) &&
    writable()
  ) {
    seen = now;
    last = Date.now();
    checkpoint();
    let wal = walFrames();
    if (wal.frames >= workerData.restartFrames) {
      // Frames committed while that ran: a couple of quick passes usually leave only a handful.
      for (let i = 0; i < 3 && wal.pending > 64; i++) {
        checkpoint();
        wal = walFrames();
      }
      // Starved of CPU (an overloaded host), this thread may never get the pending frames down to a handful
      // while writes go on, and the WAL would grow without end. Past twice its intended length the writer copies
      // whatever is left itself: one longer stall on its event loop, instead of a file that keeps growing.
      if (wal.pending <= WRITER_COPIES_AT_MOST || wal.frames >= 2 * workerData.restartFrames)
        Atomics.store(workerData.shared, 1, 1);
    }
  }
  timer = setTimeout(tick, TICK_MS);
};
timer = setTimeout(tick, TICK_MS);
parentPort.on("message", (m) => {
  if (m !== "stop") return;
  clearTimeout(timer);
  db.close();
  process.exit(0);
});
`;
