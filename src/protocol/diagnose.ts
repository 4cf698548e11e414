import { createHmac } from "node:crypto";
import { type Bytes, SIGNATURE_HEADER, sign, verify } from "./signature.js";

/**
 * Signature debugger: when `X-Reamaze-Hmac-SHA256` does not verify, say what the sender most likely did
 * wrong. It recomputes the HMAC over the usual wrong inputs (a re-serialised body, trimmed whitespace, a
 * secret read from a file with its newline, a hex digest) and reports the first that reproduces the header.
 * Diagnosis is for people debugging an integration; it is not a verification and is not constant-time.
 */

export type SignatureMistake =
  | "missing-header"
  | "no-secrets"
  | "hex-digest"
  | "base64url-digest"
  | "unpadded-base64"
  | "reserialised-body"
  | "whitespace-trimmed"
  | "secret-whitespace"
  | "malformed-header"
  | "wrong-secret";

export interface SignatureDiagnosis {
  ok: boolean;
  /** Index of the secret that verified (ok), or that reproduces the header under the mistake. */
  secretIndex?: number;
  /** The header as received (undefined when missing). */
  received?: string;
  /** The correct header for these exact bytes with the first secret. */
  expected?: string;
  mistake?: SignatureMistake;
  /** For body mistakes: which transformation of the body was signed, e.g. `JSON.stringify(JSON.parse(body))`. */
  variant?: string;
  /** One or two sentences for a person: what is wrong and what to do. */
  explanation: string;
}

interface BodyVariant {
  name: string;
  mistake: "reserialised-body" | "whitespace-trimmed";
  bytes: Buffer;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = sortKeys((value as Record<string, unknown>)[k]);
    return out;
  }
  return value;
}

// Python's json.dumps defaults: ", " and ": " separators and non-ASCII escaped as \uXXXX.
function pythonDumps(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonDumps).join(", ")}]`;
  if (value && typeof value === "object") {
    return `{${Object.entries(value)
      .map(([k, v]) => `${pythonDumps(k)}: ${pythonDumps(v)}`)
      .join(", ")}}`;
  }
  return JSON.stringify(value).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function bodyVariants(bytes: Buffer): BodyVariant[] {
  const text = bytes.toString("utf8");
  const out: BodyVariant[] = [];
  const add = (name: string, mistake: BodyVariant["mistake"], s: string) => {
    const b = Buffer.from(s, "utf8");
    if (!b.equals(bytes) && !out.some((v) => v.bytes.equals(b))) out.push({ name, mistake, bytes: b });
  };
  add("the body with surrounding whitespace trimmed", "whitespace-trimmed", text.trim());
  add("the body plus a trailing newline", "whitespace-trimmed", `${text}\n`);
  add("the body without its trailing newline", "whitespace-trimmed", text.replace(/\r?\n$/, ""));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return out;
  }
  add("JSON.stringify(JSON.parse(body))", "reserialised-body", JSON.stringify(json));
  add("the body with keys sorted", "reserialised-body", JSON.stringify(sortKeys(json)));
  add("the body pretty-printed with 2 spaces", "reserialised-body", JSON.stringify(json, null, 2));
  add("the body pretty-printed with 4 spaces", "reserialised-body", JSON.stringify(json, null, 4));
  add(
    "the body with keys sorted, pretty-printed",
    "reserialised-body",
    JSON.stringify(sortKeys(json), null, 2),
  );
  add("the body as Python's json.dumps writes it", "reserialised-body", pythonDumps(json));
  add(
    "the body with keys sorted, as Python's json.dumps writes it",
    "reserialised-body",
    pythonDumps(sortKeys(json)),
  );
  return out;
}

function hmac(bytes: Buffer, secret: string): Buffer {
  return createHmac("sha256", secret).update(bytes).digest();
}

/** Reads the header as a digest in any of the encodings people use by mistake. */
function decodeLoosely(
  header: string,
): { digest: Buffer; encoding: "base64" | "hex" | "base64url" | "unpadded" } | undefined {
  const v = header.trim();
  if (/^[0-9a-f]{64}$/i.test(v)) return { digest: Buffer.from(v, "hex"), encoding: "hex" };
  if (/^[A-Za-z0-9+/]{43}=$/.test(v)) return { digest: Buffer.from(v, "base64"), encoding: "base64" };
  if (/^[A-Za-z0-9+/]{43}$/.test(v)) return { digest: Buffer.from(v, "base64"), encoding: "unpadded" };
  if (/^[A-Za-z0-9_-]{43}=?$/.test(v)) return { digest: Buffer.from(v, "base64url"), encoding: "base64url" };
  return undefined;
}

const ENCODING_MISTAKE = {
  hex: {
    mistake: "hex-digest",
    text: "The header is the hex digest; the protocol wants the raw 32-byte HMAC base64-encoded (44 characters ending in '=').",
  },
  base64url: {
    mistake: "base64url-digest",
    text: "The header is base64url ('-' and '_'); the protocol wants standard base64 ('+', '/', '=' padding).",
  },
  unpadded: {
    mistake: "unpadded-base64",
    text: "The header lacks the trailing '=' padding; send standard padded base64 (44 characters).",
  },
} as const;

/**
 * Diagnoses a signature header against the bytes exactly as received and the channel's secrets
 * (rotation: all of them are tried; `expected` is for the first one, the one a sender should use).
 */
export function diagnoseSignature(
  bytes: Bytes,
  header: string | string[] | null | undefined,
  secrets: readonly string[],
): SignatureDiagnosis {
  const body = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : Buffer.from(bytes);
  const received = (Array.isArray(header) ? header[0] : header) ?? undefined;
  if (secrets.length === 0) {
    return {
      ok: false,
      received,
      mistake: "no-secrets",
      explanation: "The channel has no shared secret configured; add one to the channel and sign with it.",
    };
  }
  const expected = sign(body, secrets[0] as string);
  if (received === undefined || received.trim() === "") {
    return {
      ok: false,
      expected,
      mistake: "missing-header",
      explanation: `No ${SIGNATURE_HEADER} header was sent. Sign the exact body bytes with the channel's shared secret: base64(HMAC-SHA256(secret, body)).`,
    };
  }
  const verdict = verify(body, received, secrets);
  if (verdict.ok) {
    return {
      ok: true,
      secretIndex: verdict.secretIndex,
      received,
      expected,
      explanation:
        verdict.secretIndex === 0
          ? "Signature verified with the channel's current secret."
          : `Signature verified with secret #${verdict.secretIndex + 1} (an older one, kept for rotation); move the sender to the first secret.`,
    };
  }
  const base = { ok: false, received, expected } as const;
  const decoded = decodeLoosely(received);
  if (!decoded) {
    return {
      ...base,
      mistake: "malformed-header",
      explanation: `${SIGNATURE_HEADER} is not an encoded SHA-256 HMAC (got ${received.trim().length} characters); send base64(HMAC-SHA256(secret, body)), 44 characters ending in '='.`,
    };
  }
  const matches = (candidate: Buffer) => candidate.equals(decoded.digest);

  // The right bytes and secret, in the wrong encoding.
  if (decoded.encoding !== "base64") {
    for (let i = 0; i < secrets.length; i++) {
      if (matches(hmac(body, secrets[i] as string))) {
        const m = ENCODING_MISTAKE[decoded.encoding];
        return { ...base, secretIndex: i, mistake: m.mistake, explanation: m.text };
      }
    }
  }
  // A secret read from a file or env var with its newline or spaces.
  for (let i = 0; i < secrets.length; i++) {
    const s = secrets[i] as string;
    for (const variant of new Set([`${s}\n`, `${s}\r\n`, ` ${s}`, `${s} `, s.trim()])) {
      if (variant !== s && matches(hmac(body, variant))) {
        return {
          ...base,
          secretIndex: i,
          mistake: "secret-whitespace",
          explanation:
            "The sender's secret carries extra whitespace (a newline from a file or env var?); trim it before signing.",
        };
      }
    }
  }
  // Signed something other than the bytes it sent.
  for (const v of bodyVariants(body)) {
    for (let i = 0; i < secrets.length; i++) {
      if (matches(hmac(v.bytes, secrets[i] as string))) {
        const also =
          decoded.encoding === "base64"
            ? ""
            : ` It is also ${decoded.encoding}-encoded; use standard base64.`;
        return {
          ...base,
          secretIndex: i,
          mistake: v.mistake,
          variant: v.name,
          explanation:
            v.mistake === "reserialised-body"
              ? `The signature matches ${v.name}, not the bytes sent. Serialise the payload once, sign those bytes, and send the same bytes.${also}`
              : `The signature matches ${v.name}, not the bytes sent: whitespace changed between signing and sending. Sign and send the identical bytes.${also}`,
        };
      }
    }
  }
  return {
    ...base,
    mistake: "wrong-secret",
    explanation:
      "The signature is well-formed but matches none of the channel's secrets for this body: most likely signed with another secret (another channel's, or an old one). Check the shared secret; if it is right, the body was changed after signing.",
  };
}
