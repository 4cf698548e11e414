import type { Command } from "commander";
import { Agent, request } from "undici";
import type { BridgeConfig } from "../../bridge/config.js";
import { action, EXIT } from "../io.js";
import {
  clip,
  configOption,
  formatAge,
  isoTime,
  loadOpsConfig,
  printJson,
  showDatabase,
  sinceOrUsage,
  table,
  withStore,
} from "./ops.js";

type Breaker = "open" | "closed" | "unknown";

interface BridgeProbe {
  url: string;
  reachable: boolean;
  error?: string;
  breakers: Map<string, Breaker>;
}

/** Where the running bridge listens on this machine, from the config's server section. */
export function defaultBridgeUrl(server: BridgeConfig["server"]): string {
  const host = server.host === "0.0.0.0" || server.host === "::" ? "127.0.0.1" : server.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${server.port}`;
}

/** `smsbridge_breaker_open{channel="x"} 1` lines of a Prometheus exposition. */
export function breakersFromMetrics(text: string): Map<string, Breaker> {
  const out = new Map<string, Breaker>();
  for (const m of text.matchAll(/^smsbridge_breaker_open\{([^}]*)\}\s+(\S+)/gm)) {
    const channel = /(?:^|,)channel="((?:[^"\\]|\\.)*)"/.exec(m[1]!)?.[1];
    if (channel !== undefined) out.set(channel.replace(/\\(.)/g, "$1"), Number(m[2]) > 0 ? "open" : "closed");
  }
  return out;
}

/** How long the bridge may take to answer before its breakers are reported as unknown. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * The breaker lives in the running process, not in the database: ask its /metrics. A bridge that does not
 * answer quickly is reported as unknown rather than delaying the rest of the status. The limit is on the
 * connection and the answer (undici's own timers), not a wall clock started before the request: on a busy
 * host this CLI's own start-up could use up a 2-second AbortSignal and report a healthy bridge as silent.
 */
async function probeBridge(url: string): Promise<BridgeProbe> {
  const base = url.replace(/\/+$/, "");
  const dispatcher = new Agent({ connect: { timeout: PROBE_TIMEOUT_MS } });
  try {
    const res = await request(`${base}/metrics`, {
      dispatcher,
      headersTimeout: PROBE_TIMEOUT_MS,
      bodyTimeout: PROBE_TIMEOUT_MS,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return {
        url: base,
        reachable: false,
        error: `GET /metrics answered HTTP ${res.statusCode}`,
        breakers: new Map(),
      };
    }
    return { url: base, reachable: true, breakers: breakersFromMetrics(await res.body.text()) };
  } catch (e) {
    const err = e as Error & { code?: string; cause?: { code?: string; message?: string } };
    const code = err.code ?? err.cause?.code;
    const why =
      code === "UND_ERR_CONNECT_TIMEOUT" ||
      code === "UND_ERR_HEADERS_TIMEOUT" ||
      code === "UND_ERR_BODY_TIMEOUT"
        ? `no answer within ${PROBE_TIMEOUT_MS / 1000} s`
        : (code ?? err.cause?.message ?? err.message);
    return { url: base, reachable: false, error: why, breakers: new Map() };
  } finally {
    await dispatcher.close();
  }
}

export function register(program: Command): void {
  configOption(
    program
      .command("status")
      .summary("per channel: pending, oldest pending, dead, delivery failures, breaker")
      .description(
        "Reads the bridge's database and prints, per channel, the messages waiting for the helpdesk (and the age of the oldest), the dead ones, the staff replies the provider reported failed or undelivered, and the circuit breaker state read from the running bridge's /metrics.",
      ),
  )
    .option("--url <url>", "the running bridge, for breaker states (default: http://127.0.0.1:<server.port>)")
    .option("--since <time>", "window for delivery failures: ISO time or duration (30m, 2h, 7d)", "24h")
    .option("--json", "print JSON")
    .action(
      action(async (opts: { config: string; url?: string; since: string; json?: boolean }) => {
        const config = await loadOpsConfig(opts.config);
        const now = Date.now();
        const since = sinceOrUsage(opts.since, now);
        const probe = probeBridge(opts.url ?? defaultBridgeUrl(config.server));
        const data = await withStore(config.database, "inspect", async (store) => ({
          stats: await store.channelStats(),
          counts: await store.deliveryFailureCounts(since),
          failures: await store.deliveryFailures({ since, limit: 20 }),
        }));
        const bridge = await probe;
        const configured = config.channels.map((c) => c.id);
        // Channels removed from the config may still hold rows: show them too, marked.
        const ids = [
          ...configured,
          ...[...data.stats.map((s) => s.channelId), ...data.counts.map((c) => c.channelId)]
            .filter((id, i, all) => !configured.includes(id) && all.indexOf(id) === i)
            .sort(),
        ];
        const channels = ids.map((id) => {
          const s = data.stats.find((x) => x.channelId === id);
          const oldest = s?.oldestPendingAt ?? null;
          return {
            id,
            configured: configured.includes(id),
            pending: s?.pending ?? 0,
            oldestPendingAt: oldest === null ? null : isoTime(oldest),
            oldestPendingAgeSeconds: oldest === null ? null : Math.max(0, Math.floor((now - oldest) / 1000)),
            dead: s?.dead ?? 0,
            deliveryFailures: data.counts.find((c) => c.channelId === id)?.failures ?? 0,
            breaker: (bridge.breakers.get(id) ?? "unknown") as Breaker,
          };
        });
        const { maskPhone } = await import("../../core/phone.js");
        const phone = (p: string) => (config.log.maskPhones ? maskPhone(p) : p);
        const failures = data.failures.map((f) => ({
          messageId: f.messageId,
          channel: f.channelId,
          direction: f.direction,
          customer: phone(f.customer),
          providerMessageId: f.providerMessageId,
          state: f.state,
          providerStatus: f.providerStatus,
          error: f.error,
          at: isoTime(f.at),
          body: f.body,
        }));
        if (opts.json) {
          printJson({
            database: showDatabase(config.database),
            bridge: {
              url: bridge.url,
              reachable: bridge.reachable,
              ...(bridge.error ? { error: bridge.error } : {}),
            },
            since: isoTime(since),
            retention: { days: config.retention.days ?? null, sweepMinutes: config.retention.sweepMinutes },
            channels,
            deliveryFailures: failures,
          });
          return EXIT.ok;
        }
        const out: string[] = [];
        out.push(
          table(
            ["CHANNEL", "PENDING", "OLDEST", "DEAD", `FAILED SENDS (since ${opts.since})`, "BREAKER"],
            channels.map((c) => [
              c.configured ? c.id : `${c.id} (not in config)`,
              String(c.pending),
              c.oldestPendingAgeSeconds === null ? "-" : formatAge(c.oldestPendingAgeSeconds * 1000),
              String(c.dead),
              String(c.deliveryFailures),
              c.breaker,
            ]),
          ),
        );
        out.push(
          "",
          bridge.reachable
            ? `breaker states from ${bridge.url}/metrics`
            : `breaker: unknown (bridge not reachable at ${bridge.url}: ${bridge.error}); pass --url to point at it`,
        );
        if (failures.length) {
          out.push("", `failed sends since ${isoTime(since)}, newest first:`);
          out.push(
            table(
              ["WHEN", "CHANNEL", "MESSAGE", "TO", "STATE", "ERROR", "TEXT"],
              failures.map((f) => [
                f.at,
                f.channel,
                String(f.messageId),
                f.customer,
                f.state,
                clip(f.error ?? f.providerStatus ?? "", 60),
                clip(f.body, 40),
              ]),
            ),
          );
        }
        if (channels.some((c) => c.dead > 0))
          out.push(
            "",
            "dead messages: `smsbridge dead list` shows them, `smsbridge dead replay` requeues them",
          );
        // Whether the database grows for ever is a setting an operator should see without opening the config.
        const { days, sweepMinutes } = config.retention;
        out.push(
          "",
          days === undefined
            ? "retention: every message is kept (retention.days is not set; `smsbridge prune --dry-run --days 90` counts what a setting would delete)"
            : `retention: messages older than ${days} days are deleted every ${sweepMinutes} min (\`smsbridge prune --dry-run\` counts what is due)`,
        );
        process.stdout.write(`${out.join("\n")}\n`);
        return EXIT.ok;
      }),
    );
}
