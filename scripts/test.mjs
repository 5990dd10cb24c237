#!/usr/bin/env node
// Runs every package's tests through turbo (cached per package, re-run when a dependency's
// source changes), then prints one plain closing line summed from each package's vitest JSON
// report: "tests: N passed, N failed, N skipped". Exits non-zero when any package failed.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dirs = [
  ...readdirSync(join(root, "packages")).map((d) => join(root, "packages", d)),
  join(root, "examples"),
];
// Reports are turbo outputs: a cache hit restores them, a run rewrites them. Remove stale ones first
// so the summary only counts this run's packages.
for (const dir of dirs) rmSync(join(dir, ".vitest-report.json"), { force: true });
// Project references must match workspace dependencies (else `tsc -b` skips a dependency's build).
const refs = spawnSync(process.execPath, [join(root, "scripts", "sync-tsconfig.mjs"), "--check"], { cwd: root, stdio: "inherit" });
// Vitest strips types without checking them: type-check every package's sources and tests first.
const tsc = spawnSync("pnpm", ["exec", "tsc", "-p", "tsconfig.test.json"], { cwd: root, stdio: "inherit" });
if (tsc.status !== 0) console.error("type check failed (tsc -p tsconfig.test.json)");

const turbo = spawnSync(
  "pnpm",
  ["exec", "turbo", "run", "test", "--output-logs=new-only", "--continue", "--concurrency=2", ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit", env: { ...process.env, TURBO_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" } },
);

let passed = 0;
let failed = 0;
let skipped = 0;
const broken = [];
for (const dir of dirs) {
  const report = join(dir, ".vitest-report.json");
  if (!existsSync(report)) continue;
  try {
    const r = JSON.parse(readFileSync(report, "utf8"));
    passed += r.numPassedTests ?? 0;
    failed += r.numFailedTests ?? 0;
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    // A suite that failed to load counts as a failure even when it ran no test.
    if ((r.numFailedTestSuites ?? 0) > 0 && (r.numFailedTests ?? 0) === 0) failed += r.numFailedTestSuites;
  } catch {
    broken.push(report);
  }
}
for (const b of broken) console.error(`unreadable test report: ${b}`);
const code = turbo.status === 0 && tsc.status === 0 && refs.status === 0 ? 0 : 1;
if (code !== 0 && failed === 0) failed = 1; // a type error, or a package that failed before its report
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(code !== 0 || failed > 0 || broken.length > 0 ? 1 : 0);
