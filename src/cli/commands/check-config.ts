import type { Command } from "commander";
import type { channelUrls as ChannelUrls } from "../../bridge/channels.js";
import type { LoadedConfig } from "../../bridge/config.js";
import { action, EXIT } from "../io.js";
import { configOption, maskSecret, printJson, showDatabase } from "./ops.js";

const EX_CONFIG = 78;

/** Providers that sign the URL they called: behind a proxy, `server.publicUrl` must be that exact URL. */
const URL_SIGNING = new Set(["twilio", "signalwire", "plivo"]);

interface ChannelSummary {
  id: string;
  name: string | null;
  numbers: string[];
  provider: Record<string, unknown> & { type: string };
  reamaze: { incomingUrl: string; secrets: string[]; timeoutMs: number };
  threading: { mode: string; idleHours: number };
  concurrency: number;
  urls: { reamaze: string; inbound: string; status: string };
}

/** What the config means, with every secret masked: safe to paste into a ticket. */
export function summarise(file: string, loaded: LoadedConfig, channelUrls: typeof ChannelUrls) {
  const { config } = loaded;
  const { server } = config;
  const loopHost = server.host === "0.0.0.0" || server.host === "::" ? "127.0.0.1" : server.host;
  const base =
    server.publicUrl ?? `http://${loopHost.includes(":") ? `[${loopHost}]` : loopHost}:${server.port}`;
  const warnings: string[] = [];
  if (!server.publicUrl)
    warnings.push(
      `server.publicUrl is not set: the webhook URLs above use ${base}, which neither the helpdesk nor a provider can reach. Set it to the bridge's public https address.`,
    );
  else if (
    server.publicUrl.startsWith("http://") &&
    !/^http:\/\/(localhost|127\.|\[::1\])/.test(server.publicUrl)
  )
    warnings.push(
      `server.publicUrl ${server.publicUrl} is plain http: customer messages and signatures would cross the internet unencrypted. Use https.`,
    );
  const channels: ChannelSummary[] = config.channels.map((ch) => {
    const p = loaded.providers.get(ch.id);
    const provider: ChannelSummary["provider"] = { type: p?.type ?? ch.provider.type };
    for (const [k, v] of Object.entries((p?.config ?? {}) as Record<string, unknown>)) {
      if (k === "type" || v === undefined) continue;
      provider[k] = p?.secretKeys.includes(k) ? maskSecret(String(v)) : v;
    }
    if (!server.publicUrl && !server.trustProxy && URL_SIGNING.has(provider.type))
      warnings.push(
        `channel ${ch.id}: ${provider.type} signs the URL it calls; behind a reverse proxy set server.publicUrl (or trustProxy) or every webhook fails verification.`,
      );
    return {
      id: ch.id,
      name: ch.name ?? null,
      numbers: ch.numbers,
      provider,
      reamaze: {
        incomingUrl: ch.reamaze.incomingUrl,
        secrets: ch.reamaze.secrets.map(maskSecret),
        timeoutMs: ch.reamaze.timeoutMs,
      },
      threading: ch.threading,
      concurrency: ch.concurrency,
      urls: channelUrls(base, ch.id),
    };
  });
  return {
    valid: true as const,
    file,
    server: {
      listen: `${server.host}:${server.port}`,
      publicUrl: server.publicUrl ?? null,
      trustProxy: server.trustProxy,
      bodyLimit: server.bodyLimit,
      backgroundNice: server.backgroundNice,
    },
    database: showDatabase(config.database),
    adminApi: config.adminToken
      ? { enabled: true, token: maskSecret(config.adminToken) }
      : { enabled: false },
    log: config.log,
    forwarder: config.forwarder,
    retention: config.retention,
    reply: config.reply,
    channels,
    warnings,
  };
}

function threadingText(t: { mode: string; idleHours: number }): string {
  if (t.mode === "session") return `session (a new conversation after ${t.idleHours} h without messages)`;
  if (t.mode === "pair") return "pair (one conversation per customer, forever)";
  return "helpdesk (no thread_id: the helpdesk's one-hour rule decides)";
}

function render(s: ReturnType<typeof summarise>): string {
  const out: string[] = [];
  out.push(`${s.file}: valid`, "");
  out.push(
    `server     listens on ${s.server.listen}; public URL ${s.server.publicUrl ?? "(not set)"}; trustProxy ${s.server.trustProxy}${s.server.backgroundNice ? `; background threads ${s.server.backgroundNice} nice steps below the main thread` : ""}`,
  );
  out.push(`database   ${s.database}`);
  out.push(
    `forwarder  ${s.forwarder.enabled ? `delivers to each channel's helpdesk, retrying for up to ${s.forwarder.maxAgeHours} h` : "off (forwarder.enabled false): a webhook-only instance; another instance on the same database must deliver"}`,
  );
  out.push(
    `retention  ${s.retention.days === undefined ? "every message kept (retention.days not set)" : `messages older than ${s.retention.days} days deleted, swept every ${s.retention.sweepMinutes} min`}`,
  );
  out.push(
    `admin API  ${s.adminApi.enabled ? `enabled, token ${s.adminApi.token}` : "disabled (no adminToken)"}`,
  );
  out.push(`log        ${s.log.level}${s.log.maskPhones ? ", phone numbers masked" : ""}`);
  for (const ch of s.channels) {
    const { type, ...providerRest } = ch.provider;
    const settings = Object.entries(providerRest)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    out.push(
      "",
      `channel ${ch.id}${ch.name ? ` "${ch.name}"` : ""}`,
      `  numbers     ${ch.numbers.join(", ")}`,
      `  provider    ${type}${settings ? `  ${settings}` : ""}`,
      `  helpdesk    ${ch.reamaze.incomingUrl}`,
      `  secrets     ${ch.reamaze.secrets.join(", ")}${ch.reamaze.secrets.length > 1 ? "  (the first signs, all verify)" : ""}`,
      `  threading   ${threadingText(ch.threading)}`,
      "  paste in the helpdesk (the channel's webhook URL):",
      `    ${ch.urls.reamaze}`,
      "  paste in the provider console:",
      `    incoming messages  ${ch.urls.inbound}`,
      `    status callbacks   ${ch.urls.status}`,
    );
  }
  if (s.warnings.length) out.push("", "warnings:", ...s.warnings.map((w) => `  - ${w}`));
  return `${out.join("\n")}\n`;
}

export function register(program: Command): void {
  configOption(
    program
      .command("check-config")
      .summary("validate the config and print the webhook URLs to paste")
      .description(
        "Validates the config file (environment variables included) the way `smsbridge serve` does, and prints each channel: numbers, provider, helpdesk URL, and the webhook URLs to paste in the helpdesk and the provider console. Secrets are masked. Exits 0 when valid, 78 with every problem when not.",
      ),
  )
    .option("--json", "print the summary (or the problems) as JSON")
    .action(
      action(async (opts: { config: string; json?: boolean }) => {
        // Loaded on use: the CLI starts without the bridge's modules for commands that do not need them.
        const { ConfigError, loadConfig } = await import("../../bridge/config.js");
        const { channelUrls } = await import("../../bridge/channels.js");
        let loaded: LoadedConfig;
        try {
          loaded = loadConfig(opts.config);
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          if (opts.json) printJson({ valid: false, file: opts.config, problems: e.problems });
          process.stderr.write(`smsbridge: ${opts.config}: ${e.message}\n`);
          return EX_CONFIG;
        }
        const summary = summarise(opts.config, loaded, channelUrls);
        if (opts.json) printJson(summary);
        else process.stdout.write(render(summary));
        return EXIT.ok;
      }),
    );
}
