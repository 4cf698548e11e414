import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, before, describe, test } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { request } from "undici";
import { createHarness, type Harness } from "../test-support/harness.js";
import type { ProviderAdapter, ProviderEvent, SendResult } from "../types.js";
import { simulatorProvider } from "./index.js";
import {
  type PhoneNetwork,
  registerPhoneNetwork,
  type SimulatorChannel,
  type SimulatorMessage,
} from "./network.js";

const SECRET = "network-test-secret-41c2";
const CHANNEL_NUMBER = "+15005550006";
const CUSTOMER = "+16505550100";

/** What the stand-in bridge received: verified with the adapter, parsed into events. */
interface Received {
  route: "inbound" | "status";
  verified: boolean;
  events: ProviderEvent[];
}

/**
 * A small real receiver standing in for the bridge's inbound and status routes: it verifies each webhook with
 * the simulator adapter's own `verify`, parses it, and answers as the test says.
 */
async function startReceiver(adapter: () => ProviderAdapter) {
  const received: Received[] = [];
  let mode: "ok" | "fail" | "hang" = "ok";
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = {
      method: req.method ?? "POST",
      url: req.url ?? "",
      headers: req.headers,
      body: Buffer.concat(chunks),
    };
    const route = req.url?.endsWith("/status") ? "status" : "inbound";
    const verdict = await adapter().verify(raw);
    if (!verdict.ok) {
      received.push({ route, verified: false, events: [] });
      return res
        .writeHead(verdict.status, { "content-type": "application/json" })
        .end(JSON.stringify({ error: verdict.reason }));
    }
    received.push({ route, verified: true, events: adapter().parse(raw) });
    if (mode === "hang") return; // never answers
    if (mode === "fail")
      return res.writeHead(500, { "content-type": "application/json" }).end('{"error":"database is down"}');
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    setMode(m: typeof mode) {
      mode = m;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function waitFor<T>(what: string, probe: () => T | undefined, limitMs = 5000): Promise<T> {
  const until = Date.now() + limitMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("phone network", () => {
  let app: FastifyInstance;
  let base: string;
  let network: PhoneNetwork;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let h: Harness;
  let adapter: ProviderAdapter;
  let channel: SimulatorChannel;
  let randomValue = 0.99;

  before(async () => {
    h = createHarness();
    receiver = await startReceiver(() => adapter);
    app = Fastify({ logger: false });
    channel = {
      id: "support",
      numbers: [CHANNEL_NUMBER],
      secret: SECRET,
      inboundUrl: `${receiver.url}/channels/support/inbound`,
      statusUrl: `${receiver.url}/channels/support/status`,
    };
    network = registerPhoneNetwork(app, {
      channels: () => [channel],
      log: h.ctx.log,
      random: () => randomValue,
      inboundTimeoutMs: 300,
    });
    // A route outside the simulator: its body parsing must not be changed by the plugin.
    app.post("/echo", async (req) => ({ got: req.body }));
    await app.listen({ port: 0, host: "127.0.0.1" });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    // The adapter finds the carrier API from the channel's inbound URL, as configured in the bridge.
    h.ctx.urls = { inbound: `${base}/channels/support/inbound`, status: channel.statusUrl };
    adapter = simulatorProvider.create(simulatorProvider.config.parse({ secret: SECRET }), h.ctx);
  });

  after(async () => {
    await app.close();
    await receiver.close();
    h.assertNoSecretsLogged([SECRET]);
    h.assertNoRealNetwork();
  });

  afterEach(() => {
    network.clear();
    network.setFaults({
      ...network.faults(),
      next: [],
      retryable: 0,
      permanent: 0,
      opted_out: 0,
      undelivered: 0,
    });
    receiver.received.length = 0;
    receiver.setMode("ok");
    randomValue = 0.99;
    channel.secret = SECRET;
  });

  async function call(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown, raw?: string) {
    const res = await request(`${base}${path}`, {
      method,
      headers: body !== undefined || raw !== undefined ? { "content-type": "application/json" } : {},
      body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
    });
    const text = await res.body.text();
    return {
      status: res.statusCode,
      headers: res.headers,
      text,
      json: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    };
  }

  /** Status reports for one message (reports of earlier tests' messages may still be arriving). */
  const reportsFor = (id: string, n: number) => {
    const mine = receiver.received.filter((x) =>
      x.events.some((e) => e.kind === "status" && e.providerMessageId === id),
    );
    return mine.length >= n ? mine : undefined;
  };

  const send = (
    extra: Partial<Parameters<ProviderAdapter["send"]>[0]> = {},
    signal = AbortSignal.timeout(5000),
  ) =>
    adapter.send(
      { from: CHANNEL_NUMBER, to: CUSTOMER, body: "Your order shipped.", mediaUrls: [], ...extra },
      { signal },
    );

  describe("a customer sends", () => {
    test("201 only when the bridge answered 2xx; the bridge got a signed, parseable webhook", async () => {
      const r = await call("POST", "/simulator/api/messages", {
        from: "+1 650 555 0100",
        to: CHANNEL_NUMBER,
        body: "Hi there",
      });
      assert.equal(r.status, 201);
      const m = r.json.message as SimulatorMessage;
      assert.equal(m.status, "delivered");
      assert.match(m.id, /^SIM[0-9a-f]{24}$/);
      assert.equal(receiver.received.length, 1);
      const got = receiver.received[0];
      assert.equal(got?.verified, true);
      assert.equal(got?.route, "inbound");
      assert.deepEqual(got?.events, [
        {
          kind: "message",
          providerMessageId: m.id,
          from: CUSTOMER,
          to: CHANNEL_NUMBER,
          body: "Hi there",
          attachments: [],
          createdAt: m.at,
        },
      ]);
      const list = await call("GET", `/simulator/api/messages?phone=${encodeURIComponent(CUSTOMER)}`);
      assert.deepEqual(
        (list.json.messages as SimulatorMessage[]).map((x) => [x.direction, x.body, x.status]),
        [["mo", "Hi there", "delivered"]],
      );
    });

    test("502 with the bridge's answer when it answered 5xx, and the message is failed on the phone", async () => {
      receiver.setMode("fail");
      const r = await call("POST", "/simulator/api/messages", {
        from: CUSTOMER,
        to: CHANNEL_NUMBER,
        body: "Hello?",
      });
      assert.equal(r.status, 502);
      assert.deepEqual(r.json.bridge, { status: 500, body: '{"error":"database is down"}' });
      assert.match(String(r.json.error), /answered 500/);
      const [m] = network.messages(CUSTOMER);
      assert.equal(m?.status, "failed");
      assert.match(m?.error ?? "", /answered 500/);
    });

    test("502 when the bridge's verification refuses the signature (secrets differ)", async () => {
      channel.secret = "not-the-bridge-secret";
      const r = await call("POST", "/simulator/api/messages", {
        from: CUSTOMER,
        to: CHANNEL_NUMBER,
        body: "Hello?",
      });
      assert.equal(r.status, 502);
      assert.equal((r.json.bridge as { status: number }).status, 403);
      assert.equal(receiver.received[0]?.verified, false);
    });

    test("504 when the bridge does not answer in time", async () => {
      receiver.setMode("hang");
      const r = await call("POST", "/simulator/api/messages", {
        from: CUSTOMER,
        to: CHANNEL_NUMBER,
        body: "Anyone?",
      });
      assert.equal(r.status, 504);
      assert.equal(network.messages(CUSTOMER)[0]?.status, "failed");
    });

    test("502 when the bridge cannot be reached", async () => {
      const gone = await startReceiver(() => adapter);
      await gone.close();
      const saved = channel.inboundUrl;
      channel.inboundUrl = `${gone.url}/channels/support/inbound`;
      try {
        const r = await call("POST", "/simulator/api/messages", {
          from: CUSTOMER,
          to: CHANNEL_NUMBER,
          body: "Hi",
        });
        assert.equal(r.status, 502);
        assert.match(String(r.json.error), /could not reach the bridge/);
      } finally {
        channel.inboundUrl = saved;
      }
    });

    test("media as URLs or objects reaches the bridge with content types", async () => {
      const r = await call("POST", "/simulator/api/messages", {
        from: CUSTOMER,
        to: CHANNEL_NUMBER,
        body: "",
        media: [
          "https://example.com/a/photo.JPG",
          { url: "https://example.com/v", content_type: "video/mp4" },
        ],
      });
      assert.equal(r.status, 201);
      const [e] = receiver.received[0]?.events ?? [];
      assert.deepEqual(e?.kind === "message" ? e.attachments : undefined, [
        { url: "https://example.com/a/photo.JPG", contentType: "image/jpeg" },
        { url: "https://example.com/v", contentType: "video/mp4" },
      ]);
    });

    const invalid: Array<[string, unknown, number, string]> = [
      ["malformed JSON", "{from:", 400, "(root)"],
      ["a JSON array", [], 400, "(root)"],
      ["no from", { to: CHANNEL_NUMBER, body: "x" }, 422, "from"],
      ["a bad to", { from: CUSTOMER, to: "support", body: "x" }, 422, "to"],
      ["an empty body and no media", { from: CUSTOMER, to: CHANNEL_NUMBER, body: "  " }, 422, "body"],
      [
        "media that is not a URL",
        { from: CUSTOMER, to: CHANNEL_NUMBER, body: "x", media: ["file:///etc/passwd"] },
        422,
        "media.0",
      ],
      [
        "a body over 1600 characters",
        { from: CUSTOMER, to: CHANNEL_NUMBER, body: "x".repeat(1601) },
        422,
        "body",
      ],
    ];
    for (const [name, body, status, field] of invalid) {
      test(`refuses ${name} with ${status}`, async () => {
        const r = await call(
          "POST",
          "/simulator/api/messages",
          undefined,
          typeof body === "string" ? body : JSON.stringify(body),
        );
        assert.equal(r.status, status);
        assert.equal(typeof r.json.error, "string");
        if (status === 422)
          assert.ok(
            (r.json.errors as Array<{ path: string }>).some((e) => e.path === field),
            r.text,
          );
        assert.equal(receiver.received.length, 0);
      });
    }

    test("404 naming the known numbers when no channel has the number", async () => {
      const r = await call("POST", "/simulator/api/messages", {
        from: CUSTOMER,
        to: "+15005550001",
        body: "x",
      });
      assert.equal(r.status, 404);
      assert.match(String(r.json.error), /\+15005550001.*\+15005550006/);
    });
  });

  describe("the bridge sends through the adapter", () => {
    test("the phone lists the message and signed status reports arrive: sent, then delivered", async () => {
      const r = await send({ mediaUrls: ["https://example.com/label.pdf"] });
      assert.equal(r.kind, "sent");
      const providerId = r.kind === "sent" ? r.providerId : "";
      assert.match(providerId, /^SM[0-9a-f]{32}$/);
      const [m] = network.messages(CUSTOMER);
      assert.deepEqual(
        [m?.id, m?.direction, m?.from, m?.to, m?.body, m?.media],
        [
          providerId,
          "mt",
          CHANNEL_NUMBER,
          CUSTOMER,
          "Your order shipped.",
          [{ url: "https://example.com/label.pdf", content_type: "application/pdf" }],
        ],
      );
      const reports = await waitFor("two status reports", () => reportsFor(providerId, 2));
      assert.ok(reports.every((x) => x.route === "status" && x.verified));
      assert.deepEqual(
        reports
          .flatMap((x) => x.events)
          .map((e) => (e.kind === "status" ? [e.providerMessageId, e.state] : e.kind)),
        [
          [providerId, "sent"],
          [providerId, "delivered"],
        ],
      );
      assert.equal(network.messages(CUSTOMER)[0]?.status, "delivered");
    });

    const faults: Array<{ next: string; expect: (r: SendResult) => void; stored: string }> = [
      {
        next: "retryable",
        expect: (r) => {
          assert.equal(r.kind, "retryable");
          assert.equal(r.kind === "retryable" && r.retryAfterMs, 1000);
        },
        stored: "failed",
      },
      {
        next: "permanent",
        expect: (r) => assert.deepEqual([r.kind, "code" in r && r.code], ["failed", "rejected"]),
        stored: "failed",
      },
      {
        next: "opted_out",
        expect: (r) => assert.deepEqual([r.kind, "code" in r && r.code], ["optedOut", "opted_out"]),
        stored: "failed",
      },
      { next: "ok", expect: (r) => assert.equal(r.kind, "sent"), stored: "delivered" },
      { next: "slow", expect: (r) => assert.equal(r.kind, "sent"), stored: "delivered" },
    ];
    for (const f of faults) {
      test(`fault "${f.next}" from the next queue`, async () => {
        const put = await call("PUT", "/simulator/api/faults", { next: [f.next], slow: { delay_ms: 30 } });
        assert.equal(put.status, 200);
        f.expect(await send());
        // One per send: the queue is consumed, the following send succeeds.
        assert.deepEqual(network.faults().next, []);
        assert.equal((await send()).kind, "sent");
        const first = network.messages(CUSTOMER)[0];
        await waitFor(`message ${f.stored}`, () =>
          network.messages(CUSTOMER)[0]?.status === f.stored ? true : undefined,
        );
        assert.equal(first?.direction, "mt");
      });
    }

    test('fault "undelivered": accepted, then reported undelivered with an error code', async () => {
      await call("PUT", "/simulator/api/faults", { next: ["undelivered"] });
      const r = await send();
      assert.equal(r.kind, "sent");
      const reports = await waitFor("two status reports", () =>
        reportsFor(r.kind === "sent" ? r.providerId : "", 2),
      );
      const last = reports[1]?.events[0];
      assert.equal(last?.kind, "status");
      if (last?.kind === "status") assert.deepEqual([last.state, last.errorCode], ["undelivered", "30003"]);
    });

    test("a slow carrier past the bridge's deadline is retryable", async () => {
      await call("PUT", "/simulator/api/faults", { next: ["slow"], slow: { delay_ms: 10_000 } });
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(new Error("deadline")), 50);
      const r = await send({}, ctl.signal);
      assert.equal(r.kind, "retryable");
    });

    test("probabilities are rolled per send", async () => {
      await call("PUT", "/simulator/api/faults", { retryable: 0.5 });
      randomValue = 0.3;
      assert.equal((await send()).kind, "retryable");
      randomValue = 0.7;
      assert.equal((await send()).kind, "sent");
    });

    test("a wrong secret is refused with 401 and nothing reaches the phone", async () => {
      const other = simulatorProvider.create(simulatorProvider.config.parse({ secret: "guess" }), h.ctx);
      const r = await other.send(
        { from: CHANNEL_NUMBER, to: CUSTOMER, body: "x", mediaUrls: [] },
        { signal: AbortSignal.timeout(5000) },
      );
      assert.deepEqual([r.kind, "code" in r && r.code], ["failed", "unauthorized"]);
      assert.deepEqual(network.messages(), []);
    });

    const refused: Array<[string, Record<string, unknown>, number, string]> = [
      ["a from no channel owns", { from: "+15005550099", to: CUSTOMER, body: "x" }, 400, "rejected"],
      ["an invalid to", { from: CHANNEL_NUMBER, to: "call me", body: "x" }, 400, "invalid_number"],
      ["an empty message", { from: CHANNEL_NUMBER, to: CUSTOMER, body: "" }, 400, "rejected"],
      ["no bearer", { from: CHANNEL_NUMBER, to: CUSTOMER, body: "x", noAuth: true }, 401, "unauthorized"],
    ];
    for (const [name, body, status, code] of refused) {
      test(`the carrier API refuses ${name}`, async () => {
        const { noAuth, ...payload } = body;
        const res = await request(`${base}/simulator/provider/messages`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(noAuth ? {} : { authorization: `Bearer ${SECRET}` }),
          },
          body: JSON.stringify(payload),
        });
        const json = (await res.body.json()) as { code: string; message: string };
        assert.equal(res.statusCode, status);
        assert.equal(json.code, code);
        assert.ok(json.message.length > 0);
      });
    }

    test("the same Idempotency-Key sends once", async () => {
      const a = await send({ idempotencyKey: "reply-7" });
      const b = await send({ idempotencyKey: "reply-7" });
      assert.equal(a.kind, "sent");
      assert.deepEqual(b, a);
      assert.equal(network.messages(CUSTOMER).length, 1);
    });
  });

  describe("faults API", () => {
    test("PUT sets, GET shows, DELETE clears", async () => {
      const put = await call("PUT", "/simulator/api/faults", {
        permanent: 0.1,
        retryable: 0.2,
        opted_out: 0,
        slow: { probability: 0.5, delay_ms: 2000 },
        next: ["retryable", "permanent"],
      });
      const expected = {
        permanent: 0.1,
        retryable: 0.2,
        opted_out: 0,
        undelivered: 0,
        slow: { probability: 0.5, delay_ms: 2000 },
        next: ["retryable", "permanent"],
      };
      assert.deepEqual([put.status, put.json], [200, expected]);
      assert.deepEqual((await call("GET", "/simulator/api/faults")).json, expected);
      const del = await call("DELETE", "/simulator/api/faults");
      assert.deepEqual(del.json, {
        ...expected,
        permanent: 0,
        retryable: 0,
        slow: { probability: 0, delay_ms: 2000 },
        next: [],
      });
    });

    const bad: Array<[string, unknown, string]> = [
      ["a probability over 1", { retryable: 1.5 }, "retryable"],
      ["a negative probability", { permanent: -0.1 }, "permanent"],
      ["an unknown fault", { next: ["explode"] }, "next.0"],
      ["an unknown key", { flaky: 0.5 }, "(root)"],
      ["a string probability", { slow: { probability: "half" } }, "slow.probability"],
    ];
    for (const [name, body, path] of bad) {
      test(`PUT refuses ${name} with 422 naming the field`, async () => {
        const r = await call("PUT", "/simulator/api/faults", body);
        assert.equal(r.status, 422);
        assert.ok(
          (r.json.errors as Array<{ path: string }>).some((e) => e.path === path),
          r.text,
        );
      });
    }
  });

  describe("threads, events and the page", () => {
    test("messages are listed oldest first, both ways; phones show their last message; DELETE clears", async () => {
      await call("POST", "/simulator/api/messages", { from: CUSTOMER, to: CHANNEL_NUMBER, body: "one" });
      await send({ body: "two" });
      await call("POST", "/simulator/api/messages", {
        from: "+447700900123",
        to: CHANNEL_NUMBER,
        body: "hello from the UK",
      });
      const list = await call("GET", `/simulator/api/messages?phone=${encodeURIComponent(CUSTOMER)}`);
      assert.deepEqual(
        (list.json.messages as SimulatorMessage[]).map((m) => [m.direction, m.body]),
        [
          ["mo", "one"],
          ["mt", "two"],
        ],
      );
      const phones = (await call("GET", "/simulator/api/phones")).json.phones as Array<{
        phone: string;
        count: number;
        last: SimulatorMessage;
      }>;
      assert.deepEqual(
        phones.map((p) => [p.phone, p.count, p.last.body]),
        [
          ["+447700900123", 1, "hello from the UK"],
          [CUSTOMER, 2, "two"],
        ],
      );
      assert.equal((await call("GET", "/simulator/api/messages?phone=nope")).status, 422);
      assert.equal((await call("DELETE", "/simulator/api/messages")).status, 204);
      assert.deepEqual((await call("GET", "/simulator/api/messages")).json.messages, []);
    });

    test("channels are listed without their secrets", async () => {
      const r = await call("GET", "/simulator/api/channels");
      assert.deepEqual(r.json, { channels: [{ id: "support", numbers: [CHANNEL_NUMBER] }] });
      assert.ok(!r.text.includes(SECRET));
    });

    test("events stream every new and updated message", async () => {
      const ctl = new AbortController();
      const res = await request(`${base}/simulator/api/events`, { signal: ctl.signal });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
      let seen = "";
      const reader = (async () => {
        try {
          for await (const chunk of res.body) {
            seen += chunk.toString();
            if (seen.includes('"status":"delivered"')) return;
          }
        } catch {
          // aborted below
        }
      })();
      await waitFor("the ready event", () => (seen.includes("event: ready") ? true : undefined));
      const posted = await call("POST", "/simulator/api/messages", {
        from: CUSTOMER,
        to: CHANNEL_NUMBER,
        body: "live?",
      });
      await reader;
      ctl.abort();
      const id = (posted.json.message as SimulatorMessage).id;
      const events = seen
        .split("\n\n")
        .filter((b) => b.startsWith("event: message"))
        .map((b) => JSON.parse(b.split("data: ")[1] ?? "{}") as SimulatorMessage);
      assert.deepEqual(
        events.map((e) => [e.id, e.status]),
        [
          [id, "sending"],
          [id, "delivered"],
        ],
      );
    });

    const assets: Array<[string, RegExp, RegExp]> = [
      ["/simulator/", /^text\/html/, /<title>Phone simulator/],
      ["/simulator", /^text\/html/, /<script type="module" src="\/simulator\/app.js">/],
      ["/simulator/app.js", /^text\/javascript/, /new EventSource/],
      ["/simulator/style.css", /^text\/css/, /\.bubble/],
      ["/simulator/icon.svg", /^image\/svg\+xml/, /<svg/],
    ];
    for (const [path, type, content] of assets) {
      test(`serves ${path}`, async () => {
        const r = await request(`${base}${path}`);
        const text = await r.body.text();
        assert.equal(r.statusCode, 200);
        assert.match(String(r.headers["content-type"]), type);
        assert.match(text, content);
      });
    }

    test("unknown files and routes are JSON 404s", async () => {
      assert.equal((await call("GET", "/simulator/secrets.txt")).status, 404);
      const r = await call("GET", "/simulator/api/nothing");
      assert.equal(r.status, 404);
      assert.match(String(r.json.error), /no simulator route/);
    });

    test("the plugin's parsers stay inside /simulator", async () => {
      const res = await request(`${base}/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"a":1}',
      });
      assert.deepEqual(await res.body.json(), { got: { a: 1 } });
    });
  });
});

test("closing the app ends open event streams instead of waiting for them", { timeout: 10_000 }, async () => {
  const app = Fastify({ logger: false });
  registerPhoneNetwork(app, { channels: () => [] });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const res = await request(
    `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/simulator/api/events`,
  );
  const drained = res.body.text();
  await app.close();
  assert.match(await drained, /event: ready/);
});
