import type { Command } from "commander";
import { stopOnSignals } from "../signals.js";

export function register(program: Command): void {
  program
    .command("dev")
    .description(
      "Everything on one machine: sandbox helpdesk + bridge + simulated provider, wired with a demo channel.",
    )
    .option("-p, --port <port>", "bridge port", (v) => Number.parseInt(v, 10), 8080)
    .option("--sandbox-port <port>", "sandbox (helpdesk inbox) port", (v) => Number.parseInt(v, 10), 4510)
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .option("--db <file>", "keep the bridge's data in this SQLite file (default: in memory)")
    .option("--log-level <level>", "bridge log level", "warn")
    .action(
      async (opts: { port: number; sandboxPort: number; host: string; db?: string; logLevel: string }) => {
        const { startDev } = await import("../../bridge/dev.js");
        const dev = await startDev({
          port: opts.port,
          sandboxPort: opts.sandboxPort,
          host: opts.host,
          logLevel: opts.logLevel,
          ...(opts.db ? { db: opts.db } : {}),
        }).catch((e: Error & { code?: string }) => {
          const hint =
            e.code === "EADDRINUSE" ? " (is another smsbridge running? choose --port / --sandbox-port)" : "";
          console.error(`smsbridge dev: ${e.message}${hint}`);
          process.exit(1);
        });
        const ch = dev.bridge.channels.get("demo")!;
        console.log(
          [
            "",
            `  smsbridge dev is running — open ${dev.url}`,
            "",
            `    customer phone   ${dev.bridge.url}/simulator/`,
            `    helpdesk inbox   ${dev.sandbox.url}/`,
            `    channel number   ${[...ch.numbers].join(", ")}`,
            `    bridge webhooks  ${ch.urls.inbound}  ·  staff replies → ${ch.urls.reamaze}`,
            "",
            "  Type an SMS as the customer, watch it arrive in the inbox, reply, and see the phone receive it.",
            "  Ctrl+C stops.",
            "",
          ].join("\n"),
        );
        stopOnSignals(() => dev.close());
      },
    );
}
