import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { Writable } from "node:stream";
import { describe, test } from "node:test";
import Fastify, { type FastifyBaseLogger } from "fastify";
import { blankSecretKeys, createLogger, lazyRequestLogger, scrubber } from "./logger.js";

const LOGGER = new URL("./logger.ts", import.meta.url).href;

/**
 * Runs a script in a child process (through tsx, like the tests) and collects its standard output.
 * `lines(n, ms)` waits for n lines, then kills the child; after ms without them it kills it and fails.
 */
function runChild(script: string): {
  stdout: Promise<string>;
  lines: (n: number, ms: number) => Promise<string[]>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  const count = () => out.split("\n").filter(Boolean).length;
  const waiters: Array<() => void> = [];
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString("utf8");
    for (const w of waiters.splice(0)) w();
  });
  const stdout = new Promise<string>((resolve) => child.on("close", () => resolve(out)));
  const lines = async (n: number, ms: number) => {
    const timer = setTimeout(() => child.kill(), ms);
    try {
      while (count() < n && child.exitCode === null && child.signalCode === null) {
        await Promise.race([new Promise<void>((r) => waiters.push(r)), stdout]);
      }
    } finally {
      clearTimeout(timer);
      child.kill();
    }
    if (count() < n) throw new Error(`${count()} of ${n} lines within ${ms} ms: ${JSON.stringify(out)}`);
    return out.split("\n").filter(Boolean);
  };
  return { stdout, lines };
}

const messages = (text: string) =>
  text
    .split("\n")
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { msg: string }).msg);

describe("logger: buffered standard output", () => {
  const cases: Array<{ name: string; script: string }> = [
    {
      name: "lines still buffered when the process calls exit() are written on the way out",
      script: `import { createLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger(); log.info("one"); log.info("two"); process.exit(0);`,
    },
    {
      name: "lines still buffered when the event loop runs dry are written on the way out",
      script: `import { createLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger(); log.info("one"); log.info("two");`,
    },
    {
      name: "two loggers share one destination: both lines arrive, whole",
      script: `import { createLogger } from ${JSON.stringify(LOGGER)};
createLogger().info("one"); createLogger().info("two"); process.exit(0);`,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      assert.deepEqual(messages(await runChild(c.script).stdout), ["one", "two"]);
    });
  }

  // A liveness bound, not a speed figure: without the periodic flush the line would wait forever.
  test("a line on a bridge that keeps running goes out without waiting for 4 KiB more", {
    timeout: 15_000,
  }, async () => {
    const child = runChild(`import { createLogger } from ${JSON.stringify(LOGGER)};
createLogger().info("alive"); setInterval(() => {}, 1000);`);
    assert.deepEqual(messages((await child.lines(1, 10_000)).join("\n")), ["alive"]);
  });
});

describe("scrubber", () => {
  const cases: Array<{ name: string; secrets: string[]; line: string; want: string }> = [
    {
      name: "a secret anywhere in the line",
      secrets: ["s3cr3t-token"],
      line: 'url?k=s3cr3t-token"',
      want: 'url?k=[REDACTED]"',
    },
    {
      name: "every occurrence",
      secrets: ["abcd1234"],
      line: "abcd1234 and abcd1234",
      want: "[REDACTED] and [REDACTED]",
    },
    {
      name: "the longer of two overlapping secrets first",
      secrets: ["abcd", "abcdefgh"],
      line: "x abcdefgh y",
      want: "x [REDACTED] y",
    },
    {
      name: "values under 4 characters are not treated as secrets",
      secrets: ["ab"],
      line: "ab cab",
      want: "ab cab",
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const written: string[] = [];
      scrubber(c.secrets, { write: (l: string) => written.push(l) }).write(c.line);
      assert.deepEqual(written, [c.want]);
    });
  }
});

/**
 * Keys and headers that hold credentials are blanked by name, whatever their value (the scrubber above only
 * knows the configured secrets). Each case logs a value no scrubber knows and reads the JSON line back.
 */
describe("logger: redaction by name", () => {
  const SECRET = "value-only-this-test-knows";
  const cases: Array<{
    name: string;
    log: (l: ReturnType<typeof createLogger>) => void;
    path: string[];
  }> = [
    ...[
      "authorization",
      "cookie",
      "x-reamaze-hmac-sha256",
      "x-twilio-signature",
      "x-signalwire-signature",
      "x-plivo-signature-v2",
      "x-plivo-signature-v3",
      "telnyx-signature-ed25519",
      "x-simulator-signature",
    ].map((h) => ({
      name: `a request's ${h} header`,
      log: (l: ReturnType<typeof createLogger>) =>
        l.warn({ req: { method: "POST", url: "/x", headers: { [h]: SECRET, host: "h" } } }, "refused"),
      path: ["req", "headers", h],
    })),
    {
      name: "an Authorization header logged as `headers`",
      log: (l) => l.error({ headers: { authorization: `Basic ${SECRET}` } }, "provider answered 401"),
      path: ["headers", "authorization"],
    },
    ...["authToken", "apiKey", "apiSecret", "secret", "secrets"].map((k) => ({
      name: `${k} in any object of the line`,
      log: (l: ReturnType<typeof createLogger>) => l.info({ provider: { type: "x", [k]: SECRET } }, "config"),
      path: ["provider", k],
    })),
    {
      name: "a key in a child logger's bindings",
      log: (l) => l.child({ channel: { id: "c", apiKey: SECRET } }).info("bound"),
      path: ["channel", "apiKey"],
    },
    {
      name: "a key in a grandchild's bindings",
      log: (l) =>
        l
          .child({ a: 1 })
          .child({ provider: { secret: SECRET } })
          .info("bound"),
      path: ["provider", "secret"],
    },
    {
      name: "a key of a frozen object",
      log: (l) => l.info({ provider: Object.freeze({ type: "x", apiSecret: SECRET }) }, "config"),
      path: ["provider", "apiSecret"],
    },
    {
      name: "a key on an Error, which still serialises as an Error",
      log: (l) => l.error({ err: Object.assign(new Error("boom"), { authToken: SECRET }) }, "failed"),
      path: ["err", "authToken"],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(chunk.toString("utf8"));
          done();
        },
      });
      c.log(createLogger({ destination }));
      assert.equal(lines.length, 1);
      assert.ok(!lines[0]!.includes(SECRET), lines[0]);
      let v: unknown = JSON.parse(lines[0]!);
      for (const k of c.path) v = (v as Record<string, unknown>)[k];
      assert.equal(v, "[REDACTED]");
    });
  }

  test("an Error keeps its type, message and stack when a key on it is blanked", () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString("utf8"));
        done();
      },
    });
    createLogger({ destination }).error(
      { err: Object.assign(new TypeError("boom"), { secret: SECRET }) },
      "x",
    );
    const err = (JSON.parse(lines[0]!) as { err: Record<string, string> }).err;
    assert.equal(err.type, "TypeError");
    assert.equal(err.message, "boom");
    assert.match(err.stack!, /TypeError: boom\n\s+at /);
    assert.equal(err.secret, "[REDACTED]");
  });

  test("a line with nothing to blank is passed on as it is, not copied", () => {
    const obj = { channel: "c", provider: { type: "twilio" } };
    assert.equal(blankSecretKeys(obj), obj);
  });

  test("an object passed in is not changed by its line's redaction", () => {
    const provider = { type: "x", authToken: SECRET };
    const destination = new Writable({ write: (_c, _e, done) => done() });
    createLogger({ destination }).info({ provider }, "config");
    assert.equal(provider.authToken, SECRET);
  });
});

describe("lazyRequestLogger", () => {
  test("a request's logger is built on first use, and its lines carry the request id", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
        done();
      },
    });
    const log = createLogger({ destination });
    let children = 0;
    const child = log.child.bind(log);
    log.child = ((...args: Parameters<typeof child>) => {
      children++;
      return child(...args);
    }) as typeof log.child;
    const app = Fastify({
      loggerInstance: log as unknown as FastifyBaseLogger,
      disableRequestLogging: true,
      childLoggerFactory: lazyRequestLogger,
    });
    app.get("/quiet", async () => ({ ok: true }));
    app.get("/loud", async (req) => {
      req.log.warn({ token: "x" }, "something to say");
      req.log.info("and more");
      return { ok: true };
    });
    try {
      await app.ready();
      children = 0; // Fastify's own, at start-up
      for (let i = 0; i < 20; i++) assert.equal((await app.inject({ url: "/quiet" })).statusCode, 200);
      assert.equal(children, 0, "no request logged anything, so no child logger was built");

      assert.equal((await app.inject({ url: "/loud" })).statusCode, 200);
      assert.equal(children, 1, "one child for the request that logged, however many lines");
      const said = lines.filter((l) => l.msg === "something to say" || l.msg === "and more");
      assert.equal(said.length, 2);
      assert.ok(said[0]?.reqId, "the line carries the request id");
      assert.equal(said[0]?.reqId, said[1]?.reqId);
      assert.equal(said[0]?.level, 40);
    } finally {
      await app.close();
    }
  });

  test("a level set on the request's logger applies to it alone", async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString("utf8"));
        done();
      },
    });
    const log = createLogger({ destination, level: "info" });
    const req = lazyRequestLogger(log, { reqId: "r1" }, {});
    assert.equal(req.level, "info");
    req.debug("hidden");
    req.level = "debug";
    req.debug("shown");
    log.debug("parent still at info");
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { msg: string; reqId: string }).msg),
      ["shown"],
    );
    assert.equal(log.level, "info");
  });
});
