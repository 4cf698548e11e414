import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { classifyStatus, deliverSigned, postSigned } from "./client.js";
import { sign, verify } from "./signature.js";
import { closedServerUrl, startServer, testAgents } from "./test-support/http.js";

const SECRET = "your_shared_secret";
const PAYLOAD = {
  id: "sms-1",
  to: { phone: "+16501234567" },
  from: { name: "Zoë 山田", phone: "+15105559999" },
  body: "hi 👋\u2028there",
};

const agent = testAgents();

describe("classification of every answer, against a real server", () => {
  const big = "e".repeat(5000);
  const cases: Array<{
    name: string;
    status: number;
    headers?: Record<string, string>;
    body?: string;
    want: { kind: string; status?: number; retryAfterMs?: number; bodyLength?: number };
  }> = [
    { name: "200 delivered", status: 200, body: '{"ok":true}', want: { kind: "delivered", status: 200 } },
    { name: "201 delivered", status: 201, want: { kind: "delivered", status: 201 } },
    { name: "204 delivered", status: 204, want: { kind: "delivered", status: 204 } },
    { name: "500 retry", status: 500, want: { kind: "retry", status: 500 } },
    { name: "502 retry", status: 502, want: { kind: "retry", status: 502 } },
    {
      name: "503 retry, Retry-After seconds",
      status: 503,
      headers: { "retry-after": "120" },
      want: { kind: "retry", status: 503, retryAfterMs: 120_000 },
    },
    { name: "408 retry", status: 408, want: { kind: "retry", status: 408 } },
    {
      name: "429 retry, Retry-After seconds",
      status: 429,
      headers: { "retry-after": "7" },
      want: { kind: "retry", status: 429, retryAfterMs: 7_000 },
    },
    {
      name: "429 retry, Retry-After in the past",
      status: 429,
      headers: { "retry-after": "Tue, 06 Aug 2019 23:21:15 GMT" },
      want: { kind: "retry", status: 429, retryAfterMs: 0 },
    },
    {
      name: "400 rejected",
      status: 400,
      body: '{"error":"malformed JSON"}',
      want: { kind: "rejected", status: 400 },
    },
    { name: "401 rejected", status: 401, want: { kind: "rejected", status: 401 } },
    { name: "404 rejected", status: 404, want: { kind: "rejected", status: 404 } },
    { name: "413 rejected", status: 413, want: { kind: "rejected", status: 413 } },
    {
      name: "422 rejected, first KiB of a long answer",
      status: 422,
      body: big,
      want: { kind: "rejected", status: 422, bodyLength: 1024 },
    },
    {
      name: "500 with a long answer keeps the first KiB",
      status: 500,
      body: big,
      want: { kind: "retry", status: 500, bodyLength: 1024 },
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const srv = await startServer((_req, res) => {
        res.writeHead(c.status, { "content-type": "application/json", ...c.headers });
        res.end(c.status === 204 ? undefined : (c.body ?? `{"status":${c.status}}`));
      });
      try {
        const r = await postSigned({ url: srv.url, secret: SECRET, payload: PAYLOAD, dispatcher: agent() });
        assert.equal(r.kind, c.want.kind);
        assert.equal("status" in r ? r.status : undefined, c.want.status);
        assert.equal("retryAfterMs" in r ? r.retryAfterMs : undefined, c.want.retryAfterMs);
        if (c.want.bodyLength !== undefined) {
          assert.equal("body" in r ? r.body : undefined, big.slice(0, c.want.bodyLength));
        } else if (c.body !== undefined) {
          assert.equal("body" in r ? r.body : undefined, c.body);
        }
        if (r.kind === "rejected") assert.match(r.reason, new RegExp(`${c.status}`));
        // The forwarder's variant: the same outcome, without the record of the request.
        const outcome = await deliverSigned({
          url: srv.url,
          secret: SECRET,
          payload: PAYLOAD,
          dispatcher: agent(),
        });
        const { bytes: _b, signature: _s, durationMs: _d, ...expected } = r;
        assert.deepEqual(outcome, expected);
        assert.equal(srv.received.length, 2);
      } finally {
        await srv.close();
      }
    });
  }

  test("503 with Retry-After as an HTTP-date", async () => {
    const at = new Date(Date.now() + 60_000);
    const srv = await startServer((_req, res) => {
      res.writeHead(503, { "retry-after": at.toUTCString() });
      res.end();
    });
    try {
      const r = await postSigned({ url: srv.url, secret: SECRET, payload: PAYLOAD, dispatcher: agent() });
      assert.equal(r.kind, "retry");
      assert.ok(r.kind === "retry" && r.retryAfterMs !== undefined);
      // HTTP-dates have whole seconds, so up to a second is lost; the rest is the time the request took.
      assert.ok(r.retryAfterMs > 30_000 && r.retryAfterMs <= 60_000, `retryAfterMs ${r.retryAfterMs}`);
    } finally {
      await srv.close();
    }
  });
});

describe("what arrives is exactly what was signed", () => {
  test("an object is serialised once; the server verifies the bytes it received", async () => {
    const srv = await startServer((_req, res) => res.writeHead(201).end());
    try {
      const r = await postSigned({ url: srv.url, secret: SECRET, payload: PAYLOAD, dispatcher: agent() });
      const got = srv.received[0];
      assert.ok(got);
      assert.equal(got.method, "POST");
      assert.equal(got.url, "/incoming/sms");
      assert.deepEqual(got.bytes, Buffer.from(JSON.stringify(PAYLOAD), "utf8"));
      assert.deepEqual(got.bytes, r.bytes);
      assert.equal(got.headers["x-reamaze-hmac-sha256"], r.signature);
      assert.equal(r.signature, sign(got.bytes, SECRET));
      assert.deepEqual(verify(got.bytes, got.headers["x-reamaze-hmac-sha256"], [SECRET]), {
        ok: true,
        secretIndex: 0,
      });
      assert.match(got.headers["content-type"] ?? "", /^application\/json/);
      assert.equal(got.headers["content-length"], String(got.bytes.length));
    } finally {
      await srv.close();
    }
  });

  const raw: Array<[string, string | Buffer]> = [
    ["a pretty-printed string with odd key order", '{\n  "body": "hi",\n  "id": "1"\n}\n'],
    ["bytes with \\u escapes", Buffer.from('{"id":"1","body":"caf\\u00e9 \\ud83d\\udc4b"}')],
    ["bytes that are not even JSON", Buffer.from([0xff, 0x00, 0x7b])],
  ];
  for (const [name, payload] of raw) {
    test(`${name} is sent untouched`, async () => {
      const srv = await startServer((_req, res) => res.writeHead(200).end());
      try {
        const r = await postSigned({ url: srv.url, secret: SECRET, payload, dispatcher: agent() });
        const want = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
        assert.deepEqual(srv.received[0]?.bytes, want);
        assert.equal(srv.received[0]?.headers["x-reamaze-hmac-sha256"], sign(want, SECRET));
        assert.equal(r.kind, "delivered");
      } finally {
        await srv.close();
      }
    });
  }

  test("extra headers cannot replace the signature", async () => {
    const srv = await startServer((_req, res) => res.writeHead(200).end());
    try {
      await postSigned({
        url: srv.url,
        secret: SECRET,
        payload: PAYLOAD,
        dispatcher: agent(),
        headers: { "X-Reamaze-Hmac-SHA256": "forged", "x-trace": "abc" },
      });
      const h = srv.received[0]?.headers;
      assert.equal(h?.["x-trace"], "abc");
      assert.equal(h?.["x-reamaze-hmac-sha256"], sign(JSON.stringify(PAYLOAD), SECRET));
    } finally {
      await srv.close();
    }
  });
});

describe("connections and failures", () => {
  test("keep-alive: posts reuse connections", async () => {
    const srv = await startServer((_req, res) => res.writeHead(200).end("{}"));
    try {
      const dispatcher = agent();
      for (let i = 0; i < 10; i++) {
        const r = await postSigned({
          url: srv.url,
          secret: SECRET,
          payload: { ...PAYLOAD, id: `k${i}` },
          dispatcher,
        });
        assert.equal(r.kind, "delivered");
      }
      assert.equal(srv.received.length, 10);
      // undici may open a second socket while the first is being released; never one per request.
      assert.ok(srv.connections() <= 2, `${srv.connections()} connections for 10 requests`);
    } finally {
      await srv.close();
    }
  });

  test("the default dispatcher keeps connections alive too", async () => {
    const srv = await startServer((_req, res) => res.writeHead(200).end("{}"));
    try {
      for (let i = 0; i < 10; i++) await postSigned({ url: srv.url, secret: SECRET, payload: PAYLOAD });
      assert.ok(srv.connections() <= 2, `${srv.connections()} connections for 10 requests`);
    } finally {
      await srv.close();
    }
  });

  test("connection refused is a retry", async () => {
    const url = await closedServerUrl();
    const r = await postSigned({ url, secret: SECRET, payload: PAYLOAD, dispatcher: agent() });
    assert.equal(r.kind, "retry");
    assert.equal("status" in r ? r.status : undefined, undefined);
    assert.match(r.kind === "retry" ? r.reason : "", /ECONNREFUSED/);
  });

  test("no answer within the timeout is a retry", async () => {
    const srv = await startServer(() => {
      // Never answers.
    });
    try {
      const r = await postSigned({
        url: srv.url,
        secret: SECRET,
        payload: PAYLOAD,
        timeoutMs: 300,
        dispatcher: agent(),
      });
      assert.equal(r.kind, "retry");
      assert.match(r.kind === "retry" ? r.reason : "", /timed out after 300 ms/);
    } finally {
      await srv.close();
    }
  });

  test("headers sent but the body stalls: still a timeout", async () => {
    const srv = await startServer((_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("{");
    });
    try {
      const r = await postSigned({
        url: srv.url,
        secret: SECRET,
        payload: PAYLOAD,
        timeoutMs: 300,
        dispatcher: agent(),
      });
      assert.equal(r.kind, "retry");
      assert.match(r.kind === "retry" ? r.reason : "", /timed out/);
    } finally {
      await srv.close();
    }
  });

  test("the caller's AbortSignal stops the request", async () => {
    const controller = new AbortController();
    const srv = await startServer(() => controller.abort());
    try {
      const r = await postSigned({
        url: srv.url,
        secret: SECRET,
        payload: PAYLOAD,
        signal: controller.signal,
        dispatcher: agent(),
      });
      assert.equal(r.kind, "retry");
      assert.match(r.kind === "retry" ? r.reason : "", /aborted/);
    } finally {
      await srv.close();
    }
  });

  test("an already aborted signal sends nothing", async () => {
    const srv = await startServer((_req, res) => res.writeHead(200).end());
    try {
      const r = await postSigned({
        url: srv.url,
        secret: SECRET,
        payload: PAYLOAD,
        signal: AbortSignal.abort(),
        dispatcher: agent(),
      });
      assert.equal(r.kind, "retry");
      assert.equal(srv.received.length, 0);
    } finally {
      await srv.close();
    }
  });

  test("a URL that cannot be requested is rejected, not retried", async () => {
    for (const url of ["not a url", "ftp://127.0.0.1/x"]) {
      const r = await postSigned({ url, secret: SECRET, payload: PAYLOAD, dispatcher: agent() });
      assert.equal(r.kind, "rejected", url);
      assert.match(r.kind === "rejected" ? r.reason : "", /cannot request/);
    }
  });

  test("deliverSigned: the same failures, as outcomes; an unserialisable payload rejects", async () => {
    const url = await closedServerUrl();
    const refused = await deliverSigned({ url, secret: SECRET, payload: PAYLOAD, dispatcher: agent() });
    assert.equal(refused.kind, "retry");
    assert.match(refused.kind === "retry" ? refused.reason : "", /ECONNREFUSED/);
    const bad = await deliverSigned({
      url: "not a url",
      secret: SECRET,
      payload: PAYLOAD,
      dispatcher: agent(),
    });
    assert.equal(bad.kind, "rejected");
    // A rejected promise, not a throw: the delivery thread answers it as a failed delivery.
    const pending = deliverSigned({ url, secret: SECRET, payload: { n: 1n }, dispatcher: agent() });
    await assert.rejects(pending, TypeError);
  });
});

describe("classifyStatus", () => {
  const table: Array<[number, string]> = [
    [199, "rejected"],
    [200, "delivered"],
    [299, "delivered"],
    [300, "rejected"],
    [304, "rejected"],
    [400, "rejected"],
    [407, "rejected"],
    [408, "retry"],
    [409, "rejected"],
    [428, "rejected"],
    [429, "retry"],
    [499, "rejected"],
    [500, "retry"],
    [599, "retry"],
  ];
  for (const [status, kind] of table) {
    test(`${status} → ${kind}`, () => {
      assert.equal(classifyStatus(status, "").kind, kind);
    });
  }
});
