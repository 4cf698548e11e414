import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import pino from "pino";
import { createHttpClient, ForbiddenHost, type HttpClient } from "../http.js";
import type { ProviderContext } from "../types.js";

/**
 * Shared test harness for provider adapters (courier does the same): every adapter test runs with a logger
 * whose output is captured, so it can assert that no secret reached the logs, and with an HTTP client that
 * refuses any host but loopback, so no test can call a real provider.
 */

export interface Harness {
  ctx: ProviderContext;
  /** Everything logged so far, as the JSON lines pino wrote. */
  logs(): string;
  /** URLs that code tried to reach off loopback (each also threw ForbiddenHost). */
  forbidden: string[];
  /** Fails if any of these strings appears anywhere in the captured logs. */
  assertNoSecretsLogged(secrets: readonly string[]): void;
  /** Fails if code tried to reach a non-loopback host. */
  assertNoRealNetwork(): void;
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

export function loopbackOnlyHttp(forbidden: string[]): HttpClient {
  return createHttpClient({
    guard(url) {
      if (!LOOPBACK.has(url.hostname)) {
        forbidden.push(url.href);
        throw new ForbiddenHost(`test tried to reach ${url.host}; tests may only call loopback stand-ins`);
      }
    },
  });
}

export function createHarness(opts: { urls?: ProviderContext["urls"]; now?: () => Date } = {}): Harness {
  let captured = "";
  const sink = new Writable({
    write(chunk, _enc, cb) {
      captured += chunk.toString();
      cb();
    },
  });
  const log = pino({ level: "trace" }, sink);
  const forbidden: string[] = [];
  const ctx: ProviderContext = {
    http: loopbackOnlyHttp(forbidden),
    log,
    now: opts.now ?? (() => new Date()),
    urls: opts.urls ?? {
      inbound: "https://sms.example.com/channels/test/inbound",
      status: "https://sms.example.com/channels/test/status",
    },
  };
  return {
    ctx,
    logs: () => captured,
    forbidden,
    assertNoSecretsLogged(secrets) {
      for (const s of secrets) {
        if (s) assert.ok(!captured.includes(s), `a secret (${s.slice(0, 3)}…) appeared in the logs`);
      }
    },
    assertNoRealNetwork() {
      assert.deepEqual(forbidden, [], "code tried to reach a non-loopback host");
    },
  };
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: Buffer;
}

export interface StandIn {
  /** Base URL, e.g. http://127.0.0.1:40123 — use it as the provider's `apiBaseUrl`. */
  url: string;
  requests: RecordedRequest[];
  /** Replace how the stand-in answers (default: 200 `{}`). */
  answer(handler: (req: RecordedRequest, res: ServerResponse) => void | Promise<void>): void;
  close(): Promise<void>;
}

/** A real HTTP server on loopback that records every request and answers as the test says. */
export async function startStandIn(): Promise<StandIn> {
  const requests: RecordedRequest[] = [];
  let handler: (req: RecordedRequest, res: ServerResponse) => void | Promise<void> = (_r, res) => {
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rec: RecordedRequest = {
      method: req.method ?? "",
      url: req.url ?? "",
      headers: req.headers,
      body: Buffer.concat(chunks),
    };
    requests.push(rec);
    try {
      await handler(rec, res);
    } catch (e) {
      res.writeHead(599).end(String(e));
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    answer(h) {
      handler = h;
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
