#!/usr/bin/env node
// Writes the root tsconfig.json (a solution file: references only) from the workspace's packages,
// and every package's tsconfig `references` from its workspace dependencies (a missing reference
// means `tsc -b` does not build a dependency the package's dist imports at run time).
// Usage: node scripts/sync-tsconfig.mjs [--check]   (--check writes nothing and fails on a difference)
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const check = process.argv.includes("--check");
const dirs = [...readdirSync(join(root, "packages")).map((d) => join(root, "packages", d)), join(root, "examples")].filter((d) =>
  existsSync(join(d, "package.json")) && existsSync(join(d, "tsconfig.json")),
);
const byName = new Map(dirs.map((d) => [JSON.parse(readFileSync(join(d, "package.json"), "utf8")).name, d]));
const problems = [];
for (const d of dirs) {
  const pkg = JSON.parse(readFileSync(join(d, "package.json"), "utf8"));
  const deps = Object.keys(pkg.dependencies ?? {}).filter((n) => byName.has(n));
  const want = deps.map((n) => relative(d, byName.get(n))).sort();
  const ts = JSON.parse(readFileSync(join(d, "tsconfig.json"), "utf8"));
  const have = (ts.references ?? []).map((r) => r.path.replace(/\/$/, "")).sort();
  if (JSON.stringify(want) !== JSON.stringify(have)) {
    if (check) problems.push(`${relative(root, d)}/tsconfig.json references ${JSON.stringify(have)}, dependencies say ${JSON.stringify(want)}`);
    else {
      ts.references = want.map((path) => ({ path }));
      writeFileSync(join(d, "tsconfig.json"), JSON.stringify(ts, null, 2) + "\n");
    }
  }
}
const solution = JSON.stringify({ files: [], references: dirs.map((d) => ({ path: relative(root, d) })) }, null, 2) + "\n";
const current = readFileSync(join(root, "tsconfig.json"), "utf8");
if (check) {
  if (current !== solution) problems.push("tsconfig.json is out of date: run node scripts/sync-tsconfig.mjs");
} else if (current !== solution) {
  writeFileSync(join(root, "tsconfig.json"), solution);
}
for (const p of problems) console.error(p);
process.exit(problems.length > 0 ? 1 : 0);
