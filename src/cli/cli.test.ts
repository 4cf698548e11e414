// The protocol commands run as a real child process, as a person or a script runs them.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { verify } from "../protocol/signature.js";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
const BIN = fileURLToPath(new URL("../../bin/smsbridge.js", import.meta.url));
const BUILT = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

/** Newest mtime of the sources that end up in dist/ (tests and fixtures do not). */
function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "testdata" && entry.name !== "test-support")
        newest = Math.max(newest, newestSource(p));
    } else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) {
      newest = Math.max(newest, statSync(p).mtimeMs);
    }
  }
  return newest;
}

// The built bin starts in a fraction of the time tsx needs to load every command's sources; use it when
// dist/ is at least as new as src/ (CI builds first), else the sources. SMSBRIDGE_TEST_CLI=tsx|dist forces one.
const mode =
  process.env.SMSBRIDGE_TEST_CLI ??
  (existsSync(BUILT) && statSync(BUILT).mtimeMs >= newestSource(fileURLToPath(new URL("..", import.meta.url)))
    ? "dist"
    : "tsx");
const ENTRY = mode === "dist" ? [BIN] : ["--import", "tsx", MAIN];
const via = mode === "dist" ? "bin/smsbridge.js" : "tsx src/cli/main.ts";
const fixture = (path: string) => fileURLToPath(new URL(`../protocol/testdata/${path}`, import.meta.url));
const SEED_SIG = "FgdUISIrhWKi9IhRN80V37obl/NYrpXeaZvV95dmgeU=";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function cli(
  args: string[],
  opts: { input?: string | Buffer; env?: Record<string, string> } = {},
): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  if (!opts.env?.SMSBRIDGE_SECRET) delete env.SMSBRIDGE_SECRET;
  if (!opts.env?.SMSBRIDGE_URL) delete env.SMSBRIDGE_URL;
  const child = spawn(process.execPath, [...ENTRY, ...args], { env, stdio: "pipe" });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  child.stdin.end(opts.input ?? "");
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr };
}

describe(`sign (${via})`, { concurrency: 4 }, () => {
  test("the seed example from stdin, secret from SMSBRIDGE_SECRET", async () => {
    const r = await cli(["sign"], {
      input: '{"id":"1","body":"hello"}',
      env: { SMSBRIDGE_SECRET: "your_shared_secret" },
    });
    assert.deepEqual(r, { code: 0, stdout: `${SEED_SIG}\n`, stderr: "" });
  });

  test("a FILE's exact bytes, as openssl signed them; --header prints the line", async () => {
    const r = await cli([
      "sign",
      "--secret",
      "your_shared_secret",
      "--header",
      fixture("signature/non-ascii-names.json"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "X-Reamaze-Hmac-SHA256: HFXyv22/lTrmkwEDlt34EUCEMLoJTGpT5XsjvYsPip8=\n");
  });

  test("no secret: usage error that names both ways to give one", async () => {
    const r = await cli(["sign"], { input: "{}" });
    assert.equal(r.code, 64);
    assert.match(r.stderr, /--secret.*SMSBRIDGE_SECRET/);
  });

  test("an unreadable FILE exits 66", async () => {
    const r = await cli(["sign", "-s", "k", "/nonexistent/body.json"]);
    assert.equal(r.code, 66);
    assert.match(r.stderr, /cannot read \/nonexistent\/body\.json: no such file/);
  });
});

describe(`verify (${via})`, { concurrency: 4 }, () => {
  test("valid, and says which of the rotated secrets matched", async () => {
    const r = await cli(["verify", "-s", "new", "-s", "your_shared_secret", "--signature", SEED_SIG], {
      input: '{"id":"1","body":"hello"}',
    });
    assert.deepEqual(r, { code: 0, stdout: "valid: matches secret #2 of 2\n", stderr: "" });
  });

  test("a FILE, secret from the environment, Ruby's encode64 newline in the signature", async () => {
    const r = await cli(["verify", "--signature", `${SEED_SIG}\n`, fixture("signature/seed.json")], {
      env: { SMSBRIDGE_SECRET: "your_shared_secret" },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "valid: matches secret #1\n");
  });

  test("other bytes: exit 1, with the reason and a hint", async () => {
    const r = await cli(["verify", "-s", "your_shared_secret", "--signature", SEED_SIG], {
      input: '{"id":"1","body":"hello"}\n',
    });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^invalid: X-Reamaze-Hmac-SHA256 does not match/);
    assert.match(r.stderr, /\nhint: /);
  });

  test("not a signature: exit 1, says what one looks like", async () => {
    const r = await cli(["verify", "-s", "k", "--signature", "abc"], { input: "{}" });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not a base64 SHA-256 HMAC/);
  });
});

interface Hit {
  path: string;
  headers: IncomingHttpHeaders;
  bytes: Buffer;
}

describe(`send (${via})`, { concurrency: 4 }, () => {
  const hits: Hit[] = [];
  let base = "";
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      hits.push({ path: req.url ?? "", headers: req.headers, bytes: Buffer.concat(chunks) });
      if (req.url === "/busy") res.writeHead(503, { "retry-after": "30" }).end('{"error":"maintenance"}');
      else if (req.url === "/bad")
        res.writeHead(422, { "content-type": "application/json" }).end('{"error":"from.phone: required"}');
      else res.writeHead(201, { "content-type": "application/json" }).end('{"id":"m1"}');
    });
  });
  before(async () => {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  const hitFor = (path: string) => {
    const h = hits.find((x) => x.path === path);
    assert.ok(h, `nothing arrived at ${path}`);
    return h;
  };

  test("from flags: delivered, exit 0; the bytes verify and carry every field", async () => {
    const r = await cli(
      [
        "send",
        "--url",
        `${base}/flags`,
        "--from",
        "+1 (510) 555-9999",
        "--to",
        "+16501234567",
        "--name",
        "Zoë",
        "--to-name",
        "Support",
        "--body",
        "hi 👋",
        "--thread-id",
        "t-1",
        "--attachment",
        "https://example.com/a.png",
        "--attachment",
        "https://example.com/b.png",
        "--created-at",
        "2019-08-06T23:21:15+0000",
        "--assignee",
        "staffemail@example.com",
      ],
      { env: { SMSBRIDGE_SECRET: "s3cret" } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^delivered: HTTP 201\n\{"id":"m1"\}\n$/);
    const hit = hitFor("/flags");
    assert.deepEqual(verify(hit.bytes, hit.headers["x-reamaze-hmac-sha256"], ["s3cret"]), {
      ok: true,
      secretIndex: 0,
    });
    const { id, ...rest } = JSON.parse(hit.bytes.toString("utf8")) as Record<string, unknown>;
    assert.match(String(id), /^smsbridge-cli:[0-9a-f-]{36}$/);
    assert.deepEqual(rest, {
      to: { name: "Support", phone: "+16501234567" },
      from: { name: "Zoë", phone: "+15105559999" },
      body: "hi 👋",
      attachments: ["https://example.com/a.png", "https://example.com/b.png"],
      thread_id: "t-1",
      created_at: "2019-08-06T23:21:15+0000",
      assignee: { email: "staffemail@example.com" },
    });
  });

  test("a payload FILE is sent byte for byte; URL from SMSBRIDGE_URL; --json", async () => {
    const file = fixture("payloads/seed-incoming.json");
    const r = await cli(["send", "--json", "-s", "s3cret", file], { env: { SMSBRIDGE_URL: `${base}/file` } });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(out.kind, "delivered");
    assert.equal(out.status, 201);
    assert.equal(out.exitCode, 0);
    assert.equal(JSON.stringify(out).includes("s3cret"), false, "the secret is never printed");
    const hit = hitFor("/file");
    assert.deepEqual(hit.bytes, readFileSync(file));
    assert.equal(hit.headers["x-reamaze-hmac-sha256"], out.signature);
  });

  test("5xx: exit 75 (EX_TEMPFAIL) with Retry-After", async () => {
    const r = await cli([
      "send",
      "--url",
      `${base}/busy`,
      "-s",
      "k",
      "--from",
      "+15105559999",
      "--to",
      "+16501234567",
      "--body",
      "x",
    ]);
    assert.equal(r.code, 75);
    assert.match(r.stderr, /^retry later: HTTP 503; retry after 30 s\n\{"error":"maintenance"\}/);
  });

  test("other 4xx: exit 65 (EX_DATAERR) with the answer", async () => {
    const r = await cli([
      "send",
      "--url",
      `${base}/bad`,
      "-s",
      "k",
      "--from",
      "+15105559999",
      "--to",
      "+16501234567",
      "--body",
      "x",
    ]);
    assert.equal(r.code, 65);
    assert.match(r.stderr, /^rejected: HTTP 422.*\n\{"error":"from\.phone: required"\}/);
  });

  test("connection refused: exit 75", async () => {
    const r = await cli([
      "send",
      "--url",
      "http://127.0.0.1:9/x",
      "-s",
      "k",
      "--from",
      "+15105559999",
      "--to",
      "+16501234567",
      "--body",
      "x",
    ]);
    assert.equal(r.code, 75);
    assert.match(r.stderr, /network error/);
  });

  test("an invalid payload is not sent: exit 65 naming each field", async () => {
    const r = await cli([
      "send",
      "--url",
      `${base}/invalid`,
      "-s",
      "k",
      "--from",
      "5105559999",
      "--to",
      "+16501234567",
      "--body",
      "x",
      "--created-at",
      "yesterday",
    ]);
    assert.equal(r.code, 65);
    assert.match(r.stderr, /invalid payload: .*from\.phone: not E\.164.*created_at: not ISO 8601/);
    assert.equal(
      hits.some((h) => h.path === "/invalid"),
      false,
    );
  });

  test("--no-validate sends it anyway (to test a receiver)", async () => {
    const r = await cli(["send", "--no-validate", "--url", `${base}/novalidate`, "-s", "k", "-"], {
      input: "not json",
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(hitFor("/novalidate").bytes, Buffer.from("not json"));
  });

  test("a FILE and payload flags together: usage error", async () => {
    const r = await cli([
      "send",
      "--url",
      base,
      "-s",
      "k",
      "--body",
      "x",
      fixture("payloads/seed-incoming.json"),
    ]);
    assert.equal(r.code, 64);
    assert.match(r.stderr, /either a payload FILE or --body/);
  });
});

describe(`--help on every command (${via})`, { concurrency: 3 }, () => {
  for (const [cmd, mention] of [
    ["sign", /X-Reamaze-Hmac-SHA256/],
    ["verify", /--signature/],
    ["send", /Exit status: 0 delivered/],
  ] as const) {
    test(cmd, async () => {
      const r = await cli([cmd, "--help"]);
      assert.equal(r.code, 0);
      assert.match(r.stdout, mention);
      assert.match(r.stdout, /SMSBRIDGE_SECRET/);
    });
  }
});
