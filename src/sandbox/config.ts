import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

/**
 * Sandbox configuration: the helpdesk's custom SMS channels and its staff users. YAML or JSON, `${ENV}`
 * interpolated, validated with errors that name the path (`channels[0].phone: not E.164 …`).
 */

export interface SandboxChannel {
  /** Stable key for URLs and filters: the name, lower-cased and dashed ("Support" → "support"). */
  id: string;
  name: string;
  phone: string;
  /** First one signs webhooks; all verify incoming requests (rotation). */
  secrets: string[];
  webhookUrl?: string;
}

export interface SandboxStaff {
  name: string;
  email: string;
}

export interface SandboxConfig {
  channels: SandboxChannel[];
  staff: SandboxStaff[];
}

/** What a config file (or a programmatic caller) may write. */
export interface SandboxConfigInput {
  channels?: Array<{
    id?: string;
    name: string;
    phone: string;
    secret?: string;
    secrets?: string[];
    webhookUrl?: string;
  }>;
  staff?: SandboxStaff[];
}

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly problems: string[] = [message],
  ) {
    super(message);
    this.name = "ConfigError";
  }
}

const E164 = /^\+[1-9]\d{1,14}$/;

const channelSchema = z
  .object({
    id: z
      .string({ error: "must be a string" })
      .regex(/^[a-z0-9][a-z0-9-]*$/, { error: "lower-case letters, digits and dashes only" })
      .optional(),
    name: z
      .string({ error: "required (a display name, e.g. Support)" })
      .min(1, { error: "must not be empty" }),
    phone: z.string({ error: "required (the channel's number in E.164, e.g. +16501234567)" }).regex(E164, {
      error: "not E.164 (a '+', the country code and the number, digits only, e.g. +16501234567)",
    }),
    secret: z.string({ error: "must be a string" }).min(1, { error: "must not be empty" }).optional(),
    secrets: z
      .array(z.string({ error: "must be a string" }).min(1, { error: "must not be empty" }), {
        error: "must be a list of strings (newest first)",
      })
      .min(1, { error: "must hold at least one secret" })
      .optional(),
    webhookUrl: z
      .string({ error: "must be a string" })
      .refine((v) => /^https?:\/\/[^\s]+$/i.test(v), { error: "not an http(s) URL" })
      .optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (!v.secret && !v.secrets) {
      ctx.addIssue({
        code: "custom",
        path: ["secret"],
        message: "required: set `secret` or `secrets: [new, old]`",
      });
    }
    if (v.secret && v.secrets) {
      ctx.addIssue({
        code: "custom",
        path: ["secrets"],
        message: "set either `secret` or `secrets`, not both",
      });
    }
  });

const staffSchema = z
  .object({
    name: z.string({ error: "required" }).min(1, { error: "must not be empty" }),
    email: z.string({ error: "required" }).regex(/^[^\s@]+@[^\s@]+$/, { error: "not an e-mail address" }),
  })
  .strict();

const configSchema = z
  .object({
    channels: z.array(channelSchema, { error: "must be a list of channels" }).min(1, {
      error: "must hold at least one channel",
    }),
    staff: z.array(staffSchema, { error: "must be a list of staff users" }).default([]),
  })
  .strict();

/** `["channels", 0, "phone"]` → `channels[0].phone` */
function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(root)";
}

function slugify(name: string): string {
  return (
    name
      .toLowerCase()
      .normalize("NFKD")
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "") || "channel"
  );
}

/** Replaces `${NAME}` in every string with the environment variable, so secrets stay out of the file. */
function interpolate(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: PropertyKey[],
  problems: string[],
): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const v = env[name];
      if (v === undefined) {
        problems.push(`${formatPath(path)}: environment variable ${name} is not set`);
        return "";
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, [...path, i], problems));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, env, [...path, k], problems)]),
    );
  }
  return value;
}

/** Validates a parsed config object; throws ConfigError listing every problem with its path. */
export function validateConfig(input: unknown, env: NodeJS.ProcessEnv = process.env): SandboxConfig {
  const problems: string[] = [];
  const interpolated = interpolate(input, env, [], problems);
  if (problems.length) throw new ConfigError(`invalid sandbox config: ${problems.join("; ")}`, problems);
  const r = configSchema.safeParse(interpolated);
  if (!r.success) {
    for (const issue of r.error.issues) {
      const missing = issue.code === "invalid_type" && (issue as { input?: unknown }).input === undefined;
      problems.push(
        `${formatPath(issue.path)}: ${missing && !/required/.test(issue.message) ? "required" : issue.message}`,
      );
    }
    throw new ConfigError(`invalid sandbox config: ${problems.join("; ")}`, problems);
  }
  const channels: SandboxChannel[] = [];
  const ids = new Set<string>();
  r.data.channels.forEach((c, i) => {
    if (channels.some((o) => o.phone === c.phone)) {
      problems.push(`channels[${i}].phone: ${c.phone} is already used by another channel`);
    }
    if (c.id && ids.has(c.id)) problems.push(`channels[${i}].id: ${c.id} is already used by another channel`);
    let id = c.id ?? slugify(c.name);
    for (let n = 2; ids.has(id); n++) id = `${slugify(c.name)}-${n}`;
    ids.add(id);
    channels.push({
      id,
      name: c.name,
      phone: c.phone,
      secrets: c.secrets ?? [c.secret as string],
      ...(c.webhookUrl ? { webhookUrl: c.webhookUrl } : {}),
    });
  });
  const emails = new Set<string>();
  r.data.staff.forEach((s, i) => {
    const key = s.email.toLowerCase();
    if (emails.has(key)) problems.push(`staff[${i}].email: ${s.email} is listed twice`);
    emails.add(key);
  });
  if (problems.length) throw new ConfigError(`invalid sandbox config: ${problems.join("; ")}`, problems);
  return { channels, staff: r.data.staff };
}

/** Reads and validates a YAML or JSON config file (JSON is YAML, so one parser reads both). */
export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): SandboxConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read sandbox config ${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`sandbox config ${file} is not valid YAML/JSON: ${(e as Error).message}`);
  }
  try {
    return validateConfig(parsed ?? {}, env);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${file}: ${e.message}`, e.problems);
    throw e;
  }
}

export const DEMO_PHONE = "+12025550100";
export const DEMO_WEBHOOK_URL = "http://127.0.0.1:8080/channels/demo/reamaze";

export interface DemoOptions {
  secret?: string;
  webhookUrl?: string;
  phone?: string;
}

/**
 * The zero-config helpdesk: one channel and one staff user. The number is in the 555-01xx range reserved
 * for fiction; the secret is random unless given (env `SMSBRIDGE_SANDBOX_SECRET`), so it is printed at start.
 */
export function demoConfig(opts: DemoOptions = {}, env: NodeJS.ProcessEnv = process.env): SandboxConfig {
  // `||`, not `??`: an exported-but-empty variable means "not set".
  const webhookUrl = opts.webhookUrl || env.SMSBRIDGE_SANDBOX_WEBHOOK_URL || DEMO_WEBHOOK_URL;
  return validateConfig({
    channels: [
      {
        name: "Demo",
        phone: opts.phone || env.SMSBRIDGE_SANDBOX_PHONE || DEMO_PHONE,
        secret: opts.secret || env.SMSBRIDGE_SANDBOX_SECRET || randomBytes(18).toString("base64url"),
        webhookUrl,
      },
    ],
    staff: [{ name: "Demo Staff", email: "staff@example.com" }],
  });
}
