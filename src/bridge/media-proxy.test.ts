import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import Fastify, { type FastifyInstance } from "fastify";
import pino from "pino";
import { Agent, getGlobalDispatcher, request, setGlobalDispatcher } from "undici";
import type { MediaAccess, ProviderAdapter } from "../providers/types.js";
import type { Channel } from "./channels.js";
import type { ChannelConfig } from "./config.js";
import {
  DEFAULT_MEDIA,
  hostAllowed,
  mediaToken,
  proxiedUrl,
  readMediaToken,
  registerMediaProxy,
} from "./media-proxy.js";
import { type Loop, REAMAZE_SECRET, startLoop } from "./test-support/loop.js";

/**
 * The media proxy (src/bridge/media-proxy.ts): signed expiring tokens, and the HTTP route that streams a provider's
 * file with the channel's credentials — only from the provider's media hosts, within a size limit and a content-type
 * allow-list. The route runs on a real Fastify server against real loopback "provider" servers.
 */

const SECRET = "media-proxy-test-reamaze-secret-0123";
const PROVIDER_AUTH = "Basic bWVkaWEtcHJveHktdGVzdDpwcm92aWRlci1zZWNyZXQ=";
const MAX_BYTES = 1024;
const JPEG = Buffer.concat([
  Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
  Buffer.alloc(200, 7),
  Buffer.from([0xff, 0xd9]),
]);
const PNG = Buffer.concat([Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), Buffer.alloc(100, 3)]);

function fakeChannel(id: string, media: MediaAccess | undefined, secret = SECRET): Channel {
  const unused = () => {
    throw new Error("not used by the media proxy");
  };
  const adapter: ProviderAdapter = {
    type: "fake",
    verify: unused,
    parse: unused,
    send: unused,
    ...(media ? { media } : {}),
  };
  return {
    id,
    // The proxy reads only the channel's helpdesk secret (its token key is derived from it).
    config: { reamaze: { secrets: [secret] } } as unknown as ChannelConfig,
    adapter,
    numbers: new Set(),
    urls: { inbound: "", status: "", reamaze: "" },
  };
}

interface Seen {
  path: string;
  authorization: string | undefined;
}

/** A loopback "provider" media server: records who asked for what, with which credentials. */
async function mediaServer(
  routes: (path: string, res: ServerResponse, headers: IncomingHttpHeaders) => void,
) {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    // The proxy may hang up mid-body (size limit); that is expected, not a server error.
    res.on("error", () => {});
    seen.push({ path: req.url ?? "", authorization: req.headers.authorization });
    routes(req.url ?? "", res, req.headers);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port: String(port),
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

type MediaServer = Awaited<ReturnType<typeof mediaServer>>;

describe("media tokens", () => {
  const media: MediaAccess = { hosts: ["api.example.com", ".cdn.example.net"], headers: () => ({}) };
  const ch = fakeChannel("support", media);
  const channels = new Map([["support", ch]]);
  const NOW = Date.parse("2026-01-01T00:00:00Z");
  const URL_ = "https://api.example.com/Accounts/AC1/Messages/MM1/Media/ME1";

  test("a token reads back as its channel and URL until it expires", () => {
    const token = mediaToken(ch, URL_, NOW + 60_000);
    const found = readMediaToken(channels, token, NOW);
    assert.ok("ch" in found);
    assert.equal(found.ch, ch);
    assert.equal(found.url.href, URL_);
    assert.deepEqual(readMediaToken(channels, token, NOW + 61_000), {
      status: 410,
      error: "this media link has expired",
    });
  });

  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
  const tampered: [string, (t: string) => string][] = [
    ["claims changed", (t) => flip(t, 5)],
    ["MAC changed", (t) => flip(t, t.length - 3)],
    ["MAC missing", (t) => t.split(".")[0]!],
    ["claims not JSON", (t) => `bm90IGpzb24.${t.split(".")[1]}`],
    ["empty", () => ""],
    [
      "another channel's secret",
      () => mediaToken(fakeChannel("support", media, "some-other-secret"), URL_, NOW + 60_000),
    ],
    ["an unknown channel", () => mediaToken(fakeChannel("elsewhere", media), URL_, NOW + 60_000)],
  ];
  for (const [name, mangle] of tampered) {
    test(`a token with ${name} is not a media link (404)`, () => {
      const token = mangle(mediaToken(ch, URL_, NOW + 60_000));
      assert.deepEqual(readMediaToken(channels, token, NOW), { status: 404, error: "not a media link" });
    });
  }

  test("only URLs on the adapter's media hosts are proxied; others, and channels without media, pass through", () => {
    const proxied = proxiedUrl(ch, URL_, "https://sms.example.com/", NOW, 60_000);
    const m = /^https:\/\/sms\.example\.com\/media\/([^/]+)$/.exec(proxied);
    assert.ok(m, proxied);
    const found = readMediaToken(channels, m[1]!, NOW);
    assert.ok("url" in found && found.url.href === URL_);
    for (const url of ["https://evil.example.org/x.jpg", "not a url"])
      assert.equal(proxiedUrl(ch, url, "https://sms.example.com", NOW, 60_000), url);
    assert.equal(
      proxiedUrl(fakeChannel("plain", undefined), URL_, "https://sms.example.com", NOW, 60_000),
      URL_,
    );
  });

  const hosts: [string, boolean][] = [
    ["https://api.example.com/x", true],
    ["https://API.EXAMPLE.COM/x", true],
    ["https://cdn.example.net/x", true],
    ["https://eu.cdn.example.net/x", true],
    ["https://evilcdn.example.net/x", false],
    ["https://api.example.com.evil.org/x", false],
    ["https://example.com/x", false],
  ];
  for (const [url, allowed] of hosts) {
    test(`host of ${url} is ${allowed ? "" : "not "}allowed`, () => {
      assert.equal(hostAllowed(media, new URL(url)), allowed);
    });
  }
});

describe("media proxy route (fake channel, real HTTP)", () => {
  let api: MediaServer;
  let cdn: MediaServer;
  let app: FastifyInstance;
  let base = "";
  let logs = "";
  let ch: Channel;
  let channels: Map<string, Channel>;

  before(async () => {
    cdn = await mediaServer((path, res) => {
      if (path === "/file.png") res.writeHead(200, { "content-type": "image/png" }).end(PNG);
      else res.writeHead(404).end();
    });
    api = await mediaServer((path, res) => {
      switch (path) {
        case "/ok.jpg":
          res
            .writeHead(200, { "content-type": "image/jpeg", "content-length": String(JPEG.length) })
            .end(JPEG);
          break;
        case "/typed.jpg":
          res.writeHead(200, { "content-type": "image/jpeg; charset=binary" }).end(JPEG);
          break;
        case "/to-cdn":
          res.writeHead(302, { location: `${cdn.url}/file.png` }).end();
          break;
        case "/relative":
          res.writeHead(307, { location: "/ok.jpg" }).end();
          break;
        case "/loop":
          res.writeHead(302, { location: "/loop" }).end();
          break;
        case "/insecure":
          res.writeHead(302, { location: "http://media.example.invalid/x.jpg" }).end();
          break;
        case "/declared-big":
          res
            .writeHead(200, { "content-type": "image/png", "content-length": String(MAX_BYTES + 1) })
            .end(Buffer.alloc(MAX_BYTES + 1));
          break;
        case "/streamed-big": {
          // No content-length: only counting the bytes as they stream finds the excess.
          res.writeHead(200, { "content-type": "image/png" });
          for (let i = 0; i < 5; i++) res.write(Buffer.alloc(MAX_BYTES / 2, i));
          res.end();
          break;
        }
        case "/exactly-max":
          res.writeHead(200, { "content-type": "image/png" }).end(Buffer.alloc(MAX_BYTES, 1));
          break;
        case "/page.html":
          res.writeHead(200, { "content-type": "text/html" }).end("<html></html>");
          break;
        case "/untyped":
          res.writeHead(200).end("bytes");
          break;
        case "/gone":
          res.writeHead(410).end();
          break;
        case "/error":
          res.writeHead(500).end();
          break;
        default:
          res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
      }
    });
    // Credentials for the provider's API host (this port) only, as an adapter's headers(url) decides.
    const media: MediaAccess = {
      hosts: ["127.0.0.1"],
      headers: (url): Record<string, string> =>
        url.port === api.port ? { authorization: PROVIDER_AUTH } : {},
    };
    ch = fakeChannel("support", media);
    channels = new Map([["support", ch]]);
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logs += chunk.toString();
        cb();
      },
    });
    app = Fastify();
    registerMediaProxy(app, {
      channels,
      now: Date.now,
      log: pino({ level: "trace" }, sink),
      opts: { ...DEFAULT_MEDIA, maxBytes: MAX_BYTES },
    });
    base = await app.listen({ port: 0, host: "127.0.0.1" });
  });
  after(async () => {
    await app?.close();
    await api?.close();
    await cdn?.close();
  });

  /** The proxy URL the helpdesk would get for this provider URL. */
  function link(providerUrl: string, expiresAt = Date.now() + 60_000): string {
    return `${base}/media/${mediaToken(ch, providerUrl, expiresAt)}`;
  }

  const cases: {
    name: string;
    path: string;
    status: number;
    type?: string;
    body?: Buffer;
    error?: RegExp;
    /** Requests the provider servers saw, with whether each carried the credentials. */
    seen?: { api: [string, boolean][]; cdn: [string, boolean][] };
  }[] = [
    {
      name: "a file is streamed with the channel's credentials",
      path: "/ok.jpg",
      status: 200,
      type: "image/jpeg",
      body: JPEG,
      seen: { api: [["/ok.jpg", true]], cdn: [] },
    },
    {
      name: "a content type with parameters is allowed by its type",
      path: "/typed.jpg",
      status: 200,
      type: "image/jpeg; charset=binary",
      body: JPEG,
    },
    {
      name: "a redirect to the CDN is followed without the credentials",
      path: "/to-cdn",
      status: 200,
      type: "image/png",
      body: PNG,
      seen: { api: [["/to-cdn", true]], cdn: [["/file.png", false]] },
    },
    {
      name: "a relative redirect on the provider's host keeps the credentials",
      path: "/relative",
      status: 200,
      body: JPEG,
      seen: {
        api: [
          ["/relative", true],
          ["/ok.jpg", true],
        ],
        cdn: [],
      },
    },
    {
      name: "a file of exactly the size limit passes",
      path: "/exactly-max",
      status: 200,
      body: Buffer.alloc(MAX_BYTES, 1),
    },
    {
      name: "a declared size over the limit → 413",
      path: "/declared-big",
      status: 413,
      error: /larger than 1024 bytes/,
    },
    {
      name: "a streamed size over the limit → 413",
      path: "/streamed-big",
      status: 413,
      error: /larger than 1024 bytes/,
    },
    {
      name: "a disallowed content type → 415",
      path: "/page.html",
      status: 415,
      error: /text\/html is not allowed/,
    },
    {
      name: "no content type (octet-stream) → 415",
      path: "/untyped",
      status: 415,
      error: /application\/octet-stream/,
    },
    { name: "provider 404 → 404", path: "/missing.jpg", status: 404, error: /provider answered 404/ },
    {
      name: "provider 410 (expired at the provider) → 404",
      path: "/gone",
      status: 404,
      error: /provider answered 410/,
    },
    { name: "provider 500 → 502", path: "/error", status: 502, error: /provider answered 500/ },
    { name: "endless redirects → 502", path: "/loop", status: 502, error: /too many redirects/ },
    {
      name: "a redirect to plain http off the media hosts is not followed → 502",
      path: "/insecure",
      status: 502,
      error: /insecure URL/,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      api.seen.length = 0;
      cdn.seen.length = 0;
      const res = await fetch(link(`${api.url}${c.path}`));
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(res.status, c.status, body.toString("utf8").slice(0, 200));
      if (c.type) assert.equal(res.headers.get("content-type"), c.type);
      if (c.body) assert.deepEqual(body, c.body);
      if (c.status === 200) {
        assert.equal(res.headers.get("x-content-type-options"), "nosniff");
        assert.match(res.headers.get("cache-control") ?? "", /^private/);
      }
      if (c.error) assert.match((JSON.parse(body.toString("utf8")) as { error: string }).error, c.error);
      if (c.seen) {
        assert.deepEqual(
          api.seen.map((s) => [s.path, s.authorization === PROVIDER_AUTH]),
          c.seen.api,
        );
        assert.deepEqual(
          cdn.seen.map((s) => [s.path, s.authorization !== undefined]),
          c.seen.cdn,
        );
      }
    });
  }

  const refused: { name: string; token: () => string; status: number; error: RegExp }[] = [
    {
      name: "a tampered token → 404",
      token: () => {
        const t = mediaToken(ch, `${api.url}/ok.jpg`, Date.now() + 60_000);
        return `${t.slice(0, -2)}${t.endsWith("AA") ? "BB" : "AA"}`;
      },
      status: 404,
      error: /not a media link/,
    },
    {
      name: "an expired token → 410",
      token: () => mediaToken(ch, `${api.url}/ok.jpg`, Date.now() - 1_000),
      status: 410,
      error: /expired/,
    },
    {
      // Signed correctly (say, before the adapter's hosts changed), but the host is not the provider's now.
      name: "a host off the channel's media hosts → 403, never fetched",
      token: () => mediaToken(ch, `http://localhost:${api.port}/ok.jpg`, Date.now() + 60_000),
      status: 403,
      error: /host not allowed/,
    },
    {
      name: "a channel without media access → 403",
      token: () => {
        const plain = fakeChannel("plain", undefined);
        channels.set("plain", plain);
        return mediaToken(plain, `${api.url}/ok.jpg`, Date.now() + 60_000);
      },
      status: 403,
      error: /host not allowed/,
    },
  ];
  for (const r of refused) {
    test(r.name, async () => {
      api.seen.length = 0;
      const res = await fetch(`${base}/media/${r.token()}`);
      assert.equal(res.status, r.status);
      assert.match(((await res.json()) as { error: string }).error, r.error);
      assert.deepEqual(api.seen, [], "the provider was not asked");
    });
  }

  test("a long provider URL still makes a working link (tokens are longer than Fastify's 100-character params)", async () => {
    const path = `/2010-04-01/Accounts/AC${"0".repeat(32)}/Messages/MM${"1".repeat(32)}/Media/ME${"2".repeat(32)}`;
    const token = mediaToken(ch, `${api.url}${path}`, Date.now() + 60_000);
    assert.ok(token.length > 200);
    const res = await fetch(`${base}/media/${token}`);
    // The stand-in does not know the path: the proxy reached it (404 from the provider), not a 414 from the router.
    assert.equal(res.status, 404);
    assert.deepEqual(api.seen.at(-1), { path, authorization: PROVIDER_AUTH });
  });

  test("the provider credentials and the helpdesk secret never reach the logs", () => {
    for (const secret of [PROVIDER_AUTH, SECRET])
      assert.ok(!logs.includes(secret), `${secret.slice(0, 6)}… in the logs`);
  });
});

describe("media proxy in a running bridge (Twilio channel)", () => {
  const ACCOUNT_SID = `AC${"ab".repeat(16)}`;
  const AUTH_TOKEN = "media-proxy-test-twilio-auth-token-01";
  let loop: Loop;
  let provider: MediaServer;

  before(async () => {
    provider = await mediaServer((path, res) => {
      if (path.endsWith("/Media/ME1") || path === "/cdn/ME1.gif") {
        res.writeHead(200, { "content-type": "image/gif" }).end("GIF89a");
      } else res.writeHead(404).end();
    });
    loop = await startLoop({
      provider: {
        type: "twilio",
        accountSid: `AC${"ab".repeat(16)}`,
        authToken: AUTH_TOKEN,
        apiBaseUrl: provider.url,
      },
      publicUrl: "https://sms.example.test:{port}",
    });
  });
  after(async () => {
    await loop?.close();
    await provider?.close();
  });

  const cases: { name: string; url: () => string; expires: number; status: number; seen: number }[] = [
    {
      name: "a link to the channel's media host streams the file",
      url: () => `${provider.url}/x/Media/ME1`,
      expires: 60_000,
      status: 200,
      seen: 1,
    },
    {
      name: "an expired link → 410",
      url: () => `${provider.url}/x/Media/ME1`,
      expires: -60_000,
      status: 410,
      seen: 0,
    },
    {
      name: "a link to a host Twilio does not serve media from → 403",
      url: () => "https://attacker.example/x.gif",
      expires: 60_000,
      status: 403,
      seen: 0,
    },
    {
      name: "provider 404 → 404",
      url: () => `${provider.url}/x/Media/ME404`,
      expires: 60_000,
      status: 404,
      seen: 1,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const ch = loop.bridge.channels.get("support");
      assert.ok(ch);
      provider.seen.length = 0;
      const res = await fetch(`${loop.bridge.url}/media/${mediaToken(ch, c.url(), Date.now() + c.expires)}`);
      assert.equal(res.status, c.status);
      if (c.status === 200) {
        assert.equal(res.headers.get("content-type"), "image/gif");
        assert.equal(await res.text(), "GIF89a");
      }
      assert.equal(provider.seen.length, c.seen);
    });
  }

  test("Twilio's Basic credentials reach its media host over https, and not the plain-http CDN it redirects to", async () => {
    // A TLS "api.twilio.com" on loopback: the adapter counts the apiBaseUrl host as Twilio's and sends its
    // credentials to it over https only. The proxy fetches through undici's global dispatcher, told to trust the
    // test certificate for this test alone.
    const cert = readFileSync(new URL("./testdata/loopback-tls.crt", import.meta.url));
    const key = readFileSync(new URL("./testdata/loopback-tls.key", import.meta.url));
    const seen: Seen[] = [];
    const tls = createHttpsServer({ cert, key }, (req, res) => {
      seen.push({ path: req.url ?? "", authorization: req.headers.authorization });
      res.writeHead(307, { location: `${provider.url}/cdn/ME1.gif` }).end();
    });
    await new Promise<void>((r) => tls.listen(0, "127.0.0.1", r));
    const previous = getGlobalDispatcher();
    const trusting = new Agent({ connect: { ca: cert } });
    setGlobalDispatcher(trusting);
    try {
      const ch = loop.bridge.channels.get("support");
      assert.ok(ch);
      const { port } = tls.address() as AddressInfo;
      const mediaUrl = `https://127.0.0.1:${port}/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/MM1/Media/ME1`;
      provider.seen.length = 0;
      const res = await request(`${loop.bridge.url}/media/${mediaToken(ch, mediaUrl, Date.now() + 60_000)}`);
      const text = await res.body.text();
      assert.equal(res.statusCode, 200, text);
      assert.equal(text, "GIF89a");
      const basic = `Basic ${Buffer.from(`${ACCOUNT_SID}:${AUTH_TOKEN}`).toString("base64")}`;
      assert.deepEqual(seen, [{ path: new URL(mediaUrl).pathname, authorization: basic }]);
      assert.deepEqual(provider.seen, [{ path: "/cdn/ME1.gif", authorization: undefined }]);
    } finally {
      setGlobalDispatcher(previous);
      await trusting.close();
      tls.closeAllConnections();
      await new Promise<void>((r) => tls.close(() => r()));
    }
  });

  test("a token signed with another channel secret → 404", async () => {
    const forged = mediaToken(
      fakeChannel("support", undefined, "not-the-channel-secret"),
      `${provider.url}/x/Media/ME1`,
      Date.now() + 60_000,
    );
    const res = await fetch(`${loop.bridge.url}/media/${forged}`);
    assert.equal(res.status, 404);
  });

  test("no Twilio credential nor the helpdesk secret reached the logs", () => {
    const logs = loop.logs();
    assert.ok(logs.length > 0);
    for (const secret of [AUTH_TOKEN, REAMAZE_SECRET])
      assert.ok(!logs.includes(secret), `${secret.slice(0, 6)}… in the logs`);
  });
});
