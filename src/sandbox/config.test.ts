import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, DEMO_PHONE, demoConfig, loadConfigFile, validateConfig } from "./config.js";

const fixture = (name: string) => new URL(`./testdata/${name}`, import.meta.url).pathname;

describe("sandbox config", () => {
  it("reads the issue's example YAML", () => {
    const c = loadConfigFile(fixture("sandbox.yaml"), {});
    assert.deepEqual(c.channels, [
      {
        id: "support",
        name: "Support",
        phone: "+16501234567",
        secrets: ["my_shared_secret"],
        webhookUrl: "http://127.0.0.1:8080/channels/support/reamaze",
      },
    ]);
    assert.deepEqual(c.staff, [{ name: "Staff", email: "staffemail@example.com" }]);
  });

  it("reads JSON with rotation secrets and $-brace ENV interpolation", () => {
    const c = loadConfigFile(fixture("sandbox.json"), { SALES_SECRET: "from-env" });
    assert.deepEqual(c.channels[0]?.secrets, ["new_secret", "old_secret"]);
    assert.deepEqual(c.channels[1]?.secrets, ["from-env"]);
    assert.equal(c.channels[1]?.webhookUrl, undefined);
    assert.deepEqual(c.staff, []);
  });

  const invalid: Array<{ name: string; input: unknown; env?: Record<string, string>; problems: string[] }> = [
    { name: "empty", input: {}, problems: ["channels: required"] },
    { name: "no channels", input: { channels: [] }, problems: ["channels: must hold at least one channel"] },
    {
      name: "bad phone",
      input: { channels: [{ name: "S", phone: "6501234567", secret: "x" }] },
      problems: [
        "channels[0].phone: not E.164 (a '+', the country code and the number, digits only, e.g. +16501234567)",
      ],
    },
    {
      name: "no secret",
      input: { channels: [{ name: "S", phone: "+16501234567" }] },
      problems: ["channels[0].secret: required: set `secret` or `secrets: [new, old]`"],
    },
    {
      name: "both secret and secrets",
      input: { channels: [{ name: "S", phone: "+16501234567", secret: "a", secrets: ["b"] }] },
      problems: ["channels[0].secrets: set either `secret` or `secrets`, not both"],
    },
    {
      name: "empty secrets list",
      input: { channels: [{ name: "S", phone: "+16501234567", secrets: [] }] },
      problems: ["channels[0].secrets: must hold at least one secret"],
    },
    {
      name: "bad webhook URL and unknown key",
      input: {
        channels: [{ name: "S", phone: "+16501234567", secret: "a", webhookURL: "x", webhookUrl: "ftp://x" }],
      },
      problems: ["channels[0].webhookUrl: not an http(s) URL", 'channels[0]: Unrecognized key: "webhookURL"'],
    },
    {
      name: "duplicate phone",
      input: {
        channels: [
          { name: "A", phone: "+16501234567", secret: "a" },
          { name: "B", phone: "+16501234567", secret: "b" },
        ],
      },
      problems: ["channels[1].phone: +16501234567 is already used by another channel"],
    },
    {
      name: "bad staff e-mail and duplicate",
      input: {
        channels: [{ name: "A", phone: "+16501234567", secret: "a" }],
        staff: [
          { name: "X", email: "x@example.com" },
          { name: "Y", email: "X@example.com" },
          { name: "Z", email: "nope" },
        ],
      },
      problems: ["staff[2].email: not an e-mail address"],
    },
    {
      name: "unset environment variable",
      input: { channels: [{ name: "A", phone: "+16501234567", secret: ["$", "{NOPE}"].join("") }] },
      problems: ["channels[0].secret: environment variable NOPE is not set"],
    },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name}, naming the path`, () => {
      assert.throws(
        () => validateConfig(c.input, c.env ?? {}),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.deepEqual(e.problems, c.problems);
          return true;
        },
      );
    });
  }

  it("flags a duplicate staff e-mail once the rest is valid", () => {
    assert.throws(
      () =>
        validateConfig({
          channels: [{ name: "A", phone: "+16501234567", secret: "a" }],
          staff: [
            { name: "X", email: "x@example.com" },
            { name: "Y", email: "X@example.com" },
          ],
        }),
      /staff\[1\]\.email: X@example\.com is listed twice/,
    );
  });

  it("gives channels unique ids", () => {
    const c = validateConfig({
      channels: [
        { name: "Support Team", phone: "+16501234567", secret: "a" },
        { name: "support team", phone: "+16501234568", secret: "b" },
        { id: "vip", name: "Support Team", phone: "+16501234569", secret: "c" },
      ],
    });
    assert.deepEqual(
      c.channels.map((ch) => ch.id),
      ["support-team", "support-team-2", "vip"],
    );
  });

  it("accepts its own resolved form (what startSandbox hands back)", () => {
    const c = validateConfig({ channels: [{ name: "A", phone: "+16501234567", secrets: ["a", "b"] }] });
    assert.deepEqual(validateConfig(c), c);
  });

  it("names the file when it cannot be read or parsed", () => {
    const dir = mkdtempSync(join(tmpdir(), "sandbox-config-"));
    try {
      assert.throws(
        () => loadConfigFile(join(dir, "missing.yaml")),
        /cannot read sandbox config .*missing\.yaml/,
      );
      const bad = join(dir, "bad.yaml");
      writeFileSync(bad, "channels: [\n");
      assert.throws(() => loadConfigFile(bad), /bad\.yaml is not valid YAML\/JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("demo config: one channel, one staff user, a random secret unless given", () => {
    const a = demoConfig({}, {});
    const b = demoConfig({}, {});
    assert.equal(a.channels[0]?.phone, DEMO_PHONE);
    assert.notEqual(a.channels[0]?.secrets[0], b.channels[0]?.secrets[0]);
    assert.equal(a.staff.length, 1);
    const c = demoConfig({ webhookUrl: "http://127.0.0.1:9/x" }, { SMSBRIDGE_SANDBOX_SECRET: "s" });
    assert.deepEqual(c.channels[0]?.secrets, ["s"]);
    assert.equal(c.channels[0]?.webhookUrl, "http://127.0.0.1:9/x");
  });
});
