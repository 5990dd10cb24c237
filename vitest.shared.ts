import { defineConfig } from "vitest/config";

const conditions = ["@paravirt/source", "module", "node", "development|production"];

/** Shared by every package's vitest.config.ts: resolve workspace packages to their sources. */
export const shared = defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    passWithNoTests: true,
    include: ["test/**/*.test.ts"],
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-report.json" },
  },
});
