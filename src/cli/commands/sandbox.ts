import type { Command } from "commander";
import { stopOnSignals } from "../signals.js";

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a whole number, got ${v}`);
    return n;
  };
}

interface SandboxFlags {
  port: number;
  host: string;
  config?: string;
  db?: string;
  bodyLimit?: number;
  webhookTimeout?: number;
  webhookUrl?: string;
  secret?: string;
  log?: boolean;
}

export function register(program: Command): void {
  program
    .command("sandbox")
    .summary("run a Re:amaze-compatible helpdesk with a live web inbox, for testing an integration")
    .description(
      "Runs a local helpdesk end of the custom SMS channel protocol: POST /incoming/sms with the same rules as Re:amaze, a web inbox where you reply as staff (which fires the signed webhook), a request log with a signature debugger, chaos and a test clock.",
    )
    .option("-p, --port <port>", "port to listen on (0: any free port)", int("--port"), 4510)
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .option("-c, --config <file>", "channels and staff (YAML or JSON); without it: one demo channel")
    .option("--db <file>", "keep data in this SQLite file across restarts (default: in memory)")
    .option("--body-limit <bytes>", "largest /incoming/sms body accepted", int("--body-limit"))
    .option("--webhook-timeout <ms>", "staff-reply webhook timeout", int("--webhook-timeout"))
    .option("--webhook-url <url>", "demo channel's webhook URL (default $SMSBRIDGE_SANDBOX_WEBHOOK_URL)")
    .option("--secret <secret>", "demo channel's secret (default $SMSBRIDGE_SANDBOX_SECRET, else random)")
    .option("--log", "log every HTTP request as JSON lines")
    .addHelpText(
      "after",
      `
Examples:
  $ smsbridge sandbox                          # demo channel, secret printed
  $ smsbridge sandbox --config sandbox.yaml --db sandbox.db
  $ smsbridge sandbox --port 0 --webhook-url http://127.0.0.1:3000/reamaze

Docs: docs/sandbox.md`,
    )
    .action(async (flags: SandboxFlags) => {
      const demo = {
        ...(flags.webhookUrl ? { webhookUrl: flags.webhookUrl } : {}),
        ...(flags.secret ? { secret: flags.secret } : {}),
      };
      // Imported here so other commands do not load the sandbox.
      const { ConfigError, startSandbox } = await import("../../sandbox/server.js");
      const sandbox = await startSandbox({
        port: flags.port,
        host: flags.host,
        ...(flags.config ? { configFile: flags.config } : { demo }),
        ...(flags.db ? { dbFile: flags.db } : {}),
        ...(flags.bodyLimit !== undefined ? { bodyLimit: flags.bodyLimit } : {}),
        ...(flags.webhookTimeout !== undefined ? { webhookTimeoutMs: flags.webhookTimeout } : {}),
        logger: flags.log ? { level: "info" } : false,
      }).catch((e: Error) => {
        console.error(
          e instanceof ConfigError
            ? `smsbridge sandbox: ${flags.config ?? "config"} needs fixing:\n  ${e.problems.join("\n  ")}`
            : `smsbridge sandbox: ${e.message}`,
        );
        process.exit(e instanceof ConfigError ? 78 : 1);
      });
      const lines = ["", `  smsbridge sandbox is running at ${sandbox.url}/`, ""];
      lines.push(`    incoming URL   ${sandbox.url}/incoming/sms`);
      for (const c of sandbox.config.channels) {
        lines.push(
          `    channel        ${c.name} ${c.phone} → webhook ${c.webhookUrl ?? "(none: replies will fail)"}`,
        );
      }
      if (sandbox.demo) {
        // The demo secret is generated per start (or kept in --db): the integration needs it, so it is shown.
        lines.push(`    shared secret  ${sandbox.config.channels[0]?.secrets[0]}`);
      }
      lines.push(
        `    data           ${flags.db ?? "in memory (use --db FILE to keep it)"}`,
        "",
        "  Ctrl+C stops.",
        "",
      );
      console.log(lines.join("\n"));
      stopOnSignals(() => sandbox.close());
    });
}
