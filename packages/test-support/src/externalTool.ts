import { spawnSync } from "node:child_process";

/** Whether the tests run under CI (CI=true), where a missing external tool is a failure. */
export function underCi(): boolean {
  const v = process.env["CI"];
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

/** Whether `command` runs (`command --version`, or the given probe arguments) and exits 0. */
export function commandWorks(command: string, args: readonly string[] = ["--version"]): boolean {
  const r = spawnSync(command, args, { stdio: "ignore", timeout: 20_000 });
  return r.status === 0;
}

/**
 * Availability of an external tool a test needs (gcc -m32, nasm, tshark, qemu...).
 *
 * Outside CI a missing tool prints one line and its tests are skipped; under CI=true the
 * tests run anyway and fail in `check()`, so CI can never go green without the reference.
 */
export interface ExternalTool {
  readonly name: string;
  readonly available: boolean;
  /** True when tests that need the tool should be skipped (missing, and not under CI). */
  readonly skip: boolean;
  /** Throws a clear error when the tool is missing (call at the start of each test). */
  check(): void;
}

export function externalTool(name: string, probe: () => boolean, installHint: string): ExternalTool {
  const available = probe();
  const ci = underCi();
  if (!available && !ci) console.warn(`[skip] ${name} not found (${installHint}); its tests are skipped`);
  return {
    name,
    available,
    skip: !available && !ci,
    check() {
      if (!available) throw new Error(`${name} is required under CI but was not found (${installHint})`);
    },
  };
}
