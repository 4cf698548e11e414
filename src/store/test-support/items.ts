import type { IngestItem } from "../store.js";

/** A simulator customer message on channel `support` (or `channelId`), created at `createdAt`, threaded by pair. */
export function inboundItem(id: string, createdAt: number, channelId = "support"): IngestItem {
  return {
    channelId,
    provider: "simulator",
    providerMessageId: id,
    customer: "+15105559999",
    channelNumber: "+16501234567",
    body: `message ${id}`,
    createdAt,
    threading: { mode: "pair", idleHours: 24 },
    payload: () => Buffer.from(JSON.stringify({ id })),
  };
}
