import { afterEach, describe, expect, it, vi } from "vitest";
import { commandWorks, externalTool, repoRoot } from "../src/index.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";

afterEach(() => vi.unstubAllEnvs());

describe("externalTool", () => {
  it("skips a missing tool outside CI", () => {
    vi.stubEnv("CI", "");
    const t = externalTool("no-such-tool", () => false, "apt-get install nothing");
    expect(t.available).toBe(false);
    expect(t.skip).toBe(true);
  });

  it("does not skip a missing tool under CI=true, and check() fails with the install hint", () => {
    vi.stubEnv("CI", "true");
    const t = externalTool("no-such-tool", () => false, "apt-get install nothing");
    expect(t.skip).toBe(false);
    expect(() => t.check()).toThrow(/required under CI.*apt-get install nothing/);
  });

  it("runs tests for a present tool", () => {
    const t = externalTool("node", () => commandWorks(process.execPath), "");
    expect(t.available).toBe(true);
    expect(t.skip).toBe(false);
    expect(() => t.check()).not.toThrow();
  });

  it("finds no working command for a name that does not exist", () => {
    expect(commandWorks("paravirt-no-such-command-xyz")).toBe(false);
  });
});

describe("repoRoot", () => {
  it("is the folder holding pnpm-workspace.yaml", () => {
    expect(existsSync(join(repoRoot(), "pnpm-workspace.yaml"))).toBe(true);
  });
});
