import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from "fastify";
import type { FieldError, Validation } from "./payloads.js";
import { describeVerifyFailure, SIGNATURE_HEADER_LC, type VerifyResult, verify } from "./signature.js";

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

export interface ErrorBody {
  error: string;
  errors?: FieldError[];
}

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

export interface RequireSignedOptions<T> {
  validate: (json: unknown) => Validation<T>;
  /**
   * The secrets that may have signed this request. Called after the JSON parsed, so a receiver may pick the
   * channel from the payload (the helpdesk finds it by phone number). Return undefined for an unknown
   * channel (404), or an object `{ status, error }` to refuse with another answer.
   */
  secrets: (
    req: FastifyRequest,
    json: unknown,
  ) =>
    | readonly string[]
    | undefined
    | { status: number; error: string }
    | Promise<readonly string[] | undefined | { status: number; error: string }>;
  /** Text of the 404 answer. */
  unknown?: (json: unknown) => string;
  /**
   * The secrets are known from the request alone (e.g. a channel id in the URL): `secrets` is called with
   * `json` undefined and the signature is checked before the body is parsed at all.
   */
  verifyBeforeParse?: boolean;
}

/**
 * preHandler that checks, in this order: signature header present (401), JSON parses (400), channel known
 * (404), signature matches the raw bytes (401), payload valid (422). With `verifyBeforeParse` the channel and
 * signature are checked first (404, 401) and only signed bytes are parsed (400). On success `req.signed.payload` holds it.
 */
export function requireSigned<T>(opts: RequireSignedOptions<T>): preHandlerAsyncHookHandler {
  return async function requireSignedHandler(req, reply) {
    const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const state: SignedState<T> = { bytes };
    req.signed = state;
    const header = req.headers[SIGNATURE_HEADER_LC];
    const headerValue = Array.isArray(header) ? header[0] : header;
    if (!headerValue || headerValue.trim() === "") {
      state.verdict = { ok: false, reason: "missing" };
      return sendError(reply, 401, describeVerifyFailure("missing"));
    }
    const lookUp = async (json: unknown) => {
      const found = await opts.secrets(req, json);
      if (found === undefined) return sendError(reply, 404, opts.unknown?.(json) ?? "unknown channel");
      if (!Array.isArray(found)) {
        const refusal = found as { status: number; error: string };
        return sendError(reply, refusal.status, refusal.error);
      }
      const verdict = verify(bytes, headerValue, found as readonly string[]);
      state.verdict = verdict;
      if (!verdict.ok) return sendError(reply, 401, describeVerifyFailure(verdict.reason));
      return undefined;
    };
    if (opts.verifyBeforeParse) {
      const refused = await lookUp(undefined);
      if (refused) return refused;
    }
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString("utf8"));
    } catch (e) {
      return sendError(reply, 400, `malformed JSON: ${(e as Error).message}`);
    }
    state.json = json;
    if (!opts.verifyBeforeParse) {
      const refused = await lookUp(json);
      if (refused) return refused;
    }
    const valid = opts.validate(json);
    if (!valid.ok) {
      return sendError(
        reply,
        422,
        `invalid payload: ${valid.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
        valid.errors,
      );
    }
    state.payload = valid.value;
  };
}
