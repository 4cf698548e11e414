import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { sign } from "../../protocol/signature.js";

/** `smsbridge sandbox` as a person runs it: a real process, its printed URL and secret, and a restart. */

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

interface Started {
  child: ChildProcess;
  output: () => string;
}

function run(args: string[]): Started {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, "sandbox", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SMSBRIDGE_SANDBOX_SECRET: "", SMSBRIDGE_SANDBOX_WEBHOOK_URL: "" },
  });
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  return { child, output: () => out };
}

async function waitFor(s: Started, re: RegExp): Promise<RegExpExecArray> {
  for (;;) {
    const m = re.exec(s.output());
    if (m) return m;
    if (s.child.exitCode !== null) throw new Error(`sandbox exited: ${s.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stop(s: Started): Promise<void> {
  if (s.child.exitCode !== null) return;
  const exited = once(s.child, "exit");
  s.child.kill("SIGTERM");
  await exited;
}

describe("smsbridge sandbox", () => {
  it("prints its URL and the demo secret, and keeps data in --db across a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sandbox-cli-"));
    const db = join(dir, "s.db");
    try {
      const first = run(["--port", "0", "--db", db]);
      const [, url] = await waitFor(first, /running at (http:\/\/\S+?)\/\s/);
      const [, secret] = await waitFor(first, /shared secret\s+(\S+)/);
      const body = JSON.stringify({
        id: "cli-1",
        to: { phone: "+12025550100" },
        from: { phone: "+15105559999" },
        body: "hi",
      });
      const res = await fetch(`${url}/incoming/sms`, {
        method: "POST",
        body,
        headers: {
          "content-type": "application/json",
          "X-Reamaze-Hmac-SHA256": sign(body, secret as string),
        },
      });
      assert.equal(res.status, 201);
      await stop(first);

      const second = run(["--port", "0", "--db", db]);
      try {
        const [, url2] = await waitFor(second, /running at (http:\/\/\S+?)\/\s/);
        const [, secret2] = await waitFor(second, /shared secret\s+(\S+)/);
        assert.equal(secret2, secret, "the demo secret is kept in the database");
        const list = (await (await fetch(`${url2}/api/conversations`)).json()) as {
          conversations: Array<{ last_message: { body: string } }>;
        };
        assert.deepEqual(
          list.conversations.map((c) => c.last_message.body),
          ["hi"],
        );
      } finally {
        await stop(second);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports every config problem with its path and exits 78", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sandbox-cli-"));
    try {
      const file = join(dir, "bad.yaml");
      writeFileSync(file, 'channels:\n  - name: Support\n    phone: "6501234567"\n');
      const s = run(["--config", file, "--port", "0"]);
      const [code] = (await once(s.child, "exit")) as [number];
      assert.equal(code, 78);
      assert.match(s.output(), /channels\[0\]\.phone: not E\.164/);
      assert.match(s.output(), /channels\[0\]\.secret: required/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
