import { createRequire } from "node:module";
import type BetterSqlite3 from "better-sqlite3";

/**
 * better-sqlite3, the right major for this Node:
 * - 12.x is the one that works on Node 20 (13.x needs Node ≥ 22 and crashes on 20);
 * - on Node 24, 12.x aborts the process at exit (its ObjectWrap destructors run after Node's Environment is
 *   gone: "Assertion failed: (env) != nullptr" in RemoveEnvironmentCleanupHook); 13.x (node-addon-api)
 *   fixed that. npm installs the optional `better-sqlite3-node22` alias (13.x) only where its engines match.
 * Both have the same API; the types are 12.x's.
 */
const require = createRequire(import.meta.url);
const major = Number(process.versions.node.split(".")[0]);

/** The module to load, resolved to a path (a worker thread loads the same one: sqlite-checkpointer.ts). */
export const betterSqlite3Path: string = (() => {
  if (major >= 22) {
    try {
      return require.resolve("better-sqlite3-node22");
    } catch {
      // Not installed (node_modules made by an older Node): 12.x still works, apart from the exit abort.
    }
  }
  return require.resolve("better-sqlite3");
})();

export const Database: typeof BetterSqlite3 = require(betterSqlite3Path) as typeof BetterSqlite3;
