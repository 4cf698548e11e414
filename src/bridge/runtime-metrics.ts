import { readdirSync, readFileSync } from "node:fs";
import { constants, PerformanceObserver, performance } from "node:perf_hooks";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/**
 * The process and Node.js runtime metrics operators expect next to the bridge's own, under prom-client's
 * standard names where it has one (so the usual Node.js dashboards work), all read when scraped. Not
 * prom-client's `collectDefaultMetrics`: its event-loop lag monitor wakes the process every 10 ms (measured
 * here: 5.3–6.3 ms of CPU per second on an idle process, and an extra wake-up among a busy loop's), and its GC
 * observer counts only the first of the GCs V8 reports together. Event-loop saturation is reported as busy
 * time instead, from libuv's own idle accounting, which costs nothing between scrapes.
 */
export function registerRuntimeMetrics(registry: Registry): { stop(): void } {
  const registers = [registry];
  const startedAt = Math.round(performance.timeOrigin / 1000);
  // One metric's collect() sets its group: a registry reads metrics in the order they were made, so the one
  // that collects comes first and the others are read after it has set them.
  let cpuSeen = process.cpuUsage();
  new Counter({
    name: "process_cpu_user_seconds_total",
    help: "User CPU time spent by the process (all threads), in seconds.",
    registers,
    collect() {
      const now = process.cpuUsage();
      const user = (now.user - cpuSeen.user) / 1e6;
      const system = (now.system - cpuSeen.system) / 1e6;
      cpuSeen = now;
      this.inc(user);
      cpuSystem.inc(system);
      cpuTotal.inc(user + system);
    },
  });
  const cpuSystem = new Counter({
    name: "process_cpu_system_seconds_total",
    help: "System CPU time spent by the process (all threads), in seconds.",
    registers,
  });
  const cpuTotal = new Counter({
    name: "process_cpu_seconds_total",
    help: "User and system CPU time spent by the process (all threads), in seconds.",
    registers,
  });
  // Values read on their own at each scrape; a reading that fails (no /proc) leaves the gauge unset.
  const gauge = (name: string, help: string, read: () => number | undefined) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = read();
        if (v !== undefined) this.set(v);
      },
    });
  gauge(
    "process_start_time_seconds",
    "Start time of the process since the Unix epoch, in seconds.",
    () => startedAt,
  );
  gauge("process_resident_memory_bytes", "Resident memory size of the process, in bytes.", () =>
    process.memoryUsage.rss(),
  );
  gauge(
    "process_open_fds",
    "Open file descriptors (sockets, database files) of the process (Linux).",
    openFds,
  );
  gauge("process_max_fds", "The process's limit on open file descriptors (Linux).", maxFds);
  new Gauge({
    name: "nodejs_heap_size_total_bytes",
    help: "V8 heap reserved on the main thread, in bytes.",
    registers,
    collect() {
      const m = process.memoryUsage();
      this.set(m.heapTotal);
      heapUsed.set(m.heapUsed);
      external.set(m.external);
    },
  });
  const heapUsed = new Gauge({
    name: "nodejs_heap_size_used_bytes",
    help: "V8 heap in use on the main thread, in bytes.",
    registers,
  });
  const external = new Gauge({
    name: "nodejs_external_memory_bytes",
    help: "Memory held outside the V8 heap by objects on the main thread (buffers), in bytes.",
    registers,
  });
  let eluSeen = performance.eventLoopUtilization();
  new Counter({
    name: "nodejs_eventloop_busy_seconds_total",
    help: "Time the main thread's event loop spent running code rather than waiting for events, in seconds; its rate is the loop's utilisation (1 = saturated).",
    registers,
    collect() {
      const now = performance.eventLoopUtilization();
      this.inc(Math.max(0, now.active - eluSeen.active) / 1000);
      eluSeen = now;
    },
  });
  const gc = new Histogram({
    name: "nodejs_gc_duration_seconds",
    help: "Garbage collection pauses on the main thread by kind (major, minor, incremental, weakcb), in seconds.",
    labelNames: ["kind"] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers,
  });
  const kinds: Record<number, string> = {
    [constants.NODE_PERFORMANCE_GC_MAJOR]: "major",
    [constants.NODE_PERFORMANCE_GC_MINOR]: "minor",
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
  };
  // Every entry of each batch: V8 reports several GCs at once when they come close together.
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail = (entry as { detail?: { kind?: number } }).detail;
      const kind = kinds[detail?.kind ?? -1] ?? "other";
      gc.observe({ kind }, entry.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  return { stop: () => observer.disconnect() };
}

function openFds(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
}

function maxFds(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
