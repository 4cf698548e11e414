import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { Worker } from "node:worker_threads";
import { SIGNATURE_HEADER_LC, verify } from "../protocol/signature.js";
import { Deliverer } from "./deliverer.js";

/** A helpdesk end on loopback: answers by the path, and checks every signature it receives. */
describe("Deliverer: the forwarder's HTTP on a worker thread", () => {
  const SECRET = "deliverer-secret";
  let server: Server;
  let base: string;
  const received: Array<{ path: string; body: string; signed: boolean }> = [];
  const hanging: ServerResponse[] = [];

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const signed = verify(body, String(req.headers[SIGNATURE_HEADER_LC] ?? ""), [SECRET]).ok;
        received.push({ path: req.url ?? "", body: body.toString("utf8"), signed });
        if (req.url === "/ok") res.writeHead(201, { "content-type": "application/json" }).end('{"ok":true}');
        else if (req.url === "/busy") res.writeHead(503, { "retry-after": "7" }).end("try later");
        else if (req.url === "/no") res.writeHead(422).end('{"error":"bad phone"}');
        else hanging.push(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  /** A fresh deliverer for one test, closed (its thread stopped) whatever the test does. */
  async function withDeliverer(fn: (d: Deliverer) => Promise<void>): Promise<void> {
    const d = new Deliverer();
    try {
      await fn(d);
    } finally {
      await d.close();
    }
  }

  const job = (path: string, body: string) => ({
    url: base + path,
    secret: SECRET,
    payload: new Uint8Array(Buffer.from(body)),
    timeoutMs: 5_000,
    headers: { "x-smsbridge-instance": "test" },
  });

  test("each answer becomes the outcome postSigned gives, for jobs sent together", async () => {
    await withDeliverer(async (d) => {
      const [ok, busy, no] = await Promise.all([
        d.post(job("/ok", '{"id":"a"}')),
        d.post(job("/busy", '{"id":"b"}')),
        d.post(job("/no", '{"id":"c"}')),
      ]);
      assert.deepEqual(ok, { kind: "delivered", status: 201, body: '{"ok":true}' });
      assert.equal(busy.kind, "retry");
      assert.equal(busy.kind === "retry" && busy.retryAfterMs, 7_000);
      assert.deepEqual(no, {
        kind: "rejected",
        status: 422,
        reason: "HTTP 422",
        body: '{"error":"bad phone"}',
      });
      const bodies = received.filter((r) => ["/ok", "/busy", "/no"].includes(r.path));
      assert.deepEqual(bodies.map((r) => r.body).sort(), ['{"id":"a"}', '{"id":"b"}', '{"id":"c"}']);
      assert.ok(
        bodies.every((r) => r.signed),
        "every body arrives signed with the channel's secret",
      );
    });
  });

  test("a job on a view of a larger buffer sends exactly the view's bytes", async () => {
    await withDeliverer(async (d) => {
      const big = Buffer.from('xxxx{"id":"view"}yyyy');
      const outcome = await d.post({ ...job("/ok", ""), payload: big.subarray(4, big.length - 4) });
      assert.equal(outcome.kind, "delivered");
      assert.equal(received.at(-1)?.body, '{"id":"view"}');
    });
  });

  test("callbacks are kept in reused slots: the table grows with jobs in flight, not with jobs ever sent", async () => {
    await withDeliverer(async (d) => {
      for (let round = 0; round < 50; round++) {
        const outcomes = await Promise.all(
          [1, 2, 3, 4].map((i) => d.post(job("/ok", `{"id":"${round}-${i}"}`))),
        );
        assert.ok(outcomes.every((o) => o.kind === "delivered"));
      }
      const { slots } = d as unknown as { slots: unknown[] };
      assert.equal(slots.length, 4, "200 jobs, at most 4 in flight at once");
      assert.ok(
        slots.every((s) => s === undefined),
        "every callback released once called",
      );
    });
  });

  test("if the thread dies, jobs in flight end as retries and the next job starts a new thread", async () => {
    await withDeliverer(async (d) => {
      const inFlight = d.post(job("/hang", '{"id":"h"}'));
      // Wait until the request reached the server, then kill the thread under it.
      while (hanging.length === 0) await new Promise((r) => setTimeout(r, 10));
      await (d as unknown as { worker: Worker }).worker.terminate();
      const outcome = await inFlight;
      assert.equal(outcome.kind, "retry");
      assert.match(outcome.kind === "retry" ? outcome.reason : "", /delivery thread exited/);
      assert.equal((await d.post(job("/ok", '{"id":"after"}'))).kind, "delivered");
    });
  });
});
