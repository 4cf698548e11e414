import { readFileSync } from "node:fs";
import { Command } from "commander";
import { commands } from "./commands/index.js";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

const program = new Command("smsbridge")
  .description(
    "SMS ⇄ helpdesk through the Re:amaze custom SMS channel protocol: bridge, sandbox, and protocol tools.",
  )
  .version(pkg.version)
  .showHelpAfterError("(run with --help for usage)");

for (const register of commands) register(program);

await program.parseAsync(process.argv);
