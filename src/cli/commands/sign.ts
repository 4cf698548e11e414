import type { Command } from "commander";
import { SIGNATURE_HEADER, sign } from "../../protocol/index.js";
import { action, EXIT, readInput, secretsFrom } from "../io.js";

export function register(program: Command): void {
  program
    .command("sign")
    .summary("print the X-Reamaze-Hmac-SHA256 value for a body")
    .description(
      `Prints base64(HMAC-SHA256(secret, bytes)) for the exact bytes of FILE, or of stdin for - or no FILE: the ${SIGNATURE_HEADER} header value. Nothing is trimmed — a trailing newline is part of the body.`,
    )
    .argument("[file]", "the body to sign; - or nothing for stdin")
    .option("-s, --secret <secret>", "the channel's shared secret (default: $SMSBRIDGE_SECRET)")
    .option("--header", `print a whole header line, "${SIGNATURE_HEADER}: …"`)
    .addHelpText(
      "after",
      `
Examples:
  $ printf '%s' '{"id":"1","body":"hello"}' | SMSBRIDGE_SECRET=your_shared_secret smsbridge sign
  FgdUISIrhWKi9IhRN80V37obl/NYrpXeaZvV95dmgeU=
  $ smsbridge sign --header payload.json     # secret from $SMSBRIDGE_SECRET
  $ curl -H "$(smsbridge sign --header payload.json)" -H 'content-type: application/json' \\
         --data-binary @payload.json https://www.reamaze.io/incoming/sms
`,
    )
    .action(
      action(async (file: string | undefined, opts: { secret?: string; header?: boolean }) => {
        const [secret] = secretsFrom(opts.secret);
        const bytes = await readInput(file);
        const value = sign(bytes, secret as string);
        process.stdout.write(opts.header ? `${SIGNATURE_HEADER}: ${value}\n` : `${value}\n`);
        return EXIT.ok;
      }),
    );
}
