import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import { request } from "undici";
import { requireSigned, type SignedState, signedBody } from "./fastify.js";
import { type IncomingSms, validateIncomingSms } from "./payloads.js";
import { SIGNATURE_HEADER, sign } from "./signature.js";

const seed = readFileSync(new URL("./testdata/payloads/seed-incoming.json", import.meta.url));
// Channels by their number, as the helpdesk finds them: `to.phone` inbound, `from.phone` outbound.
const CHANNELS: Record<string, readonly string[]> = {
  "+16501234567": ["current", "previous"],
  "+16509990000": [],
};
const BODY_LIMIT = 4096;

let app: FastifyInstance;
let base: string;
let rootJsonParses = 0;
const seen: SignedState[] = [];

before(async () => {
  app = Fastify();
  // A JSON parser that counts: it must run for the ordinary route and never in the signed scope.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    rootJsonParses++;
    done(null, JSON.parse(body as string));
  });
  app.post("/plain", async (req) => ({ got: req.body }));
  await app.register(async (scope) => {
    await signedBody(scope, { bodyLimit: BODY_LIMIT });
    scope.post(
      "/incoming/sms",
      {
        preHandler: requireSigned<IncomingSms>({
          validate: validateIncomingSms,
          secrets: (_req, json) => {
            const j = json as { direction?: string; to?: { phone?: string }; from?: { phone?: string } };
            const phone = j.direction === "outbound" ? j.from?.phone : j.to?.phone;
            if (phone === "+16500000403") return { status: 403, error: "channel disabled" };
            return phone === undefined ? undefined : CHANNELS[phone];
          },
          unknown: (json) => `no channel for ${(json as { to?: { phone?: string } }).to?.phone}`,
        }),
      },
      async (req, reply) => {
        const state = req.signed as SignedState<IncomingSms>;
        seen.push(state);
        if (state.payload?.body === "boom") throw new Error("handler failed");
        return reply.code(201).send({ id: state.payload?.id });
      },
    );
  });
  base = await app.listen({ port: 0, host: "127.0.0.1" });
});
after(() => app.close());

async function post(path: string, body: Buffer | string, headers: Record<string, string> = {}) {
  const res = await request(`${base}${path}`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", ...headers },
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: JSON.parse(text) as Record<string, unknown> };
}

const signed = (body: Buffer | string, secret = "current") => ({ [SIGNATURE_HEADER]: sign(body, secret) });
const withSeed = (patch: (o: Record<string, unknown>) => void) => {
  const o = JSON.parse(seed.toString("utf8")) as Record<string, unknown>;
  patch(o);
  return Buffer.from(JSON.stringify(o));
};

describe("requireSigned answers", () => {
  const malformedJson = Buffer.from('{"id": "1", "to": ');
  const unknownChannel = withSeed((o) => {
    o.to = { phone: "+19999999999" };
  });
  const invalid = withSeed((o) => {
    o.from = { name: "x" };
    o.created_at = "yesterday";
  });
  const oversize = withSeed((o) => {
    o.body = "x".repeat(BODY_LIMIT);
  });
  const refused = withSeed((o) => {
    o.to = { phone: "+16500000403" };
  });
  const noSecrets = withSeed((o) => {
    o.to = { phone: "+16509990000" };
  });
  const cases: Array<{
    name: string;
    body: Buffer;
    headers: Record<string, string>;
    status: number;
    error: RegExp;
    errors?: unknown;
  }> = [
    {
      name: "401 missing signature",
      body: seed,
      headers: {},
      status: 401,
      error: /missing X-Reamaze-Hmac-SHA256/,
    },
    {
      name: "401 signature from another secret",
      body: seed,
      headers: signed(seed, "stranger"),
      status: 401,
      error: /does not match/,
    },
    {
      name: "401 signature of other bytes",
      body: seed,
      headers: signed(Buffer.concat([seed, Buffer.from(" ")])),
      status: 401,
      error: /does not match/,
    },
    {
      name: "401 signature not base64",
      body: seed,
      headers: { [SIGNATURE_HEADER]: "not-a-signature" },
      status: 401,
      error: /not a base64/,
    },
    {
      name: "401 channel without secrets",
      body: noSecrets,
      headers: signed(noSecrets),
      status: 401,
      error: /no shared secret/,
    },
    {
      name: "400 malformed JSON",
      body: malformedJson,
      headers: signed(malformedJson),
      status: 400,
      error: /^malformed JSON/,
    },
    {
      name: "404 unknown channel (secrets callback)",
      body: unknownChannel,
      headers: signed(unknownChannel),
      status: 404,
      error: /no channel for \+19999999999/,
    },
    {
      name: "403 refusal from the secrets callback",
      body: refused,
      headers: signed(refused),
      status: 403,
      error: /channel disabled/,
    },
    {
      name: "413 over the body limit",
      body: oversize,
      headers: signed(oversize),
      status: 413,
      error: /larger than the limit of 4096 bytes/,
    },
    {
      name: "422 schema errors with the field list",
      body: invalid,
      headers: signed(invalid),
      status: 422,
      error: /^invalid payload: .*from\.phone: required/,
      errors: [
        { path: "from.phone", message: "required" },
        { path: "created_at", message: "not ISO 8601 (e.g. 2019-08-06T23:21:15+0000)" },
      ],
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const before = seen.length;
      const r = await post("/incoming/sms", c.body, c.headers);
      assert.equal(r.status, c.status, JSON.stringify(r.json));
      assert.match(String(r.json.error), c.error);
      if (c.errors) assert.deepEqual(r.json.errors, c.errors);
      else assert.equal(r.json.errors, undefined);
      assert.equal(seen.length, before, "the handler must not run");
    });
  }
});

describe("a verified request reaches the handler with its exact bytes", () => {
  const variants: Array<[string, Buffer, Record<string, string>, number]> = [
    ["the seed example", seed, signed(seed), 0],
    ["signed with the previous secret (rotation)", seed, signed(seed, "previous"), 1],
    [
      "pretty-printed, CRLF, \\u escapes: bytes no re-serialisation could reproduce",
      Buffer.from(seed.toString("utf8").replace(/\n/g, "\r\n").replace('"Support"', '"Supp\\u006frt"')),
      {},
      0,
    ],
    ["no content-type", seed, { "content-type": "" }, 0],
    ["text/plain content-type", seed, { "content-type": "text/plain" }, 0],
  ];
  for (const [name, body, extra, secretIndex] of variants) {
    test(name, async () => {
      const headers: Record<string, string> = {
        ...signed(body, secretIndex === 1 ? "previous" : "current"),
        ...extra,
      };
      if (headers["content-type"] === "") delete headers["content-type"];
      const r = await post("/incoming/sms", body, headers);
      assert.equal(r.status, 201, JSON.stringify(r.json));
      assert.deepEqual(r.json, { id: "sms-message-id" });
      const state = seen.at(-1);
      assert.ok(state);
      assert.deepEqual(state.bytes, body);
      assert.deepEqual(state.verdict, { ok: true, secretIndex });
      assert.deepEqual(state.payload, JSON.parse(body.toString("utf8")));
    });
  }

  test("a handler error is a JSON 500 that says nothing internal", async () => {
    const body = withSeed((o) => {
      o.body = "boom";
    });
    const r = await post("/incoming/sms", body, signed(body));
    assert.deepEqual(r, { status: 500, json: { error: "internal error" } });
  });

  test("no JSON content-type parser ever ran in the signed scope", async () => {
    const before = rootJsonParses;
    const r = await post("/plain", '{"a":1}');
    assert.deepEqual(r.json, { got: { a: 1 } });
    assert.equal(rootJsonParses, before + 1, "the counting parser works outside the scope");
    // Every signed request above went through the scope's raw-buffer parser only.
    assert.equal(rootJsonParses, 1);
  });
});
