// What a staff reply's logging costs through the bridge's logger (a provider adapter's child logger and two
// `info` lines, as on the reply path), against pino with no redaction at all, and against pino's own redaction
// with the wildcard paths the bridge used until round 11 (`*.authToken` …), which pino 10 parses again on every
// call for every top-level key. One process, the three loggers alternating, each writing to a stream that
// drops the lines.
import { Writable } from "node:stream";
import pino, { type Logger } from "pino";
import { createLogger, REDACT } from "../src/bridge/logger.js";
import { type BenchResult, median, withBaseline } from "./lib.js";

const WILDCARDS = ["*.authToken", "*.apiKey", "*.apiSecret", "*.secret", "*.secrets"];

const drop = () => new Writable({ write: (_c, _e, done) => done() });

/** One staff reply's logging, `n` times: the adapter's child, its line, the route's line. */
function replies(log: Logger, n: number): void {
  const channel = log.child({ channel: "bench", provider: "twilio" });
  for (let i = 0; i < n; i++) {
    channel
      .child({ provider: "twilio", to: "+1510•••9999", parts: 1 })
      .info({ sid: `SM${i}` }, "message accepted");
    channel.info(
      { channel: "bench", conversation: "thread-slug-1", providerId: `SM${i}` },
      "staff reply sent",
    );
  }
}

export default async function run(): Promise<BenchResult[]> {
  const loggers = {
    bridge: createLogger({ destination: drop() }),
    bare: pino({ base: { service: "smsbridge" } }, drop()),
    wildcards: pino(
      {
        base: { service: "smsbridge" },
        redact: { paths: [...REDACT, ...WILDCARDS], censor: "[REDACTED]" },
      },
      drop(),
    ),
  };
  const us: Record<keyof typeof loggers, number[]> = { bridge: [], bare: [], wildcards: [] };
  const N = 20_000;
  for (const log of Object.values(loggers)) replies(log, N); // JIT warm-up
  for (let round = 0; round < 5; round++) {
    for (const [name, log] of Object.entries(loggers) as Array<[keyof typeof loggers, Logger]>) {
      const t = process.hrtime.bigint();
      replies(log, N);
      us[name].push(Number(process.hrtime.bigint() - t) / 1e3 / N);
    }
  }
  const note = `median of 5 alternating runs of ${N.toLocaleString("en")} replies, one process`;
  return [
    withBaseline(
      {
        name: "a staff reply's logging through the bridge's logger",
        value: median(us.bridge),
        unit: "µs",
        note,
      },
      { name: "pino without redaction", value: median(us.bare) },
    ),
    withBaseline(
      {
        name: "the same with pino's wildcard redaction paths",
        value: median(us.wildcards),
        unit: "µs",
        note: "what the bridge used until round 11",
      },
      { name: "pino without redaction", value: median(us.bare) },
    ),
  ];
}
