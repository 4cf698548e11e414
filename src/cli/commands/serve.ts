import type { Command } from "commander";
import { ConfigError, loadConfig } from "../../bridge/config.js";
import { stopOnSignals } from "../signals.js";

const DEFAULT_CONFIG = "smsbridge.yaml";

export function register(program: Command): void {
  program
    .command("serve")
    .description(
      "Run the bridge: provider webhooks → durable outbox → helpdesk, and staff replies → provider.",
    )
    .option(
      "-c, --config <file>",
      "config file (YAML or JSON)",
      process.env.SMSBRIDGE_CONFIG ?? DEFAULT_CONFIG,
    )
    .option("-p, --port <port>", "listen on this port instead of server.port", (v) => Number.parseInt(v, 10))
    .action(async (opts: { config: string; port?: number }) => {
      // Imported here, not at the top: every CLI start would otherwise load the whole bridge.
      const { startBridge } = await import("../../bridge/app.js");
      const loaded = loadOrExit(opts.config);
      const bridge = await startBridge({
        loaded,
        ...(opts.port !== undefined ? { port: opts.port } : {}),
      }).catch((e: Error) => {
        console.error(`smsbridge: ${e.message}`);
        process.exit(1);
      });
      stopOnSignals(() => bridge.close());
    });
}

/** Loads a config or exits 78 (EX_CONFIG) with every problem listed. */
export function loadOrExit(file: string) {
  try {
    return loadConfig(file);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`smsbridge: ${file}: ${e.message}`);
      process.exit(78);
    }
    throw e;
  }
}
