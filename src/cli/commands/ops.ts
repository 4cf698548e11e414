import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import type { BridgeConfig } from "../../bridge/config.js";
import type { Store } from "../../store/store.js";
import { CliError } from "../io.js";

/**
 * What the operations commands (migrate, status, dead, check-config) share: the `--config` option, opening
 * the bridge's database, and turning times into words.
 */

export const DEFAULT_CONFIG = "smsbridge.yaml";

/** Exit code for a failed operation (unknown id, nothing selected, database trouble). */
export const EXIT_FAILED = 1;

const CONNECT_TIMEOUT_MS = 15_000;

export function configOption(cmd: Command): Command {
  return cmd.option(
    "-c, --config <file>",
    "config file, YAML or JSON (default: $SMSBRIDGE_CONFIG or smsbridge.yaml)",
    process.env.SMSBRIDGE_CONFIG ?? DEFAULT_CONFIG,
  );
}

const UNSET = "smsbridge-unset-environment-variable";

/**
 * The config as the operations commands need it: `database`, `server`, channel ids, forwarder settings. Unlike
 * `serve`, it does not need the provider and helpdesk secrets in the environment — an operator running
 * `smsbridge status` should not have to hold the Twilio token. A variable the database URL uses is still
 * required; any other problem is reported exactly as `serve` reports it (exit 78).
 */
export async function loadOpsConfig(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<BridgeConfig> {
  // Loaded on use: the CLI starts without the bridge's modules for commands that do not need them.
  const { ConfigError, configSchema, interpolateEnv, readConfigFile } = await import(
    "../../bridge/config.js"
  );
  const { loadOrExit } = await import("./serve.js");
  let raw: unknown;
  try {
    raw = readConfigFile(file);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return loadOrExit(file).config;
  }
  const missing: string[] = [];
  const lenient = withPlaceholders(raw, env, missing, []);
  const problems: string[] = [];
  const r = configSchema.safeParse(interpolateEnv(lenient, env, problems));
  const dbMissing = missing.filter((m) => m.startsWith("database:"));
  if (dbMissing.length) {
    process.stderr.write(`smsbridge: ${file}: invalid configuration:\n  ${dbMissing.join("\n  ")}\n`);
    process.exit(78);
  }
  if (!r.success || problems.length) return loadOrExit(file).config;
  return r.data;
}

/** Rewrites `${NAME}` of unset variables to `${NAME:-placeholder}`, noting where, so validation can go on. */
function withPlaceholders(
  value: unknown,
  env: NodeJS.ProcessEnv,
  missing: string[],
  path: string[],
): unknown {
  if (typeof value === "string")
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name: string) => {
      if (env[name] !== undefined && env[name] !== "") return m;
      missing.push(`${path.join(".")}: environment variable ${name} is not set`);
      return `\${${name}:-${UNSET}}`;
    });
  if (Array.isArray(value))
    return value.map((v, i) => withPlaceholders(v, env, missing, [...path, String(i)]));
  if (value && typeof value === "object")
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, withPlaceholders(v, env, missing, [...path, k])]),
    );
  return value;
}

/** A database URL fit for a screen: the password hidden, in the user part or in the query string. */
export function showDatabase(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, "$1***@").replace(/([?&]password=)[^&]*/gi, "$1***");
}

/** The file of a `sqlite:` URL, the way openStore reads it; undefined for PostgreSQL. */
export function sqliteFile(url: string): string | undefined {
  if (!url.startsWith("sqlite:")) return undefined;
  return url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "") || ":memory:";
}

/**
 * Opens the configured database for an operations command and always closes it. `inspect` commands refuse a
 * database that does not exist yet or is not migrated, rather than creating an empty one and reporting nothing.
 */
export async function withStore<T>(
  database: string,
  mode: "migrate" | "inspect",
  fn: (store: Store) => Promise<T>,
): Promise<T> {
  const shown = showDatabase(database);
  const file = sqliteFile(database);
  if (mode === "inspect" && file !== undefined) {
    if (file === ":memory:")
      throw new CliError(
        `database ${shown} lives in memory inside the running process; there is nothing to inspect from here`,
        EXIT_FAILED,
      );
    if (!existsSync(file))
      throw new CliError(
        `database ${shown}: no such file (${resolve(file)}). Run the command from the bridge's working directory, or start the bridge / run \`smsbridge migrate\` first.`,
        EXIT_FAILED,
      );
  }
  const { openStore } = await import("../../store/open.js");
  let store: Store;
  try {
    store = openStore(database);
  } catch (e) {
    throw new CliError(`database ${shown}: ${(e as Error).message}`, EXIT_FAILED);
  }
  try {
    // A database host that drops packets would otherwise hold the command for the OS connect timeout (minutes).
    const timer = setTimeout(() => {
      process.stderr.write(
        `smsbridge: database ${shown}: no answer within ${CONNECT_TIMEOUT_MS / 1000} s; check the URL and that the server is reachable from here\n`,
      );
      process.exit(EXIT_FAILED);
    }, CONNECT_TIMEOUT_MS);
    const ready = await store.ready().finally(() => clearTimeout(timer));
    if (!ready.ok && (mode === "inspect" || !ready.reason.startsWith("migrations"))) {
      const hint = ready.reason.startsWith("migrations")
        ? "run `smsbridge migrate` (or start the bridge, which migrates at start)"
        : "check the database URL in the config and that the server is running";
      throw new CliError(`database ${shown}: ${ready.reason}; ${hint}`, EXIT_FAILED);
    }
    try {
      return await fn(store);
    } catch (e) {
      // A database's own error (SQLite's SQLITE_*, PostgreSQL's SQLSTATE) is the user's to act on: say it in
      // one line, not as a stack trace. Anything else is a bug and keeps its stack.
      const code = (e as { code?: unknown }).code;
      if (typeof code !== "string" || !/^(SQLITE_|[0-9A-Z]{5}$)/.test(code)) throw e;
      const busy = code.startsWith("SQLITE_BUSY")
        ? "; another process (the running bridge?) held its write lock for over 5 s: try again"
        : "";
      throw new CliError(`database ${shown}: ${(e as Error).message} (${code})${busy}`, EXIT_FAILED);
    }
  } finally {
    await store.close().catch(() => {});
  }
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * `--since` values: an ISO 8601 time (`2026-01-01T10:00:00Z`, `2026-01-01`) or a duration back from now
 * (`90s`, `15m`, `2h`, `1h30m`, `7d`). Returns epoch milliseconds, or undefined when it is neither.
 */
export function parseSince(value: string, now: number): number | undefined {
  const v = value.trim();
  if (/^(\d+(\.\d+)?[smhdw])+$/i.test(v)) {
    let ms = 0;
    for (const [, n, unit] of v.toLowerCase().matchAll(/(\d+(?:\.\d+)?)([smhdw])/g))
      ms += Number(n) * UNITS[unit!]!;
    return now - ms;
  }
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v)) {
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

export function sinceOrUsage(value: string, now: number): number {
  const t = parseSince(value, now);
  if (t === undefined)
    throw new CliError(
      `--since "${value}": give an ISO time (2026-01-01T10:00:00Z) or a duration back from now (30m, 2h, 1h30m, 7d)`,
    );
  return t;
}

/** A duration as a person reads it at a glance: 45s, 3m12s, 2h05m, 3d04h. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3_600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h${pad(Math.floor((s % 3_600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3_600))}h`;
}

/** ISO 8601 to the second: what the outputs print for times. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** A secret as it may appear on a screen: bullets and at most its last two characters (none when short). */
export function maskSecret(secret: string): string {
  return secret.length >= 12 ? `••••${secret.slice(-2)}` : "••••";
}

/** One line, at most `max` characters. */
export function clip(text: string, max: number): string {
  const one = text.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/** Left-aligned columns, two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** Parses a positive integer id argument or fails with a usage error. */
export function parseId(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value)))
    throw new CliError(
      `"${value}" is not a message id (a positive number, as \`smsbridge dead list\` prints)`,
    );
  return Number(value);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
