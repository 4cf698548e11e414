import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SIGNATURE_HEADER, sign, verify } from "../../protocol/signature.js";

/** Test helpers shared by the sandbox's integration and browser tests: real HTTP on loopback, no mocks. */

export interface ReceivedWebhook {
  headers: IncomingMessage["headers"];
  bytes: Buffer;
  json: unknown;
  verified: boolean;
}

export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  /** What the receiver answers next; it verifies the signature first and answers 401 when it fails. */
  answer: { status: number; body: string };
  close(): Promise<void>;
}

/** A channel's webhook end, as an integration would write it: verify the exact bytes, then answer. */
export async function startReceiver(secrets: readonly string[]): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const state: WebhookReceiver = {
    url: "",
    received,
    answer: { status: 201, body: '{"id":"sent-1"}' },
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const bytes = Buffer.concat(chunks);
      const verified = verify(bytes, req.headers[SIGNATURE_HEADER.toLowerCase()], secrets).ok;
      let json: unknown;
      try {
        json = JSON.parse(bytes.toString("utf8"));
      } catch {
        json = undefined;
      }
      received.push({ headers: req.headers, bytes, json, verified });
      const a = verified ? state.answer : { status: 401, body: '{"error":"bad signature"}' };
      res.writeHead(a.status, { "content-type": "application/json" }).end(a.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/channels/support/reamaze`;
  state.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}

export interface Answer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  json: T;
}

export async function postIncoming(
  base: string,
  payload: unknown,
  secret: string | undefined,
  opts: { raw?: string; header?: string } = {},
): Promise<Answer> {
  const bytes = opts.raw ?? JSON.stringify(payload);
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (opts.header !== undefined) headers[SIGNATURE_HEADER] = opts.header;
  else if (secret !== undefined) headers[SIGNATURE_HEADER] = sign(bytes, secret);
  const res = await fetch(`${base}/incoming/sms`, { method: "POST", body: bytes, headers });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

export async function api<T = Record<string, unknown>>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Answer<T>> {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body !== undefined
      ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } }
      : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: (text ? JSON.parse(text) : {}) as T };
}
