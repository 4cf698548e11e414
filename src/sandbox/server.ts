import Fastify, { type FastifyInstance } from "fastify";
import type { LoggerOptions } from "pino";
import { DEFAULT_BODY_LIMIT } from "../protocol/fastify.js";
import {
  type DemoOptions,
  demoConfig,
  loadConfigFile,
  type SandboxConfig,
  type SandboxConfigInput,
  validateConfig,
} from "./config.js";
import { SandboxModel } from "./model.js";
import { apiRoutes, incomingRoutes } from "./routes.js";
import { SandboxStore } from "./store.js";

export { ConfigError, demoConfig, loadConfigFile, type SandboxConfig, validateConfig } from "./config.js";
export type { ApiConversation, ApiMessage, RequestEntry, SandboxModel } from "./model.js";

/**
 * The UI lives in the package's top-level `assets/sandbox/`. This module sits two levels under the package
 * root both as source (src/sandbox/) and compiled (dist/sandbox/), so one relative URL serves both.
 */
export const ASSETS_DIR = new URL("../../assets/sandbox/", import.meta.url);

export interface StartSandboxOptions {
  /** Default 4510; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1: a sandbox has no business on a public interface unless asked. */
  host?: string;
  /** A parsed config (validated here); wins over configFile. */
  config?: SandboxConfigInput | SandboxConfig;
  configFile?: string;
  /** The demo channel's settings when neither config nor configFile is given. */
  demo?: DemoOptions;
  /** SQLite file; without it everything is kept in memory. */
  dbFile?: string;
  /** `/incoming/sms` body limit in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** Staff-reply webhook timeout (default 15 s). */
  webhookTimeoutMs?: number;
  /** Request-log entries kept (default 500). */
  requestLogSize?: number;
  logger?: boolean | LoggerOptions;
  env?: NodeJS.ProcessEnv;
}

export interface RunningSandbox {
  url: string;
  /** The resolved config, including the demo channel and its secret when no config was given. */
  config: SandboxConfig;
  /** True when the demo config is in use (the CLI prints its secret). */
  demo: boolean;
  model: SandboxModel;
  app: FastifyInstance;
  close(): Promise<void>;
}

function resolveConfig(
  opts: StartSandboxOptions,
  store: SandboxStore,
): { config: SandboxConfig; demo: boolean } {
  const env = opts.env ?? process.env;
  if (opts.config) return { config: validateConfig(opts.config, env), demo: false };
  if (opts.configFile) return { config: loadConfigFile(opts.configFile, env), demo: false };
  // With a database and no secret given, keep the generated demo secret so a restart does not break the
  // integration that was configured with it.
  let secret = opts.demo?.secret || env.SMSBRIDGE_SANDBOX_SECRET;
  if (!secret && opts.dbFile) secret = store.meta("demo_secret");
  const config = demoConfig({ ...opts.demo, ...(secret ? { secret } : {}) }, env);
  if (opts.dbFile) store.setMeta("demo_secret", config.channels[0]?.secrets[0] as string);
  return { config, demo: true };
}

export async function startSandbox(opts: StartSandboxOptions = {}): Promise<RunningSandbox> {
  const store = new SandboxStore(opts.dbFile ?? ":memory:");
  let config: SandboxConfig;
  let demo: boolean;
  try {
    ({ config, demo } = resolveConfig(opts, store));
  } catch (e) {
    store.close();
    throw e;
  }
  const model = new SandboxModel({
    config,
    store,
    webhookTimeoutMs: opts.webhookTimeoutMs ?? 15_000,
    requestLogSize: opts.requestLogSize ?? 500,
    persistRequestLog: opts.dbFile !== undefined,
  });
  const logger =
    opts.logger === undefined || opts.logger === false
      ? false
      : {
          ...(opts.logger === true ? {} : opts.logger),
          redact: {
            paths: ["req.headers.authorization", 'req.headers["x-reamaze-hmac-sha256"]'],
            remove: true,
          },
        };
  const app = Fastify({ logger, bodyLimit: 1024 * 1024, forceCloseConnections: true });
  await app.register(incomingRoutes, { model, bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT });
  await app.register(apiRoutes, { model, assetsDir: ASSETS_DIR });
  try {
    await app.listen({ port: opts.port ?? 4510, host: opts.host ?? "127.0.0.1" });
  } catch (e) {
    store.close();
    const err = e as NodeJS.ErrnoException;
    if (err.code === "EADDRINUSE") {
      throw Object.assign(
        new Error(`port ${opts.port ?? 4510} is already in use: stop the other process or pass another port`),
        { code: err.code },
      );
    }
    throw e;
  }
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : (opts.port ?? 4510);
  const host = opts.host ?? "127.0.0.1";
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  let closed = false;
  return {
    url: `http://${shown}:${port}`,
    config,
    demo,
    model,
    app,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      model.flush();
      store.close();
    },
  };
}
