import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { type StaffReply, validateStaffReply } from "./payloads.js";
import { sign } from "./signature.js";
import { type CheckSignedOptions, checkSigned } from "./signed.js";

// The seed's staff reply, as the helpdesk posts it to a channel's webhook.
const reply = readFileSync(new URL("./testdata/payloads/seed-staff-reply.json", import.meta.url));
const SECRETS = ["current", "previous"];
const malformed = Buffer.from('{"body": ');
const invalid = Buffer.from(JSON.stringify({ ...JSON.parse(reply.toString("utf8")), to: { name: "x" } }));

type Case = {
  name: string;
  body: Buffer;
  header?: string | string[];
  secrets?: readonly string[] | { status: number; error: string };
  status: number;
  error?: RegExp;
  /** What the check saw: the parsed JSON, and the verdict's reason ("ok" when it matched). */
  parsed: boolean;
  verdict?: string;
};

// One table per mode: the order of the checks is the contract (protocol.md, "Fastify plugin").
const verifyFirst: Case[] = [
  {
    name: "no header: 401 before the channel is looked up",
    body: reply,
    secrets: undefined,
    status: 401,
    error: /missing/,
    parsed: false,
    verdict: "missing",
  },
  {
    name: "blank header: 401",
    body: reply,
    header: "  ",
    status: 401,
    error: /missing/,
    parsed: false,
    verdict: "missing",
  },
  {
    name: "unknown channel: 404",
    body: reply,
    header: sign(reply, "current"),
    secrets: undefined,
    status: 404,
    error: /unknown channel/,
    parsed: false,
  },
  {
    name: "a refusal from secrets: its status",
    body: reply,
    header: sign(reply, "current"),
    secrets: { status: 403, error: "disabled" },
    status: 403,
    error: /^disabled$/,
    parsed: false,
  },
  {
    name: "wrong secret: 401, the body never parsed",
    body: malformed,
    header: sign(malformed, "stranger"),
    status: 401,
    error: /does not match/,
    parsed: false,
    verdict: "mismatch",
  },
  {
    name: "not base64: 401",
    body: reply,
    header: "ab".repeat(32),
    status: 401,
    error: /not a base64/,
    parsed: false,
    verdict: "malformed",
  },
  {
    name: "no secrets configured: 401",
    body: reply,
    header: sign(reply, "current"),
    secrets: [],
    status: 401,
    error: /no shared secret/,
    parsed: false,
    verdict: "no-secrets",
  },
  {
    name: "signed but not JSON: 400",
    body: malformed,
    header: sign(malformed, "current"),
    status: 400,
    error: /malformed JSON/,
    parsed: false,
    verdict: "ok",
  },
  {
    name: "signed, JSON, not a staff reply: 422",
    body: invalid,
    header: sign(invalid, "previous"),
    status: 422,
    error: /invalid payload: to\.phone/,
    parsed: true,
    verdict: "ok",
  },
  {
    name: "the first of several headers counts",
    body: reply,
    header: [sign(reply, "previous"), "x"],
    status: 200,
    parsed: true,
    verdict: "ok",
  },
  {
    name: "signed with the previous secret: accepted",
    body: reply,
    header: sign(reply, "previous"),
    status: 200,
    parsed: true,
    verdict: "ok",
  },
];

const parseFirst: Case[] = [
  { name: "no header: 401", body: reply, status: 401, error: /missing/, parsed: false, verdict: "missing" },
  {
    name: "not JSON: 400 before the signature",
    body: malformed,
    header: sign(malformed, "stranger"),
    status: 400,
    error: /malformed JSON/,
    parsed: false,
  },
  {
    name: "unknown channel: 404, with the JSON seen",
    body: reply,
    header: sign(reply, "current"),
    secrets: undefined,
    status: 404,
    parsed: true,
  },
  {
    name: "wrong secret: 401",
    body: reply,
    header: sign(reply, "stranger"),
    status: 401,
    error: /does not match/,
    parsed: true,
    verdict: "mismatch",
  },
  {
    name: "invalid: 422",
    body: invalid,
    header: sign(invalid, "current"),
    status: 422,
    parsed: true,
    verdict: "ok",
  },
  {
    name: "valid: accepted",
    body: reply,
    header: sign(reply, "current"),
    status: 200,
    parsed: true,
    verdict: "ok",
  },
];

for (const [mode, cases] of [
  ["verifyBeforeParse", verifyFirst],
  ["parse first", parseFirst],
] as const) {
  describe(`checkSigned, ${mode}`, () => {
    for (const c of cases) {
      test(c.name, async () => {
        const asked: unknown[] = [];
        const opts: CheckSignedOptions<StaffReply> = {
          validate: validateStaffReply,
          secrets: async (json) => {
            asked.push(json);
            return "secrets" in c ? c.secrets : SECRETS;
          },
          verifyBeforeParse: mode === "verifyBeforeParse",
        };
        const r = await checkSigned(c.body, c.header, opts);
        assert.equal(r.ok ? 200 : r.status, c.status);
        if (!r.ok && c.error) assert.match(r.body.error, c.error);
        assert.equal(r.json !== undefined, c.parsed, "json seen");
        assert.equal(r.verdict ? (r.verdict.ok ? "ok" : r.verdict.reason) : undefined, c.verdict);
        if (r.ok) assert.equal(r.payload.body, JSON.parse(c.body.toString("utf8")).body);
        // verifyBeforeParse asks for the secrets with no JSON; otherwise with the parsed body.
        for (const j of asked) assert.equal(j === undefined, mode === "verifyBeforeParse");
      });
    }
  });
}

test("a 422 names every field in errors", async () => {
  const r = await checkSigned(invalid, sign(invalid, "current"), {
    validate: validateStaffReply,
    secrets: () => SECRETS,
    verifyBeforeParse: true,
  });
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(
    r.body.errors?.map((e) => e.path),
    ["to.phone"],
  );
});
