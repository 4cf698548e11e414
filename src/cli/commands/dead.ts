import type { Command } from "commander";
import { action, CliError, EXIT } from "../io.js";
import {
  clip,
  configOption,
  EXIT_FAILED,
  formatAge,
  isoTime,
  loadOpsConfig,
  parseId,
  printJson,
  sinceOrUsage,
  table,
  withStore,
} from "./ops.js";

/** Pretty JSON when the text is JSON (payloads, most helpdesk answers), the text itself otherwise. */
function pretty(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
}

export function register(program: Command): void {
  const dead = program
    .command("dead")
    .summary("list, show and replay messages the helpdesk refused")
    .description(
      "Dead messages are customer SMS the helpdesk refused (a 4xx answer) or that could not be delivered within forwarder.maxAgeHours. They are kept with the helpdesk's answer; once the cause is fixed, replay them and the running bridge delivers them again.",
    );

  configOption(dead.command("list").description("List dead messages, oldest first."))
    .option("--channel <id>", "only this channel")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "print JSON")
    .action(
      action(async (opts: { config: string; channel?: string; limit: string; json?: boolean }) => {
        const limit = Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1)
          throw new CliError(`--limit "${opts.limit}": give a positive number`);
        const config = await loadOpsConfig(opts.config);
        const rows = await withStore(config.database, "inspect", (store) =>
          store.listDead({ ...(opts.channel ? { channelId: opts.channel } : {}), limit }),
        );
        const items = rows.map((r) => ({
          id: r.id,
          channel: r.channel_id,
          deadAt: r.finished_at === null ? null : isoTime(r.finished_at),
          attempts: r.attempts,
          status: r.last_status,
          error: r.last_error,
          answer: r.last_answer,
        }));
        if (opts.json) {
          printJson(items);
          return EXIT.ok;
        }
        if (!items.length) {
          process.stdout.write(`no dead messages${opts.channel ? ` on channel ${opts.channel}` : ""}\n`);
          return EXIT.ok;
        }
        process.stdout.write(
          `${table(
            ["ID", "CHANNEL", "DEAD SINCE", "STATUS", "ERROR", "ANSWER"],
            items.map((i) => [
              String(i.id),
              i.channel,
              i.deadAt ?? "-",
              i.status === null ? "-" : String(i.status),
              clip(i.error ?? "", 60),
              clip(i.answer ?? "", 80),
            ]),
          )}\n`,
        );
        if (items.length === limit) process.stdout.write(`(first ${limit}; --limit shows more)\n`);
        return EXIT.ok;
      }),
    );

  configOption(
    dead
      .command("show")
      .description("Show one dead message: why, the helpdesk's answer, and the exact payload.")
      .argument("<id>", "the id `smsbridge dead list` prints"),
  )
    .option("--json", "print JSON")
    .action(
      action(async (idArg: string, opts: { config: string; json?: boolean }) => {
        const id = parseId(idArg);
        const config = await loadOpsConfig(opts.config);
        const found = await withStore(config.database, "inspect", async (store) => {
          const row = await store.outboxRow(id);
          return row && { row, message: await store.message(row.message_id) };
        });
        if (!found)
          throw new CliError(`no message with id ${id}; \`smsbridge dead list\` prints the ids`, EXIT_FAILED);
        const { row, message } = found;
        const payload = row.payload.toString("utf8");
        const channel = config.channels.find((c) => c.id === row.channel_id);
        if (opts.json) {
          let payloadJson: unknown = payload;
          try {
            payloadJson = JSON.parse(payload);
          } catch {
            // Not JSON: shown as the text it is.
          }
          printJson({
            id: row.id,
            channel: row.channel_id,
            state: row.state,
            attempts: row.attempts,
            queuedAt: isoTime(row.queued_at),
            deadAt: row.finished_at === null ? null : isoTime(row.finished_at),
            status: row.last_status,
            error: row.last_error,
            answer: row.last_answer,
            payload: payloadJson,
            messageId: row.message_id,
            // null once retention has deleted the message (the payload above is all that is sent).
            message: message
              ? {
                  id: message.id,
                  direction: message.direction,
                  provider: message.provider,
                  providerMessageId: message.provider_message_id,
                  customer: message.customer,
                  channelNumber: message.channel_number,
                  threadId: message.thread_id,
                  createdAt: isoTime(message.created_at),
                }
              : null,
          });
          return EXIT.ok;
        }
        const now = Date.now();
        const lines = [
          `message ${row.id} on channel ${row.channel_id}${channel ? "" : " (not in config)"}: ${row.state}`,
          row.finished_at !== null && row.state === "dead"
            ? `  dead since   ${isoTime(row.finished_at)} (${formatAge(now - row.finished_at)} ago)`
            : undefined,
          `  queued at    ${isoTime(row.queued_at)}`,
          `  attempts     ${row.attempts}`,
          `  last status  ${row.last_status ?? "-"}`,
          `  error        ${row.last_error ?? "-"}`,
          message
            ? `  message      #${message.id} ${message.direction} via ${message.provider} ${message.provider_message_id ?? ""}, customer ${message.customer}, channel number ${message.channel_number}, created ${isoTime(message.created_at)}`
            : // Retention deleted the message (older than retention.days); the outbox row keeps the payload.
              `  message      #${row.message_id} no longer stored (deleted by retention); the payload below is complete`,
          "",
          "helpdesk answer:",
          indent(row.last_answer ? pretty(row.last_answer) : "(none)"),
          "",
          `payload (pretty-printed; the stored bytes are signed and sent as they are to ${channel?.reamaze.incomingUrl ?? "the helpdesk"}):`,
          indent(pretty(payload)),
        ];
        if (row.state === "dead")
          lines.push("", `replay it with: smsbridge dead replay ${row.id} -c ${opts.config}`);
        process.stdout.write(`${lines.filter((l) => l !== undefined).join("\n")}\n`);
        return EXIT.ok;
      }),
    );

  configOption(
    dead
      .command("replay")
      .description(
        "Requeue dead messages: one by id, all of them, or those dead since a time. The running bridge delivers them at its next poll (or at its next start).",
      )
      .argument("[id]", "the id `smsbridge dead list` prints"),
  )
    .option("--all", "every dead message")
    .option("--since <time>", "those dead since an ISO time or a duration back from now (30m, 2h, 7d)")
    .option("--channel <id>", "only this channel (with --all or --since)")
    .action(
      action(
        async (
          idArg: string | undefined,
          opts: { config: string; all?: boolean; since?: string; channel?: string },
        ) => {
          const chosen = [idArg !== undefined, Boolean(opts.all), opts.since !== undefined].filter(
            Boolean,
          ).length;
          if (chosen !== 1)
            throw new CliError(
              "say what to replay: an ID, --all, or --since TIME (exactly one), e.g. `smsbridge dead replay --since 2h`",
            );
          if (idArg !== undefined && opts.channel)
            throw new CliError("--channel goes with --all or --since, not with an ID");
          const id = idArg === undefined ? undefined : parseId(idArg);
          const now = Date.now();
          const since = opts.since === undefined ? undefined : sinceOrUsage(opts.since, now);
          const config = await loadOpsConfig(opts.config);
          const count = await withStore(config.database, "inspect", async (store) => {
            if (id !== undefined) {
              const row = await store.outboxRow(id);
              if (!row)
                throw new CliError(
                  `no message with id ${id}; \`smsbridge dead list\` prints the ids`,
                  EXIT_FAILED,
                );
              if (row.state !== "dead")
                throw new CliError(`message ${id} is ${row.state}, not dead: nothing to replay`, EXIT_FAILED);
              return store.replayDead({ id }, now);
            }
            if (opts.channel) return store.replayDeadOfChannel(opts.channel, since, now);
            return store.replayDead(since !== undefined ? { since } : { all: true }, now);
          });
          if (count === 0) {
            const scope = `${opts.channel ? ` on channel ${opts.channel}` : ""}${since !== undefined ? ` dead since ${isoTime(since)}` : ""}`;
            throw new CliError(`nothing to replay: no dead messages${scope}`, EXIT_FAILED);
          }
          process.stdout.write(
            `requeued ${count} message${count === 1 ? "" : "s"}; the running bridge delivers ${count === 1 ? "it" : "them"} at its next poll (every ${config.forwarder.pollMs} ms), or when it next starts\n`,
          );
          return EXIT.ok;
        },
      ),
    );
}
