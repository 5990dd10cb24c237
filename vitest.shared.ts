import { defineConfig } from "vitest/config";

const conditions = ["@paravirt/source", "module", "node", "development|production"];

/** Shared by every package's vitest.config.ts: resolve workspace packages to their sources. */
export const shared = defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    passWithNoTests: true,
    // Packages run side by side on small CI machines: a test's time limit is about hangs, not speed
    // (speed is measured by the benchmarks).
    testTimeout: 60_000,
    hookTimeout: 120_000,
    include: ["test/**/*.test.ts"],
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-report.json" },
  },
});
