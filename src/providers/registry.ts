import { plivoProvider } from "./plivo/index.js";
import { signalwireProvider } from "./signalwire/index.js";
import { simulatorProvider } from "./simulator/index.js";
import { telnyxProvider } from "./telnyx/index.js";
import { twilioProvider } from "./twilio/index.js";
import type { ProviderFactory } from "./types.js";
import { vonageProvider } from "./vonage/index.js";

/**
 * `provider.type` in the config → the adapter factory. One line per provider. Each factory is typed by its
 * own config schema; here they are held by the common interface (config is validated by `factory.config`).
 */
const factories = [
  simulatorProvider,
  twilioProvider,
  signalwireProvider,
  telnyxProvider,
  vonageProvider,
  plivoProvider,
] as unknown as ProviderFactory[];

const byType = new Map(factories.map((f) => [f.type, f]));

export function providerFactory(type: string): ProviderFactory | undefined {
  return byType.get(type);
}

export function providerTypes(): string[] {
  return [...byType.keys()].sort();
}
