// Runs benches and prints one table. Usage: npm run bench [-- name ...]   (names match bench/<name>.bench.ts)
// Each bench/*.bench.ts default-exports `async function run(): Promise<BenchResult[]>`.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BenchResult } from "./lib.js";

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const all = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .sort();
const files = wanted.length ? all.filter((f) => wanted.some((w) => f === w || f.startsWith(`${w}.`))) : all;
if (files.length === 0) {
  console.error(
    `no bench matched ${wanted.join(", ")}; available: ${all.map((f) => basename(f, ".bench.ts")).join(", ")}`,
  );
  process.exit(1);
}

function fmt(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return "";
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString("en-US");
  return n.toFixed(n >= 10 ? 1 : 3);
}

// Benches run the compiled CLI, as users do: build it first so it matches the source.
const build = spawnSync(process.platform === "win32" ? "npm.cmd" : "npm", ["run", "--silent", "build"], {
  stdio: "inherit",
});
if (build.status !== 0) {
  console.error("npm run build failed; benches need dist/");
  process.exit(1);
}

const results: Array<BenchResult & { bench: string }> = [];
let failed = false;
for (const file of files) {
  const bench = basename(file, ".bench.ts");
  process.stderr.write(`running ${bench} …\n`);
  try {
    const mod = (await import(pathToFileURL(join(here, file)).href)) as {
      default: () => Promise<BenchResult[]>;
    };
    for (const r of await mod.default()) {
      const ratio =
        r.ratio ?? (r.baseline && r.baseline.value !== 0 ? r.value / r.baseline.value : undefined);
      results.push({ ...r, ...(ratio !== undefined ? { ratio } : {}), bench });
    }
  } catch (err) {
    failed = true;
    console.error(`bench ${bench} failed: ${(err as Error).stack ?? err}`);
  }
}

const rows = [
  ["bench", "name", "value", "unit", "baseline", "ratio", "note"],
  ...results.map((r) => [
    r.bench,
    r.name,
    fmt(r.value),
    r.unit,
    r.baseline ? `${r.baseline.name} = ${fmt(r.baseline.value)}` : "",
    r.ratio !== undefined ? r.ratio.toFixed(2) : "",
    r.note ?? "",
  ]),
];
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
for (const [i, row] of rows.entries()) {
  console.log(
    row.map((c, j) => (j === 2 || j === 5 ? c.padStart(widths[j]!) : c.padEnd(widths[j]!))).join("  "),
  );
  if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
}

const out = join(here, "results");
mkdirSync(out, { recursive: true });
const report = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: availableParallelism(),
  cpu: cpus()[0]?.model ?? "unknown",
  results,
};
writeFileSync(join(out, "latest.json"), `${JSON.stringify(report, null, 2)}\n`);
console.log(`\nwrote ${join("bench", "results", "latest.json")}`);
if (failed) process.exit(1);
