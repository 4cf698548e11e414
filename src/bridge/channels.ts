import type { Logger } from "pino";
import type { HttpClient } from "../providers/http.js";
import { providerFactory } from "../providers/registry.js";
import type { ProviderAdapter } from "../providers/types.js";
import type { ChannelConfig, LoadedConfig } from "./config.js";

/** A configured channel with its live provider adapter and public URLs. */
export interface Channel {
  id: string;
  config: ChannelConfig;
  adapter: ProviderAdapter;
  numbers: Set<string>;
  urls: { inbound: string; status: string; reamaze: string };
}

export function channelUrls(baseUrl: string, id: string) {
  const base = baseUrl.replace(/\/+$/, "");
  return {
    inbound: `${base}/channels/${id}/inbound`,
    status: `${base}/channels/${id}/status`,
    reamaze: `${base}/channels/${id}/reamaze`,
  };
}

export function buildChannels(
  loaded: LoadedConfig,
  baseUrl: string,
  deps: { http: HttpClient; log: Logger; now: () => Date },
) {
  const channels = new Map<string, Channel>();
  for (const cfg of loaded.config.channels) {
    const p = loaded.providers.get(cfg.id);
    const factory = p && providerFactory(p.type);
    if (!p || !factory) throw new Error(`channel ${cfg.id}: provider not configured`);
    const urls = channelUrls(baseUrl, cfg.id);
    const adapter = factory.create(p.config, {
      http: deps.http,
      log: deps.log.child({ channel: cfg.id, provider: p.type }),
      now: deps.now,
      urls: { inbound: urls.inbound, status: urls.status },
    });
    channels.set(cfg.id, { id: cfg.id, config: cfg, adapter, numbers: new Set(cfg.numbers), urls });
  }
  return channels;
}
