import type { Command } from "commander";
import { describeVerifyFailure, diagnoseSignature, SIGNATURE_HEADER, verify } from "../../protocol/index.js";
import { action, collect, EXIT, readInput, secretsFrom } from "../io.js";

export function register(program: Command): void {
  program
    .command("verify")
    .summary("check an X-Reamaze-Hmac-SHA256 value against a body")
    .description(
      `Checks SIG against the exact bytes of FILE (or stdin) with each secret given — several while rotating. Exits 0 when it matches (and says which secret), 1 when it does not (and says what the sender most likely did wrong).`,
    )
    .argument("[file]", "the body as received; - or nothing for stdin")
    .option(
      "-s, --secret <secret>",
      "a shared secret; repeat for old and new (default: $SMSBRIDGE_SECRET)",
      collect,
    )
    .requiredOption("--signature <sig>", `the ${SIGNATURE_HEADER} value received`)
    .addHelpText(
      "after",
      `
Exit status: 0 valid · 1 not valid · 64 usage · 66 FILE unreadable.

Examples:
  $ printf '%s' '{"id":"1","body":"hello"}' | smsbridge verify -s your_shared_secret \\
      --signature FgdUISIrhWKi9IhRN80V37obl/NYrpXeaZvV95dmgeU=
  valid: matches secret #1
  $ smsbridge verify -s new_secret -s old_secret --signature "$SIG" body.json
`,
    )
    .action(
      action(async (file: string | undefined, opts: { secret?: string[]; signature: string }) => {
        const secrets = secretsFrom(opts.secret);
        const bytes = await readInput(file);
        const verdict = verify(bytes, opts.signature, secrets);
        if (verdict.ok) {
          const which = secrets.length > 1 ? ` of ${secrets.length}` : "";
          process.stdout.write(`valid: matches secret #${verdict.secretIndex + 1}${which}\n`);
          return EXIT.ok;
        }
        process.stderr.write(`invalid: ${describeVerifyFailure(verdict.reason)}\n`);
        // The diagnosis is a hint for the person integrating; the verdict above is what counts.
        const hint = diagnoseSignature(bytes, opts.signature, secrets);
        if (!hint.ok && hint.explanation) process.stderr.write(`hint: ${hint.explanation}\n`);
        return EXIT.invalid;
      }),
    );
}
