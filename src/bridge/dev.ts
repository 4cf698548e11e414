import { randomBytes } from "node:crypto";
import { type RunningSandbox, startSandbox } from "../sandbox/server.js";
import { type RunningBridge, startBridge } from "./app.js";
import { validateConfig } from "./config.js";

export interface DevOptions {
  port?: number;
  sandboxPort?: number;
  host?: string;
  /** SQLite file for the bridge; default in memory (a dev loop starts clean). */
  db?: string;
  /** SQLite file for the sandbox; default in memory. */
  sandboxDb?: string;
  phone?: string;
  logLevel?: string;
}

export interface RunningDev {
  url: string;
  bridge: RunningBridge;
  sandbox: RunningSandbox;
  close(): Promise<void>;
}

export const DEV_PHONE = "+15550100100";

/**
 * `smsbridge dev`: the whole loop on one machine — the sandbox helpdesk, the bridge, and the simulated
 * provider with its customer phones — wired together with a demo channel and fresh secrets.
 */
export async function startDev(opts: DevOptions = {}): Promise<RunningDev> {
  const host = opts.host ?? "127.0.0.1";
  const secret = randomBytes(24).toString("base64url");
  const phone = opts.phone ?? DEV_PHONE;
  const bridgePort = opts.port ?? 8080;
  // The sandbox needs the bridge's webhook URL and the bridge needs the sandbox's URL: fix the ports first.
  const sandbox = await startSandbox({
    port: opts.sandboxPort ?? 4510,
    host,
    ...(opts.sandboxDb ? { dbFile: opts.sandboxDb } : {}),
    config: {
      channels: [
        {
          name: "Demo",
          phone,
          secret,
          webhookUrl: `http://${host}:${bridgePort}/channels/demo/reamaze`,
        },
      ],
      staff: [{ name: "Demo Staff", email: "staff@example.com" }],
    },
  });
  let bridge: RunningBridge;
  try {
    const loaded = validateConfig({
      server: { port: bridgePort, host },
      database: opts.db ? `sqlite:${opts.db}` : "sqlite::memory:",
      log: { level: opts.logLevel ?? "info" },
      forwarder: { retryBaseMs: 250, retryCapMs: 10_000, breakerCooldownMs: 5_000 },
      channels: [
        {
          id: "demo",
          name: "Demo",
          numbers: [phone],
          reamaze: { incomingUrl: `${sandbox.url}/incoming/sms`, secrets: [secret] },
          provider: { type: "simulator", secret: randomBytes(16).toString("base64url") },
          threading: { mode: "session", idleHours: 24 },
        },
      ],
    });
    bridge = await startBridge({ loaded, port: bridgePort, host, devPage: { sandboxUrl: sandbox.url } });
  } catch (e) {
    await sandbox.close();
    throw e;
  }
  return {
    url: `${bridge.url}/dev/`,
    bridge,
    sandbox,
    async close() {
      await bridge.close();
      await sandbox.close();
    },
  };
}
