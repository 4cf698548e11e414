// The operations commands run as a real child process against a real SQLite file (and the local PostgreSQL),
// with rows created through the Store API the bridge itself uses.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parse as parseYaml, stringify } from "yaml";
import { type RunningBridge, startBridge } from "../bridge/app.js";
import { loadConfig, validateConfig } from "../bridge/config.js";
import { Database } from "../store/dialect/better-sqlite3.js";
import { openStore } from "../store/open.js";
import type { Store } from "../store/store.js";
import { type ScratchDb, scratchPostgres } from "../store/test-support/databases.js";
import { formatAge, maskSecret, parseSince, showDatabase } from "./commands/ops.js";
import { breakersFromMetrics } from "./commands/status.js";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
const MIN = 60_000;
const HOUR = 60 * MIN;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.SMSBRIDGE_CONFIG;
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { env: childEnv, stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  child.stdin.end();
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr };
}

/** A loopback port nothing listens on (fetch refuses "bad ports" such as 1, so take a real one and free it). */
async function closedPort(): Promise<number> {
  const srv = createServer().listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address() as AddressInfo;
  srv.close();
  await once(srv, "close");
  return port;
}
const NOBODY = `http://127.0.0.1:${await closedPort()}`;

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

const tmp = mkdtempSync(join(tmpdir(), "smsbridge-ops-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function writeConfig(name: string, database: string, extra: Record<string, unknown> = {}): string {
  const file = join(tmp, name);
  writeFileSync(
    file,
    stringify({
      server: { port: 1 },
      database,
      log: { level: "silent" },
      channels: [
        {
          id: "support",
          numbers: ["+16501234567"],
          // Secrets the operations commands must not need: these variables are never set.
          reamaze: { incomingUrl: "http://127.0.0.1:1/incoming/sms", secrets: ["${OPS_TEST_UNSET_SECRET}"] },
          provider: { type: "simulator", secret: "${OPS_TEST_UNSET_SIM_SECRET}" },
        },
        {
          id: "sales",
          numbers: ["+16501234568"],
          reamaze: { incomingUrl: "http://127.0.0.1:1/incoming/sms", secrets: ["sales-secret-1234"] },
          provider: { type: "simulator", secret: "sim-secret-5678" },
        },
      ],
      ...extra,
    }),
  );
  return file;
}

interface Seeded {
  now: number;
  supportDead: number;
  salesDead: number;
}

/**
 * support: 3 customer messages (the oldest dead with a 422 answer, two pending), one staff reply the
 * provider reported failed and one delivered. sales: one message dead after retries, with a long answer.
 */
async function seed(store: Store): Promise<Seeded> {
  const now = Date.now();
  const ingest = (channelId: string, id: string, createdAt: number) =>
    store.ingest({
      channelId,
      provider: "simulator",
      providerMessageId: id,
      customer: "+15105559999",
      channelNumber: channelId === "support" ? "+16501234567" : "+16501234568",
      body: `message ${id}`,
      createdAt,
      threading: { mode: "session", idleHours: 24 },
      payload: (threadId) =>
        Buffer.from(
          JSON.stringify({
            id: `simulator:${id}`,
            to: { phone: "+16501234567" },
            from: { phone: "+15105559999" },
            body: `message ${id}`,
            thread_id: threadId,
          }),
        ),
    });
  await ingest("support", "SM1", now - 3 * HOUR);
  await ingest("support", "SM2", now - 2 * HOUR);
  await ingest("support", "SM3", now - HOUR);
  await ingest("sales", "SM4", now - 90 * MIN);
  const [dead1] = await store.claim({ limit: 1, leaseMs: 60_000, now, channels: ["support"] });
  const [dead2] = await store.claim({ limit: 1, leaseMs: 60_000, now, channels: ["sales"] });
  assert.ok(dead1 && dead2);
  await store.markDead(
    dead1.id,
    dead1.token,
    422,
    "rejected: HTTP 422",
    '{"error":"to.phone: no channel has this number"}',
    now - 30 * MIN,
  );
  await store.markDead(
    dead2.id,
    dead2.token,
    503,
    "gave up after 12 attempts: HTTP 503",
    "x".repeat(200),
    now - 10 * MIN,
  );
  // The second pending row keeps its claim released: claim() moved only the rows it returned.
  for (const [pid, state, error] of [
    ["SMreply1", "failed", "30006: Landline or unreachable carrier"],
    ["SMreply2", "delivered", undefined],
  ] as const) {
    await store.recordSent({
      channelId: "support",
      direction: "reply",
      provider: "simulator",
      customer: "+15105559999",
      channelNumber: "+16501234567",
      body: `reply ${pid}`,
      providerIds: [pid],
      createdAt: now - 20 * MIN,
    });
    await store.recordDelivery("support", "simulator", pid, {
      state,
      providerStatus: state,
      ...(error ? { error } : {}),
      at: now - 5 * MIN,
    });
  }
  return { now, supportDead: dead1.id, salesDead: dead2.id };
}

async function seededSqlite(name: string): Promise<{ config: string; seeded: Seeded }> {
  const database = `sqlite:${join(tmp, `${name}.db`)}`;
  const store = openStore(database);
  await store.migrate();
  const seeded = await seed(store);
  await store.close();
  return { config: writeConfig(`${name}.yaml`, database), seeded };
}

// The suites are independent (each its own database): run them side by side, the child processes dominate.
describe("operations commands", { concurrency: true }, () => {
  describe("helpers", () => {
    const now = Date.parse("2026-03-01T12:00:00Z");
    test("parseSince: ISO times and durations back from now; anything else is undefined", () => {
      const table: Array<[string, number | undefined]> = [
        ["2h", now - 2 * HOUR],
        ["90s", now - 90_000],
        ["1h30m", now - 90 * MIN],
        ["7d", now - 7 * 24 * HOUR],
        ["1w", now - 7 * 24 * HOUR],
        ["2026-01-01T10:00:00Z", Date.parse("2026-01-01T10:00:00Z")],
        ["2026-01-01T10:00:00+02:00", Date.parse("2026-01-01T08:00:00Z")],
        ["2026-01-01", Date.parse("2026-01-01T00:00:00Z")],
        ["yesterday", undefined],
        ["2", undefined],
        ["2026-13-45", undefined],
        ["", undefined],
      ];
      for (const [input, want] of table) assert.equal(parseSince(input, now), want, input);
    });

    test("formatAge: a glanceable duration", () => {
      const table: Array<[number, string]> = [
        [0, "0s"],
        [-5_000, "0s"],
        [45_000, "45s"],
        [3 * MIN + 12_000, "3m12s"],
        [2 * HOUR + 5 * MIN + 59_000, "2h05m"],
        [3 * 24 * HOUR + 4 * HOUR, "3d04h"],
      ];
      for (const [ms, want] of table) assert.equal(formatAge(ms), want, String(ms));
    });

    test("maskSecret shows at most the last two characters, none of a short secret", () => {
      assert.equal(maskSecret("0123456789abcdefXY"), "••••XY");
      assert.equal(maskSecret("short-secr"), "••••");
    });

    test("showDatabase hides passwords wherever the URL carries them", () => {
      const table: Array<[string, string]> = [
        ["postgres://smsbridge:s3cret@db:5432/smsbridge", "postgres://smsbridge:***@db:5432/smsbridge"],
        [
          "postgres://db/smsbridge?user=u&password=s3cret&ssl=true",
          "postgres://db/smsbridge?user=u&password=***&ssl=true",
        ],
        ["sqlite:./data/smsbridge.db", "sqlite:./data/smsbridge.db"],
      ];
      for (const [url, want] of table) assert.equal(showDatabase(url), want);
    });

    test("breakersFromMetrics reads smsbridge_breaker_open per channel", () => {
      const text = [
        "# HELP smsbridge_breaker_open 1 while a channel's circuit breaker is open or half-open.",
        "# TYPE smsbridge_breaker_open gauge",
        'smsbridge_breaker_open{channel="support"} 1',
        'smsbridge_breaker_open{channel="sales"} 0',
        'smsbridge_outbox_pending{channel="other"} 1',
      ].join("\n");
      assert.deepEqual(
        [...breakersFromMetrics(text)],
        [
          ["support", "open"],
          ["sales", "closed"],
        ],
      );
    });
  });

  describe("migrate", { concurrency: 1 }, () => {
    test("applies the migrations once, then says up to date", async () => {
      const config = writeConfig("migrate.yaml", `sqlite:${join(tmp, "sub", "migrate.db")}`);
      const first = await cli(["migrate", "-c", config]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(
        first.stdout,
        /applied 7 migrations\n {2}0001_initial\n {2}0002_delivery_failures_index\n {2}0003_claim_index\n {2}0004_keyed_tables_without_rowid\n {2}0005_drop_global_due_index\n {2}0006_drop_delivered_outbox_rows\n {2}0007_retention_indexes\n/,
      );
      const second = await cli(["migrate", "--config", config]);
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stdout, /: up to date\n$/);
    });
  });

  describe("status, dead list, dead show", { concurrency: 4 }, () => {
    let config: string;
    let seeded: Seeded;
    before(async () => {
      ({ config, seeded } = await seededSqlite("inspect"));
    });

    test("status: a bridge that accepts but never answers is reported as silent, and the rest still prints", async () => {
      const silent = createServer(() => {});
      await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      try {
        const r = await cli(["status", "-c", config, "--json", "--url", url]);
        assert.equal(r.code, 0, r.stderr);
        const out = JSON.parse(r.stdout);
        assert.deepEqual(out.bridge, { url, reachable: false, error: "no answer within 2 s" });
        assert.equal(out.channels[0].pending, 2);
      } finally {
        silent.closeAllConnections();
        silent.close();
      }
    });

    test("status: per channel pending, oldest age, dead, failed sends; breaker unknown without a bridge", async () => {
      const r = await cli(["status", "-c", config, "--url", NOBODY]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.split("\n");
      assert.match(lines[0]!, /^CHANNEL +PENDING +OLDEST +DEAD +FAILED SENDS \(since 24h\) +BREAKER$/);
      assert.match(lines[1]!, /^support +2 +2h0\dm +1 +1 +unknown$/);
      assert.match(lines[2]!, /^sales +0 +- +1 +0 +unknown$/);
      assert.ok(
        r.stdout.includes(`breaker: unknown (bridge not reachable at ${NOBODY}: ECONNREFUSED)`),
        r.stdout,
      );
      assert.match(
        r.stdout,
        /support +\d+ +\+15105559999 +failed +30006: Landline or unreachable carrier +reply SMreply1/,
      );
      assert.doesNotMatch(r.stdout, /SMreply2/, "delivered replies are not failures");
      assert.match(r.stdout, /smsbridge dead list/);
      assert.match(r.stdout, /\nretention: every message is kept \(retention\.days is not set; /);
    });

    test("dead list: one line per dead message, answers cut at 80 characters", async () => {
      const r = await cli(["dead", "list", "-c", config]);
      assert.equal(r.code, 0, r.stderr);
      const [header, ...rows] = r.stdout.trimEnd().split("\n");
      assert.match(header!, /^ID +CHANNEL +DEAD SINCE +STATUS +ERROR +ANSWER$/);
      assert.equal(rows.length, 2);
      assert.match(
        rows[0]!,
        new RegExp(
          `^${seeded.supportDead} +support +${iso(seeded.now - 30 * MIN)} +422 +rejected: HTTP 422 +\\{"error":"to\\.phone: no channel has this number"\\}$`,
        ),
      );
      assert.match(
        rows[1]!,
        new RegExp(`^${seeded.salesDead} +sales .* 503 +gave up after 12 attempts: HTTP 503 +x{79}…$`),
      );
    });

    test("dead list --json --channel: machine-readable, filtered", async () => {
      const r = await cli(["dead", "list", "-c", config, "--json", "--channel", "sales"]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), [
        {
          id: seeded.salesDead,
          channel: "sales",
          deadAt: iso(seeded.now - 10 * MIN),
          attempts: 1,
          status: 503,
          error: "gave up after 12 attempts: HTTP 503",
          answer: "x".repeat(200),
        },
      ]);
    });

    test("dead show: why, the helpdesk's answer and the payload, pretty-printed", async () => {
      const r = await cli(["dead", "show", String(seeded.supportDead), "-c", config]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^message ${seeded.supportDead} on channel support: dead\n`));
      assert.match(r.stdout, /error +rejected: HTTP 422/);
      assert.match(
        r.stdout,
        /helpdesk answer:\n {2}\{\n {4}"error": "to\.phone: no channel has this number"\n {2}\}/,
      );
      assert.match(
        r.stdout,
        /payload \(pretty-printed; the stored bytes are signed and sent as they are to http:\/\/127\.0\.0\.1:1\/incoming\/sms\):/,
      );
      assert.match(r.stdout, /\n {4}"id": "simulator:SM1",\n/);
      assert.match(r.stdout, new RegExp(`replay it with: smsbridge dead replay ${seeded.supportDead} -c `));
    });

    test("dead show: an unknown id exits 1 and says where ids come from", async () => {
      const r = await cli(["dead", "show", "999", "-c", config]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no message with id 999; `smsbridge dead list` prints the ids/);
    });
  });

  describe("dead replay", { concurrency: 1 }, () => {
    let config: string;
    let seeded: Seeded;
    before(async () => {
      ({ config, seeded } = await seededSqlite("replay"));
    });

    test("without a selection: usage error naming the three ways", async () => {
      const r = await cli(["dead", "replay", "-c", config]);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /an ID, --all, or --since TIME/);
    });

    test("by id: requeues that one", async () => {
      const r = await cli(["dead", "replay", String(seeded.supportDead), "-c", config]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^requeued 1 message; the running bridge delivers it at its next poll/);
    });

    test("--since with --channel: only that channel's recent dead; the rest are then gone", async () => {
      const r = await cli(["dead", "replay", "--since", "1h", "--channel", "sales", "-c", config]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^requeued 1 message;/);
      const none = await cli(["dead", "replay", "--all", "-c", config]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /nothing to replay: no dead messages/);
      const store = openStore(`sqlite:${join(tmp, "replay.db")}`);
      try {
        const stats = await store.channelStats();
        assert.deepEqual(stats.map((s) => [s.channelId, s.pending, s.dead]).sort(), [
          ["sales", 1, 0],
          ["support", 3, 0],
        ]);
      } finally {
        await store.close();
      }
    });
  });

  describe("status against a running bridge", { concurrency: 1 }, () => {
    let helpdesk: Server;
    let bridge: RunningBridge;
    let config: string;
    before(async () => {
      // The helpdesk end: "support" is down (503), "sales" works.
      helpdesk = createServer((req, res) => {
        req.resume();
        res.writeHead(req.url?.startsWith("/down") ? 503 : 200).end();
      });
      helpdesk.listen(0, "127.0.0.1");
      await once(helpdesk, "listening");
      const base = `http://127.0.0.1:${(helpdesk.address() as AddressInfo).port}`;
      config = join(tmp, "running.yaml");
      writeFileSync(
        config,
        stringify({
          server: { port: 0, host: "127.0.0.1" },
          database: `sqlite:${join(tmp, "running.db")}`,
          log: { level: "silent" },
          forwarder: { breakerThreshold: 1, breakerCooldownMs: 600_000, retryBaseMs: 600_000, pollMs: 50 },
          channels: [
            {
              id: "support",
              numbers: ["+16501234567"],
              reamaze: { incomingUrl: `${base}/down`, secrets: ["support-secret-1234"] },
              provider: { type: "simulator" },
            },
            {
              id: "sales",
              numbers: ["+16501234568"],
              reamaze: { incomingUrl: `${base}/up`, secrets: ["sales-secret-1234"] },
              provider: { type: "simulator" },
            },
          ],
        }),
      );
      bridge = await startBridge({ loaded: loadConfig(config), port: 0, host: "127.0.0.1" });
      await bridge.store.ingest({
        channelId: "support",
        provider: "simulator",
        providerMessageId: "SMdown",
        customer: "+15105559999",
        channelNumber: "+16501234567",
        body: "anyone there?",
        createdAt: Date.now(),
        threading: { mode: "session", idleHours: 24 },
        payload: () => Buffer.from('{"id":"simulator:SMdown"}'),
      });
      bridge.forwarder.wake();
      // Wait (bounded) until the failed delivery has opened the breaker and the bridge reports it.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const text = await (await fetch(`${bridge.url}/metrics`)).text();
        if (breakersFromMetrics(text).get("support") === "open") break;
        assert.ok(Date.now() < deadline, "the breaker never opened");
        await new Promise((r) => setTimeout(r, 25));
      }
    });
    after(async () => {
      await bridge?.close();
      helpdesk?.close();
    });

    test("--json: breaker states from the bridge's /metrics, the queued message still pending", async () => {
      const r = await cli(["status", "-c", config, "--json", "--url", bridge.url]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as {
        bridge: unknown;
        channels: Array<{ id: string; pending: number; dead: number; breaker: string; configured: boolean }>;
        deliveryFailures: unknown[];
        database: string;
      };
      assert.deepEqual(out.bridge, { url: bridge.url, reachable: true });
      assert.equal(out.database, `sqlite:${join(tmp, "running.db")}`);
      assert.deepEqual(
        out.channels.map((c) => [c.id, c.configured, c.pending, c.dead, c.breaker]),
        [
          ["support", true, 1, 0, "open"],
          ["sales", true, 0, 0, "closed"],
        ],
      );
      assert.deepEqual(out.deliveryFailures, []);
    });
  });

  describe("prune", { concurrency: 1 }, () => {
    const DAY = 24 * HOUR;
    let database: string;
    let store: Store;
    const rows = async () => ({
      messages: (await store.db.selectFrom("messages").select("provider_message_id").execute())
        .map((r) => r.provider_message_id)
        .sort(),
      outbox: (await store.db.selectFrom("outbox").select("state").execute()).length,
      replies: (await store.db.selectFrom("replies").select("body_hash").execute()).map((r) => r.body_hash),
    });
    before(async () => {
      database = `sqlite:${join(tmp, "prune.db")}`;
      store = openStore(database);
      await store.migrate();
      const now = Date.now();
      // Four messages 40 days old (one of them dead 35 days ago), two from yesterday; one staff reply
      // record two days old and one from an hour ago.
      for (const [id, age] of [
        ["old1", 40 * DAY],
        ["old2", 40 * DAY],
        ["old3", 40 * DAY],
        ["old4", 40 * DAY],
        ["new1", DAY],
        ["new2", DAY],
      ] as const) {
        await store.ingest({
          channelId: "support",
          provider: "simulator",
          providerMessageId: id,
          customer: "+15105559999",
          channelNumber: "+16501234567",
          body: id,
          createdAt: now - age,
          threading: { mode: "pair", idleHours: 24 },
          payload: () => Buffer.from(JSON.stringify({ id })),
        });
      }
      const [row] = await store.claim({ limit: 1, leaseMs: 60_000, now, channels: ["support"] });
      assert.ok(row && (await store.markDead(row.id, row.token, 422, "rejected", "{}", now - 35 * DAY)));
      for (const [hash, age] of [
        ["expired", 2 * DAY],
        ["live", HOUR],
      ] as const) {
        await store.claimReply("support", hash, now - age, 15_000);
        await store.finishReply("support", hash, 201, "{}");
      }
    });
    after(() => store.close());

    test("--dry-run counts what a setting would delete and deletes nothing", async () => {
      const before = await rows();
      const r = await cli([
        "prune",
        "-c",
        writeConfig("prune-dry.yaml", database),
        "--dry-run",
        "--days",
        "30",
        "--json",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.dryRun, true);
      assert.equal(out.days, 30);
      assert.deepEqual(out.wouldDelete, { messages: 4, deadOutbox: 1, replies: 1 });
      assert.equal(out.messages, 6);
      assert.deepEqual(await rows(), before);

      const text = await cli(["prune", "-c", writeConfig("prune-dry.yaml", database), "--dry-run"]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /^retention\.days is not set: messages and dead messages are kept/);
      assert.match(text.stdout, /reply records +1 \(past their 24 h\)\nnothing was deleted \(--dry-run\)\n$/);
    });

    test("--days below 1 is refused before anything is opened", async () => {
      const r = await cli(["prune", "-c", writeConfig("prune-dry.yaml", database), "--days", "0.5"]);
      assert.equal(r.code, 64);
      assert.match(r.stderr, /--days "0\.5": give a number of days, at least 1/);
    });

    test("a write lock held by another process past the busy timeout: exit 1, one line naming it, nothing deleted", async () => {
      const before = await rows();
      const holder = new Database(database.slice("sqlite:".length));
      holder.exec("BEGIN IMMEDIATE");
      try {
        const r = await cli(["prune", "-c", writeConfig("prune-locked.yaml", database), "--days", "30"]);
        assert.equal(r.code, 1);
        assert.match(
          r.stderr,
          /^smsbridge: database sqlite:\S+prune\.db: database is locked \(SQLITE_BUSY\); another process \(the running bridge\?\) held its write lock for over 5 s: try again\n$/,
        );
      } finally {
        holder.exec("ROLLBACK");
        holder.close();
      }
      assert.deepEqual(await rows(), before);
    });

    test("with retention.days in the config it deletes old messages, dead rows and expired reply records; pending rows stay", async () => {
      const config = writeConfig("prune.yaml", database, { retention: { days: 30 } });
      const r = await cli(["prune", "-c", config]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /^keep 30 days \(retention\.days\): deleted what was created before \d{4}-\d\d-\d\dT/,
      );
      assert.match(
        r.stdout,
        /\n {2}messages +4 \(with 0 provider ids\)\n {2}dead messages +1\n {2}reply records +1 \(past their 24 h\)\n/,
      );
      assert.deepEqual(await rows(), { messages: ["new1", "new2"], outbox: 5, replies: ["live"] });
      // A row still queued whose message retention deleted: `dead show` says so instead of leaving it out.
      const orphan = await store.db
        .selectFrom("outbox")
        .select(["id", "message_id"])
        .where("message_id", "not in", store.db.selectFrom("messages").select("id"))
        .executeTakeFirstOrThrow();
      const shown = await cli(["dead", "show", String(orphan.id), "-c", config]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(
        shown.stdout,
        new RegExp(
          `\\n {2}message +#${orphan.message_id} no longer stored \\(deleted by retention\\); the payload below is complete\\n`,
        ),
      );
      const json = JSON.parse(
        (await cli(["dead", "show", String(orphan.id), "-c", config, "--json"])).stdout,
      );
      assert.equal(json.messageId, orphan.message_id);
      assert.equal(json.message, null);
      const status = await cli(["status", "-c", config, "--url", NOBODY]);
      assert.match(status.stdout, /\nretention: messages older than 30 days are deleted every 60 min /);
      // Nothing left to delete: a second run says so.
      const again = await cli(["prune", "-c", config, "--json"]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(JSON.parse(again.stdout).deleted, {
        messages: 0,
        providerRefs: 0,
        deadOutbox: 0,
        replies: 0,
      });
    });
  });

  describe("check-config", { concurrency: 3 }, () => {
    const env = {
      OPS_REAMAZE_NEW: "reamaze-new-secret-value-NW",
      OPS_REAMAZE_OLD: "reamaze-old-secret-value-OD",
      OPS_TWILIO_TOKEN: "0123456789abcdef0123456789abcdTK",
      OPS_PLIVO_TOKEN: "plivo-auth-token-value-PV",
      OPS_DB_PASSWORD: "db-password-value",
    };
    let file: string;
    before(() => {
      file = join(tmp, "check.yaml");
      writeFileSync(
        file,
        [
          "server:",
          "  port: 8080",
          "  publicUrl: https://sms.example.com/bridge",
          "database: postgres://smsbridge:${OPS_DB_PASSWORD}@db.internal:5432/smsbridge",
          "channels:",
          "  - id: support",
          "    name: Support",
          '    numbers: ["+16501234567", "+16501234568"]',
          "    reamaze:",
          '      secrets: ["${OPS_REAMAZE_NEW}", "${OPS_REAMAZE_OLD}"]',
          "    provider:",
          "      type: twilio",
          "      accountSid: AC0123456789abcdef0123456789abcdef",
          "      authToken: ${OPS_TWILIO_TOKEN}",
          "  - id: eu",
          '    numbers: ["+442071838750"]',
          "    reamaze:",
          "      incomingUrl: https://sandbox.example.com/incoming/sms",
          '      secrets: ["${OPS_REAMAZE_NEW}"]',
          "    threading: { mode: pair }",
          "    provider:",
          "      type: plivo",
          "      authId: MAXXXXXXXXXXXXXXXXXX",
          "      authToken: ${OPS_PLIVO_TOKEN}",
          "",
        ].join("\n"),
      );
    });

    test("valid: a summary per channel with the URLs to paste, and no secret on screen", async () => {
      const r = await cli(["check-config", "-c", file], env);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^.*check\.yaml: valid\n/);
      assert.match(r.stdout, /database +postgres:\/\/smsbridge:\*\*\*@db\.internal:5432\/smsbridge/);
      assert.match(r.stdout, /\nretention +every message kept \(retention\.days not set\)\n/);
      assert.match(r.stdout, /\nforwarder +delivers to each channel's helpdesk, retrying for up to 72 h\n/);
      assert.match(r.stdout, /channel support "Support"\n {2}numbers +\+16501234567, \+16501234568\n/);
      assert.match(
        r.stdout,
        /provider +twilio +accountSid=AC0123456789abcdef0123456789abcdef authToken=••••TK/,
      );
      assert.match(r.stdout, /secrets +••••NW, ••••OD +\(the first signs, all verify\)/);
      assert.match(r.stdout, /\n {4}https:\/\/sms\.example\.com\/bridge\/channels\/support\/reamaze\n/);
      assert.match(r.stdout, /incoming messages +https:\/\/sms\.example\.com\/bridge\/channels\/eu\/inbound/);
      assert.match(r.stdout, /status callbacks +https:\/\/sms\.example\.com\/bridge\/channels\/eu\/status/);
      assert.match(r.stdout, /helpdesk +https:\/\/sandbox\.example\.com\/incoming\/sms/);
      assert.match(r.stdout, /threading +pair/);
      assert.doesNotMatch(r.stdout, /warnings:/);
      for (const secret of Object.values(env)) {
        assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), "a secret reached the screen");
        assert.ok(!r.stdout.includes(secret.slice(-3)), "more than two characters of a secret shown");
      }
    });

    test("a webhook-only instance says so, in text and JSON", async () => {
      const webhookOnly = join(tmp, "check-webhook-only.yaml");
      writeFileSync(webhookOnly, `${readFileSync(file, "utf8")}forwarder:\n  enabled: false\n`);
      const text = await cli(["check-config", "-c", webhookOnly], env);
      assert.equal(text.code, 0, text.stderr);
      assert.match(
        text.stdout,
        /\nforwarder +off \(forwarder\.enabled false\): a webhook-only instance; another instance on the same database must deliver\n/,
      );
      const json = await cli(["check-config", "-c", webhookOnly, "--json"], env);
      assert.equal(JSON.parse(json.stdout).forwarder.enabled, false);
    });

    test("--json: the same summary as data", async () => {
      const r = await cli(["check-config", "-c", file, "--json"], env);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.valid, true);
      assert.deepEqual(out.server, {
        listen: "0.0.0.0:8080",
        publicUrl: "https://sms.example.com/bridge",
        trustProxy: false,
        bodyLimit: 1048576,
        backgroundNice: 0,
      });
      assert.deepEqual(out.adminApi, { enabled: false });
      assert.deepEqual(out.retention, { sweepMinutes: 60, batch: 200 });
      assert.deepEqual(out.channels[1], {
        id: "eu",
        name: null,
        numbers: ["+442071838750"],
        provider: { type: "plivo", authId: "MAXXXXXXXXXXXXXXXXXX", authToken: "••••PV" },
        reamaze: {
          incomingUrl: "https://sandbox.example.com/incoming/sms",
          secrets: ["••••NW"],
          timeoutMs: 15000,
        },
        threading: { mode: "pair", idleHours: 24 },
        concurrency: 16,
        urls: {
          inbound: "https://sms.example.com/bridge/channels/eu/inbound",
          status: "https://sms.example.com/bridge/channels/eu/status",
          reamaze: "https://sms.example.com/bridge/channels/eu/reamaze",
        },
      });
      assert.deepEqual(out.warnings, []);
      for (const secret of Object.values(env)) assert.ok(!r.stdout.includes(secret));
    });

    test("examples/smsbridge.yaml is valid and covers every provider", () => {
      const example = fileURLToPath(new URL("../../examples/smsbridge.yaml", import.meta.url));
      const vars = [...readFileSync(example, "utf8").matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => m[1]!);
      const exampleEnv = Object.fromEntries(vars.map((v) => [v, `value-of-${v}-0123456789`]));
      exampleEnv.TELNYX_PUBLIC_KEY = "eu2zvPjhY6odxV34Z/EsRiERvTodkev4Fq0SlK90Izg=";
      const loaded = loadConfig(example, exampleEnv);
      assert.deepEqual([...new Set([...loaded.providers.values()].map((p) => p.type))].sort(), [
        "plivo",
        "signalwire",
        "telnyx",
        "twilio",
        "vonage",
      ]);
    });

    test("every YAML example in the configuration and deployment docs is a valid config", () => {
      const env: NodeJS.ProcessEnv = { TELNYX_PUBLIC_KEY: "eu2zvPjhY6odxV34Z/EsRiERvTodkev4Fq0SlK90Izg=" };
      let checked = 0;
      for (const doc of ["configuration.md", "deployment.md"]) {
        const text = readFileSync(fileURLToPath(new URL(`../../docs/${doc}`, import.meta.url)), "utf8");
        for (const [, block] of text.matchAll(/```yaml\n([\s\S]*?)```/g)) {
          for (const [, name] of block!.matchAll(/\$\{([A-Z0-9_]+)\}/g))
            env[name!] ??= `value-of-${name}-0123456789`;
          env.DATABASE_URL = "postgres://smsbridge:password@db.internal:5432/smsbridge";
          const parsed = parseYaml(block!) as Record<string, unknown>;
          // A provider snippet is checked inside a minimal channel; other fragments (one section) are skipped.
          const whole = parsed.channels
            ? parsed
            : parsed.provider
              ? {
                  channels: [
                    {
                      id: "x",
                      numbers: ["+16501234567"],
                      reamaze: { secrets: ["s"] },
                      provider: parsed.provider,
                    },
                  ],
                }
              : undefined;
          if (!whole) continue;
          assert.doesNotThrow(() => validateConfig(whole, env), `${doc}:\n${block}`);
          checked++;
        }
      }
      assert.ok(checked >= 10, `only ${checked} examples found`);
    });

    test("invalid: exit 78 with every problem, also as JSON", async () => {
      const r = await cli(["check-config", "-c", file, "--json"], {
        ...env,
        OPS_TWILIO_TOKEN: "",
        OPS_PLIVO_TOKEN: "",
      });
      assert.equal(r.code, 78);
      const out = JSON.parse(r.stdout) as { valid: boolean; problems: string[] };
      assert.equal(out.valid, false);
      assert.deepEqual(out.problems, [
        "channels[0].provider.authToken: environment variable OPS_TWILIO_TOKEN is not set",
        "channels[1].provider.authToken: environment variable OPS_PLIVO_TOKEN is not set",
      ]);
      assert.match(
        r.stderr,
        /invalid configuration:\n {2}channels\[0\]\.provider\.authToken: environment variable/,
      );
    });
  });

  describe("database problems", { concurrency: 1 }, () => {
    test("status on a SQLite file that does not exist: exit 1, names the path and what to do", async () => {
      const config = writeConfig("missing.yaml", `sqlite:${join(tmp, "nowhere", "missing.db")}`);
      const r = await cli(["status", "-c", config]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /missing\.db: no such file .* run `smsbridge migrate` first/);
    });

    test("a database URL from an unset variable: exit 78 naming it", async () => {
      const config = writeConfig("nodb.yaml", "${OPS_TEST_UNSET_DB}");
      const r = await cli(["dead", "list", "-c", config]);
      assert.equal(r.code, 78);
      assert.match(
        r.stderr,
        /invalid configuration:\n {2}database: environment variable OPS_TEST_UNSET_DB is not set\n$/,
      );
    });
  });

  describe("PostgreSQL", { concurrency: 1 }, () => {
    let scratch: ScratchDb;
    before(async () => {
      scratch = await scratchPostgres();
    });
    after(async () => {
      await scratch?.drop();
    });

    test("migrate, then status --json over the rows the bridge would write", async () => {
      const config = writeConfig("pg.yaml", scratch.url);
      const m = await cli(["migrate", "-c", config]);
      assert.equal(m.code, 0, m.stderr);
      assert.match(
        m.stdout,
        /applied 7 migrations\n {2}0001_initial\n {2}0002_delivery_failures_index\n {2}0003_claim_index\n {2}0004_keyed_tables_without_rowid\n {2}0005_drop_global_due_index\n {2}0006_drop_delivered_outbox_rows\n {2}0007_retention_indexes\n/,
      );
      const store = openStore(scratch.url);
      let seeded: Seeded;
      try {
        seeded = await seed(store);
      } finally {
        await store.close();
      }
      const r = await cli(["status", "-c", config, "--json", "--url", NOBODY]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.deepEqual(out.bridge, { url: NOBODY, reachable: false, error: "ECONNREFUSED" });
      assert.deepEqual(out.channels[0], {
        id: "support",
        configured: true,
        pending: 2,
        oldestPendingAt: iso(seeded.now - 2 * HOUR),
        oldestPendingAgeSeconds: out.channels[0].oldestPendingAgeSeconds,
        dead: 1,
        deliveryFailures: 1,
        breaker: "unknown",
      });
      assert.ok(out.channels[0].oldestPendingAgeSeconds >= 2 * 3600);
      assert.equal(out.channels[1].dead, 1);
      assert.deepEqual(
        out.deliveryFailures.map(
          (f: { providerMessageId: string; state: string; error: string; direction: string }) => [
            f.providerMessageId,
            f.state,
            f.error,
            f.direction,
          ],
        ),
        [["SMreply1", "failed", "30006: Landline or unreachable carrier", "reply"]],
      );
    });
  });
});
