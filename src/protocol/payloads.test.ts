import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  type FieldError,
  formatFieldErrors,
  formatIsoTimestamp,
  parseIsoTimestamp,
  validateIncomingSms,
  validateStaffReply,
} from "./payloads.js";

type Json = Record<string, unknown>;
const load = (name: string) =>
  JSON.parse(readFileSync(new URL(`./testdata/payloads/${name}`, import.meta.url), "utf8")) as Json;

const seedIncoming = load("seed-incoming.json");
const seedReply = load("seed-staff-reply.json");
// The seed's Ruby example without its optional fields.
const minimalIncoming: Json = {
  id: "sms-message-id",
  to: { phone: "+16501234567" },
  from: { phone: "+15105559999" },
  body: "This is the SMS message body",
};

/** A copy of `base` with `path` set to `value` (`undefined` deletes it). */
function withField(base: Json, path: string, value: unknown): Json {
  const copy = structuredClone(base);
  const keys = path.split(".");
  let node: Json = copy;
  for (const k of keys.slice(0, -1)) node = node[k] as Json;
  const last = keys[keys.length - 1] as string;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

const paths = (errors: FieldError[]) => errors.map((e) => e.path);

describe("incoming SMS: valid", () => {
  const cases: Array<[string, Json]> = [
    ["the seed example (created_at 2019-08-06T23:21:15+0000)", seedIncoming],
    ["the seed's minimal fields", minimalIncoming],
    ["outbound", withField(seedIncoming, "direction", "outbound")],
    ["created_at with Z", withField(minimalIncoming, "created_at", "2019-08-06T23:21:15Z")],
    ["created_at with +00:00", withField(minimalIncoming, "created_at", "2019-08-06T23:21:15+00:00")],
    [
      "created_at with fraction and -0700",
      withField(minimalIncoming, "created_at", "2019-08-06T16:21:15.123-0700"),
    ],
    ["created_at without seconds", withField(minimalIncoming, "created_at", "2019-08-06T23:21Z")],
    ["empty body with an attachment", withField(seedIncoming, "body", "")],
    ["empty attachments list", withField(minimalIncoming, "attachments", [])],
    ["names omitted", withField(withField(seedIncoming, "to.name", undefined), "from.name", undefined)],
  ];
  for (const [name, input] of cases) {
    test(name, () => {
      const r = validateIncomingSms(input);
      assert.equal(r.ok, true, r.ok ? "" : formatFieldErrors(r.errors));
      if (r.ok) assert.deepEqual(r.value, input);
    });
  }

  test("unknown extra fields are kept, at every level", () => {
    const input = {
      ...seedIncoming,
      carrier: { name: "Example", mcc: "310" },
      to: { phone: "+16501234567", line_type: "mobile" },
      assignee: { email: "staffemail@example.com", team: "tier-2" },
    };
    const r = validateIncomingSms(input);
    assert.ok(r.ok);
    assert.deepEqual(r.value, input);
  });
});

describe("incoming SMS: each failing field is named", () => {
  const cases: Array<[string, unknown, FieldError[]]> = [
    [
      "from.phone missing",
      withField(seedIncoming, "from.phone", undefined),
      [{ path: "from.phone", message: "required" }],
    ],
    ["from missing", withField(seedIncoming, "from", undefined), [{ path: "from", message: "required" }]],
    ["id missing", withField(seedIncoming, "id", undefined), [{ path: "id", message: "required" }]],
    ["body missing", withField(seedIncoming, "body", undefined), [{ path: "body", message: "required" }]],
    ["id empty", withField(seedIncoming, "id", ""), [{ path: "id", message: "id must not be empty" }]],
    [
      "id too long",
      withField(seedIncoming, "id", "x".repeat(256)),
      [{ path: "id", message: "longer than 255 characters" }],
    ],
    ["id a number", withField(seedIncoming, "id", 1), [{ path: "id", message: "must be a string" }]],
  ];
  for (const [name, input, want] of cases) {
    test(name, () => {
      assert.deepEqual(validateIncomingSms(input), { ok: false, errors: want });
    });
  }

  // Messages with examples are matched on their start; the path is what must be exact.
  const named: Array<[string, unknown, string, RegExp]> = [
    [
      "created_at not a date",
      withField(seedIncoming, "created_at", "yesterday"),
      "created_at",
      /^not ISO 8601/,
    ],
    [
      "created_at a date only",
      withField(seedIncoming, "created_at", "2019-08-06"),
      "created_at",
      /^not ISO 8601/,
    ],
    [
      "created_at without a zone",
      withField(seedIncoming, "created_at", "2019-08-06T23:21:15"),
      "created_at",
      /^not ISO 8601/,
    ],
    [
      "created_at 30 February",
      withField(seedIncoming, "created_at", "2019-02-30T00:00:00Z"),
      "created_at",
      /^not ISO 8601/,
    ],
    [
      "created_at month 13",
      withField(seedIncoming, "created_at", "2019-13-01T00:00:00Z"),
      "created_at",
      /^not ISO 8601/,
    ],
    ["created_at a number", withField(seedIncoming, "created_at", 1565133675), "created_at", /string/],
    [
      "direction unknown",
      withField(seedIncoming, "direction", "sideways"),
      "direction",
      /'inbound' or 'outbound'/,
    ],
    [
      "to.phone national format",
      withField(seedIncoming, "to.phone", "(650) 123-4567"),
      "to.phone",
      /^not E\.164/,
    ],
    [
      "from.phone without +",
      withField(seedIncoming, "from.phone", "15105559999"),
      "from.phone",
      /^not E\.164/,
    ],
    ["from.name a number", withField(seedIncoming, "from.name", 7), "from.name", /string/],
    ["body a number", withField(seedIncoming, "body", 5), "body", /string/],
    ["body empty, no attachments", withField(minimalIncoming, "body", ""), "body", /^empty/],
    [
      "attachments a string",
      withField(seedIncoming, "attachments", "https://x.test/a.png"),
      "attachments",
      /array/,
    ],
    [
      "attachments[1] not http(s)",
      withField(seedIncoming, "attachments", ["https://a.test/1.png", "ftp://a.test/2"]),
      "attachments.1",
      /http/,
    ],
    ["assignee without email", withField(seedIncoming, "assignee", {}), "assignee.email", /^required$/],
    ["thread_id a number", withField(seedIncoming, "thread_id", 123), "thread_id", /string/],
    ["thread_id empty", withField(seedIncoming, "thread_id", ""), "thread_id", /empty/],
    ["root an array", [seedIncoming], "(root)", /JSON object/],
    ["root null", null, "(root)", /JSON object/],
    ["root a string", "hello", "(root)", /JSON object/],
  ];
  for (const [name, input, path, message] of named) {
    test(name, () => {
      const r = validateIncomingSms(input);
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.deepEqual(paths(r.errors), [path]);
      assert.match(r.errors[0]?.message ?? "", message);
    });
  }

  test("several failures are all listed, in one line for people", () => {
    const input = withField(
      withField(withField(seedIncoming, "from.phone", undefined), "created_at", "soon"),
      "id",
      9,
    );
    const r = validateIncomingSms(input);
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(paths(r.errors).sort(), ["created_at", "from.phone", "id"]);
    const line = formatFieldErrors(r.errors);
    assert.match(line, /from\.phone: required/);
    assert.match(line, /created_at: not ISO 8601/);
    assert.match(line, /id: must be a string/);
  });
});

describe("staff reply", () => {
  const valid: Array<[string, Json]> = [
    ["the seed example", seedReply],
    [
      "attachments, created_at and thread_id null",
      { ...seedReply, attachments: null, created_at: null, thread_id: null },
    ],
    [
      "no attachments, created_at or thread_id",
      { to: seedReply.to, from: seedReply.from, body: "hi", conversation: { slug: "s" } },
    ],
    [
      "unknown fields kept",
      { ...seedReply, conversation: { slug: "thread-slug", id: 42 }, staff: { name: "Ann" } },
    ],
  ];
  for (const [name, input] of valid) {
    test(`valid: ${name}`, () => {
      const r = validateStaffReply(input);
      assert.equal(r.ok, true, r.ok ? "" : formatFieldErrors(r.errors));
      if (r.ok) assert.deepEqual(r.value, input);
    });
  }

  const invalid: Array<[string, unknown, string, RegExp]> = [
    ["conversation missing", withField(seedReply, "conversation", undefined), "conversation", /^required$/],
    [
      "conversation.slug missing",
      withField(seedReply, "conversation", {}),
      "conversation.slug",
      /^required$/,
    ],
    [
      "conversation.slug empty",
      withField(seedReply, "conversation", { slug: "" }),
      "conversation.slug",
      /empty/,
    ],
    ["to.phone missing", withField(seedReply, "to.phone", undefined), "to.phone", /^required$/],
    ["body empty and no attachments", { ...seedReply, body: "", attachments: [] }, "body", /^empty/],
    ["created_at wrong", withField(seedReply, "created_at", "06/08/2019"), "created_at", /^not ISO 8601/],
  ];
  for (const [name, input, path, message] of invalid) {
    test(`invalid: ${name}`, () => {
      const r = validateStaffReply(input);
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.deepEqual(paths(r.errors), [path]);
      assert.match(r.errors[0]?.message ?? "", message);
    });
  }
});

describe("timestamps", () => {
  const cases: Array<[string, string | undefined]> = [
    ["2019-08-06T23:21:15+0000", "2019-08-06T23:21:15.000Z"],
    ["2019-08-06T23:21:15+00:00", "2019-08-06T23:21:15.000Z"],
    ["2019-08-07T01:21:15+02", "2019-08-06T23:21:15.000Z"],
    ["2019-08-06T16:21:15-0700", "2019-08-06T23:21:15.000Z"],
    ["2019-08-06T23:21:15.5Z", "2019-08-06T23:21:15.500Z"],
    ["2020-02-29T00:00:00Z", "2020-02-29T00:00:00.000Z"],
    ["2019-02-29T00:00:00Z", undefined],
    ["2019-08-06 23:21:15Z", undefined],
    ["Tue, 06 Aug 2019 23:21:15 GMT", undefined],
    ["", undefined],
  ];
  for (const [input, want] of cases) {
    test(JSON.stringify(input), () => {
      assert.equal(parseIsoTimestamp(input)?.toISOString(), want);
    });
  }
  test("we write what we read", () => {
    const d = new Date(Date.UTC(2019, 7, 6, 23, 21, 15));
    assert.equal(parseIsoTimestamp(formatIsoTimestamp(d))?.getTime(), d.getTime());
  });
});
