/**
 * SingleStepTests 80286 real-mode conformance: every case of every opcode file must pass,
 * or be listed in sst-286-differences.json with the reason an i386+ differs from a 286.
 */
import { existsSync as exists, readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { runFile, sstFiles, SST_DIR } from "./sst.ts";
import { classify, REASONS } from "./sstClassify.ts";

interface Difference {
  readonly file: string;
  /** Case hashes; "*" for every case of the file. */
  readonly hashes: readonly string[] | "*";
  readonly reason: string;
}

const differences: Difference[] = process.env["SST_WRITE_DIFFERENCES"] === "1" ? [] : JSON.parse(readFileSync(new URL("./sst-286-differences.json", import.meta.url), "utf8"));

// Outside CI a machine without the recorded cases skips them; under CI their absence is a failure.
if (SST_DIR === undefined && process.env["CI"] === "true") {
  throw new Error("SingleStepTests 80286 cases not found: set SST_80286_DIR or put shared/ beside the clone");
}

describe.skipIf(SST_DIR === undefined)("SingleStepTests 80286 real mode", () => {
  it("passes every case that a 286 and an i386+ agree on", async () => {
    const files = sstFiles();
    expect(files.length).toBeGreaterThan(300);
    let total = 0;
    let passed = 0;
    let known = 0;
    const unexpected: string[] = [];
    const stale: string[] = [];
    const perFile: string[] = [];
    const generated = new Map<string, { file: string; reason: keyof typeof REASONS; hashes: string[] }>();
    for (const file of files) {
      const results = runFile(file);
      const diff = differences.filter((d) => d.file === file);
      const listed = (hash: string) => diff.some((d) => d.hashes === "*" || d.hashes.includes(hash));
      let ok = 0;
      for (const r of results) {
        total++;
        if (r.ok) {
          ok++;
          passed++;
          if (diff.some((d) => d.hashes !== "*" && d.hashes.includes(r.hash))) stale.push(`${file} ${r.hash} (${r.name}) now passes`);
        } else if (listed(r.hash)) {
          known++;
        } else {
          const why = classify(file, r);
          if (why !== undefined) {
            const key = `${file}/${why}`;
            if (!generated.has(key)) generated.set(key, { file, reason: why, hashes: [] });
            generated.get(key)!.hashes.push(r.hash);
          }
          unexpected.push(`${file} #${r.idx} ${r.hash} ${r.name} [len ${r.bytes.length - 1} raised ${r.raised} expected ${r.expected}]: ${r.detail}`);
        }
      }
      perFile.push(`${file}:${ok}/${results.length}`);
    }
    console.log(`SST 80286: ${passed}/${total} pass (${((100 * passed) / total).toFixed(2)}%), ${known} known 286-vs-386 differences, ${unexpected.length} unexpected failures`);
    console.log(perFile.filter((s) => !s.endsWith(":200/200")).join(" "));
    if (unexpected.length > 0) console.log(unexpected.slice(0, Number(process.env["SST_SHOW"] ?? 40)).join("\n"));
    if (process.env["SST_WRITE_DIFFERENCES"] === "1") {
      const all = [...generated.values()].map((g) => ({ file: g.file, hashes: g.hashes, reason: REASONS[g.reason] }));
      writeFileSync(new URL("./sst-286-differences.json", import.meta.url), JSON.stringify(all, null, 1) + "\n");
    }
    void exists;
    if (process.env["SST_DUMP"]) (await import("node:fs")).writeFileSync(process.env["SST_DUMP"], unexpected.join("\n"));
    expect(unexpected).toEqual([]);
    expect(stale).toEqual([]);
  });
});
