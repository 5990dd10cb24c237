import { describe, expect, it, beforeAll } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandWorks, externalTool } from "@paravirt/test-support";
import { runDemo } from "../src/demo.ts";

const tshark = externalTool("tshark", () => commandWorks("tshark", ["-v"]), "apt-get install tshark");

const root = join(import.meta.dirname, "..");
const cli = join(root, "dist", "cli.js");

describe("paravirt demo (runDemo)", () => {
  it("reports every region the domU wrote, and the image holds exactly those bytes after exit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "demo-"));
    const path = join(dir, "disk.img");
    const lines: string[] = [];
    const report = await runDemo({ disk: path, sizeMiB: 64, json: true, out: (l) => lines.push(l) });
    expect(report.verified).toBe(true);
    expect(report.image.created).toBe(true);
    expect(JSON.parse(lines.join("\n")).writes).toEqual(report.writes);
    const file = readFileSync(path);
    expect(file.length).toBe(64 << 20);
    // Regions do not overlap, and each one's bytes hash as reported.
    const sorted = [...report.writes].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.offset).toBeGreaterThanOrEqual(sorted[i - 1]!.offset + sorted[i - 1]!.length);
    for (const w of report.writes) {
      expect(createHash("sha256").update(file.subarray(w.offset, w.offset + w.length)).digest("hex")).toBe(w.sha256);
    }
    expect(report.throughput.map((t) => `${t.pattern} ${t.op} ${t.blockBytes}`)).toEqual([
      "sequential write 65536", "sequential read 65536", "random write 4096", "random read 4096",
    ]);
    expect(report.counters["ataInterrupts"]).toBeGreaterThan(0);
    // The network path: pings answered, UDP over the bridge intact and kept off the NIC.
    expect(report.network.pings.length).toBe(4);
    for (const p of report.network.pings) expect(p.rttNs).toBeGreaterThan(0);
    expect(report.network.domUToDomU).toMatchObject({ sent: 100, echoed: 100, intact: true });
    expect(report.network.domUToDomU.nicTxFrames).toBeLessThanOrEqual(1);
    expect(report.network.toWire).toMatchObject({ sent: 20, echoed: 20, intact: true });
  });

  it("narrates which domain does what", async () => {
    const lines: string[] = [];
    await runDemo({ sizeMiB: 16, json: false, out: (l) => lines.push(l) });
    const text = lines.join("\n");
    expect(text).toMatch(/assigned to d0 \(dom0\)/);
    expect(text).toMatch(/hda: PARAVIRT HARDDISK/);
    expect(text).toMatch(/blkback .*state Connected/);
    expect(text).toMatch(/read back and verified: all regions match/);
    expect(text).toMatch(/peak memory/);
    expect(text).toMatch(/64 bytes from 10\.0\.0\.254: icmp_seq=1/);
    expect(text).toMatch(/UDP domU1 -> domU2 over xenbr0: 100 sent, 100 echoed back intact/);
  });
});

describe("the paravirt command", () => {
  beforeAll(() => {
    execFileSync("pnpm", ["exec", "tsc", "-b"], { cwd: root, stdio: "pipe" });
  }, 120_000);

  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 120_000 });

  it("prints help", () => {
    const r = run("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/demo \[options\]/);
  });

  it("refuses a bad argument with one line and a non-zero exit", () => {
    for (const args of [["demo", "--size", "abc"], ["demo", "--bogus"], ["frobnicate"]]) {
      const r = run(...args);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")[0]).toMatch(/error|paravirt:/);
    }
  });

  it("refuses an unusable image and leaves it untouched", () => {
    const dir = mkdtempSync(join(tmpdir(), "demo-bad-"));
    const bad = join(dir, "odd.img");
    writeFileSync(bad, "not a disk");
    const r = run("demo", "--disk", bad);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/^paravirt: .*not a whole number of 512-byte sectors$/);
    expect(readFileSync(bad, "utf8")).toBe("not a disk");
    const r2 = run("demo", "--disk", dir);
    expect(r2.status).toBe(1);
    expect(r2.stderr.trim().split("\n").length).toBe(1);
  });

  it.skipIf(tshark.skip)("captures the e1000's wire with --pcap, and tshark decodes every frame with good checksums", () => {
    tshark.check();
    const dir = mkdtempSync(join(tmpdir(), "demo-pcap-"));
    const pcap = join(dir, "wire.pcap");
    const r = run("demo", "--size", "16", "--pcap", pcap);
    expect(r.status).toBe(0);
    const out = spawnSync("tshark", ["-r", pcap, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-T", "fields", "-e", "frame.protocols", "-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "icmp.checksum.status"], { encoding: "utf8" });
    expect(out.status).toBe(0);
    const rows = out.stdout.trim().split("\n");
    expect(rows.length).toBeGreaterThan(20);
    expect(rows.some((l) => l.includes("icmp"))).toBe(true);
    expect(rows.some((l) => l.includes("udp"))).toBe(true);
    // tshark checksum status: 1 = good, 0 = bad, 2 = unverified; every checksum must verify.
    for (const l of rows) expect(l.split("\t").slice(1).every((f) => f === "" || f === "1")).toBe(true);
    expect(rows.filter((l) => l.split("\t").slice(1).includes("1")).length).toBeGreaterThan(20);
  });

  const debian = externalTool("apt-get download", () => commandWorks("apt-get", ["--version"]) && commandWorks("dpkg-deb", ["--version"]) && commandWorks("mke2fs", ["-V"]), "apt-get install e2fsprogs (Debian)");
  it.skipIf(debian.skip)("pvgrub prints PV GRUB's console (read from its io/console.h ring) and exits 0 on its poweroff", () => {
    debian.check();
    const r = run("pvgrub");
    expect(r.stdout).toMatch(/Welcome to GRUB!/);
    expect(r.stdout).toMatch(/PVGRUB-MARKER-OK/);
    expect(r.stderr).toMatch(/shut down \(reason 0\)/);
    expect(r.status).toBe(0);
  });

  it("creates a missing image at the default size and prints JSON", () => {
    const dir = mkdtempSync(join(tmpdir(), "demo-json-"));
    const path = join(dir, "new.img");
    const r = run("demo", "--json", "--disk", path);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.writes.length).toBeGreaterThan(5);
    expect(existsSync(path) && statSync(path).size).toBe(64 << 20);
  });
});
