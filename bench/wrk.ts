// wrk (C, Debian's /usr/bin/wrk) as a load generator: a few µs of CPU per request where autocannon spends tens,
// so on a 2-core machine it leaves the server under test most of the machine. It cannot sign per request (its
// Lua has no HMAC): it cycles through posts signed beforehand.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { cpuSeconds } from "./lib.js";
import { INBOUND_PATH, twilioWebhook } from "./twilio-webhook.js";

export const WRK = process.env.BENCH_WRK ?? "/usr/bin/wrk";

export const wrkInstalled = (): boolean => existsSync(WRK);

export interface GenRun {
  rps: number;
  /** Requests answered during the run. */
  total: number;
  p50: number;
  p99: number;
  /** CPU seconds used by the generator and by the server during the run. */
  genCpu: number;
  serverCpu: number;
  wall: number;
  bad: number;
}

/** Writes `count` distinct signed Twilio posts and a wrk script that sends them in turn; returns the script. */
export function wrkScript(dir: string, count: number): string {
  const data = join(dir, `requests-${count}.tsv`);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const w = twilioWebhook();
    lines.push(`${w.headers["x-twilio-signature"]}\t${w.body}`);
  }
  writeFileSync(data, `${lines.join("\n")}\n`);
  const script = join(dir, `twilio-${count}.lua`);
  // Each request is read and formatted when it is sent, as any generator builds its requests: formatting them
  // all in init() took a second of wrk's CPU before the run and counted in its CPU per request. (Not before
  // init() anyway: until then wrk.headers has no Host, and a request without Host is a 400 from node:http.)
  writeFileSync(
    script,
    `local file
init = function(args)
  file = assert(io.open(${JSON.stringify(data)}, "r"))
end
request = function()
  local line = file:read("*l")
  if not line then
    file:seek("set", 0)
    line = file:read("*l")
  end
  local sig, body = line:match("^([^\t]*)\t(.*)$")
  return wrk.format("POST", ${JSON.stringify(INBOUND_PATH)}, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = sig,
  }, body)
end
`,
  );
  return script;
}

/** wrk's text durations ("812.00us", "1.23ms", "2.01s") in milliseconds. */
function wrkMs(v: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v ?? "");
  if (!m) return Number.NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000;
}

export async function wrkRun(
  url: string,
  serverPid: number,
  script: string,
  seconds: number,
  connections: number,
): Promise<GenRun> {
  // One thread: on a 2-core machine a second wrk thread would only take the server's core.
  const threads = Math.max(1, Math.floor(availableParallelism() / 2));
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, "--latency", "-s", script, url];
  // bash's `times` prints the CPU its children used: wrk's own, measured by the kernel.
  const child = spawn("bash", ["-c", `"$0" "$@"; times`, WRK, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    out += c.toString("utf8");
  });
  const s0 = cpuSeconds(serverPid);
  const t0 = performance.now();
  const [code] = (await once(child, "exit")) as [number | null];
  const wall = (performance.now() - t0) / 1000;
  const serverCpu = cpuSeconds(serverPid) - s0;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  if (code !== 0 || !Number.isFinite(rps)) throw new Error(`wrk failed (exit ${code}):\n${out}`);
  const times = [...out.matchAll(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/g)];
  const kids = times.at(-1);
  const genCpu = kids
    ? Number(kids[1]) * 60 + Number(kids[2]) + Number(kids[3]) * 60 + Number(kids[4])
    : Number.NaN;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = sock ? sock.slice(1).reduce((s, v) => s + Number(v), 0) : 0;
  return {
    rps,
    total: Number(/(\d+) requests in /.exec(out)?.[1] ?? Number.NaN),
    p50: wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
    p99: wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
    genCpu,
    serverCpu,
    wall,
    bad: non2xx + errors,
  };
}
