import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Agent, request } from "undici";
import { SIGNATURE_HEADER_LC, verify } from "../../protocol/signature.js";
import { createSimulatorSignature } from "../../providers/simulator/index.js";
import { eventually, freePort } from "./loop.js";

/**
 * Shared pieces of the fault suites (`*.faults.test.ts`): a recording helpdesk end with programmable faults,
 * real `smsbridge serve` processes, a provider that posts simulator-signed webhooks, and a lock that keeps
 * the suites which need the machine's PostgreSQL from running while another one stops it.
 */

export const MAIN = fileURLToPath(new URL("../../cli/main.ts", import.meta.url));
export const PHONE = "+16501234567";
export const HELPDESK_SECRET = "faults-reamaze-secret-0123456789";
export const SIM_SECRET = "faults-simulator-secret-abcdef";
export const ADMIN_TOKEN = "faults-admin-token-0123456789abcdef";

// ---- recording helpdesk -----------------------------------------------------------------------------------

export interface Delivery {
  id: string;
  instance: string;
  createdAt: string | undefined;
  /** When the POST arrived and when its answer was sent (ms since epoch). */
  at: number;
  answeredAt: number;
  status: number | "reset" | "hang";
}

/** What the helpdesk does with one POST: answer (after an optional delay), reset the connection, or never answer. */
export type Fault =
  | { kind: "answer"; status: number; delayMs?: number; headers?: Record<string, string> }
  | { kind: "reset" }
  | { kind: "hang" };

export interface Recorder {
  url: string;
  /** Every POST that carried a valid signature, in arrival order (including those answered with a fault). */
  deliveries: Delivery[];
  /** Ids answered 2xx at least once. */
  delivered(): Set<string>;
  /** POSTs whose signature did not verify (must stay 0). */
  badSignatures: number;
  /** Decides each POST's fate; default: 200 at once. */
  behaviour: (id: string, n: number) => Fault;
  close(): Promise<void>;
}

/**
 * The helpdesk end: a plain node:http server that checks X-Reamaze-Hmac-SHA256 over the exact bytes, records
 * (id, x-smsbridge-instance, time) for every POST and answers as `behaviour` says.
 */
export async function startRecorder(secret = HELPDESK_SECRET): Promise<Recorder> {
  const hung = new Set<ServerResponse>();
  let n = 0;
  const rec: Recorder = {
    url: "",
    deliveries: [],
    badSignatures: 0,
    behaviour: () => ({ kind: "answer", status: 200 }),
    delivered() {
      const s = new Set<string>();
      for (const d of rec.deliveries) if (typeof d.status === "number" && d.status < 300) s.add(d.id);
      return s;
    },
    close: async () => {},
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (!verify(body, req.headers[SIGNATURE_HEADER_LC], [secret]).ok) {
        rec.badSignatures++;
        res.writeHead(401).end();
        return;
      }
      const p = JSON.parse(body.toString("utf8")) as { id: string; created_at?: string };
      const d: Delivery = {
        id: p.id,
        instance: String(req.headers["x-smsbridge-instance"] ?? ""),
        createdAt: p.created_at,
        at: Date.now(),
        answeredAt: 0,
        status: 200,
      };
      rec.deliveries.push(d);
      const fault = rec.behaviour(p.id, n++);
      if (fault.kind === "reset") {
        d.status = "reset";
        d.answeredAt = Date.now();
        req.socket.destroy();
        return;
      }
      if (fault.kind === "hang") {
        d.status = "hang";
        hung.add(res);
        res.on("close", () => hung.delete(res));
        return;
      }
      const answer = () => {
        d.status = fault.status;
        d.answeredAt = Date.now();
        res.writeHead(fault.status, { "content-type": "application/json", ...fault.headers });
        res.end(fault.status < 300 ? '{"ok":true}' : '{"error":"fault injected by the test"}');
      };
      if (fault.delayMs) setTimeout(answer, fault.delayMs);
      else answer();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  rec.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/incoming/sms`;
  rec.close = () =>
    new Promise<void>((r) => {
      for (const res of hung) res.destroy();
      server.closeAllConnections();
      server.close(() => r());
    });
  return rec;
}

/** POSTs per id (for duplicate counts). */
export function countById(deliveries: readonly Delivery[]): Map<string, Delivery[]> {
  const m = new Map<string, Delivery[]>();
  for (const d of deliveries) {
    const list = m.get(d.id) ?? [];
    list.push(d);
    m.set(d.id, list);
  }
  return m;
}

// ---- bridge processes -------------------------------------------------------------------------------------

export interface BridgeConfigOptions {
  port: number;
  database: string;
  incomingUrl: string;
  forwarder?: Record<string, number>;
  timeoutMs?: number;
  concurrency?: number;
  bodyLimit?: number;
}

export function bridgeConfig(o: BridgeConfigOptions): Record<string, unknown> {
  return {
    server: { port: o.port, host: "127.0.0.1", ...(o.bodyLimit ? { bodyLimit: o.bodyLimit } : {}) },
    database: o.database,
    adminToken: ADMIN_TOKEN,
    log: { level: "warn" },
    forwarder: {
      retryBaseMs: 50,
      retryCapMs: 500,
      pollMs: 100,
      leaseMs: 3_000,
      breakerCooldownMs: 300,
      ...o.forwarder,
    },
    channels: [
      {
        id: "support",
        numbers: [PHONE],
        reamaze: { incomingUrl: o.incomingUrl, secrets: [HELPDESK_SECRET], timeoutMs: o.timeoutMs ?? 2_000 },
        provider: { type: "simulator", secret: SIM_SECRET },
        threading: { mode: "pair" },
        ...(o.concurrency ? { concurrency: o.concurrency } : {}),
      },
    ],
  };
}

/** One `smsbridge serve` process (restartable on the same port and config), its output kept in a log file. */
export class BridgeProcess {
  child: ChildProcess | undefined;
  readonly url: string;
  private readonly configFile: string;
  private readonly logFile: string;
  private starts = 0;

  constructor(
    readonly dir: string,
    readonly name: string,
    readonly port: number,
    config: Record<string, unknown>,
    /** Extra node flags (e.g. a heap cap for the fuzzer's memory check). */
    private readonly nodeArgs: string[] = [],
  ) {
    mkdirSync(dir, { recursive: true });
    this.url = `http://127.0.0.1:${port}`;
    this.configFile = join(dir, `${name}.json`);
    this.logFile = join(dir, `${name}.log`);
    writeFileSync(this.configFile, JSON.stringify(config));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The `x-smsbridge-instance` value this process sends (host:pid). */
  instance(host: string): string {
    return `${host}:${this.pid}`;
  }

  alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(timeoutMs = 30_000): Promise<void> {
    this.starts++;
    const fd = openSync(this.logFile, "a");
    const p = spawn(
      process.execPath,
      [...this.nodeArgs, "--import", "tsx", MAIN, "serve", "--config", this.configFile],
      {
        stdio: ["ignore", fd, fd],
      },
    );
    closeSync(fd);
    this.child = p;
    await eventually(
      `bridge ${this.name} (start ${this.starts}) to answer /readyz`,
      async () => {
        if (p.exitCode !== null) throw new Error(`exited with ${p.exitCode}; log:\n${this.logTail()}`);
        return (await fetch(`${this.url}/readyz`)).ok ? true : undefined;
      },
      timeoutMs,
    );
  }

  /** kill -9, and wait until the OS has reaped it (its port is free again). */
  async kill9(): Promise<void> {
    const p = this.child;
    if (!p || !this.alive()) return;
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGKILL");
    await exited;
  }

  async stop(): Promise<void> {
    const p = this.child;
    if (!p || !this.alive()) return;
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  }

  /** Resident memory of the process in kB (VmRSS). */
  rssKb(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    if (!m) throw new Error(`no VmRSS in /proc/${this.pid}/status`);
    return Number(m[1]);
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `smsbridge-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export { freePort };

// ---- the provider -----------------------------------------------------------------------------------------

/** Keep-alive connections for the load generators (fetch's default pool is fine too, this one is bounded). */
export const providerAgent = new Agent({ connections: 64, pipelining: 1, keepAliveTimeout: 10_000 });

export interface InboundMessage {
  id: string;
  customer: string;
  body: string;
  sentAt: string;
}

/** The simulator webhook for a message, as bytes, with its signature headers. */
export function signedInbound(m: InboundMessage, secret = SIM_SECRET) {
  const body = JSON.stringify({
    type: "message",
    id: m.id,
    from: m.customer,
    to: PHONE,
    body: m.body,
    media: [],
    sent_at: m.sentAt,
  });
  const ts = String(Math.floor(Date.now() / 1000));
  return {
    body,
    headers: {
      "content-type": "application/json",
      "x-simulator-timestamp": ts,
      "x-simulator-signature": createSimulatorSignature(secret, ts, body),
    },
  };
}

/** One provider webhook delivery; the status, or 0 when the connection failed (bridge down). */
export async function postInbound(baseUrl: string, m: InboundMessage): Promise<number> {
  const { body, headers } = signedInbound(m);
  try {
    const r = await request(`${baseUrl}/channels/support/inbound`, {
      method: "POST",
      headers,
      body,
      dispatcher: providerAgent,
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
    await r.body.dump();
    return r.statusCode;
  } catch {
    return 0;
  }
}

/** The helpdesk id the bridge gives a simulator message. */
export const helpdeskId = (providerId: string) => `simulator:${providerId}`;

/** A message numbered `i`: customers rotate so several threads are in play; sent_at strictly increasing. */
export function message(prefix: string, i: number, customers = 50): InboundMessage {
  return {
    id: `${prefix}${i}`,
    customer: `+1510555${String(1000 + (i % customers)).padStart(4, "0")}`,
    body: `message ${i}`,
    sentAt: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
  };
}

/** Runs `work(i)` for i in [0, total) on `concurrency` workers. */
export async function pool(total: number, concurrency: number, work: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) await work(next++);
    }),
  );
}

// ---- PostgreSQL -------------------------------------------------------------------------------------------

const LOCK_DIR = join(tmpdir(), "smsbridge-faults-postgres.lock");

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `fn` while holding a machine-wide lock: the fault files run two at a time, and the database-outage
 * suite stops the machine's PostgreSQL, so every suite that needs PostgreSQL takes this lock first.
 */
export async function withPostgresLock<T>(fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      mkdirSync(LOCK_DIR);
      writeFileSync(join(LOCK_DIR, "pid"), String(process.pid));
      break;
    } catch {
      let owner = 0;
      try {
        owner = Number(readFileSync(join(LOCK_DIR, "pid"), "utf8"));
      } catch {}
      // A holder that died (killed test run) must not block every later run.
      if (owner && !pidAlive(owner)) rmSync(LOCK_DIR, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}

export function pgVersion(): string {
  const versions = readdirSync("/etc/postgresql").sort((a, b) => Number(a) - Number(b));
  const v = versions.at(-1);
  if (!v)
    throw new Error("no cluster in /etc/postgresql: is PostgreSQL installed (apt-get install postgresql)?");
  return v;
}

export function pgCluster(action: "start" | "stop"): void {
  execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", pgVersion(), "main", action], {
    stdio: ["ignore", "ignore", "pipe"],
  });
}

export function pgReady(): boolean {
  try {
    execFileSync("pg_isready", ["-q", "-h", "127.0.0.1", "-p", "5432"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Starts the machine's PostgreSQL if it is not accepting connections, and waits until it is. */
export async function ensurePostgresUp(timeoutMs = 60_000): Promise<void> {
  if (pgReady()) return;
  try {
    pgCluster("start");
  } catch {
    // Already starting (or started by someone else): pg_isready decides.
  }
  await eventually(
    "PostgreSQL to accept connections again",
    async () => (pgReady() ? true : undefined),
    timeoutMs,
  );
}

export function mb(kb: number): string {
  return `${(kb / 1024).toFixed(1)} MB`;
}
