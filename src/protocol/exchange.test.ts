import assert from "node:assert/strict";
import type { ServerResponse } from "node:http";
import { describe, test } from "node:test";
import { exchange } from "./exchange.js";
import { startServer, testAgents } from "./test-support/http.js";

const agent = testAgents();

describe("exchange", () => {
  const sizes = [
    { name: "an answer shorter than the limit is kept whole", size: 10, keep: 1024, kept: 10 },
    { name: "exactly the limit", size: 1024, keep: 1024, kept: 1024 },
    { name: "a longer answer keeps its first bytes", size: 300_000, keep: 1024, kept: 1024 },
    { name: "an empty answer", size: 0, keep: 1024, kept: 0 },
  ];
  for (const c of sizes) {
    test(c.name, async () => {
      const body = Buffer.alloc(c.size, "a");
      for (let i = 0; i < c.size; i++) body[i] = 97 + (i % 26);
      const srv = await startServer((_req, res) => res.writeHead(201, { "x-extra": "yes" }).end(body));
      try {
        const dispatcher = agent();
        for (let i = 0; i < 10; i++) {
          const a = await exchange(dispatcher, { url: new URL(srv.url), method: "POST", body: "hi" }, c.keep);
          assert.equal(a.status, 201);
          assert.equal(a.headers["x-extra"], "yes");
          assert.deepEqual(a.body, body.subarray(0, c.kept));
        }
        // The rest of a long answer was drained, so connections were reused (undici may open a second
        // socket while the first is being released; never one per request).
        assert.ok(srv.connections() <= 2, `${srv.connections()} connections for 10 requests`);
      } finally {
        await srv.close();
      }
    });
  }

  test("method, path with query, headers and body arrive as given", async () => {
    let seen: { method?: string; url?: string; header?: string } = {};
    const srv = await startServer((req, res) => {
      seen = { method: req.method, url: req.url, header: req.headers["x-one"] as string };
      res.end("ok");
    });
    try {
      const a = await exchange(
        agent(),
        { url: srv.at("/a/b?c=1&d=%20"), method: "PUT", headers: { "x-one": "1" }, body: "x" },
        10,
      );
      assert.equal(a.body.toString(), "ok");
      assert.deepEqual(seen, { method: "PUT", url: "/a/b?c=1&d=%20", header: "1" });
    } finally {
      await srv.close();
    }
  });

  test("a signal that fires while the request waits for a connection aborts it before it is sent", async () => {
    let arrived = 0;
    const answers: ServerResponse[] = [];
    const srv = await startServer((_req, res) => {
      arrived++;
      answers.push(res);
    });
    try {
      const dispatcher = agent(1);
      const first = exchange(dispatcher, { url: new URL(srv.url), method: "POST", body: "1" }, 10);
      const controller = new AbortController();
      const second = exchange(
        dispatcher,
        { url: new URL(srv.url), method: "POST", body: "2", signal: controller.signal },
        10,
      );
      while (arrived < 1) await new Promise((r) => setTimeout(r, 5));
      controller.abort(new Error("caller gave up"));
      await assert.rejects(second, /caller gave up/);
      answers[0]?.end("done");
      assert.equal((await first).body.toString(), "done");
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(arrived, 1, "the aborted request never reached the server");
    } finally {
      await srv.close();
    }
  });

  test("an already aborted signal rejects without a request", async () => {
    let arrived = 0;
    const srv = await startServer((_req, res) => {
      arrived++;
      res.end();
    });
    try {
      await assert.rejects(
        exchange(agent(), { url: new URL(srv.url), method: "GET", signal: AbortSignal.abort() }, 10),
        (e: Error) => e.name === "AbortError",
      );
      assert.equal(arrived, 0);
    } finally {
      await srv.close();
    }
  });

  test("a connection reset mid-answer rejects", async () => {
    const srv = await startServer((req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
      setTimeout(() => req.socket.destroy(), 10);
    });
    try {
      await assert.rejects(exchange(agent(), { url: new URL(srv.url), method: "GET" }, 10));
    } finally {
      await srv.close();
    }
  });
});
