import { readFile } from "node:fs/promises";

/** sysexits(3) codes the protocol commands exit with, so scripts can tell the outcomes apart. */
export const EXIT = {
  ok: 0,
  /** verify: the signature does not match. */
  invalid: 1,
  usage: 64,
  /** The payload or the request is wrong: fix it before trying again. */
  dataErr: 65,
  noInput: 66,
  /** Temporary failure: try again later. */
  tempFail: 75,
} as const;

/** An error a person fixes: printed without a stack, exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
  ) {
    super(message);
  }
}

/**
 * The exact bytes of FILE, or of stdin for "-" or no argument. Nothing is decoded, trimmed or re-encoded:
 * a signature is over bytes, and a trailing newline is part of them.
 */
export async function readInput(
  source: string | undefined,
  stdin: NodeJS.ReadableStream = process.stdin,
): Promise<Buffer> {
  if (source !== undefined && source !== "-") {
    try {
      return await readFile(source);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === "ENOENT" ? "no such file" : e.code === "EISDIR" ? "is a directory" : e.message;
      throw new CliError(`cannot read ${source}: ${why}`, EXIT.noInput);
    }
  }
  if ((stdin as NodeJS.ReadStream).isTTY) {
    throw new CliError(
      "no input: give a FILE, or pipe the body on stdin (use - for stdin explicitly)",
      EXIT.usage,
    );
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin)
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk);
  return Buffer.concat(chunks);
}

/** `--secret` values, else SMSBRIDGE_SECRET: the environment keeps secrets out of shell history and `ps`. */
export function secretsFrom(
  flags: readonly string[] | string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const given = (Array.isArray(flags) ? flags : flags === undefined ? [] : [flags]).filter((s) => s !== "");
  if (given.length) return given;
  const fromEnv = env.SMSBRIDGE_SECRET;
  if (fromEnv) return [fromEnv];
  throw new CliError("no secret: pass --secret S or set SMSBRIDGE_SECRET (keeps it out of shell history)");
}

/** commander collector for repeatable options. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Runs a command body, turning CliError into a message on stderr and an exit code. */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<number>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = await fn(...args);
    } catch (err) {
      if (err instanceof CliError) {
        process.stderr.write(`smsbridge: ${err.message}\n`);
        process.exitCode = err.exitCode;
        return;
      }
      throw err;
    }
  };
}
