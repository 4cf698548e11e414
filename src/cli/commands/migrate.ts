import type { Command } from "commander";
import { action, CliError, EXIT } from "../io.js";
import { configOption, EXIT_FAILED, loadOpsConfig, showDatabase, withStore } from "./ops.js";

export function register(program: Command): void {
  configOption(
    program
      .command("migrate")
      .summary("apply database migrations and exit")
      .description(
        "Creates or upgrades the tables of the configured database (SQLite or PostgreSQL) and prints the migrations applied. The bridge also migrates at start; run this before a rolling upgrade of several instances, or to check access to the database.",
      ),
  ).action(
    action(async (opts: { config: string }) => {
      const config = await loadOpsConfig(opts.config);
      const db = showDatabase(config.database);
      const applied = await withStore(config.database, "migrate", async (store) => {
        try {
          return await store.migrate();
        } catch (e) {
          throw new CliError(`cannot migrate ${db}: ${(e as Error).message}`, EXIT_FAILED);
        }
      });
      if (applied.length === 0) process.stdout.write(`${db}: up to date\n`);
      else
        process.stdout.write(
          `${db}: applied ${applied.length} migration${applied.length === 1 ? "" : "s"}\n${applied.map((m) => `  ${m}\n`).join("")}`,
        );
      return EXIT.ok;
    }),
  );
}
