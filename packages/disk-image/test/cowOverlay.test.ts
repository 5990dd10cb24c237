import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { BlockError } from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { CowOverlay, RamDisk, RawImageFile, ReadOnlyBlockDevice } from "../src/index.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "disk-cow-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function baseDisk(sectors: number): MemoryBlockDevice {
  const d = new MemoryBlockDevice(sectors);
  for (let i = 0; i < d.data.length; i++) d.data[i] = (i >> 9) & 0xff; // each sector filled with its number
  return d;
}

describe("CowOverlay", () => {
  it("merges overlay and base sector by sector and never writes the base", async () => {
    const base = baseDisk(64);
    const before = base.data.slice();
    const cow = new CowOverlay(new ReadOnlyBlockDevice(base));
    expect(cow.info.readOnly).toBe(false);
    await cow.write(10, new Uint8Array(3 * 512).fill(0xaa));
    await cow.write(20, new Uint8Array(512).fill(0xbb));
    expect(cow.writtenSectors).toBe(4);
    expect(cow.isWritten(11)).toBe(true);
    expect(cow.isWritten(13)).toBe(false);
    const dst = new Uint8Array(16 * 512);
    await cow.read(8, dst);
    for (let s = 0; s < 16; s++) {
      const sector = 8 + s;
      const expected = sector >= 10 && sector < 13 ? 0xaa : sector === 20 ? 0xbb : sector;
      expect(dst.subarray(s * 512, (s + 1) * 512).every((b) => b === expected)).toBe(true);
    }
    expect(base.data).toEqual(before);
    expect(base.log.every((l) => l.op === "read")).toBe(true);
  });

  it("matches a plain copy of the base under any request sequence", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ write: fc.boolean(), sector: fc.integer({ min: 0, max: 63 }), count: fc.integer({ min: 1, max: 20 }), fill: fc.integer({ min: 0, max: 255 }) }), { maxLength: 30 }),
        async (ops) => {
          const base = baseDisk(64);
          const copy = new MemoryBlockDevice(64);
          copy.data.set(base.data);
          const cow = new CowOverlay(base);
          for (const o of ops) {
            const n = o.count * 512;
            if (o.write) {
              const src = new Uint8Array(n).fill(o.fill);
              const a = await cow.write(o.sector, src).then(() => "ok", (e: BlockError) => e.kind);
              const b = await copy.write(o.sector, src).then(() => "ok", (e: BlockError) => e.kind);
              expect(a).toBe(b);
            } else {
              const x = new Uint8Array(n);
              const y = new Uint8Array(n);
              const a = await cow.read(o.sector, x).then(() => "ok", (e: BlockError) => e.kind);
              const b = await copy.read(o.sector, y).then(() => "ok", (e: BlockError) => e.kind);
              expect(a).toBe(b);
              if (a === "ok") expect(same(x, y)).toBe(true);
            }
          }
          const all = new Uint8Array(64 * 512);
          await cow.read(0, all);
          expect(same(all, copy.data)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("a failed overlay write leaves the old data readable", async () => {
    const base = baseDisk(8);
    const overlay = new MemoryBlockDevice(8);
    const cow = new CowOverlay(base, overlay);
    overlay.failNext = true;
    await expect(cow.write(2, new Uint8Array(512).fill(0xcc))).rejects.toBeInstanceOf(BlockError);
    const b = new Uint8Array(512);
    await cow.read(2, b);
    expect(b.every((x) => x === 2)).toBe(true);
    expect(cow.writtenSectors).toBe(0);
  });

  it("refuses an overlay of another geometry", () => {
    expect(() => new CowOverlay(new RamDisk(8), new RamDisk(4))).toThrow(RangeError);
    expect(() => new CowOverlay(new RamDisk(8), new RamDisk(8, { sectorSize: 4096 }))).toThrow(RangeError);
    expect(() => new CowOverlay(new RamDisk(8), new RamDisk(8, { readOnly: true }))).toThrow(RangeError);
  });

  it("with a file overlay: the base image file is untouched, the overlay file holds the writes", async () => {
    const basePath = join(dir, "base.img");
    const original = new Uint8Array(32 * 512).map((_, i) => (i >> 9) + 1);
    await writeFile(basePath, original);
    const base = await RawImageFile.open(basePath, { readOnly: true });
    const cow = await CowOverlay.withFile(base, join(dir, "overlay.img"));
    await cow.write(4, new Uint8Array(1024).fill(0x55));
    await cow.flush();
    const b = new Uint8Array(4 * 512);
    await cow.read(3, b);
    expect(b.subarray(0, 512).every((x) => x === 4)).toBe(true);
    expect(b.subarray(512, 1536).every((x) => x === 0x55)).toBe(true);
    expect(b.subarray(1536).every((x) => x === 7)).toBe(true);
    await cow.close();
    await base.close();
    expect(new Uint8Array(await readFile(basePath))).toEqual(original);
    const ov = new Uint8Array(await readFile(join(dir, "overlay.img")));
    expect(ov.length).toBe(32 * 512);
    expect(ov.subarray(4 * 512, 6 * 512).every((x) => x === 0x55)).toBe(true);
    expect(ov.subarray(0, 4 * 512).every((x) => x === 0)).toBe(true);
  });
});

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}
