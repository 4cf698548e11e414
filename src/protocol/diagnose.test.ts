import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { diagnoseSignature, type SignatureDiagnosis } from "./diagnose.js";
import { sign } from "./signature.js";

const fixture = (name: string) => readFileSync(new URL(`./testdata/diagnose/${name}`, import.meta.url));

// The seed's own examples: the PHP snippet's data and the "Creating the SMS" payload as Ruby's to_json writes it.
const php = fixture("seed-php.json");
const seed = fixture("seed-incoming.json");
const unicode = fixture("unicode.json");
// Written by Python 3's json.dumps(json.load(f)) — the serialisation a Python sender signs by default.
const pythonBody = fixture("unicode.python-dumps.json");

const SECRET = "my_shared_secret";
const OLD = "old_secret";
const hex = (bytes: Buffer | string, secret: string) =>
  createHmac("sha256", secret).update(bytes).digest("hex");
const b64url = (bytes: Buffer | string, secret: string) =>
  createHmac("sha256", secret).update(bytes).digest("base64url");

interface Case {
  name: string;
  bytes: Buffer;
  header: string | undefined;
  secrets: string[];
  want: Partial<SignatureDiagnosis>;
}

const cases: Case[] = [
  {
    name: "seed PHP example verifies (value computed independently with Python's hmac)",
    bytes: php,
    header: "FgdUISIrhWKi9IhRN80V37obl/NYrpXeaZvV95dmgeU=",
    secrets: ["your_shared_secret"],
    want: { ok: true, secretIndex: 0 },
  },
  {
    name: "Ruby encode64 with its newline verifies",
    bytes: seed,
    header: `${sign(seed, SECRET)}\n`,
    secrets: [SECRET],
    want: { ok: true, secretIndex: 0 },
  },
  {
    name: "old secret during rotation verifies with its index",
    bytes: seed,
    header: sign(seed, OLD),
    secrets: [SECRET, OLD],
    want: { ok: true, secretIndex: 1 },
  },
  {
    name: "missing header",
    bytes: seed,
    header: undefined,
    secrets: [SECRET],
    want: { ok: false, mistake: "missing-header" },
  },
  {
    name: "blank header is missing",
    bytes: seed,
    header: "  ",
    secrets: [SECRET],
    want: { ok: false, mistake: "missing-header" },
  },
  { name: "no secrets", bytes: seed, header: "x", secrets: [], want: { ok: false, mistake: "no-secrets" } },
  {
    name: "hex digest instead of base64",
    bytes: seed,
    header: hex(seed, SECRET),
    secrets: [SECRET],
    want: { ok: false, mistake: "hex-digest", secretIndex: 0 },
  },
  {
    name: "hex digest with the old secret",
    bytes: seed,
    header: hex(seed, OLD).toUpperCase(),
    secrets: [SECRET, OLD],
    want: { ok: false, mistake: "hex-digest", secretIndex: 1 },
  },
  {
    name: "base64url digest",
    bytes: php,
    header: b64url(php, SECRET),
    secrets: [SECRET],
    want: { ok: false, mistake: "base64url-digest" },
  },
  {
    name: "unpadded base64",
    bytes: php,
    header: sign(php, SECRET).replace(/=$/, ""),
    secrets: [SECRET],
    want: { ok: false, mistake: "unpadded-base64" },
  },
  {
    name: "signed JSON.stringify(JSON.parse(body)) but sent pretty JSON",
    bytes: Buffer.from(JSON.stringify(JSON.parse(seed.toString()), null, 2)),
    header: sign(JSON.stringify(JSON.parse(seed.toString())), SECRET),
    secrets: [SECRET],
    want: { ok: false, mistake: "reserialised-body", variant: "JSON.stringify(JSON.parse(body))" },
  },
  {
    name: "signed a key-sorted body",
    bytes: seed,
    header: sign(
      JSON.stringify(
        Object.fromEntries(
          Object.entries(JSON.parse(seed.toString())).sort(([a], [b]) => a.localeCompare(b)),
        ),
        (_k, v: unknown) =>
          v && typeof v === "object" && !Array.isArray(v)
            ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)))
            : v,
      ),
      SECRET,
    ),
    secrets: [SECRET],
    want: { ok: false, mistake: "reserialised-body", variant: "the body with keys sorted" },
  },
  {
    name: "signed a pretty-printed body, sent compact",
    bytes: seed,
    header: sign(JSON.stringify(JSON.parse(seed.toString()), null, 2), SECRET),
    secrets: [SECRET],
    want: { ok: false, mistake: "reserialised-body", variant: "the body pretty-printed with 2 spaces" },
  },
  {
    name: "signed Python json.dumps output, sent compact UTF-8",
    bytes: unicode,
    header: sign(pythonBody, SECRET),
    secrets: [SECRET],
    want: { ok: false, mistake: "reserialised-body", variant: "the body as Python's json.dumps writes it" },
  },
  {
    name: "hex digest of the body before a newline was appended",
    bytes: Buffer.from(`${seed.toString()}\n`),
    header: hex(seed, SECRET),
    secrets: [SECRET],
    want: { ok: false, mistake: "whitespace-trimmed" },
  },
  {
    name: "sent a trailing newline the signature did not cover",
    bytes: Buffer.from(`${php.toString()}\n`),
    header: sign(php, SECRET),
    secrets: [SECRET],
    want: { ok: false, mistake: "whitespace-trimmed" },
  },
  {
    name: "signed with a trailing newline, sent without",
    bytes: php,
    header: sign(`${php.toString()}\n`, SECRET),
    secrets: [SECRET],
    want: { ok: false, mistake: "whitespace-trimmed", variant: "the body plus a trailing newline" },
  },
  {
    name: "secret read from a file with its newline",
    bytes: seed,
    header: sign(seed, `${SECRET}\n`),
    secrets: [SECRET],
    want: { ok: false, mistake: "secret-whitespace", secretIndex: 0 },
  },
  {
    name: "wrong secret",
    bytes: seed,
    header: sign(seed, "another_channel_secret"),
    secrets: [SECRET, OLD],
    want: { ok: false, mistake: "wrong-secret" },
  },
  {
    name: "garbage header",
    bytes: seed,
    header: "sha256=abc",
    secrets: [SECRET],
    want: { ok: false, mistake: "malformed-header" },
  },
];

describe("diagnoseSignature", () => {
  for (const c of cases) {
    it(c.name, () => {
      const d = diagnoseSignature(c.bytes, c.header, c.secrets);
      for (const [k, v] of Object.entries(c.want)) {
        assert.deepEqual(d[k as keyof SignatureDiagnosis], v, `${k} (explanation: ${d.explanation})`);
      }
      assert.ok(d.explanation.length > 10, "explains itself");
      if (c.secrets.length > 0) assert.equal(d.expected, sign(c.bytes, c.secrets[0] as string));
      if (!d.ok && c.secrets.length > 0) {
        assert.ok(!d.explanation.includes(c.secrets[0] as string), "never echoes the secret");
      }
    });
  }

  it("reports the received header as sent", () => {
    const d = diagnoseSignature(php, "AAAA", [SECRET]);
    assert.equal(d.received, "AAAA");
  });
});
