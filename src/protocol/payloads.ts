import { z } from "zod";

/**
 * The two JSON payloads of the custom SMS channel protocol (Re:amaze "SMS Channels (Custom SMS or other
 * 3rd Party Providers)"). Unknown fields are kept: the helpdesk may add fields and a receiver must not break.
 */

const E164 = /^\+[1-9]\d{1,14}$/;
// ISO 8601 date-time with a zone; the seed's own example uses "+0000" (no colon), so both offset forms pass.
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)$/;

/** Parses an ISO 8601 timestamp as the protocol writes it (also "+0000"), or returns undefined. */
export function parseIsoTimestamp(value: string): Date | undefined {
  if (!ISO_8601.test(value)) return undefined;
  // Date rolls 2019-02-30 over to March 2; a day past the month's end is a wrong timestamp, not a later one.
  const [y = 0, m = 0, day = 0] = value.slice(0, 10).split("-").map(Number);
  if (m < 1 || m > 12 || day < 1 || day > new Date(Date.UTC(y, m, 0)).getUTCDate()) return undefined;
  const normalised = value.replace(/([+-]\d{2})(\d{2})$/, "$1:$2").replace(/([+-]\d{2})$/, "$1:00");
  const d = new Date(normalised);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** We emit RFC 3339 UTC (`2019-08-06T23:21:15.000Z`): ISO 8601, and read by every parser. */
export function formatIsoTimestamp(d: Date): string {
  return d.toISOString();
}

export const phoneSchema = z.string({ error: "must be a string" }).regex(E164, {
  error: "not E.164 (a '+', the country code and the number, digits only, e.g. +15105559999)",
});

export const partySchema = z
  .object({
    name: z.string({ error: "must be a string" }).optional(),
    phone: phoneSchema,
  })
  .loose();

const timestampSchema = z
  .string({ error: "must be a string" })
  .refine((v) => parseIsoTimestamp(v) !== undefined, {
    error: "not ISO 8601 (e.g. 2019-08-06T23:21:15+0000)",
  });

const attachmentsSchema = z.array(
  z.string({ error: "must be a URL string" }).refine((v) => /^https?:\/\/[^\s]+$/i.test(v), {
    error: "not an http(s) URL",
  }),
  { error: "must be an array of URL strings" },
);

const nonEmpty = (what: string) =>
  z.string({ error: "must be a string" }).min(1, { error: `${what} must not be empty` });

/** Helpdesk-bound SMS: what a channel POSTs to `/incoming/sms`. */
export const incomingSmsSchema = z
  .object({
    id: nonEmpty("id").max(255, { error: "longer than 255 characters" }),
    direction: z.enum(["inbound", "outbound"], { error: "must be 'inbound' or 'outbound'" }).optional(),
    to: partySchema,
    from: partySchema,
    body: z.string({ error: "must be a string" }),
    attachments: attachmentsSchema.optional(),
    thread_id: nonEmpty("thread_id").max(255, { error: "longer than 255 characters" }).optional(),
    created_at: timestampSchema.optional(),
    assignee: z
      .object({ email: z.string({ error: "must be a string" }) })
      .loose()
      .optional(),
  })
  .loose()
  .superRefine((v, ctx) => {
    if (v.body === "" && (v.attachments ?? []).length === 0) {
      ctx.addIssue({ code: "custom", path: ["body"], message: "empty: send a body, attachments, or both" });
    }
  });

export type IncomingSms = z.infer<typeof incomingSmsSchema>;

/** Staff reply: what the helpdesk POSTs to the channel's webhook URL, synchronously. */
export const staffReplySchema = z
  .object({
    to: partySchema,
    from: partySchema,
    body: z.string({ error: "must be a string" }),
    conversation: z.object({ slug: nonEmpty("conversation.slug") }).loose(),
    attachments: attachmentsSchema.nullish(),
    created_at: timestampSchema.nullish(),
    thread_id: z.string({ error: "must be a string" }).nullish(),
  })
  .loose()
  .superRefine((v, ctx) => {
    if (v.body === "" && (v.attachments ?? []).length === 0) {
      ctx.addIssue({ code: "custom", path: ["body"], message: "empty: nothing to send" });
    }
  });

export type StaffReply = z.infer<typeof staffReplySchema>;

export interface FieldError {
  /** Dotted path of the failing field, e.g. `from.phone` or `attachments.0`; `(root)` for the body as a whole. */
  path: string;
  message: string;
}

export type Validation<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** The value at `path` in `input`, or undefined when any step is absent. */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let node = input;
  for (const key of path) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function toFieldErrors(error: z.ZodError, input: unknown): FieldError[] {
  return error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join(".") : "(root)";
    // zod says "Invalid input: expected string, received undefined" for a missing key; people read "required".
    // (zod 4 leaves `issue.input` out unless asked, so look the value up in the input.)
    const missing = issue.code === "invalid_type" && valueAt(input, issue.path) === undefined;
    return { path, message: missing ? "required" : issue.message };
  });
}

function validator<S extends z.ZodType>(schema: S) {
  return (input: unknown): Validation<z.infer<S>> => {
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      return { ok: false, errors: [{ path: "(root)", message: "must be a JSON object" }] };
    }
    const r = schema.safeParse(input);
    return r.success ? { ok: true, value: r.data } : { ok: false, errors: toFieldErrors(r.error, input) };
  };
}

export const validateIncomingSms = validator(incomingSmsSchema);
export const validateStaffReply = validator(staffReplySchema);

/** `from.phone: required; created_at: not ISO 8601 …` — one line for logs and CLI output. */
export function formatFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join("; ");
}
