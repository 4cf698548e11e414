import { Agent, type Dispatcher } from "undici";
import { exchange } from "./exchange.js";
import { parseRetryAfter } from "./retry-after.js";
import { SIGNATURE_HEADER, sign } from "./signature.js";

/** How a signed POST ended, in the protocol's terms: 2xx done, 5xx/408/429/network retry, other 4xx rejected. */
export type Outcome =
  | { kind: "delivered"; status: number; body: string }
  | { kind: "retry"; status?: number; reason: string; retryAfterMs?: number; body?: string }
  | { kind: "rejected"; status: number; reason: string; body: string };

export interface SentRequest {
  /** The exact bytes that were signed and sent. */
  bytes: Buffer;
  signature: string;
  durationMs: number;
}

export interface PostSignedOptions {
  url: string;
  secret: string;
  /** An object is serialised once with JSON.stringify; bytes are sent as they are. */
  payload: unknown;
  timeoutMs?: number;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  dispatcher?: Dispatcher;
}

/** The first KiB of an answer is enough to say why it failed, and bounds what we keep. */
const ANSWER_KEEP = 1024;
const DEFAULT_TIMEOUT_MS = 15_000;

// One keep-alive pool per process: forwarding thousands of messages must not open a connection each.
let sharedAgent: Agent | undefined;
export function defaultDispatcher(): Agent {
  sharedAgent ??= new Agent({
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 300_000,
    connections: 128,
    connect: { timeout: 10_000 },
  });
  return sharedAgent;
}

export function serialisePayload(payload: unknown): Buffer {
  if (payload instanceof Uint8Array)
    return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (typeof payload === "string") return Buffer.from(payload, "utf8");
  return Buffer.from(JSON.stringify(payload), "utf8");
}

export function classifyStatus(status: number, body: string, retryAfter?: string | string[]): Outcome {
  if (status >= 200 && status < 300) return { kind: "delivered", status, body };
  if (status >= 500 || status === 408 || status === 429) {
    const retryAfterMs = parseRetryAfter(retryAfter);
    return {
      kind: "retry",
      status,
      reason: `HTTP ${status}`,
      body,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    };
  }
  return { kind: "rejected", status, reason: `HTTP ${status}`, body };
}

/**
 * POSTs a payload to a protocol endpoint, signed with `X-Reamaze-Hmac-SHA256` over the exact bytes sent.
 * Never throws for network trouble: every ending is an Outcome, with the bytes, signature and duration.
 */
export async function postSigned(opts: PostSignedOptions): Promise<Outcome & SentRequest> {
  const bytes = serialisePayload(opts.payload);
  const signature = sign(bytes, opts.secret);
  const started = performance.now();
  const outcome = await exchangeSigned(bytes, signature, opts);
  return Object.assign(outcome, { bytes, signature, durationMs: performance.now() - started });
}

/**
 * `postSigned` without the record of the request: the Outcome alone. The forwarder's delivery thread sends
 * thousands a second and keeps only the outcome; building the record (the timing and an object spread, a slow
 * path on Node 20) and taking it apart again cost it ~5 µs of CPU per POST of ~36–42
 * (docs/performance-history.md, round 17).
 */
export function deliverSigned(opts: PostSignedOptions): Promise<Outcome> {
  try {
    const bytes = serialisePayload(opts.payload);
    return exchangeSigned(bytes, sign(bytes, opts.secret), opts);
  } catch (err) {
    return Promise.reject(err); // as postSigned would: a payload that cannot be serialised is a rejection
  }
}

async function exchangeSigned(bytes: Buffer, signature: string, opts: PostSignedOptions): Promise<Outcome> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // undici's own headers/body timeouts bound the wait; no per-request timer or AbortSignal is allocated
  // (the forwarder sends thousands of these a second). The caller's signal, if any, is passed through.
  try {
    const answer = await exchange(
      opts.dispatcher ?? defaultDispatcher(),
      {
        url: new URL(opts.url),
        method: "POST",
        body: bytes,
        headers: {
          "content-type": "application/json",
          "user-agent": "smsbridge",
          ...opts.headers,
          [SIGNATURE_HEADER]: signature,
        },
        ...(opts.signal ? { signal: opts.signal } : {}),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      },
      ANSWER_KEEP,
    );
    return classifyStatus(answer.status, answer.body.toString("utf8"), answer.headers["retry-after"]);
  } catch (err) {
    if (opts.signal?.aborted) return { kind: "retry", reason: "aborted by caller" };
    const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
    const code = e.code ?? e.cause?.code;
    if (
      code === "UND_ERR_HEADERS_TIMEOUT" ||
      code === "UND_ERR_BODY_TIMEOUT" ||
      code === "UND_ERR_CONNECT_TIMEOUT"
    ) {
      return { kind: "retry", reason: `timed out after ${timeoutMs} ms` };
    }
    if (code === "ERR_INVALID_URL" || code === "UND_ERR_INVALID_ARG" || err instanceof TypeError) {
      // A URL that cannot be requested will not get better by retrying.
      return {
        kind: "rejected",
        status: 0,
        reason: `cannot request ${opts.url}: ${e.message}`,
        body: "",
      };
    }
    return { kind: "retry", reason: `network error: ${code ?? e.message}` };
  }
}
