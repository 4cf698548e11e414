import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, describe, test } from "node:test";
import { type RunningBridge, startBridge } from "./app.js";
import { validateConfig } from "./config.js";
import {
  bridgeConfig,
  countById,
  freePort,
  helpdeskId,
  message,
  postInbound,
  type Recorder,
  startRecorder,
  tempDir,
} from "./test-support/faults-harness.js";
import { eventually } from "./test-support/loop.js";

/**
 * The forwarder's hand-off (Forwarder.reserve): a message stored while its channel has a free delivery slot
 * is inserted already claimed and delivered without a claim from the outbox; anything else takes the
 * outbox's way. A real bridge on a SQLite file, a recording helpdesk, simulator-signed webhooks.
 */
describe("hand-off: fresh messages are claimed as they are stored", () => {
  const dir = tempDir("smsbridge-handoff-");
  let recorder: Recorder;
  let bridge: RunningBridge;
  let n = 0;

  /** A bridge on its own database file, for one case. */
  async function start(o: { concurrency: number; breakerThreshold?: number }) {
    recorder = await startRecorder();
    const port = await freePort();
    const loaded = validateConfig(
      bridgeConfig({
        port,
        database: `sqlite:${dir.dir}/handoff-${++n}.db`,
        incomingUrl: recorder.url,
        concurrency: o.concurrency,
        forwarder: { pollMs: 50, ...(o.breakerThreshold ? { breakerThreshold: o.breakerThreshold } : {}) },
      }),
    );
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    bridge = await startBridge({ loaded, logDestination: quiet });
  }

  async function stop() {
    await bridge.close();
    await recorder.close();
  }

  /** smsbridge_outbox_claimed_total by `by`. */
  async function claimed(): Promise<{ ingest: number; claim: number }> {
    const values = (await bridge.metrics.claimed.get()).values;
    const of = (by: string) => values.find((v) => v.labels.by === by)?.value ?? 0;
    return { ingest: of("ingest"), claim: of("claim") };
  }

  /** Waits until the bridge has recorded `n` deliveries (the helpdesk sees a POST before its outcome is stored). */
  const recorded = (n: number) =>
    eventually(`${n} recorded deliveries`, async () => {
      const values = (await bridge.metrics.forwardAttempts.get()).values;
      return values.find((v) => v.labels.outcome === "delivered")?.value === n ? true : undefined;
    });

  async function send(prefix: string, i: number) {
    assert.equal(await postInbound(bridge.url, message(prefix, i)), 200);
  }

  const deliveredOnce = (ids: string[]) =>
    eventually(`${ids.length} deliveries`, async () => {
      const by = countById(recorder.deliveries);
      return ids.every((id) => recorder.delivered().has(id)) ? by : undefined;
    });

  after(() => dir.remove());

  test("sent one at a time, every message is handed off and delivered once", async () => {
    await start({ concurrency: 4 });
    try {
      for (let i = 0; i < 20; i++) {
        await send("one-", i);
        await recorded(i + 1);
      }
      const by = countById(recorder.deliveries);
      for (let i = 0; i < 20; i++) assert.equal(by.get(helpdeskId(`one-${i}`))?.length, 1);
      assert.deepEqual(await claimed(), { ingest: 20, claim: 0 });
      await eventually("every handed-off row recorded as delivered", async () =>
        ((await bridge.store.channelStats()).find((s) => s.channelId === "support")?.pending ?? 0) === 0
          ? true
          : undefined,
      );
      // Delivered rows are deleted: the outbox holds only work (architecture.md); the messages stay.
      const rows = async (table: "outbox" | "messages") =>
        Number(
          (
            await bridge.store.db
              .selectFrom(table)
              .select((eb) => eb.fn.countAll().as("n"))
              .executeTakeFirstOrThrow()
          ).n,
        );
      assert.equal(await rows("outbox"), 0);
      assert.equal(await rows("messages"), 20);
    } finally {
      await stop();
    }
  });

  test("a duplicate gives its slot back: a channel with one slot keeps delivering", async () => {
    await start({ concurrency: 1 });
    try {
      await send("dup-", 0);
      await recorded(1);
      // The provider retries the same webhook: each reserves the only slot, stores nothing, and must free it.
      for (let k = 0; k < 5; k++) await send("dup-", 0);
      for (let i = 1; i <= 3; i++) {
        await send("dup-", i);
        await recorded(i + 1);
      }
      assert.equal(countById(recorder.deliveries).get(helpdeskId("dup-0"))?.length, 1);
      assert.deepEqual(await claimed(), { ingest: 4, claim: 0 });
    } finally {
      await stop();
    }
  });

  test("rows handed off but not yet sent when the breaker opens go back to the outbox unsent", async () => {
    await start({ concurrency: 4, breakerThreshold: 2 });
    try {
      let failing = true;
      // Slow failures: the first four fill the channel's slots; the next four wait for one, already claimed.
      recorder.behaviour = () =>
        failing ? { kind: "answer", status: 503, delayMs: 500 } : { kind: "answer", status: 200 };
      await Promise.all([0, 1, 2, 3].map((i) => send("open-", i)));
      await eventually("four POSTs in flight", async () =>
        recorder.deliveries.length >= 4 ? true : undefined,
      );
      await Promise.all([4, 5, 6, 7].map((i) => send("open-", i)));
      assert.deepEqual(await claimed(), { ingest: 8, claim: 0 }, "all eight handed off");
      // Once the four slow 503s are in, the breaker is open: what waits for a slot must not be sent.
      await eventually("the first four answered", async () =>
        recorder.deliveries.filter((d) => d.status === 503).length >= 4 ? true : undefined,
      );
      failing = false;
      const ids = Array.from({ length: 8 }, (_, i) => helpdeskId(`open-${i}`));
      await deliveredOnce(ids);
      const refused = recorder.deliveries.filter((d) => d.status === 503).length;
      // The four in flight, and at most the one or two a slot took before the second failure opened it —
      // not all eight, as when every waiting row was sent on whatever the breaker said.
      assert.ok(refused <= 6, `${refused} POSTs hit the failing helpdesk`);
    } finally {
      await stop();
    }
  });

  test("with the breaker open, messages wait in the outbox and are claimed from it once it closes", async () => {
    await start({ concurrency: 4, breakerThreshold: 2 });
    try {
      let failing = true;
      recorder.behaviour = () =>
        failing ? { kind: "answer", status: 503 } : { kind: "answer", status: 200 };
      await send("brk-", 0);
      await send("brk-", 1);
      await eventually("the breaker to open", async () =>
        (await bridge.metrics.breakerOpen.get()).values[0]?.value === 1 ? true : undefined,
      );
      // Stored while the breaker is open: not handed off.
      const before = await claimed();
      for (let i = 2; i < 6; i++) await send("brk-", i);
      assert.equal((await claimed()).ingest, before.ingest, "no hand-off while the breaker is open");
      failing = false;
      const ids = Array.from({ length: 6 }, (_, i) => helpdeskId(`brk-${i}`));
      await deliveredOnce(ids);
      const after = await claimed();
      assert.ok(after.claim >= 4, `claimed from the outbox: ${JSON.stringify(after)}`);
    } finally {
      await stop();
    }
  });
});
