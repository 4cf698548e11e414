import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { isE164 } from "../core/phone.js";
import { providerFactory, providerTypes } from "../providers/registry.js";

/**
 * `smsbridge.yaml`: read, `${ENV}` interpolated, validated. Every error names the path of the offending key
 * (`channels[0].provider.authToken: required`) so a person can fix the file without reading code.
 */

const url = (example: string) =>
  z
    .string({ error: "must be a string" })
    .refine((v) => /^https?:\/\/[^\s]+$/.test(v), { error: `must be an http(s) URL, e.g. ${example}` });

const threadingSchema = z
  .object({
    mode: z
      .enum(["session", "pair", "helpdesk"], { error: "must be session, pair or helpdesk" })
      .default("session"),
    idleHours: z.number({ error: "must be a number" }).positive({ error: "must be > 0" }).default(24),
  })
  .strict();

const channelSchema = z
  .object({
    id: z.string({ error: "required" }).regex(/^[a-z0-9][a-z0-9_-]{0,62}$/i, {
      error: "letters, digits, '-' and '_' only (it is part of the URL)",
    }),
    name: z.string().optional(),
    numbers: z
      .array(z.string().refine(isE164, { error: "not E.164 (e.g. +16501234567)" }), {
        error: "required: the channel's phone numbers",
      })
      .min(1, { error: "at least one number" }),
    reamaze: z
      .object({
        incomingUrl: url("https://www.reamaze.io/incoming/sms").default(
          "https://www.reamaze.io/incoming/sms",
        ),
        secrets: z
          .array(z.string().min(1, { error: "empty secret (is its ${ENV} variable empty?)" }), {
            error: "required: the channel's shared secret(s); the first signs, all verify",
          })
          .min(1, { error: "at least one secret" }),
        timeoutMs: z.number().int().positive().default(15_000),
      })
      .strict(),
    provider: z.object({ type: z.string({ error: "required" }) }).loose(),
    threading: threadingSchema.default({ mode: "session", idleHours: 24 }),
    concurrency: z.number().int().positive().max(1024).default(16),
  })
  .strict();

export const configSchema = z
  .object({
    server: z
      .object({
        port: z.number().int().min(0).max(65535).default(8080),
        host: z.string().default("0.0.0.0"),
        publicUrl: url("https://sms.example.com").optional(),
        trustProxy: z.boolean().default(false),
        bodyLimit: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024),
        // Opt-in: background threads (forwarding, checkpoints) yield to the one acknowledging webhooks
        // (thread-priority.ts). Off by default: it defers forwarding rather than adding capacity.
        backgroundNice: z
          .number({ error: "must be a number" })
          .int({ error: "must be a whole number" })
          .min(0, { error: "0 to 19 (0 = the process's own priority)" })
          .max(19, { error: "0 to 19 (0 = the process's own priority)" })
          .default(0),
      })
      .strict()
      .default({
        port: 8080,
        host: "0.0.0.0",
        trustProxy: false,
        bodyLimit: 1024 * 1024,
        backgroundNice: 0,
      }),
    database: z.string().default("sqlite:./data/smsbridge.db"),
    adminToken: z.string().min(16, { error: "at least 16 characters" }).optional(),
    log: z
      .object({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
        maskPhones: z.boolean().default(false),
      })
      .strict()
      .default({ level: "info", maskPhones: false }),
    forwarder: z
      .object({
        // false: a webhook-only instance; another instance on the same database delivers (deployment.md).
        enabled: z.boolean().default(true),
        leaseMs: z.number().int().positive().default(60_000),
        maxAgeHours: z.number().positive().default(72),
        retryBaseMs: z.number().int().positive().default(1_000),
        retryCapMs: z.number().int().positive().default(600_000),
        pollMs: z.number().int().positive().default(1_000),
        batch: z.number().int().positive().default(256),
        breakerThreshold: z.number().int().positive().default(5),
        breakerCooldownMs: z.number().int().positive().default(30_000),
      })
      .strict()
      .default({
        enabled: true,
        leaseMs: 60_000,
        maxAgeHours: 72,
        retryBaseMs: 1_000,
        retryCapMs: 600_000,
        pollMs: 1_000,
        batch: 256,
        breakerThreshold: 5,
        breakerCooldownMs: 30_000,
      }),
    retention: z
      .object({
        // A provider's retried webhook is recognised by the stored message: keep at least a day of them.
        days: z
          .number({ error: "must be a number of days" })
          .min(1, { error: "at least 1 (a provider's retried webhook is recognised by the stored message)" })
          .optional(),
        sweepMinutes: z.number({ error: "must be a number" }).positive({ error: "must be > 0" }).default(60),
        batch: z.number().int().positive().max(10_000).default(200),
      })
      .strict()
      .default({ sweepMinutes: 60, batch: 200 }),
    reply: z
      .object({ deadlineMs: z.number().int().positive().default(10_000) })
      .strict()
      .default({ deadlineMs: 10_000 }),
    channels: z
      .array(channelSchema, { error: "required: a list of channels" })
      .min(1, { error: "at least one channel" }),
  })
  .strict();

export type BridgeConfig = z.infer<typeof configSchema>;
export type ChannelConfig = BridgeConfig["channels"][number];

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
}

function pathString(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(root)";
}

/** Replaces `${NAME}` and `${NAME:-default}` in every string value; a missing variable is an error naming the path. */
export function interpolateEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  problems: string[],
  path: PropertyKey[] = [],
): unknown {
  if (typeof value === "string") {
    return value.replace(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
      (_m, name: string, fallback?: string) => {
        const v = env[name];
        if (v !== undefined && v !== "") return v;
        if (fallback !== undefined) return fallback;
        problems.push(`${pathString(path)}: environment variable ${name} is not set`);
        return "";
      },
    );
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, problems, [...path, i]));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env, problems, [...path, k])]),
    );
  }
  return value;
}

export interface LoadedConfig {
  config: BridgeConfig;
  /** Validated provider config per channel id (the schema of that provider's adapter). */
  providers: Map<string, { type: string; config: unknown; secretKeys: string[] }>;
}

/** Validates an already-parsed config object (interpolating env first). */
/** YAML reads a section holding only comments (`forwarder:` + comments) as null: treat it as absent. */
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => [k, dropNulls(v)]),
    );
  }
  return value;
}

export function validateConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const problems: string[] = [];
  const interpolated = interpolateEnv(dropNulls(raw), env, problems);
  // reportInput: zod 4 leaves `input` off its issues otherwise, and every wrong-typed value read as missing.
  const r = configSchema.safeParse(interpolated, { reportInput: true });
  if (!r.success) {
    for (const issue of r.error.issues) {
      const missing = issue.code === "invalid_type" && (issue as { input?: unknown }).input === undefined;
      problems.push(
        `${pathString(issue.path)}: ${missing && !issue.message.startsWith("required") ? "required" : issue.message}`,
      );
    }
  }
  if (problems.length || !r.success) throw new ConfigError(problems);
  const config = r.data;
  // An in-memory database is this process's alone: with no forwarder here, nothing could ever deliver.
  if (!config.forwarder.enabled && /^sqlite:(:memory:)?$/.test(config.database))
    problems.push(
      "forwarder.enabled: false needs a database another instance can share (a SQLite file or PostgreSQL); with sqlite::memory: nothing would ever deliver to the helpdesk",
    );
  const providers: LoadedConfig["providers"] = new Map();
  const ids = new Set<string>();
  const numbers = new Map<string, string>();
  config.channels.forEach((ch, i) => {
    if (ids.has(ch.id)) problems.push(`channels[${i}].id: "${ch.id}" is used by another channel`);
    ids.add(ch.id);
    ch.numbers.forEach((n, j) => {
      const other = numbers.get(n);
      if (other) problems.push(`channels[${i}].numbers[${j}]: ${n} already belongs to channel "${other}"`);
      numbers.set(n, ch.id);
    });
    const { type, ...rest } = ch.provider;
    const factory = providerFactory(type);
    if (!factory) {
      problems.push(
        `channels[${i}].provider.type: unknown provider "${type}" (known: ${providerTypes().join(", ")})`,
      );
      return;
    }
    const pr = factory.config.safeParse(rest, { reportInput: true });
    if (!pr.success) {
      for (const issue of pr.error.issues) {
        const missing = issue.code === "invalid_type" && (issue as { input?: unknown }).input === undefined;
        problems.push(
          `${pathString([`channels`, i, "provider", ...issue.path])}: ${missing ? "required" : issue.message}`,
        );
      }
    } else providers.set(ch.id, { type, config: pr.data, secretKeys: factory.secretKeys });
  });
  if (problems.length) throw new ConfigError(problems);
  return { config, providers };
}

export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError([
      `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    ]);
  }
  try {
    return file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError([
      `${file}: not valid ${file.endsWith(".json") ? "JSON" : "YAML"}: ${(e as Error).message}`,
    ]);
  }
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  return validateConfig(readConfigFile(file), env);
}

/** Every secret value in the config (reamaze secrets, admin token, provider secret keys), for log redaction. */
export function configSecrets(loaded: LoadedConfig): string[] {
  const out: string[] = [];
  if (loaded.config.adminToken) out.push(loaded.config.adminToken);
  for (const ch of loaded.config.channels) {
    out.push(...ch.reamaze.secrets);
    const p = loaded.providers.get(ch.id);
    if (!p) continue;
    const cfg = p.config as Record<string, unknown>;
    for (const k of p.secretKeys) if (typeof cfg[k] === "string") out.push(cfg[k] as string);
  }
  return out.filter((s) => s.length >= 4);
}
