import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, configSecrets, validateConfig } from "./config.js";

const base = () => ({
  database: "sqlite::memory:",
  channels: [
    {
      id: "support",
      numbers: ["+16501234567"],
      reamaze: { secrets: ["${REAMAZE_SECRET}"] },
      provider: {
        type: "twilio",
        accountSid: "AC0123456789abcdef0123456789abcdef",
        authToken: "${TWILIO_TOKEN}",
      },
    },
  ],
});

const env = { REAMAZE_SECRET: "shh-reamaze", TWILIO_TOKEN: "shh-twilio" };

function problems(raw: unknown, e: NodeJS.ProcessEnv = env): string[] {
  try {
    validateConfig(raw, e);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  return [];
}

describe("config", () => {
  test("a minimal config gets every default", () => {
    const { config, providers } = validateConfig(base(), env);
    assert.equal(config.server.port, 8080);
    assert.equal(config.channels[0]?.reamaze.incomingUrl, "https://www.reamaze.io/incoming/sms");
    assert.deepEqual(config.channels[0]?.threading, { mode: "session", idleHours: 24 });
    assert.equal(config.reply.deadlineMs, 10_000);
    assert.equal(config.forwarder.maxAgeHours, 72);
    assert.equal(config.forwarder.enabled, true, "every instance forwards unless told");
    assert.deepEqual(config.retention, { sweepMinutes: 60, batch: 200 }, "messages are kept unless told");
    assert.equal(providers.get("support")?.type, "twilio");
  });

  test("${ENV} and ${ENV:-default} are interpolated; secrets are collected for redaction", () => {
    const raw = { ...base(), adminToken: "${ADMIN:-a-default-admin-token}" };
    const loaded = validateConfig(raw, env);
    assert.deepEqual(loaded.config.channels[0]?.reamaze.secrets, ["shh-reamaze"]);
    assert.deepEqual(configSecrets(loaded).sort(), ["a-default-admin-token", "shh-reamaze", "shh-twilio"]);
  });

  const cases: Array<{
    name: string;
    mutate: (c: ReturnType<typeof base>) => unknown;
    env?: NodeJS.ProcessEnv;
    expect: RegExp;
  }> = [
    {
      name: "missing env var names the path",
      mutate: (c) => c,
      env: { TWILIO_TOKEN: "x" },
      expect: /^channels\[0\]\.reamaze\.secrets\[0\]: environment variable REAMAZE_SECRET is not set$/,
    },
    {
      name: "provider field required",
      mutate: (c) => ({
        ...c,
        channels: [
          {
            ...c.channels[0],
            provider: { type: "twilio", accountSid: "AC0123456789abcdef0123456789abcdef" },
          },
        ],
      }),
      expect: /^channels\[0\]\.provider\.authToken: required$/,
    },
    {
      name: "unknown provider",
      mutate: (c) => ({ ...c, channels: [{ ...c.channels[0], provider: { type: "carrier-pigeon" } }] }),
      expect: /channels\[0\]\.provider\.type: unknown provider "carrier-pigeon" \(known: .*twilio/,
    },
    {
      name: "number not E.164",
      mutate: (c) => ({ ...c, channels: [{ ...c.channels[0], numbers: ["6501234567"] }] }),
      expect: /^channels\[0\]\.numbers\[0\]: not E\.164/,
    },
    {
      name: "no channels",
      mutate: (c) => ({ ...c, channels: [] }),
      expect: /^channels: at least one channel$/,
    },
    {
      name: "bad threading mode",
      mutate: (c) => ({ ...c, channels: [{ ...c.channels[0], threading: { mode: "forever" } }] }),
      expect: /^channels\[0\]\.threading\.mode: must be session, pair or helpdesk$/,
    },
    { name: "unknown top-level key", mutate: (c) => ({ ...c, sever: { port: 1 } }), expect: /sever/ },
    {
      name: "duplicate number",
      mutate: (c) => ({ ...c, channels: [c.channels[0], { ...c.channels[0], id: "sales" }] }),
      expect: /channels\[1\]\.numbers\[0\]: \+16501234567 already belongs to channel "support"/,
    },
    {
      name: "bad channel id",
      mutate: (c) => ({ ...c, channels: [{ ...c.channels[0], id: "has space" }] }),
      expect: /^channels\[0\]\.id: letters, digits/,
    },
    {
      name: "publicUrl not a URL",
      mutate: (c) => ({ ...c, server: { publicUrl: "sms.example.com" } }),
      expect: /^server\.publicUrl: must be an http\(s\) URL/,
    },
    {
      name: "a value of the wrong type is named as such, not as missing",
      mutate: (c) => ({ ...c, server: { port: "8080x" } }),
      expect: /^server\.port: Invalid input: expected number, received string$/,
    },
    {
      name: "background threads above nice 19",
      mutate: (c) => ({ ...c, server: { backgroundNice: 20 } }),
      expect: /^server\.backgroundNice: 0 to 19 \(0 = the process's own priority\)$/,
    },
    {
      name: "background threads raised above the process (a negative nice)",
      mutate: (c) => ({ ...c, server: { backgroundNice: -5 } }),
      expect: /^server\.backgroundNice: 0 to 19/,
    },
    {
      name: "background nice as a fraction",
      mutate: (c) => ({ ...c, server: { backgroundNice: 2.5 } }),
      expect: /^server\.backgroundNice: must be a whole number$/,
    },
    {
      name: "retention of less than a day",
      mutate: (c) => ({ ...c, retention: { days: 0.5 } }),
      expect:
        /^retention\.days: at least 1 \(a provider's retried webhook is recognised by the stored message\)$/,
    },
    {
      name: "retention days as a string",
      mutate: (c) => ({ ...c, retention: { days: "30d" } }),
      expect: /^retention\.days: must be a number of days$/,
    },
    {
      name: "retention sweep interval of zero",
      mutate: (c) => ({ ...c, retention: { days: 30, sweepMinutes: 0 } }),
      expect: /^retention\.sweepMinutes: must be > 0$/,
    },
    {
      name: "a webhook-only instance on an in-memory database (nothing could ever deliver)",
      mutate: (c) => ({ ...c, forwarder: { enabled: false } }),
      expect: /^forwarder\.enabled: false needs a database another instance can share/,
    },
    {
      name: "a webhook-only instance on sqlite: with no file (in memory too)",
      mutate: (c) => ({ ...c, database: "sqlite:", forwarder: { enabled: false } }),
      expect: /^forwarder\.enabled: false needs a database another instance can share/,
    },
    {
      name: "forwarder.enabled as a string",
      mutate: (c) => ({ ...c, database: "sqlite:./x.db", forwarder: { enabled: "no" } }),
      expect: /^forwarder\.enabled: /,
    },
    {
      name: "unknown retention key",
      mutate: (c) => ({ ...c, retention: { messageDays: 30 } }),
      expect: /^retention: .*messageDays/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = problems(c.mutate(base()), c.env ?? env);
      assert.ok(
        p.some((x) => c.expect.test(x)),
        `expected ${c.expect} in:\n${p.join("\n")}`,
      );
    });
  }
});

test("a webhook-only instance on a SQLite file or PostgreSQL is valid", () => {
  for (const database of ["sqlite:./data/smsbridge.db", "postgres://smsbridge@db.internal/smsbridge"]) {
    const { config } = validateConfig({ ...base(), database, forwarder: { enabled: false } }, env);
    assert.equal(config.forwarder.enabled, false, database);
  }
});

test("a YAML section holding only comments counts as absent", async () => {
  const { parse } = await import("yaml");
  const raw = parse(
    `database: "sqlite::memory:"\nforwarder:\n  # leaseMs: 60000\nchannels:\n  - id: a\n    numbers: ["+16501234567"]\n    reamaze: { secrets: [s] }\n    provider: { type: simulator }\n`,
  );
  assert.equal(validateConfig(raw, {}).config.forwarder.leaseMs, 60_000);
});
