#!/usr/bin/env node
// Runs the compiled CLI. `npm install` builds dist/ through the `prepare` script.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error("smsbridge: dist/ is missing. Run `npm install` (or `npm run build`) in the project first.");
  process.exit(70);
}
await import(entry.href);
