import assert from "node:assert/strict";
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { after, before, beforeEach, describe, test } from "node:test";
import pino from "pino";
import type { HttpAnswer } from "../providers/types.js";
import {
  matchWebhookRoute,
  serverWithWebhooks,
  type WebhookHttp,
  type WebhookRequest,
  type WebhookRoute,
  webhookHttp,
} from "./webhook-http.js";

describe("matchWebhookRoute", () => {
  const cases: Array<[string, { route: WebhookRoute; channelId: string } | undefined]> = [
    ["/channels/tw/inbound", { route: "inbound", channelId: "tw" }],
    ["/channels/tw/status", { route: "status", channelId: "tw" }],
    ["/channels/tw/inbound?foo=1&bar=2", { route: "inbound", channelId: "tw" }],
    ["/channels/a%20b/status", { route: "status", channelId: "a b" }],
    ["/channels/tw/inbound/", undefined],
    ["/channels//inbound", undefined],
    ["/channels/a/b/inbound", undefined],
    ["/channels/tw/reamaze", { route: "reamaze", channelId: "tw" }],
    ["/channels/tw/reamaze?x=1", { route: "reamaze", channelId: "tw" }],
    ["/channels/tw/reamazes", undefined],
    ["/channels/tw/inbounds", undefined],
    ["/channels/%E0%A4%A/inbound", undefined],
    ["/CHANNELS/tw/inbound", undefined],
    ["/api/messages", undefined],
    ["/", undefined],
  ];
  for (const [url, want] of cases) {
    test(url, () => assert.deepEqual(matchWebhookRoute(url), want));
  }
});

describe("webhook routes on node:http, in front of the rest", () => {
  const LIMIT = 64;
  const calls: Array<{ route: WebhookRoute; channelId: string; req: WebhookRequest }> = [];
  const logged: string[] = [];
  let answer: (req: WebhookRequest) => Promise<HttpAnswer>;
  let webhooks: WebhookHttp;
  let base: { port: number };
  let close: () => Promise<void>;

  before(async () => {
    const log = pino(
      { level: "error" },
      new Writable({
        write(chunk, _enc, cb) {
          logged.push(String(chunk));
          cb();
        },
      }),
    );
    webhooks = webhookHttp({
      bodyLimit: LIMIT,
      log,
      handle: (route, channelId, req) => {
        calls.push({ route, channelId, req });
        return answer(req);
      },
    });
    const server = serverWithWebhooks(webhooks)(
      (_req, res) => {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("the rest");
      },
      { keepAliveTimeout: 7_000, requestTimeout: 9_000, connectionTimeout: 0 },
    );
    assert.equal(server.keepAliveTimeout, 7_000);
    assert.equal(server.requestTimeout, 9_000);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = { port: (server.address() as AddressInfo).port };
    close = () => new Promise((r) => server.close(() => r()));
  });
  after(() => close());
  beforeEach(() => {
    calls.length = 0;
    logged.length = 0;
    answer = async () => ({
      status: 200,
      headers: { "content-type": "application/xml" },
      body: "<Response/>",
    });
  });

  /** A request with the body written in the given pieces (chunked when there is more than one). */
  function send(
    method: string,
    path: string,
    pieces: Buffer[] = [],
    headers: Record<string, string> = {},
  ): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    return new Promise((resolve, reject) => {
      // One piece: sent with its Content-Length; several: chunked.
      const length = pieces.length === 1 ? { "content-length": String(pieces[0]!.length) } : {};
      const req = request(
        { host: "127.0.0.1", port: base.port, method, path, headers: { ...length, ...headers } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString(),
            }),
          );
        },
      );
      req.on("error", reject);
      for (const p of pieces) req.write(p);
      req.end();
    });
  }

  test("a POST body reaches the handler byte for byte, in several chunks too; the answer goes back as given", async () => {
    const bytes = Buffer.from([0x42, 0x6f, 0x64, 0x79, 0x3d, 0xe2, 0x82, 0xac, 0x00, 0xff]);
    for (const pieces of [[bytes], [bytes.subarray(0, 6), bytes.subarray(6, 7), bytes.subarray(7)]]) {
      calls.length = 0;
      const r = await send("POST", "/channels/tw/inbound?x=1", pieces, { "x-twilio-signature": "abc" });
      assert.equal(r.status, 200);
      assert.equal(r.body, "<Response/>");
      assert.equal(r.headers["content-type"], "application/xml");
      assert.equal(r.headers["content-length"], "11");
      assert.equal(calls.length, 1);
      const c = calls[0]!;
      assert.equal(c.route, "inbound");
      assert.equal(c.channelId, "tw");
      assert.equal(c.req.method, "POST");
      assert.equal(c.req.url, "/channels/tw/inbound?x=1");
      assert.equal(c.req.headers["x-twilio-signature"], "abc");
      assert.deepEqual(c.req.body, bytes);
    }
  });

  test("a staff reply's POST reaches the handler as the route reamaze", async () => {
    calls.length = 0;
    const r = await send("POST", "/channels/tw/reamaze", [Buffer.from('{"body":"hi"}')]);
    assert.equal(r.status, 200);
    assert.deepEqual(
      calls.map((c) => [c.route, c.channelId, c.req.body.toString()]),
      [["reamaze", "tw", '{"body":"hi"}']],
    );
  });

  test("GET and HEAD reach the handler with an empty body; HEAD's answer has none", async () => {
    const get = await send("GET", "/channels/vg/status?msisdn=1");
    assert.equal(get.status, 200);
    assert.equal(get.body, "<Response/>");
    const head = await send("HEAD", "/channels/vg/inbound");
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.deepEqual(
      calls.map((c) => [c.req.method, c.route, c.req.body.length]),
      [
        ["GET", "status", 0],
        ["HEAD", "inbound", 0],
      ],
    );
  });

  test("other methods and paths go to the next listener", async () => {
    for (const [method, path] of [
      ["PUT", "/channels/tw/inbound"],
      ["DELETE", "/channels/tw/status"],
      ["GET", "/channels/tw/reamaze"],
      ["HEAD", "/channels/tw/reamaze"],
      ["PUT", "/channels/tw/reamaze"],
      ["POST", "/channels/tw/replies"],
      ["GET", "/metrics"],
    ] as const) {
      const r = await send(method, path);
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal(r.body, method === "HEAD" ? "" : "the rest");
    }
    assert.equal(calls.length, 0);
  });

  test("a body over the limit is refused with 413 and never reaches the handler", async () => {
    const big = Buffer.alloc(LIMIT + 1, 0x61);
    // Declared by Content-Length: refused before reading; streamed (chunked): refused once the count passes it.
    for (const pieces of [[big], [big.subarray(0, 40), big.subarray(40)]]) {
      const r = await send("POST", "/channels/tw/inbound", pieces);
      assert.equal(r.status, 413);
      assert.deepEqual(JSON.parse(r.body), { error: `body is larger than the limit of ${LIMIT} bytes` });
      assert.match(String(r.headers["content-type"]), /^application\/json/);
    }
    // A declared length over the limit is answered before the body comes: the client need not send it.
    const early = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: base.port,
          method: "POST",
          path: "/channels/tw/inbound",
          headers: { "content-length": String(LIMIT * 1000) },
        },
        (res) => {
          resolve(res.statusCode ?? 0);
          req.destroy();
        },
      );
      req.on("error", reject);
      req.write("a=1");
    });
    assert.equal(early, 413);
    const exact = await send("POST", "/channels/tw/inbound", [Buffer.alloc(LIMIT, 0x61)]);
    assert.equal(exact.status, 200);
    assert.equal(calls.length, 1);
  });

  test("a handler that fails answers 500 with a JSON error, and it is logged", async () => {
    answer = async () => {
      throw new Error("boom");
    };
    const r = await send("POST", "/channels/tw/inbound", [Buffer.from("a=1")]);
    assert.equal(r.status, 500);
    assert.deepEqual(JSON.parse(r.body), { error: "internal error" });
    assert.equal(logged.length, 1);
    assert.match(logged[0]!, /"msg":"request failed"/);
    assert.match(logged[0]!, /boom/);
  });

  test("a client that goes away mid-body reaches no handler, and the server goes on", async () => {
    await new Promise<void>((resolve) => {
      const req = request({
        host: "127.0.0.1",
        port: base.port,
        method: "POST",
        path: "/channels/tw/inbound",
        headers: { "content-length": "50" },
      });
      req.on("error", () => resolve());
      req.write("a=1&b=");
      setTimeout(() => req.destroy(), 50);
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(calls.length, 0);
    const r = await send("POST", "/channels/tw/inbound", [Buffer.from("a=1")]);
    assert.equal(r.status, 200);
  });

  test("once closing, every webhook gets 503 with Retry-After and reaches no handler", async () => {
    webhooks.close();
    const r = await send("POST", "/channels/tw/inbound", [Buffer.from("a=1")]);
    assert.equal(r.status, 503);
    assert.equal(r.headers["retry-after"], "5");
    assert.match(JSON.parse(r.body).error, /shutting down/);
    assert.equal(calls.length, 0);
    assert.equal((await send("GET", "/metrics")).body, "the rest");
  });
});
