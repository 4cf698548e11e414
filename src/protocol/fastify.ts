import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from "fastify";
import type { FieldError } from "./payloads.js";
import { SIGNATURE_HEADER_LC, type VerifyResult } from "./signature.js";
import { type CheckSignedOptions, checkSigned, type ErrorBody } from "./signed.js";

/**
 * Fastify support for signed protocol requests. Register `signedBody` inside an encapsulated scope: there,
 * bodies arrive as raw Buffers (no JSON parser runs before the signature is checked), and errors are JSON.
 *
 *   app.register(async (scope) => {
 *     await signedBody(scope, { bodyLimit: 1 << 20 });
 *     scope.post("/incoming/sms", { preHandler: requireSigned({ validate: validateIncomingSms, secrets }) }, handler);
 *   });
 */

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

export interface SignedState<T = unknown> {
  /** The bytes exactly as received. */
  bytes: Buffer;
  /** Parsed JSON, once the body parsed. */
  json?: unknown;
  verdict?: VerifyResult;
  /** Set when everything passed. */
  payload?: T;
}

declare module "fastify" {
  interface FastifyRequest {
    signed: SignedState | null;
  }
}

export type { ErrorBody } from "./signed.js";

export function sendError(
  reply: FastifyReply,
  status: number,
  error: string,
  errors?: FieldError[],
): FastifyReply {
  const body: ErrorBody = errors ? { error, errors } : { error };
  return reply.code(status).type("application/json").send(body);
}

/** Makes every body in this scope a raw Buffer and every error a JSON `{error}` answer. */
export async function signedBody(scope: FastifyInstance, opts: { bodyLimit?: number } = {}): Promise<void> {
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser("*", { parseAs: "buffer", bodyLimit }, (_req, body, done) => done(null, body));
  if (!scope.hasRequestDecorator("signed")) scope.decorateRequest("signed", null);
  scope.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err.code === "FST_ERR_CTP_BODY_TOO_LARGE" || err.statusCode === 413) {
      return sendError(reply, 413, `body is larger than the limit of ${bodyLimit} bytes`);
    }
    if (err.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || err.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
      return sendError(reply, 400, err.message);
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) reply.log.error({ err }, "request failed");
    return sendError(reply, status, status >= 500 ? "internal error" : err.message);
  });
}

/** `checkSigned`'s options (signed.ts), with the request passed to `secrets` too. */
export type RequireSignedOptions<T> = Omit<CheckSignedOptions<T>, "secrets"> & {
  secrets: (req: FastifyRequest, json: unknown) => ReturnType<CheckSignedOptions<T>["secrets"]>;
};

/**
 * preHandler that checks, in this order: signature header present (401), JSON parses (400), channel known
 * (404), signature matches the raw bytes (401), payload valid (422). With `verifyBeforeParse` the channel and
 * signature are checked first (404, 401) and only signed bytes are parsed (400). On success `req.signed.payload`
 * holds it. The checks themselves are `checkSigned` (signed.ts), shared with routes served without Fastify.
 */
export function requireSigned<T>(opts: RequireSignedOptions<T>): preHandlerAsyncHookHandler {
  return async function requireSignedHandler(req, reply) {
    const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const state: SignedState<T> = { bytes };
    req.signed = state;
    // Spelled out, not `{ ...opts, secrets }`: on Node 20 a literal that starts with a spread is a slow path
    // (~0.5 µs per property after it, docs/architecture.md), and this runs for every signed request.
    const checked = await checkSigned(bytes, req.headers[SIGNATURE_HEADER_LC], {
      validate: opts.validate,
      secrets: (json) => opts.secrets(req, json),
      unknown: opts.unknown,
      verifyBeforeParse: opts.verifyBeforeParse,
    });
    if (checked.json !== undefined) state.json = checked.json;
    if (checked.verdict) state.verdict = checked.verdict;
    if (!checked.ok) return sendError(reply, checked.status, checked.body.error, checked.body.errors);
    state.payload = checked.payload;
  };
}
