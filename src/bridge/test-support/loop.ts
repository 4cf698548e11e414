import assert from "node:assert/strict";
import { createServer } from "node:net";
import { Writable } from "node:stream";
import { type RunningSandbox, startSandbox } from "../../sandbox/server.js";
import { type RunningBridge, startBridge } from "../app.js";
import { validateConfig } from "../config.js";

/** A free TCP port on loopback (bind :0, read, release), for servers that must know each other's URL. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export const CHANNEL_PHONE = "+16501234567";
export const REAMAZE_SECRET = "loop-test-reamaze-secret-0123456789";
export const SIM_SECRET = "loop-test-simulator-secret-abcdef";
export const ADMIN_TOKEN = "loop-test-admin-token-0123456789";

export interface Loop {
  bridge: RunningBridge;
  sandbox: RunningSandbox;
  logs(): string;
  close(): Promise<void>;
}

export interface LoopOptions {
  database?: string;
  threading?: { mode: "session" | "pair" | "helpdesk"; idleHours?: number };
  forwarder?: Record<string, number | boolean>;
  reply?: { deadlineMs: number };
  bodyLimit?: number;
  /** The channel's provider block (default: the simulator with SIM_SECRET). */
  provider?: Record<string, unknown>;
  /** server.publicUrl; `{port}` is replaced by the bridge's port (providers sign the public URL). */
  publicUrl?: string;
}

/** Sandbox helpdesk + bridge with the simulator provider, on ephemeral loopback ports, logs captured. */
export async function startLoop(opts: LoopOptions = {}): Promise<Loop> {
  const bridgePort = await freePort();
  const sandbox = await startSandbox({
    port: 0,
    logger: false,
    config: {
      channels: [
        {
          name: "Support",
          phone: CHANNEL_PHONE,
          secret: REAMAZE_SECRET,
          webhookUrl: `http://127.0.0.1:${bridgePort}/channels/support/reamaze`,
        },
      ],
      staff: [{ name: "Staff", email: "staffemail@example.com" }],
    },
  });
  let captured = "";
  const destination = new Writable({
    write(chunk, _enc, cb) {
      captured += chunk.toString();
      cb();
    },
  });
  const loaded = validateConfig({
    server: {
      port: bridgePort,
      host: "127.0.0.1",
      ...(opts.bodyLimit ? { bodyLimit: opts.bodyLimit } : {}),
      ...(opts.publicUrl ? { publicUrl: opts.publicUrl.replace("{port}", String(bridgePort)) } : {}),
    },
    database: opts.database ?? "sqlite::memory:",
    adminToken: ADMIN_TOKEN,
    log: { level: "debug" },
    forwarder: { retryBaseMs: 20, retryCapMs: 200, pollMs: 50, breakerCooldownMs: 200, ...opts.forwarder },
    ...(opts.reply ? { reply: opts.reply } : {}),
    channels: [
      {
        id: "support",
        name: "Support",
        numbers: [CHANNEL_PHONE],
        reamaze: { incomingUrl: `${sandbox.url}/incoming/sms`, secrets: [REAMAZE_SECRET], timeoutMs: 2_000 },
        provider: opts.provider ?? { type: "simulator", secret: SIM_SECRET },
        threading: { mode: opts.threading?.mode ?? "session", idleHours: opts.threading?.idleHours ?? 24 },
      },
    ],
  });
  const bridge = await startBridge({ loaded, logDestination: destination }).catch(async (e) => {
    await sandbox.close();
    throw e;
  });
  return {
    bridge,
    sandbox,
    logs: () => captured,
    async close() {
      await bridge.close();
      await sandbox.close();
    },
  };
}

/** A customer's phone sends an SMS to the channel through the simulator, which posts the webhook to the bridge. */
export async function customerSends(loop: Loop, from: string, body: string): Promise<void> {
  const res = await fetch(`${loop.bridge.url}/simulator/api/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ from, to: CHANNEL_PHONE, body }),
  });
  assert.equal(res.status, 201, `simulator send: ${await res.clone().text()}`);
}

export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  const text = await res.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`not JSON (HTTP ${res.status}): ${text.slice(0, 200)}`);
  }
}

/** Polls until `check` returns a value (not undefined) or the time is up; the error names what never happened. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

// ---- helpers for the per-provider end-to-end tests (src/providers/<type>/e2e.test.ts) ----------------------

/** A message as the sandbox API shows it (GET /api/conversations/:slug). */
export interface SandboxMessage {
  id: number;
  external_id: string | null;
  direction: "inbound" | "outbound";
  source: "incoming" | "reply";
  body: string;
  attachments: string[];
  thread_id: string | null;
  status: string;
  webhook: { status: number | null; body: string; error?: string } | null;
}

export interface SandboxConversation {
  slug: string;
  channel: { phone: string };
  customer: { phone: string };
  messages: SandboxMessage[];
}

/** Waits until the customer's (only) conversation holds a message with this helpdesk id, and returns it. */
export async function conversationWith(
  loop: Loop,
  customer: string,
  externalId: string,
): Promise<SandboxConversation> {
  return eventually(`a conversation of ${customer} holding ${externalId}`, async () => {
    const list = await json<{ conversations: { slug: string; customer: { phone: string } }[] }>(
      await fetch(`${loop.sandbox.url}/api/conversations?customer=${encodeURIComponent(customer)}`),
    );
    for (const c of list.conversations.filter((x) => x.customer.phone === customer)) {
      const { conversation } = await json<{ conversation: SandboxConversation }>(
        await fetch(`${loop.sandbox.url}/api/conversations/${encodeURIComponent(c.slug)}`),
      );
      if (conversation.messages.some((m) => m.external_id === externalId)) return conversation;
    }
    return undefined;
  });
}

/** Every helpdesk id the sandbox holds, across all conversations. */
export async function sandboxExternalIds(loop: Loop): Promise<string[]> {
  const list = await json<{ conversations: { slug: string }[] }>(
    await fetch(`${loop.sandbox.url}/api/conversations`),
  );
  const ids: string[] = [];
  for (const c of list.conversations) {
    const { conversation } = await json<{ conversation: SandboxConversation }>(
      await fetch(`${loop.sandbox.url}/api/conversations/${encodeURIComponent(c.slug)}`),
    );
    for (const m of conversation.messages) if (m.external_id) ids.push(m.external_id);
  }
  return ids;
}

/** A staff reply through the sandbox API, which calls the bridge's /channels/support/reamaze synchronously. */
export async function staffReply(loop: Loop, slug: string, body: string): Promise<SandboxMessage> {
  const res = await fetch(`${loop.sandbox.url}/api/conversations/${encodeURIComponent(slug)}/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ body }),
  });
  const r = await json<{ message: SandboxMessage }>(res);
  if (res.status !== 201) throw new Error(`sandbox reply answered ${res.status}: ${JSON.stringify(r)}`);
  return r.message;
}

/** The bridge's record of a message it sent, found the way status callbacks find it: by a provider id. */
export async function sentByProviderId(loop: Loop, provider: string, providerMessageId: string) {
  return loop.bridge.store.db
    .selectFrom("provider_refs")
    .innerJoin("messages", "messages.id", "provider_refs.message_id")
    .select([
      "messages.id",
      "messages.direction",
      "messages.customer",
      "messages.body",
      "messages.delivery_state",
      "messages.delivery_status",
      "messages.delivery_error",
    ])
    .where("provider_refs.channel_id", "=", "support")
    .where("provider_refs.provider", "=", provider)
    .where("provider_refs.provider_message_id", "=", providerMessageId)
    .executeTakeFirst();
}

/** A URL on the bridge's public origin (server.publicUrl) rewritten to its real local address. */
export function toLocal(loop: Loop, publicUrl: string): string {
  const u = new URL(publicUrl);
  return `${loop.bridge.url}${u.pathname}${u.search}`;
}
