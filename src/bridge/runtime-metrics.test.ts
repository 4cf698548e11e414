import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { type RunningBridge, startBridge } from "./app.js";
import { validateConfig } from "./config.js";
import { bridgeConfig, freePort, tempDir } from "./test-support/faults-harness.js";
import { eventually } from "./test-support/loop.js";

/** One sample per `name{labels}` from a Prometheus text exposition. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/**
 * Allocates and drops enough short-lived objects to make V8 run many young-generation collections (~70 here).
 * Small objects that escape into a ring, not large arrays: V8 may put large arrays straight into the old
 * generation (pretenuring), and then churning them runs no young-generation collection at all.
 */
function churn(): number {
  const ring = new Array<unknown>(1024);
  for (let i = 0; i < 2_000_000; i++) ring[i & 1023] = { i, pair: [i, i] };
  return ring.length;
}

/** Keeps the event loop busy (not waiting for events) for `ms` of wall time. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/**
 * /metrics carries the process and Node.js runtime metrics under prom-client's standard names, read from this
 * very process (the bridge runs in the test's process), and each moves when what it measures does.
 */
describe("runtime metrics on /metrics", () => {
  const dir = tempDir("runtime");
  let bridge: RunningBridge;
  const scrape = async () => samples(await (await fetch(`${bridge.url}/metrics`)).text());

  before(async () => {
    const port = await freePort();
    const loaded = validateConfig(
      bridgeConfig({ port, database: `sqlite:${dir.dir}/runtime.db`, incomingUrl: "http://127.0.0.1:9/" }),
    );
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    bridge = await startBridge({ loaded, logDestination: quiet, forwarder: false });
  });
  after(() => dir.remove());

  const cases: Array<{ name: string; check: (m: Map<string, number>) => void }> = [
    {
      name: "process_resident_memory_bytes is this process's RSS",
      check: (m) => {
        const rss = process.memoryUsage.rss();
        const v = m.get("process_resident_memory_bytes")!;
        assert.ok(v > rss / 2 && v < rss * 2, `${v} against ${rss}`);
      },
    },
    {
      name: "process_start_time_seconds is when this process started",
      check: (m) => {
        const started = Date.now() / 1000 - process.uptime();
        assert.ok(Math.abs(m.get("process_start_time_seconds")! - started) < 2);
      },
    },
    {
      name: "process_open_fds counts /proc/self/fd, process_max_fds is the limit",
      check: (m) => {
        assert.ok(m.get("process_open_fds")! >= 3);
        const limit = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"))![1];
        assert.equal(m.get("process_max_fds"), Number(limit));
      },
    },
    {
      name: "the CPU total is user plus system",
      check: (m) => {
        const user = m.get("process_cpu_user_seconds_total")!;
        const system = m.get("process_cpu_system_seconds_total")!;
        assert.ok(user > 0);
        assert.ok(Math.abs(m.get("process_cpu_seconds_total")! - (user + system)) < 1e-6);
      },
    },
    {
      name: "heap used is at most heap reserved",
      check: (m) => {
        const used = m.get("nodejs_heap_size_used_bytes")!;
        assert.ok(used > 0 && used <= m.get("nodejs_heap_size_total_bytes")!);
        assert.ok(m.get("nodejs_external_memory_bytes")! > 0);
      },
    },
  ];
  for (const c of cases) test(c.name, async () => c.check(await scrape()));

  test("CPU time and event-loop busy time grow by what the process spent between scrapes", async () => {
    const before = { cpu: cpuSeconds(), wall: performance.now() };
    const a = await scrape();
    const spinStart = { cpu: cpuSeconds(), wall: performance.now() };
    spin(300);
    const spun = { cpu: cpuSeconds() - spinStart.cpu, wall: (performance.now() - spinStart.wall) / 1000 };
    const b = await scrape();
    const around = { cpu: cpuSeconds() - before.cpu, wall: (performance.now() - before.wall) / 1000 };
    const cpu = b.get("process_cpu_seconds_total")! - a.get("process_cpu_seconds_total")!;
    const busy =
      b.get("nodejs_eventloop_busy_seconds_total")! - a.get("nodejs_eventloop_busy_seconds_total")!;
    // Between the CPU the spin itself took and all the process took from before the first scrape to after the
    // second (however busy the machine is: the bounds are measured, not assumed).
    assert.ok(
      cpu >= spun.cpu - 0.001 && cpu <= around.cpu + 0.001,
      `CPU ${cpu} s; spin ${spun.cpu}, around ${around.cpu}`,
    );
    // Busy time is the loop's wall time: the whole spin, at most the time between the two scrapes.
    assert.ok(
      busy >= spun.wall - 0.01 && busy <= around.wall + 0.01,
      `busy ${busy} s; spin ${spun.wall}, around ${around.wall}`,
    );
  });

  test("every garbage collection is counted, under its kind, as an independent observer sees it", async () => {
    // Node hands each GC entry to every observer in one dispatch, so between dispatches this observer and the
    // bridge's have seen the same collections. Which kinds a churn causes is V8's choice (it may pretenure and
    // collect the old generation only), so the test compares counts kind by kind instead of expecting one kind.
    const name: Record<number, string> = {
      [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
      [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
      [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
      [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
    };
    const seen = new Map<string, number>();
    const mine = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = name[(e as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? "other";
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
      }
    });
    mine.observe({ entryTypes: ["gc"] });
    try {
      // Entries queued for the bridge's observer alone before this one existed are dispatched by then.
      await new Promise((r) => setImmediate(r));
      const histogram = bridge.metrics.registry.getSingleMetric("nodejs_gc_duration_seconds")!;
      // prom-client computes the values synchronously in get(); `seen` is copied in the same turn.
      const counts = async () => {
        const pending = histogram.get();
        const own = new Map(seen);
        const metric = new Map<string, number>();
        for (const v of (await pending).values) {
          if ((v as { metricName?: string }).metricName !== "nodejs_gc_duration_seconds_count") continue;
          metric.set(String(v.labels.kind), v.value);
        }
        return { own, metric };
      };
      const start = await counts();
      const diff = await eventually("the churn's collections on both observers", async () => {
        churn(); // on each try: a churn may cause only a collection or two when V8 pretenures
        const now = await counts();
        const kinds = new Set([...now.own.keys(), ...now.metric.keys()]);
        const d = [...kinds].map((k) => ({
          kind: k,
          own: (now.own.get(k) ?? 0) - (start.own.get(k) ?? 0),
          metric: (now.metric.get(k) ?? 0) - (start.metric.get(k) ?? 0),
        }));
        const seenByMe = d.reduce((n, x) => n + x.own, 0);
        if (seenByMe < 3) return undefined;
        if (!d.every((x) => x.own === x.metric)) throw new Error(`counted by kind: ${JSON.stringify(d)}`);
        return d;
      });
      assert.ok(
        diff.some((x) => x.kind === "minor" || x.kind === "major"),
        JSON.stringify(diff),
      );
      // And /metrics carries them.
      const scraped = await scrape();
      for (const x of diff) {
        const line = `nodejs_gc_duration_seconds_count{kind="${x.kind}"}`;
        assert.ok((scraped.get(line) ?? 0) >= x.metric, `${line} on /metrics`);
      }
    } finally {
      mine.disconnect();
    }
  });

  test("after close, the bridge stops observing collections", async () => {
    await bridge.close();
    const count = async () =>
      (await bridge.metrics.registry.getSingleMetric("nodejs_gc_duration_seconds")!.get()).values
        .filter((v) => (v as { metricName?: string }).metricName === "nodejs_gc_duration_seconds_count")
        .reduce((n, v) => n + v.value, 0);
    const closed = await count();
    churn();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await count(), closed);
  });
});
