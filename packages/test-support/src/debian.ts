import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest ancestor holding pnpm-workspace.yaml. */
export function repoRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, "pnpm-workspace.yaml"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no pnpm-workspace.yaml above ${from}`);
    dir = up;
  }
}

/** The git-ignored folder where third-party fixtures are cached (`.cache/` at the root). */
export function cacheDir(...parts: string[]): string {
  const d = join(repoRoot(), ".cache", ...parts);
  mkdirSync(d, { recursive: true });
  return d;
}

/**
 * Unpacks Debian package `pkg` (fetched with `apt-get download`, never committed) into
 * `.cache/debian/<pkg>/` and returns that folder; later calls reuse it. Returns `undefined`
 * when apt-get cannot fetch it (no apt, no network), so callers can skip outside CI.
 */
export function debianPackage(pkg: string): string | undefined {
  const root = cacheDir("debian");
  const out = join(root, pkg);
  if (existsSync(join(out, ".complete"))) return out;
  const work = join(root, `.${pkg}.download`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const dl = spawnSync("apt-get", ["download", pkg], { cwd: work, stdio: "pipe", timeout: 300_000 });
  const deb = dl.status === 0 ? readdirSync(work).find((f) => f.endsWith(".deb")) : undefined;
  if (deb === undefined) {
    rmSync(work, { recursive: true, force: true });
    return undefined;
  }
  const tree = join(work, "tree");
  const x = spawnSync("dpkg-deb", ["-x", join(work, deb), tree], { stdio: "pipe" });
  if (x.status !== 0) {
    rmSync(work, { recursive: true, force: true });
    return undefined;
  }
  rmSync(out, { recursive: true, force: true });
  renameSync(tree, out);
  renameSync(join(work, deb), join(out, ".complete"));
  rmSync(work, { recursive: true, force: true });
  return out;
}
