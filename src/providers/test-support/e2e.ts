import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  CHANNEL_PHONE,
  conversationWith,
  type Loop,
  REAMAZE_SECRET,
  type SandboxMessage,
  sandboxExternalIds,
  sentByProviderId,
  staffReply,
  startLoop,
  toLocal,
} from "../../bridge/test-support/loop.js";
import { type RecordedRequest, type StandIn, startStandIn } from "./harness.js";

/**
 * The steps every provider's end-to-end test shares, over real HTTP on loopback: a signed webhook → the bridge →
 * the sandbox helpdesk; a staff reply in the sandbox → the bridge → a stand-in of the provider's send API; signed
 * status callbacks → recorded against the reply; forged webhooks refused; no secret in the logs. A provider's
 * e2e.test.ts describes only what is its own (config, signing, fixtures, the exact send request) — nothing about a
 * particular provider belongs here.
 */

export const FORM = "application/x-www-form-urlencoded";
export const JSON_TYPE = "application/json";
/** What the staff member replies in every suite. */
export const REPLY_TEXT = "Thanks! We're on it.";
/** Small files a stand-in serves as MMS media. */
export const SAMPLE_JPEG = Buffer.concat([
  Buffer.from([0xff, 0xd8, 0xff, 0xe0]),
  Buffer.from("e2e jpeg bytes"),
  Buffer.from([0xff, 0xd9]),
]);
export const SAMPLE_PDF = Buffer.from("%PDF-1.4\n% e2e receipt\n%%EOF\n");

// An https public origin that is not the bridge's address, so signing over the public URL is really exercised.
const PUBLIC_URL = "https://sms.example.test:{port}";
const STATUS_URL = /^https:\/\/sms\.example\.test:\d+\/channels\/support\/status$/;

export type Route = "inbound" | "status";

/** The channel's public URL for a route: what providers are told, and sign. */
export function publicUrl(loop: Loop, route: Route): string {
  const ch = loop.bridge.channels.get("support");
  assert.ok(ch, "the loop has the support channel");
  return ch.urls[route];
}

/** POSTs to a channel route at its public URL rewritten to the bridge's local address. */
export function postTo(
  loop: Loop,
  route: Route,
  body: string,
  headers: Record<string, string>,
): Promise<Response> {
  return fetch(toLocal(loop, publicUrl(loop, route)), { method: "POST", headers, body });
}

/** A fixture file's text; `dir` is the provider's testdata folder (`new URL("./testdata/", import.meta.url)`). */
export function readFixture(dir: URL, name: string): string {
  return readFileSync(new URL(name, dir), "utf8");
}

/** A form fixture with some parameters replaced, the others kept in the order the provider sent them. */
export function formFixture(dir: URL, name: string, replace: Record<string, string> = {}): string {
  const form = new URLSearchParams(readFixture(dir, name).trim());
  for (const [k, v] of Object.entries(replace)) form.set(k, v);
  return form.toString();
}

/** Waits for the customer's conversation holding this helpdesk id and returns that message. */
export async function messageIn(loop: Loop, customer: string, externalId: string): Promise<SandboxMessage> {
  const conv = await conversationWith(loop, customer, externalId);
  const m = conv.messages.find((x) => x.external_id === externalId);
  assert.ok(m, `the conversation holds ${externalId}`);
  return m;
}

/**
 * Asserts a message's attachments are media-proxy links on the public origin that hide the provider's URLs
 * (`hidden` must not appear in them), and that each streams the expected file.
 */
export async function assertProxiedMedia(
  loop: Loop,
  m: SandboxMessage,
  expect: { hidden: string; files: { contentType: string; bytes: Buffer }[] },
): Promise<void> {
  assert.equal(m.attachments.length, expect.files.length);
  const publicBase = new URL(publicUrl(loop, "inbound")).origin;
  for (const a of m.attachments) {
    assert.ok(a.startsWith(`${publicBase}/media/`), `${a} is a media-proxy URL on the public origin`);
    assert.ok(!a.includes(expect.hidden), "the provider's URL is not exposed");
  }
  for (const [i, file] of expect.files.entries()) {
    const res = await fetch(toLocal(loop, m.attachments[i]!));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), file.contentType);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), file.bytes);
  }
}

/** How the bridge must answer a webhook. */
export interface Ack {
  status: number;
  contentType?: RegExp;
  body?: string;
}

async function assertAck(res: Response, ack: Ack): Promise<void> {
  assert.equal(res.status, ack.status);
  if (ack.contentType) assert.match(res.headers.get("content-type") ?? "", ack.contentType);
  if (ack.body !== undefined) assert.equal(await res.text(), ack.body);
}

/** One answer of the provider's stand-in; `path` is the exact request path or a test of it. */
export interface StandInRoute {
  method: "GET" | "POST";
  path: string | ((path: string) => boolean);
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** The suite's running servers, usable from tests (not before the suite's `before` ran). */
export interface E2E {
  readonly loop: Loop;
  readonly standIn: StandIn;
}

export interface ProviderE2E {
  /** The describe() title. */
  title: string;
  /** The provider type: the bridge's provider name and the prefix of helpdesk ids (`type:providerId`). */
  type: string;
  /** The channel's provider block, with the stand-in's base URL as the provider's API. */
  provider(standInUrl: string): Record<string, unknown>;
  /** How the stand-in answers; anything else gets 404 with `notFound` as JSON. */
  standIn: { routes: StandInRoute[]; notFound: string };
  inbound: {
    title: string;
    /** POSTs the signed webhook of one SMS. */
    send(loop: Loop): Promise<Response>;
    ack: Ack;
    customer: string;
    providerId: string;
    body: string;
  };
  reply: {
    title: string;
    /** The provider's id for the sent reply, as the stand-in answers it. */
    sentId: string;
    /** What the stand-in must receive. */
    path: string;
    contentType: typeof FORM | typeof JSON_TYPE;
    /** The exact Authorization header; leave out when `check` verifies it. */
    authorization?: string;
    /** The decoded request body, given the channel's status callback URL. */
    body(statusUrl: string): Record<string, unknown>;
    /** Provider-specific checks; may delete from `sent` generated fields it asserted itself. */
    check?(req: RecordedRequest, sent: Record<string, unknown>): void;
  };
  statuses: {
    /** Titles read "a <what> (<fixture>) is recorded against the staff reply". */
    what: string;
    /** POSTs the signed status fixture, rewritten to be about `sentId`. */
    send(loop: Loop, fixture: string, sentId: string): Promise<Response>;
    ack: Ack;
    rows: { fixture: string; state: string; status: string; error: string | null }[];
  };
  /** The failure the last status leaves, as listed for operators. */
  failure: { state: string; error: RegExp };
  /**
   * An incoming MMS whose two files the stand-in serves at `<mediaPath>/<id>` (the first behind a redirect, as media
   * hosts do) and which must reach the helpdesk as media-proxy links that stream those files.
   */
  proxiedMms?: {
    /** Default: "an incoming MMS reaches the sandbox as media-proxy links that stream the provider's files". */
    title?: string;
    /** POSTs the signed webhook of the MMS, its media at these URLs. */
    send(loop: Loop, mediaUrls: [string, string]): Promise<Response>;
    ack: Ack;
    customer: string;
    providerId: string;
    body: string;
    mediaPath: string;
    mediaIds: [string, string];
    /** How the first file's URL redirects: the status and the path it redirects to. */
    redirect: { status: number; location: string };
    /** A part of the provider's media URLs (an account id) that the links must not show. */
    hidden: string;
    /** Provider-specific checks of the requests the stand-in received while the files were fetched. */
    checkFetches?(requests: RecordedRequest[]): void;
  };
  /** More tests (MMS…), run after the delivery-failure test and before the forged webhooks. */
  extraTests?(e2e: E2E): void;
  forged: {
    /** Titles read "<what> <name> is refused (<status>) and nothing reaches the sandbox". */
    what: string;
    /** A unique provider message id for the forged webhook of row i. */
    id(i: number, row: { status: number }): string;
    rows: { name: string; status: number; send(loop: Loop, providerId: string): Promise<Response> }[];
  };
  secrets: { title: string; values: string[] };
}

/** The stand-in's answers for a proxied MMS's files: a JPEG behind a redirect, then a PDF. */
function mediaRoutes(mms: NonNullable<ProviderE2E["proxiedMms"]>): StandInRoute[] {
  const [image, pdf] = mms.mediaIds;
  return [
    {
      method: "GET",
      path: `${mms.mediaPath}/${image}`,
      status: mms.redirect.status,
      headers: { location: mms.redirect.location },
    },
    {
      method: "GET",
      path: mms.redirect.location,
      status: 200,
      headers: { "content-type": "image/jpeg", "content-length": String(SAMPLE_JPEG.length) },
      body: SAMPLE_JPEG,
    },
    {
      method: "GET",
      path: `${mms.mediaPath}/${pdf}`,
      status: 200,
      headers: { "content-type": "application/pdf" },
      body: SAMPLE_PDF,
    },
  ];
}

function proxiedMmsTest(spec: ProviderE2E, mms: NonNullable<ProviderE2E["proxiedMms"]>, e2e: E2E): void {
  test(
    mms.title ?? "an incoming MMS reaches the sandbox as media-proxy links that stream the provider's files",
    async () => {
      const { loop, standIn } = e2e;
      const [image, pdf] = mms.mediaIds;
      const urls: [string, string] = [
        `${standIn.url}${mms.mediaPath}/${image}`,
        `${standIn.url}${mms.mediaPath}/${pdf}`,
      ];
      await assertAck(await mms.send(loop, urls), mms.ack);
      const m = await messageIn(loop, mms.customer, `${spec.type}:${mms.providerId}`);
      assert.equal(m.body, mms.body);

      standIn.requests.length = 0;
      await assertProxiedMedia(loop, m, {
        hidden: mms.hidden,
        files: [
          { contentType: "image/jpeg", bytes: SAMPLE_JPEG },
          { contentType: "application/pdf", bytes: SAMPLE_PDF },
        ],
      });
      // The image's media URL, then where it redirected; then the PDF's.
      assert.deepEqual(
        standIn.requests.map((r) => r.url),
        [`${mms.mediaPath}/${image}`, mms.redirect.location, `${mms.mediaPath}/${pdf}`],
      );
      mms.checkFetches?.(standIn.requests);
    },
  );
}

function decode(contentType: string, body: Buffer): Record<string, unknown> {
  const text = body.toString("utf8");
  return contentType === FORM
    ? Object.fromEntries(new URLSearchParams(text))
    : (JSON.parse(text) as Record<string, unknown>);
}

/** Registers one provider's end-to-end suite; the tests run in order and build on each other. */
export function providerE2E(spec: ProviderE2E): void {
  describe(spec.title, () => {
    let standIn: StandIn | undefined;
    let loop: Loop | undefined;
    let slug = "";
    const e2e: E2E = {
      get loop() {
        assert.ok(loop, "the loop is started in before()");
        return loop;
      },
      get standIn() {
        assert.ok(standIn, "the stand-in is started in before()");
        return standIn;
      },
    };
    const { inbound, reply, statuses } = spec;

    before(async () => {
      standIn = await startStandIn();
      standIn.answer((req, res) => {
        const routes = [...spec.standIn.routes, ...(spec.proxiedMms ? mediaRoutes(spec.proxiedMms) : [])];
        const r = routes.find(
          (x) =>
            x.method === req.method && (typeof x.path === "string" ? x.path === req.url : x.path(req.url)),
        );
        if (r) res.writeHead(r.status, r.headers).end(r.body);
        else res.writeHead(404, { "content-type": JSON_TYPE }).end(spec.standIn.notFound);
      });
      loop = await startLoop({ provider: spec.provider(standIn.url), publicUrl: PUBLIC_URL });
    });
    after(async () => {
      await loop?.close();
      await standIn?.close();
    });

    test(inbound.title, async () => {
      await assertAck(await inbound.send(e2e.loop), inbound.ack);
      const id = `${spec.type}:${inbound.providerId}`;
      const conv = await conversationWith(e2e.loop, inbound.customer, id);
      slug = conv.slug;
      assert.equal(conv.customer.phone, inbound.customer);
      assert.equal(conv.channel.phone, CHANNEL_PHONE);
      const m = conv.messages.find((x) => x.external_id === id);
      assert.equal(m?.direction, "inbound");
      assert.equal(m?.body, inbound.body);
      assert.deepEqual(m?.attachments, []);
    });

    test(reply.title, async () => {
      assert.ok(slug, "needs the conversation of the previous test");
      e2e.standIn.requests.length = 0;
      const sent = await staffReply(e2e.loop, slug, REPLY_TEXT);
      assert.equal(sent.status, "sent", `webhook outcome: ${JSON.stringify(sent.webhook)}`);
      assert.equal(sent.webhook?.status, 201);
      assert.deepEqual(JSON.parse(sent.webhook?.body ?? "{}"), { id: reply.sentId });

      assert.equal(e2e.standIn.requests.length, 1);
      const req = e2e.standIn.requests[0]!;
      assert.equal(req.method, "POST");
      assert.equal(req.url, reply.path);
      if (reply.authorization !== undefined) assert.equal(req.headers.authorization, reply.authorization);
      assert.equal(req.headers["content-type"], reply.contentType);
      const statusUrl = publicUrl(e2e.loop, "status");
      assert.match(statusUrl, STATUS_URL);
      const body = decode(reply.contentType, req.body);
      reply.check?.(req, body);
      assert.deepEqual(body, reply.body(statusUrl));

      const rec = await sentByProviderId(e2e.loop, spec.type, reply.sentId);
      assert.equal(rec?.direction, "reply");
      assert.equal(rec?.customer, inbound.customer);
      assert.equal(rec?.delivery_state, "sent");
    });

    for (const s of statuses.rows) {
      test(`a ${statuses.what} (${s.fixture}) is recorded against the staff reply`, async () => {
        await assertAck(await statuses.send(e2e.loop, s.fixture, reply.sentId), statuses.ack);
        const rec = await sentByProviderId(e2e.loop, spec.type, reply.sentId);
        assert.equal(rec?.delivery_state, s.state);
        assert.equal(rec?.delivery_status, s.status);
        assert.equal(rec?.delivery_error, s.error);
      });
    }

    test("the delivery failure is listed for operators against the staff reply", async () => {
      const failures = await e2e.loop.bridge.store.deliveryFailures({ since: 0, channelId: "support" });
      const f = failures.find((x) => x.providerMessageId === reply.sentId);
      assert.ok(f, "the failed reply is listed");
      assert.equal(f.direction, "reply");
      assert.equal(f.state, spec.failure.state);
      assert.equal(f.body, REPLY_TEXT);
      assert.match(f.error ?? "", spec.failure.error);
    });

    if (spec.proxiedMms) proxiedMmsTest(spec, spec.proxiedMms, e2e);
    spec.extraTests?.(e2e);

    for (const [i, f] of spec.forged.rows.entries()) {
      test(`${spec.forged.what} ${f.name} is refused (${f.status}) and nothing reaches the sandbox`, async () => {
        const id = spec.forged.id(i, f);
        const res = await f.send(e2e.loop, id);
        assert.equal(res.status, f.status);
        const stored = await e2e.loop.bridge.store.db
          .selectFrom("messages")
          .select("id")
          .where("provider_message_id", "=", id)
          .executeTakeFirst();
        assert.equal(stored, undefined, "nothing stored");
        assert.ok(!(await sandboxExternalIds(e2e.loop)).includes(`${spec.type}:${id}`));
      });
    }

    test(spec.secrets.title, () => {
      const logs = e2e.loop.logs();
      assert.ok(logs.length > 0, "logs were captured");
      for (const secret of [...spec.secrets.values, REAMAZE_SECRET]) {
        assert.ok(!logs.includes(secret), `a secret (${secret.slice(0, 4)}…) appeared in the logs`);
      }
    });
  });
}
