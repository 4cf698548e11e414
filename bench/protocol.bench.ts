// sign/verify throughput against raw createHmac: the library's overhead over the crypto it cannot avoid. And
// one POST to a bare server through exchange() (undici's dispatch API; the forwarder's and the providers'
// HTTP) against undici's request() on the same pool: CPU per POST in this process, alternating runs.
import { createHmac } from "node:crypto";
import { Agent, request } from "undici";
import { exchange } from "../src/protocol/exchange.js";
import { sign, verify } from "../src/protocol/signature.js";
import { type BenchResult, opsPerSec, startBare, withBaseline } from "./lib.js";

const SECRET = "your_shared_secret";
const BODY = Buffer.from(
  JSON.stringify({
    id: "twilio:SM0123456789abcdef0123456789abcdef",
    direction: "inbound",
    to: { name: "Support", phone: "+16501234567" },
    from: { name: "Customer name", phone: "+15105559999" },
    body: "This is the SMS message body",
    attachments: ["https://www.example.com/image1.png"],
    thread_id: "sms-conversation-id-123",
    created_at: "2019-08-06T23:21:15+0000",
  }),
);

export default async function run(): Promise<BenchResult[]> {
  const seconds = 3;
  const raw = opsPerSec(() => createHmac("sha256", SECRET).update(BODY).digest("base64"), seconds);
  const baseline = { name: "createHmac+base64", value: raw };
  const header = sign(BODY, SECRET);
  const signed = opsPerSec(() => sign(BODY, SECRET), seconds);
  const verified = opsPerSec(() => verify(BODY, header, [SECRET]), seconds);
  // Rotation: the first of two secrets matches, yet both digests are computed (constant time), so ~half.
  const rotated = opsPerSec(() => verify(BODY, header, [SECRET, "old_secret"]), seconds);
  const note = `${BODY.length}-byte body`;
  const posts = await postCpu();
  return [
    { name: "createHmac+base64 (raw)", value: raw, unit: "ops/s", note },
    withBaseline({ name: "sign", value: signed, unit: "ops/s", note }, baseline),
    withBaseline({ name: "verify (1 secret)", value: verified, unit: "ops/s", note }, baseline),
    withBaseline(
      { name: "verify (2 secrets)", value: rotated, unit: "ops/s", note: "all secrets always computed" },
      baseline,
    ),
    withBaseline(
      {
        name: "CPU per POST through exchange() (undici dispatch)",
        value: posts.exchange,
        unit: "µs",
        note: `to a bare node:http server, ${POST_CONCURRENCY} at once, best of ${POST_ROUNDS} alternating runs of ${POSTS.toLocaleString("en-US")}`,
      },
      { name: "undici request() on the same pool", value: posts.request },
    ),
  ];
}

const POSTS = 20_000;
const POST_CONCURRENCY = 64;
const POST_ROUNDS = 3;

async function postCpu(): Promise<{ exchange: number; request: number }> {
  const bare = await startBare();
  const agent = new Agent({ keepAliveTimeout: 30_000, connections: 128 });
  const url = new URL("/incoming/sms", bare.url);
  const headers = { "content-type": "application/json", "x-reamaze-hmac-sha256": sign(BODY, SECRET) };
  const viaExchange = async () => {
    const a = await exchange(agent, { url, method: "POST", headers, body: BODY }, 1024);
    if (a.status !== 200) throw new Error(`bare server answered ${a.status}`);
  };
  const viaRequest = async () => {
    const res = await request(url, { method: "POST", headers, body: BODY, dispatcher: agent });
    for await (const _ of res.body) {
      // read to the end, as the client did
    }
    if (res.statusCode !== 200) throw new Error(`bare server answered ${res.statusCode}`);
  };
  const cpuPerPost = async (post: () => Promise<void>, n: number) => {
    let left = n;
    const cpu0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: POST_CONCURRENCY }, async () => {
        while (left-- > 0) await post();
      }),
    );
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / n;
  };
  try {
    // Warm both paths (JIT, connections), then alternate; the best run of each is the least disturbed.
    await cpuPerPost(viaExchange, 2_000);
    await cpuPerPost(viaRequest, 2_000);
    const best = { exchange: Number.POSITIVE_INFINITY, request: Number.POSITIVE_INFINITY };
    for (let i = 0; i < POST_ROUNDS; i++) {
      best.exchange = Math.min(best.exchange, await cpuPerPost(viaExchange, POSTS));
      best.request = Math.min(best.request, await cpuPerPost(viaRequest, POSTS));
    }
    return best;
  } finally {
    await agent.close();
    await bare.close();
  }
}
