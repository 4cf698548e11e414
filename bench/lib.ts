// Shared bench harness: servers in child processes, autocannon load, and a common result shape.
// Servers run in their own process so the load generator and the server do not share one event loop.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** What the value is measured against, e.g. raw createHmac or a bare node:http server. */
  baseline?: { name: string; value: number };
  /** value / baseline.value (filled in by `withBaseline` or by run.ts when absent). */
  ratio?: number;
  note?: string;
}

export interface Server {
  url: string;
  close: () => Promise<void>;
}

export interface ChildServer extends Server {
  pid: number;
}

/** The p-th percentile (nearest rank) of an ascending array; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/** The middle value of a few runs (the upper one of an even count). */
export function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
}

/** Attaches a baseline and its ratio to a result. */
export function withBaseline(result: BenchResult, baseline: { name: string; value: number }): BenchResult {
  return { ...result, baseline, ratio: baseline.value === 0 ? undefined : result.value / baseline.value };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts a server under test as a child process and waits until its output matches `readyRegex`.
 * The URL is the regex's `url` named group, else its first group, else the first http(s) URL in the match.
 */
export async function startChild(
  cmd: string[],
  env: Record<string, string | undefined> = {},
  readyRegex: RegExp = /(https?:\/\/[^\s"']+)/,
  timeoutMs = 30_000,
): Promise<ChildServer> {
  const [file, ...args] = cmd;
  if (!file) throw new Error("startChild: empty command");
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      void stopChild(child);
      reject(
        new Error(`${cmd.join(" ")} did not print ${readyRegex} within ${timeoutMs} ms. Output:\n${output}`),
      );
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      const m = readyRegex.exec(output);
      if (!m) return;
      const found = m.groups?.url ?? m[1] ?? /https?:\/\/[^\s"']+/.exec(m[0])?.[0];
      if (!found) return;
      clearTimeout(timer);
      // Keep draining so a chatty server never blocks on a full pipe, but stop collecting: scanning an
      // ever-growing log for the ready line cost this (load-generating) process more CPU than the load did.
      output = "";
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.stdout?.resume();
      child.stderr?.resume();
      resolve(found);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(
        new Error(`${cmd.join(" ")} exited (${code ?? signal}) before it was ready. Output:\n${output}`),
      );
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return { url, pid: child.pid ?? -1, close: () => stopChild(child) };
}

// The physical limit: node:http that reads the body and answers 200, nothing else.
const BARE_SERVER = `
const http = require("node:http");
const server = http.createServer((req, res) => {
  req.on("data", () => {});
  req.on("end", () => { res.writeHead(200, { "content-type": "application/json" }); res.end('{"ok":true}'); });
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => console.log("listening http://127.0.0.1:" + server.address().port));
`;

/** A bare node:http server in a child process: the baseline every HTTP measurement is compared with. */
export function startBare(): Promise<ChildServer> {
  return startChild([process.execPath, "-e", BARE_SERVER], {}, /listening (http:\/\/\S+)/);
}

export interface LoadRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface LoadOptions {
  url: string;
  connections?: number;
  durationSec?: number;
  /** Called for every request, so each one may differ (fresh ids, signatures). */
  requests: () => LoadRequest;
}

export interface LoadResult {
  /** Completed requests per second over the whole run. */
  rps: number;
  /** Latency percentiles, ms. */
  p50: number;
  p99: number;
  /** Connection errors and timeouts. */
  errors: number;
  non2xx: number;
  total: number;
}

interface AutocannonResult {
  requests: { total: number };
  latency: { p50: number; p99: number };
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
}
interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  requests: Array<{ setupRequest: (req: Record<string, unknown>) => Record<string, unknown> }>;
}
type Autocannon = (opts: AutocannonOptions) => Promise<AutocannonResult>;

// autocannon ships no types; a narrow local signature keeps `any` out.
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

/** Drives `url` with autocannon for `durationSec`, each request built by `requests()`. */
export async function load(opts: LoadOptions): Promise<LoadResult> {
  const base = new URL(opts.url);
  const result = await autocannon({
    url: base.origin,
    connections: opts.connections ?? 50,
    duration: opts.durationSec ?? 5,
    requests: [
      {
        setupRequest: (req) => {
          const r = opts.requests();
          const body =
            r.body === undefined ? undefined : Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body);
          return {
            ...req,
            method: r.method ?? "POST",
            path: r.path ?? (base.pathname + base.search || "/"),
            headers: { ...(body ? { "content-type": "application/json" } : {}), ...r.headers },
            ...(body ? { body } : {}),
          };
        },
      },
    ],
  });
  return {
    rps: result.duration > 0 ? result.requests.total / result.duration : 0,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    total: result.requests.total,
  };
}

/**
 * The load generator's own ceiling: autocannon against the bare server. A server under test cannot be
 * measured faster than this on this machine; results near it mean the generator, not the server, was the limit.
 */
export async function measureSelf(durationSec = 3): Promise<BenchResult[]> {
  const bare = await startBare();
  try {
    const r = await load({
      url: bare.url,
      durationSec,
      requests: () => ({ method: "POST", body: '{"id":"1"}' }),
    });
    const note = `${availableParallelism()} CPUs; p50 ${r.p50} ms, p99 ${r.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}`;
    return [
      {
        name: "load generator ceiling (bare node:http, 50 conns)",
        value: Math.round(r.rps),
        unit: "req/s",
        note,
      },
    ];
  } finally {
    await bare.close();
  }
}

/** Runs `fn` repeatedly for about `seconds` and returns operations per second. */
export function opsPerSec(fn: () => unknown, seconds = 3): number {
  // Warm up so the JIT has settled before the measured window.
  const warmEnd = performance.now() + 200;
  while (performance.now() < warmEnd) fn();
  let ops = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 1000; i++) fn();
    ops += 1000;
    now = performance.now();
  }
  return ops / ((now - start) / 1000);
}

/**
 * The command that runs the smsbridge CLI as users run it: the compiled `bin/smsbridge.js` (run.ts builds
 * dist/ first), not tsx — tsx's loader thread alone adds tens of MB of RSS and start-up time. With
 * BENCH_CPU_PROF set, every thread of the process writes a V8 CPU profile into that directory when it stops.
 */
export function smsbridgeCommand(): string[] {
  const prof = process.env.BENCH_CPU_PROF;
  const flags = (process.env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean);
  return [
    process.execPath,
    ...flags,
    ...(prof ? ["--cpu-prof", `--cpu-prof-dir=${prof}`] : []),
    "bin/smsbridge.js",
  ];
}

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * Bytes a process (all its threads) has caused to be written to storage (`write_bytes` in /proc/<pid>/io):
 * for the bridge, WAL appends and checkpoints. Unlike a latency it does not move with the machine's noise.
 */
export function ioWriteBytes(pid: number): number {
  const m = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"));
  return m ? Number(m[1]) : Number.NaN;
}

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may contain spaces) start at field 3; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/**
 * The bridge's WAL syncs so far, from its own /metrics: the cumulative count per `le` bucket of
 * `smsbridge_sqlite_wal_sync_seconds` ("+Inf" is every sync).
 */
export async function walSyncs(url: string): Promise<Map<string, number>> {
  const text = await metricsText(url);
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^smsbridge_sqlite_wal_sync_seconds_bucket\{le="([^"]+)"\} (\d+)/gm))
    out.set(m[1] as string, Number(m[2]));
  return out;
}

/** What a bridge's runtime metrics say about its main thread: event-loop busy time and GC pauses by kind. */
export interface RuntimeSample {
  busySeconds: number;
  gc: Map<string, { count: number; seconds: number; buckets: Map<string, number> }>;
}

export async function runtimeSample(url: string): Promise<RuntimeSample> {
  const text = await metricsText(url);
  const busy = /^nodejs_eventloop_busy_seconds_total (\S+)/m.exec(text);
  const gc: RuntimeSample["gc"] = new Map();
  const of = (kind: string) => {
    const k = gc.get(kind) ?? { count: 0, seconds: 0, buckets: new Map<string, number>() };
    gc.set(kind, k);
    return k;
  };
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_bucket\{le="([^"]+)",kind="(\w+)"\} (\S+)/gm))
    of(m[2] as string).buckets.set(m[1] as string, Number(m[3]));
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_(count|sum)\{kind="(\w+)"\} (\S+)/gm)) {
    const k = of(m[2] as string);
    if (m[1] === "count") k.count = Number(m[3]);
    else k.seconds = Number(m[3]);
  }
  return { busySeconds: busy ? Number(busy[1]) : Number.NaN, gc };
}

/** GC pauses between two samples: per kind, how many and how long in all; and the bucket bound of the longest. */
export function gcBetween(
  before: RuntimeSample,
  after: RuntimeSample,
): { kinds: Array<{ kind: string; count: number; ms: number }>; totalMs: number; longestUnderMs: number } {
  const kinds: Array<{ kind: string; count: number; ms: number }> = [];
  let longest = 0;
  for (const [kind, a] of after.gc) {
    const b = before.gc.get(kind);
    const count = a.count - (b?.count ?? 0);
    if (count <= 0) continue;
    kinds.push({ kind, count, ms: (a.seconds - (b?.seconds ?? 0)) * 1000 });
    // The smallest bucket bound that holds every pause of this kind in the interval.
    const bounds = [...a.buckets.keys()].filter((le) => le !== "+Inf").sort((x, y) => Number(x) - Number(y));
    const under = bounds.find((le) => a.buckets.get(le)! - (b?.buckets.get(le) ?? 0) === count);
    longest = Math.max(longest, under ? Number(under) * 1000 : Number.POSITIVE_INFINITY);
  }
  return { kinds, totalMs: kinds.reduce((n, k) => n + k.ms, 0), longestUnderMs: longest };
}

/** Counters from a bridge's /metrics that explain a commit round: WAL syncs, and how forwarded rows were claimed. */
export async function roundCounters(
  url: string,
): Promise<{ syncs: number; atIngest: number; fromOutbox: number; delivered: number }> {
  const text = await metricsText(url);
  const sum = (re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
  return {
    syncs: sum(/^smsbridge_sqlite_wal_sync_seconds_count (\d+)/gm),
    atIngest: sum(/^smsbridge_outbox_claimed_total\{[^}]*by="ingest"[^}]*\} (\d+)/gm),
    fromOutbox: sum(/^smsbridge_outbox_claimed_total\{[^}]*by="claim"[^}]*\} (\d+)/gm),
    delivered: sum(/^smsbridge_forward_attempts_total\{[^}]*outcome="delivered"[^}]*\} (\d+)/gm),
  };
}

/** A bridge's Prometheus exposition, as text. */
async function metricsText(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

/**
 * The `server` block of a bench's bridge config. `BENCH_BACKGROUND_NICE` sets `server.backgroundNice` (the
 * delivery and checkpointer threads' nice steps below the main thread; unset = the bridge's default), so the
 * same bench can be run both ways.
 */
export function benchServerConfig(publicUrl: string): Record<string, unknown> {
  const nice = process.env.BENCH_BACKGROUND_NICE;
  return { port: 0, host: "127.0.0.1", publicUrl, ...(nice ? { backgroundNice: Number(nice) } : {}) };
}
