/** Request throughput of the block devices: 4 KiB random reads and writes, 32 in flight. */
import { afterAll, bench, describe } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CowOverlay, RamDisk, RawImageFile } from "../src/index.ts";

const dir = mkdtempSync(join(tmpdir(), "disk-bench-"));
const SECTORS = 32768; // 16 MiB
const file = await RawImageFile.open(join(dir, "bench.img"), { create: SECTORS * 512 });
const ram = new RamDisk(SECTORS);
const cow = new CowOverlay(ram);
afterAll(async () => {
  await file.close();
  rmSync(dir, { recursive: true, force: true });
});

let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) % (SECTORS / 8)) * 8;
const readBufs = Array.from({ length: 32 }, () => new Uint8Array(4096));
const writeBufs = Array.from({ length: 32 }, () => new Uint8Array(4096).fill(0x5a));

async function batch(dev: { read(s: number, b: Uint8Array): Promise<void>; write(s: number, b: Uint8Array): Promise<void> }, write: boolean): Promise<void> {
  await Promise.all((write ? writeBufs : readBufs).map((b) => (write ? dev.write(rnd(), b) : dev.read(rnd(), b))));
}

describe("32 x 4 KiB random requests", () => {
  bench("RawImageFile read", () => batch(file, false), { time: 1000 });
  bench("RawImageFile write", () => batch(file, true), { time: 1000 });
  bench("RamDisk read", () => batch(ram, false), { time: 500 });
  bench("RamDisk write", () => batch(ram, true), { time: 500 });
  bench("CowOverlay read", () => batch(cow, false), { time: 500 });
  bench("CowOverlay write", () => batch(cow, true), { time: 500 });
});
