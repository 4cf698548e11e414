import type { Command } from "commander";
import { action, CliError, EXIT } from "../io.js";
import { configOption, isoTime, loadOpsConfig, printJson, withStore } from "./ops.js";

const count = (n: number) => n.toLocaleString("en-US");

export function register(program: Command): void {
  configOption(
    program
      .command("prune")
      .summary("delete what retention no longer keeps, now (or count it with --dry-run)")
      .description(
        "One retention sweep, as the running bridge makes every retention.sweepMinutes: messages created more than retention.days ago (with their provider ids) and dead messages that died that long ago, and staff-reply records past their 24 hours. Pending messages are never deleted. Safe while the bridge runs: the sweep deletes in small paced batches. --dry-run counts instead, to see what a setting would delete before setting it.",
      ),
  )
    .option("--days <n>", "keep this many days instead of the config's retention.days (at least 1)")
    .option("--dry-run", "count what would be deleted; delete nothing")
    .option("--json", "print JSON")
    .action(
      action(async (opts: { config: string; days?: string; dryRun?: boolean; json?: boolean }) => {
        const config = await loadOpsConfig(opts.config);
        let days = config.retention.days;
        if (opts.days !== undefined) {
          days = Number(opts.days);
          if (!Number.isFinite(days) || days < 1)
            throw new CliError(`--days "${opts.days}": give a number of days, at least 1`);
        }
        const source = opts.days !== undefined ? "--days" : days !== undefined ? "retention.days" : undefined;
        const { retentionCutoffs, RetentionSweeper } = await import("../../bridge/retention.js");
        const now = Date.now();
        const cutoff = retentionCutoffs(now, days);
        const keeps = {
          days: days ?? null,
          ...(cutoff.messages !== undefined ? { before: isoTime(cutoff.messages) } : {}),
        };

        if (opts.dryRun) {
          const { countPrunable } = await import("../../store/retention.js");
          const c = await withStore(config.database, "inspect", (store) => countPrunable(store.db, cutoff));
          if (opts.json) {
            printJson({
              dryRun: true,
              ...keeps,
              wouldDelete: { messages: c.messages ?? 0, deadOutbox: c.deadOutbox ?? 0, replies: c.replies },
              messages: c.totalMessages,
              oldest: c.oldest !== undefined ? isoTime(c.oldest) : null,
            });
            return EXIT.ok;
          }
          const lines = [
            days === undefined
              ? "retention.days is not set: messages and dead messages are kept (give --days to see what a setting would delete)"
              : `keep ${days} days (${source}): would delete what was created before ${keeps.before}`,
          ];
          if (c.messages !== undefined)
            lines.push(
              `  messages        ${count(c.messages)} of ${count(c.totalMessages)}${c.oldest !== undefined ? ` (the oldest from ${isoTime(c.oldest)})` : ""}`,
              `  dead messages   ${count(c.deadOutbox ?? 0)}`,
            );
          lines.push(
            `  reply records   ${count(c.replies)} (past their 24 h)`,
            "nothing was deleted (--dry-run)",
          );
          process.stdout.write(`${lines.join("\n")}\n`);
          return EXIT.ok;
        }

        const { createMetrics } = await import("../../bridge/metrics.js");
        const { default: pino } = await import("pino");
        const started = performance.now();
        const deleted = await withStore(config.database, "inspect", (store) =>
          new RetentionSweeper(
            store,
            { ...config.retention, ...(days !== undefined ? { days } : {}) },
            createMetrics(),
            pino({ level: "silent" }),
            () => now,
          ).sweep(),
        );
        const seconds = (performance.now() - started) / 1000;
        if (opts.json) {
          printJson({ dryRun: false, ...keeps, deleted, seconds: Number(seconds.toFixed(3)) });
          return EXIT.ok;
        }
        const lines = [
          days === undefined
            ? "retention.days is not set: messages and dead messages are kept"
            : `keep ${days} days (${source}): deleted what was created before ${keeps.before}`,
        ];
        if (days !== undefined)
          lines.push(
            `  messages        ${count(deleted.messages)} (with ${count(deleted.providerRefs)} provider ids)`,
            `  dead messages   ${count(deleted.deadOutbox)}`,
          );
        lines.push(
          `  reply records   ${count(deleted.replies)} (past their 24 h)`,
          `in ${seconds.toFixed(1)} s`,
        );
        process.stdout.write(`${lines.join("\n")}\n`);
        return EXIT.ok;
      }),
    );
}
