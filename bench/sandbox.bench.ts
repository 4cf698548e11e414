// /incoming/sms throughput of the sandbox — signed, verified, validated, stored in a --db file (WAL) and
// written to the request log — next to a bare node:http server measured in the same run.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sign } from "../src/protocol/signature.js";
import { type BenchResult, load, startBare, startChild, withBaseline } from "./lib.js";

const SECRET = "bench_shared_secret";
const CHANNEL = "+16501234567";
const DURATION_SEC = 5;
const CONNECTIONS = 50;

const serverModule = fileURLToPath(new URL("../src/sandbox/server.ts", import.meta.url));

// The sandbox in its own process, so autocannon does not share its event loop.
function childScript(dbFile: string): string {
  return `
import { startSandbox } from ${JSON.stringify(serverModule)};
const s = await startSandbox({
  port: 0,
  dbFile: ${JSON.stringify(dbFile)},
  config: { channels: [{ name: "Bench", phone: ${JSON.stringify(CHANNEL)}, secret: ${JSON.stringify(SECRET)} }] },
});
console.log("sandbox listening " + s.url);
process.on("SIGTERM", () => s.close().then(() => process.exit(0)));
`;
}

function incoming(i: number, customers: number) {
  // Threads spread over many customers, as a busy day would: a mix of new conversations and appends.
  const body = JSON.stringify({
    id: `bench-${process.pid}-${i}`,
    to: { name: "Bench", phone: CHANNEL },
    from: { name: "Customer", phone: `+1510555${String(i % customers).padStart(4, "0")}` },
    body: "Hello, is my order on its way? It was due yesterday.",
    thread_id: `thread-${i % customers}`,
  });
  return {
    method: "POST",
    path: "/incoming/sms",
    headers: { "x-reamaze-hmac-sha256": sign(body, SECRET) },
    body,
  };
}

export default async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "smsbridge-sandbox-bench-"));
  const bare = await startBare();
  let bareResult: Awaited<ReturnType<typeof load>>;
  try {
    let n = 0;
    bareResult = await load({
      url: bare.url,
      connections: CONNECTIONS,
      durationSec: DURATION_SEC,
      requests: () => incoming(n++, 1000),
    });
  } finally {
    await bare.close();
  }
  const sandbox = await startChild(
    [process.execPath, "--import", "tsx", "--input-type=module", "-e", childScript(join(dir, "sandbox.db"))],
    {},
    /sandbox listening (http:\/\/\S+)/,
  );
  let r: Awaited<ReturnType<typeof load>>;
  try {
    let n = 0;
    r = await load({
      url: sandbox.url,
      connections: CONNECTIONS,
      durationSec: DURATION_SEC,
      requests: () => incoming(n++, 1000),
    });
  } finally {
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const baseline = { name: "bare node:http", value: Math.round(bareResult.rps) };
  return [
    {
      name: "bare node:http (same signed requests)",
      value: Math.round(bareResult.rps),
      unit: "req/s",
      note: `p50 ${bareResult.p50} ms, p99 ${bareResult.p99} ms`,
    },
    withBaseline(
      {
        name: "sandbox /incoming/sms (signed, --db WAL)",
        value: Math.round(r.rps),
        unit: "req/s",
        note: `${CONNECTIONS} conns, p50 ${r.p50} ms, p99 ${r.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}`,
      },
      baseline,
    ),
  ];
}
