import type { FieldError, Validation } from "./payloads.js";
import { describeVerifyFailure, type VerifyResult, verify } from "./signature.js";

/** The JSON body of every refusal: `{ error, errors? }`. */
export interface ErrorBody {
  error: string;
  errors?: FieldError[];
}

export interface CheckSignedOptions<T> {
  validate: (json: unknown) => Validation<T>;
  /**
   * The secrets that may have signed this request. Called after the JSON parsed, so a receiver may pick the
   * channel from the payload (the helpdesk finds it by phone number). Return undefined for an unknown
   * channel (404), or an object `{ status, error }` to refuse with another answer.
   */
  secrets: (
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

/** What the checks found. `json` and `verdict` are set as far as the checks got, also on a refusal. */
export type SignedCheck<T> =
  | { ok: true; payload: T; json: unknown; verdict: VerifyResult }
  | { ok: false; status: number; body: ErrorBody; json?: unknown; verdict?: VerifyResult };

/**
 * A signed protocol request, checked in this order: signature header present (401), JSON parses (400), channel
 * known (404), signature matches the raw bytes (401), payload valid (422). With `verifyBeforeParse` the channel
 * and signature are checked first (404, 401) and only signed bytes are parsed (400). Framework-free: the
 * Fastify preHandler (`requireSigned`, fastify.ts) and the bridge's node:http staff-reply route both answer
 * from it, so the two cannot drift apart.
 */
export async function checkSigned<T>(
  bytes: Buffer,
  header: string | string[] | undefined,
  opts: CheckSignedOptions<T>,
): Promise<SignedCheck<T>> {
  const headerValue = Array.isArray(header) ? header[0] : header;
  if (!headerValue || headerValue.trim() === "") {
    const verdict: VerifyResult = { ok: false, reason: "missing" };
    return refuse(401, describeVerifyFailure("missing"), { verdict });
  }
  let verdict: VerifyResult | undefined;
  const lookUp = async (json: unknown): Promise<SignedCheck<T> | undefined> => {
    const found = await opts.secrets(json);
    if (found === undefined) return refuse(404, opts.unknown?.(json) ?? "unknown channel", { json });
    if (!Array.isArray(found)) {
      const refusal = found as { status: number; error: string };
      return refuse(refusal.status, refusal.error, { json });
    }
    verdict = verify(bytes, headerValue, found as readonly string[]);
    if (!verdict.ok) return refuse(401, describeVerifyFailure(verdict.reason), { json, verdict });
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
    return refuse(400, `malformed JSON: ${(e as Error).message}`, verdict ? { verdict } : {});
  }
  if (!opts.verifyBeforeParse) {
    const refused = await lookUp(json);
    if (refused) return refused;
  }
  const valid = opts.validate(json);
  if (!valid.ok) {
    const error = `invalid payload: ${valid.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`;
    return refuse(422, { error, errors: valid.errors }, verdict ? { json, verdict } : { json });
  }
  return { ok: true, payload: valid.value, json, verdict: verdict as VerifyResult };
}

function refuse<T>(
  status: number,
  error: string | ErrorBody,
  seen: { json?: unknown; verdict?: VerifyResult },
): SignedCheck<T> {
  return { ok: false, status, body: typeof error === "string" ? { error } : error, ...seen };
}
