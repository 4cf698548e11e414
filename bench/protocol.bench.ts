// sign/verify throughput against raw createHmac: the library's overhead over the crypto it cannot avoid.
import { createHmac } from "node:crypto";
import { sign, verify } from "../src/protocol/signature.js";
import { type BenchResult, opsPerSec, withBaseline } from "./lib.js";

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
  return [
    { name: "createHmac+base64 (raw)", value: raw, unit: "ops/s", note },
    withBaseline({ name: "sign", value: signed, unit: "ops/s", note }, baseline),
    withBaseline({ name: "verify (1 secret)", value: verified, unit: "ops/s", note }, baseline),
    withBaseline(
      { name: "verify (2 secrets)", value: rotated, unit: "ops/s", note: "all secrets always computed" },
      baseline,
    ),
  ];
}
