import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import { Agent } from "undici";
import { toE164 } from "../../core/phone.js";
import {
  formatFieldErrors,
  type Outcome,
  postSigned,
  SIGNATURE_HEADER,
  sign,
  validateIncomingSms,
} from "../../protocol/index.js";
import { action, CliError, collect, EXIT, readInput, secretsFrom } from "../io.js";

interface SendOptions {
  url?: string;
  secret?: string;
  from?: string;
  to?: string;
  body?: string;
  name?: string;
  toName?: string;
  threadId?: string;
  id?: string;
  attachment?: string[];
  direction?: string;
  createdAt?: string;
  assignee?: string;
  timeout: string;
  validate: boolean;
  dryRun?: boolean;
  json?: boolean;
}

const FLAG_FIELDS = [
  "from",
  "to",
  "body",
  "name",
  "toName",
  "threadId",
  "id",
  "attachment",
  "direction",
  "createdAt",
  "assignee",
] as const;

/** "+1 (510) 555-9999" → "+15105559999"; anything not written internationally is left for validation to name. */
function phone(raw: string): string {
  return /^\s*(\+|00|tel:)/i.test(raw) ? (toE164(raw) ?? raw) : raw;
}

/** The payload in the seed's key order, optional fields only when given. */
function payloadFromFlags(o: SendOptions): Record<string, unknown> {
  if (o.from === undefined || o.to === undefined || o.body === undefined) {
    const missing = (["from", "to", "body"] as const).filter((k) => o[k] === undefined).map((k) => `--${k}`);
    throw new CliError(
      `missing ${missing.join(", ")}: give --from, --to and --body, or a JSON payload FILE (or -)`,
    );
  }
  return {
    id: o.id ?? `smsbridge-cli:${randomUUID()}`,
    ...(o.direction !== undefined ? { direction: o.direction } : {}),
    to: { ...(o.toName !== undefined ? { name: o.toName } : {}), phone: phone(o.to) },
    from: { ...(o.name !== undefined ? { name: o.name } : {}), phone: phone(o.from) },
    body: o.body,
    ...(o.attachment?.length ? { attachments: o.attachment } : {}),
    ...(o.threadId !== undefined ? { thread_id: o.threadId } : {}),
    ...(o.createdAt !== undefined ? { created_at: o.createdAt } : {}),
    ...(o.assignee !== undefined ? { assignee: { email: o.assignee } } : {}),
  };
}

function describe(outcome: Outcome): string {
  const body = "body" in outcome && outcome.body ? `\n${outcome.body}` : "";
  switch (outcome.kind) {
    case "delivered":
      return `delivered: HTTP ${outcome.status}${body}`;
    case "retry": {
      const after =
        outcome.retryAfterMs !== undefined ? `; retry after ${Math.ceil(outcome.retryAfterMs / 1000)} s` : "";
      return `retry later: ${outcome.reason}${after}${body}`;
    }
    case "rejected":
      return `rejected: ${outcome.reason} — fix the request before sending it again${body}`;
  }
}

export function register(program: Command): void {
  program
    .command("send")
    .summary("post one signed SMS to a helpdesk's /incoming/sms endpoint")
    .description(
      `Posts one SMS, signed with ${SIGNATURE_HEADER}, to a helpdesk endpoint (Re:amaze's https://www.reamaze.io/incoming/sms, or a local smsbridge sandbox) and prints the outcome. Build the payload from flags, or give a JSON payload FILE (- for stdin), which is sent byte for byte. The payload is validated first (exit 65 with the failing fields) unless --no-validate.`,
    )
    .argument("[file]", "a JSON payload to send as it is; - for stdin")
    .option("--url <url>", "the endpoint (default: $SMSBRIDGE_URL)")
    .option("-s, --secret <secret>", "the channel's shared secret (default: $SMSBRIDGE_SECRET)")
    .option("--from <phone>", "sender, E.164 (inbound: the customer)")
    .option("--to <phone>", "recipient, E.164 (inbound: the channel number)")
    .option("--body <text>", "message text")
    .option("--name <name>", "from.name, e.g. the customer's name")
    .option("--to-name <name>", "to.name")
    .option("--thread-id <id>", "thread_id: same id, same conversation")
    .option("--id <id>", "message id (default: a new smsbridge-cli:<uuid>); repeat one to test idempotency")
    .option("--attachment <url>", "attachment URL; repeatable", collect)
    .option("--direction <dir>", "inbound (default) or outbound")
    .option("--created-at <iso>", "created_at, ISO 8601, e.g. 2019-08-06T23:21:15+0000")
    .option("--assignee <email>", "assign the conversation to this staff e-mail")
    .option("--timeout <ms>", "give up after this many milliseconds", "15000")
    .option("--no-validate", "send even an invalid payload (to test a receiver's 422)")
    .option("--dry-run", "print the body and header that would be sent, send nothing")
    .option("--json", "print the outcome as one JSON object")
    .addHelpText(
      "after",
      `
Exit status: 0 delivered (2xx) · 75 retry later (5xx, 408, 429, network, timeout) ·
65 rejected (other 4xx) or invalid payload · 64 usage · 66 FILE unreadable.

Examples:
  $ export SMSBRIDGE_SECRET=… SMSBRIDGE_URL=http://127.0.0.1:8025/incoming/sms
  $ smsbridge send --from +15105559999 --to +16501234567 --name "Customer name" --body "Hello"
  $ smsbridge send --url https://www.reamaze.io/incoming/sms payload.json
  $ smsbridge send --dry-run --from +15105559999 --to +16501234567 --body hi
`,
    )
    .action(
      action(async (file: string | undefined, o: SendOptions) => {
        const flagged = FLAG_FIELDS.filter((k) => o[k] !== undefined);
        let bytes: Buffer;
        if (file !== undefined || flagged.length === 0) {
          if (flagged.length && file !== undefined) {
            throw new CliError(`give either a payload FILE or --${flagged.join(", --")}, not both`);
          }
          bytes = await readInput(file);
        } else {
          bytes = Buffer.from(JSON.stringify(payloadFromFlags(o)), "utf8");
        }

        if (o.validate) {
          let json: unknown;
          try {
            json = JSON.parse(bytes.toString("utf8"));
          } catch (err) {
            throw new CliError(`the payload is not JSON: ${(err as Error).message}`, EXIT.dataErr);
          }
          const valid = validateIncomingSms(json);
          if (!valid.ok)
            throw new CliError(`invalid payload: ${formatFieldErrors(valid.errors)}`, EXIT.dataErr);
        }

        const [secret] = secretsFrom(o.secret);
        if (o.dryRun) {
          process.stdout.write(
            `${SIGNATURE_HEADER}: ${sign(bytes, secret as string)}\n\n${bytes.toString("utf8")}\n`,
          );
          return EXIT.ok;
        }

        const url = o.url ?? process.env.SMSBRIDGE_URL;
        if (!url) throw new CliError("no endpoint: pass --url URL or set SMSBRIDGE_URL");
        if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
          throw new CliError(`--url ${url} is not an http(s) URL`);
        }
        const timeoutMs = Number(o.timeout);
        if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
          throw new CliError(`--timeout ${o.timeout}: give milliseconds, e.g. 15000`);

        // Its own pool, closed after the answer, so no idle keep-alive socket holds the process open.
        const dispatcher = new Agent();
        const r = await postSigned({ url, secret: secret as string, payload: bytes, timeoutMs, dispatcher });
        await dispatcher.close();
        const code = r.kind === "delivered" ? EXIT.ok : r.kind === "retry" ? EXIT.tempFail : EXIT.dataErr;
        if (o.json) {
          const { bytes: _sent, ...outcome } = r;
          process.stdout.write(`${JSON.stringify({ ...outcome, exitCode: code })}\n`);
        } else {
          (r.kind === "delivered" ? process.stdout : process.stderr).write(`${describe(r)}\n`);
        }
        return code;
      }),
    );
}
