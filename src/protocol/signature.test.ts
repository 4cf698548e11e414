import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { decodeSignature, describeVerifyFailure, sign, verify } from "./signature.js";

const dir = new URL("./testdata/signature/", import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, dir));

interface Vector {
  file: string;
  secret: string;
  signature: string;
  note: string;
}
const { vectors } = JSON.parse(fixture("vectors.json").toString("utf8")) as { vectors: Vector[] };

/** The independent implementation: OpenSSL's HMAC and coreutils' base64, over the file's bytes on stdin. */
function opensslSign(bytes: Buffer, secret: string): string {
  return execFileSync("sh", ["-c", 'openssl dgst -sha256 -hmac "$HMAC_KEY" -binary | base64'], {
    input: bytes,
    env: { ...process.env, HMAC_KEY: secret },
  })
    .toString("utf8")
    .trim();
}

describe("sign equals openssl over the exact bytes", () => {
  for (const v of vectors) {
    test(`${v.file} with ${JSON.stringify(v.secret)}: ${v.note}`, () => {
      const bytes = fixture(v.file);
      const ours = sign(bytes, v.secret);
      assert.equal(ours, opensslSign(bytes, v.secret), "differs from openssl run now");
      assert.equal(ours, v.signature, "differs from the recorded openssl vector");
      assert.match(ours, /^[A-Za-z0-9+/]{43}=$/);
    });
  }

  test("the seed example: PHP/Ruby strict_encode64 value", () => {
    // Seed: hash_hmac('sha256', '{"id":"1","body":"hello"}', 'your_shared_secret', true), base64.
    assert.equal(
      sign('{"id":"1","body":"hello"}', "your_shared_secret"),
      "FgdUISIrhWKi9IhRN80V37obl/NYrpXeaZvV95dmgeU=",
    );
  });

  test("a string is signed as its UTF-8 bytes", () => {
    for (const file of ["emoji.json", "u2028.json", "non-ascii-names.json", "raw-e.json"]) {
      const bytes = fixture(file);
      assert.equal(sign(bytes.toString("utf8"), "k"), sign(bytes, "k"), file);
    }
  });

  test("a view into a larger buffer signs only its own bytes", () => {
    const body = fixture("seed.json");
    const big = Buffer.concat([Buffer.from("xxxx"), body, Buffer.from("yyyy")]);
    const view = new Uint8Array(big.buffer, big.byteOffset + 4, body.length);
    assert.equal(sign(view, "your_shared_secret"), sign(body, "your_shared_secret"));
  });
});

describe("bytes, not objects: equal JSON, different bytes, different signatures", () => {
  const pairs: Array<[string, string]> = [
    ["key-order-a.json", "key-order-b.json"],
    ["whitespace-compact.json", "whitespace-pretty.json"],
    ["whitespace-compact.json", "whitespace-crlf.json"],
    ["escaped-e.json", "raw-e.json"],
    ["u2028.json", "u2028-escaped.json"],
  ];
  for (const [a, b] of pairs) {
    test(`${a} vs ${b}`, () => {
      const [ba, bb] = [fixture(a), fixture(b)];
      assert.deepEqual(
        JSON.parse(ba.toString("utf8")),
        JSON.parse(bb.toString("utf8")),
        "fixtures must be the same JSON",
      );
      assert.notEqual(sign(ba, "your_shared_secret"), sign(bb, "your_shared_secret"));
      // And each verifies only against its own bytes.
      assert.equal(verify(ba, sign(ba, "s"), ["s"]).ok, true);
      assert.equal(verify(bb, sign(ba, "s"), ["s"]).ok, false);
    });
  }
});

describe("verify", () => {
  const body = fixture("seed-incoming.json");
  const good = sign(body, "current");
  const flipped = Buffer.from(body);
  flipped[10] = (flipped[10] ?? 0) ^ 1;
  const rubyEncode64 = `${createHmac("sha256", "current").update(body).digest("base64")}\n`;
  const cases: Array<{
    name: string;
    bytes?: Buffer | string;
    header: string | string[] | null | undefined;
    secrets: string[];
    want: ReturnType<typeof verify>;
  }> = [
    { name: "good", header: good, secrets: ["current"], want: { ok: true, secretIndex: 0 } },
    {
      name: "good, header as array",
      header: [good],
      secrets: ["current"],
      want: { ok: true, secretIndex: 0 },
    },
    {
      name: "body as string",
      bytes: body.toString("utf8"),
      header: good,
      secrets: ["current"],
      want: { ok: true, secretIndex: 0 },
    },
    {
      name: "rotated: new secret second",
      header: good,
      secrets: ["next", "current"],
      want: { ok: true, secretIndex: 1 },
    },
    {
      name: "rotated: old secret signed",
      header: sign(body, "old"),
      secrets: ["current", "old"],
      want: { ok: true, secretIndex: 1 },
    },
    {
      name: "Ruby encode64 without strip (trailing newline)",
      header: rubyEncode64,
      secrets: ["current"],
      want: { ok: true, secretIndex: 0 },
    },
    {
      name: "surrounding spaces and tabs",
      header: ` \t${good} `,
      secrets: ["current"],
      want: { ok: true, secretIndex: 0 },
    },
    {
      name: "CRLF after the value",
      header: `${good}\r\n`,
      secrets: ["current"],
      want: { ok: true, secretIndex: 0 },
    },
    { name: "wrong secret", header: good, secrets: ["other"], want: { ok: false, reason: "mismatch" } },
    {
      name: "bad: one body byte changed",
      bytes: flipped,
      header: good,
      secrets: ["current"],
      want: { ok: false, reason: "mismatch" },
    },
    {
      name: "bad: trailing newline added to the body",
      bytes: Buffer.concat([body, Buffer.from("\n")]),
      header: good,
      secrets: ["current"],
      want: { ok: false, reason: "mismatch" },
    },
    {
      name: "bad: other valid signature",
      header: sign("{}", "current"),
      secrets: ["current"],
      want: { ok: false, reason: "mismatch" },
    },
    {
      name: "missing: undefined",
      header: undefined,
      secrets: ["current"],
      want: { ok: false, reason: "missing" },
    },
    { name: "missing: null", header: null, secrets: ["current"], want: { ok: false, reason: "missing" } },
    { name: "missing: empty", header: "", secrets: ["current"], want: { ok: false, reason: "missing" } },
    {
      name: "missing: only whitespace",
      header: " \n",
      secrets: ["current"],
      want: { ok: false, reason: "missing" },
    },
    {
      name: "missing: empty array",
      header: [],
      secrets: ["current"],
      want: { ok: false, reason: "missing" },
    },
    {
      name: "truncated: padding dropped",
      header: good.slice(0, 43),
      secrets: ["current"],
      want: { ok: false, reason: "malformed" },
    },
    {
      name: "truncated: half",
      header: good.slice(0, 22),
      secrets: ["current"],
      want: { ok: false, reason: "malformed" },
    },
    {
      name: "too long: extra character",
      header: `A${good}`,
      secrets: ["current"],
      want: { ok: false, reason: "malformed" },
    },
    {
      name: "not base64",
      header: "!".repeat(43) + "=",
      secrets: ["current"],
      want: { ok: false, reason: "malformed" },
    },
    {
      name: "hex digest instead of base64",
      header: createHmac("sha256", "current").update(body).digest("hex"),
      secrets: ["current"],
      want: { ok: false, reason: "malformed" },
    },
    {
      name: "base64url alphabet ('_' for '/')",
      bytes: fixture("seed.json"),
      header: "FgdUISIrhWKi9IhRN80V37obl_NYrpXeaZvV95dmgeU=",
      secrets: ["your_shared_secret"],
      want: { ok: false, reason: "malformed" },
    },
    {
      name: "whitespace inside the value",
      header: `${good.slice(0, 20)} ${good.slice(20)}`,
      secrets: ["current"],
      want: { ok: false, reason: "malformed" },
    },
    { name: "no secrets configured", header: good, secrets: [], want: { ok: false, reason: "no-secrets" } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(verify(c.bytes ?? body, c.header, c.secrets), c.want);
    });
  }

  test("every failure has a message naming the header", () => {
    for (const reason of ["missing", "malformed", "mismatch"] as const) {
      assert.match(describeVerifyFailure(reason), /X-Reamaze-Hmac-SHA256/);
    }
    assert.match(describeVerifyFailure("no-secrets"), /secret/);
  });

  test("decodeSignature gives the 32 digest bytes", () => {
    const digest = createHmac("sha256", "k").update("x").digest();
    assert.deepEqual(decodeSignature(`${digest.toString("base64")}\n`), digest);
    assert.equal(decodeSignature("abc"), undefined);
  });
});
