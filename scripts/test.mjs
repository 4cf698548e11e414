#!/usr/bin/env node
// Finds test files and runs them with node's own test runner (TypeScript through tsx).
// Usage: node scripts/test.mjs [--faults] [path-filter ...]
// Fault-suite files (*.faults.test.ts) are slow and run only with --faults.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
const faults = args.includes("--faults");
const filters = args.filter((a) => !a.startsWith("--"));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "testdata" || name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const files = walk("src", [])
  .filter((f) => (faults ? f.endsWith(".faults.test.ts") : !f.endsWith(".faults.test.ts")))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...files],
  { stdio: "inherit", env: { ...process.env, SMSBRIDGE_TEST: "1" } },
);
process.exit(r.status ?? 1);
