import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlockError } from "@paravirt/vm-interfaces";
import { DiskImageError, RawImageFile } from "../src/index.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "disk-image-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function pattern(bytes: number, seed: number): Uint8Array {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("RawImageFile.open", () => {
  it("opens an existing image and reports its geometry", async () => {
    const path = join(dir, "a.img");
    await writeFile(path, pattern(8 * 512, 1));
    const img = await RawImageFile.open(path);
    expect(img.info).toEqual({ sectorSize: 512, sectors: 8, readOnly: false, flush: true, discard: false });
    const dst = new Uint8Array(1024);
    await img.read(3, dst);
    expect(dst).toEqual(pattern(8 * 512, 1).subarray(3 * 512, 5 * 512));
    await img.close();
  });

  it("4096-byte sectors", async () => {
    const path = join(dir, "a.img");
    await writeFile(path, new Uint8Array(3 * 4096));
    const img = await RawImageFile.open(path, { sectorSize: 4096 });
    expect(img.info.sectors).toBe(3);
    await img.close();
  });

  it("names a missing file not-found", async () => {
    const e = await rejection(RawImageFile.open(join(dir, "nope.img")));
    expect(e).toBeInstanceOf(DiskImageError);
    expect((e as DiskImageError).kind).toBe("not-found");
    expect((e as DiskImageError).message).toContain("nope.img");
  });

  it("refuses an image that is not a whole number of sectors, or empty", async () => {
    const path = join(dir, "odd.img");
    await writeFile(path, new Uint8Array(1000));
    const e = (await rejection(RawImageFile.open(path))) as DiskImageError;
    expect(e.kind).toBe("size");
    expect(e.message).toMatch(/1000 bytes is not a whole number of 512-byte sectors/);
    await writeFile(path, new Uint8Array(0));
    expect(((await rejection(RawImageFile.open(path))) as DiskImageError).kind).toBe("size");
  });

  it("refuses a directory", async () => {
    await mkdir(join(dir, "d"));
    expect(((await rejection(RawImageFile.open(join(dir, "d")))) as DiskImageError).kind).toBe("not-a-file");
  });

  it.skipIf(process.getuid?.() === 0)("reports permission errors", async () => {
    const path = join(dir, "ro.img");
    await writeFile(path, new Uint8Array(512));
    await chmod(path, 0o444);
    expect(((await rejection(RawImageFile.open(path))) as DiskImageError).kind).toBe("permission");
    const img = await RawImageFile.open(path, { readOnly: true });
    expect(img.info.readOnly).toBe(true);
    await img.close();
  });

  it("rejects invalid options as host misuse", async () => {
    await expect(RawImageFile.open(join(dir, "x"), { sectorSize: 1024 })).rejects.toThrow(RangeError);
    await expect(RawImageFile.open(join(dir, "x"), { create: 1000 })).rejects.toThrow(RangeError);
    await expect(RawImageFile.open(join(dir, "x"), { create: 512, readOnly: true })).rejects.toThrow(RangeError);
    expect(existsSync(join(dir, "x"))).toBe(false);
  });
});

describe("RawImageFile.open with create", () => {
  it("creates a zero-filled image of the given size", async () => {
    const path = join(dir, "new.img");
    const img = await RawImageFile.open(path, { create: 1 << 20 });
    expect(img.info.sectors).toBe(2048);
    expect((await stat(path)).size).toBe(1 << 20);
    const dst = new Uint8Array(512).fill(0xee);
    await img.read(2047, dst);
    expect(dst.every((b) => b === 0)).toBe(true);
    await img.close();
  });

  it("refuses to overwrite an existing file and leaves it alone", async () => {
    const path = join(dir, "old.img");
    await writeFile(path, pattern(512, 9));
    const e = (await rejection(RawImageFile.open(path, { create: 4096 }))) as DiskImageError;
    expect(e.kind).toBe("exists");
    expect(new Uint8Array(await readFile(path))).toEqual(pattern(512, 9));
  });

  it("fails cleanly when the folder does not exist", async () => {
    const e = (await rejection(RawImageFile.open(join(dir, "no", "such.img"), { create: 512 }))) as DiskImageError;
    expect(e.kind).toBe("not-found");
  });
});

describe("RawImageFile requests", () => {
  it("writes land in the file at sector * 512, seen from outside after close", async () => {
    const path = join(dir, "w.img");
    const img = await RawImageFile.open(path, { create: 16 * 512 });
    await img.write(2, pattern(1024, 3));
    await img.write(15, pattern(512, 5));
    await img.flush();
    await img.close();
    const bytes = new Uint8Array(await readFile(path));
    expect(bytes.length).toBe(16 * 512);
    expect(bytes.subarray(0, 1024).every((b) => b === 0)).toBe(true);
    expect(bytes.subarray(1024, 2048)).toEqual(pattern(1024, 3));
    expect(bytes.subarray(15 * 512)).toEqual(pattern(512, 5));
  });

  it("keeps many requests in flight and completes them all", async () => {
    const path = join(dir, "many.img");
    const img = await RawImageFile.open(path, { create: 256 * 512 });
    const writes = [];
    for (let s = 0; s < 256; s++) writes.push(img.write(s, pattern(512, s)));
    expect(img.pending).toBe(256);
    await Promise.all(writes);
    expect(img.pending).toBe(0);
    const reads = [];
    const bufs: Uint8Array[] = [];
    for (let s = 255; s >= 0; s--) {
      const b = new Uint8Array(512);
      bufs[s] = b;
      reads.push(img.read(s, b));
    }
    await Promise.all(reads);
    for (let s = 0; s < 256; s++) expect(bufs[s]).toEqual(pattern(512, s));
    await img.close();
  });

  it("rejects bad requests with BlockError kinds and writes nothing", async () => {
    const path = join(dir, "b.img");
    const img = await RawImageFile.open(path, { create: 4 * 512 });
    const kind = async (p: Promise<void>) => ((await rejection(p)) as BlockError).kind;
    expect(await kind(img.read(4, new Uint8Array(512)))).toBe("out-of-range");
    expect(await kind(img.write(3, new Uint8Array(1024).fill(1)))).toBe("out-of-range");
    expect(await kind(img.write(-1, new Uint8Array(512)))).toBe("out-of-range");
    expect(await kind(img.read(0, new Uint8Array(100)))).toBe("misaligned");
    await img.close();
    expect(new Uint8Array(await readFile(path)).every((b) => b === 0)).toBe(true);
    expect((await stat(path)).size).toBe(2048);
  });

  it("a read-only image refuses writes", async () => {
    const path = join(dir, "r.img");
    await writeFile(path, pattern(1024, 2));
    const img = await RawImageFile.open(path, { readOnly: true });
    const e = (await rejection(img.write(0, new Uint8Array(512)))) as BlockError;
    expect(e).toBeInstanceOf(BlockError);
    expect(e.kind).toBe("read-only");
    await img.flush();
    await img.close();
    expect(new Uint8Array(await readFile(path))).toEqual(pattern(1024, 2));
  });

  it("close waits for requests in flight; later requests reject with closed", async () => {
    const path = join(dir, "c.img");
    const img = await RawImageFile.open(path, { create: 64 * 512 });
    const w = img.write(0, pattern(64 * 512, 4));
    const closed = img.close();
    await w;
    await closed;
    expect(((await rejection(img.read(0, new Uint8Array(512)))) as BlockError).kind).toBe("closed");
    expect(((await rejection(img.flush())) as BlockError).kind).toBe("closed");
    await img.close();
    expect(new Uint8Array(await readFile(path))).toEqual(pattern(64 * 512, 4));
  });

  it("a file truncated underneath reads as an io error", async () => {
    const path = join(dir, "t.img");
    await writeFile(path, new Uint8Array(4 * 512));
    const img = await RawImageFile.open(path);
    await writeFile(path, new Uint8Array(512));
    const e = (await rejection(img.read(2, new Uint8Array(512)))) as BlockError;
    expect(e.kind).toBe("io");
    await img.close();
  });
});

describe("RawImageFile read-ahead", () => {
  const K64 = 65536;

  it("serves a sequential reader from data read ahead, the file's bytes, vectored or not", async () => {
    const path = join(dir, "ra.img");
    await writeFile(path, pattern(16 * K64, 9));
    const img = await RawImageFile.open(path, { readAhead: 2 * K64 });
    const want = pattern(16 * K64, 9);
    for (let i = 0; i < 8; i++) {
      const b = new Uint8Array(K64);
      await img.read((i * K64) / 512, b);
      expect(b).toEqual(want.subarray(i * K64, (i + 1) * K64));
    }
    // The first read starts nothing, the second continues it and reads ahead; from the third on
    // every read finds its data read already.
    expect(img.readAheadHits).toBe(6);
    const parts = [new Uint8Array(4096), new Uint8Array(K64 - 4096)];
    await img.readv((8 * K64) / 512, parts);
    expect(parts[0]).toEqual(want.subarray(8 * K64, 8 * K64 + 4096));
    expect(parts[1]).toEqual(want.subarray(8 * K64 + 4096, 9 * K64));
    expect(img.readAheadHits).toBe(7);
    // Small reads are served out of a larger chunk read ahead.
    const small = new Uint8Array(4096);
    await img.read((9 * K64) / 512, small);
    await img.read((9 * K64 + 4096) / 512, small);
    expect(small).toEqual(want.subarray(9 * K64 + 4096, 9 * K64 + 8192));
    expect(img.readAheadHits).toBe(9);
    await img.close();
  });

  it("a write over data read ahead is what a later read returns", async () => {
    const path = join(dir, "raw.img");
    await writeFile(path, pattern(8 * K64, 1));
    const img = await RawImageFile.open(path, { readAhead: 4 * K64 });
    const b = new Uint8Array(K64);
    await img.read(0, b);
    await img.read(K64 / 512, b); // reads ahead over chunks 2..5
    await img.write((3 * K64) / 512 + 8, pattern(4096, 77));
    await img.read((2 * K64) / 512, b);
    expect(b).toEqual(pattern(8 * K64, 1).subarray(2 * K64, 3 * K64));
    await img.read((3 * K64) / 512, b);
    expect(b.subarray(4096, 8192)).toEqual(pattern(4096, 77));
    expect(b.subarray(0, 4096)).toEqual(pattern(8 * K64, 1).subarray(3 * K64, 3 * K64 + 4096));
    await img.close();
  });

  it("reads nothing ahead over a write in flight", async () => {
    const path = join(dir, "raf.img");
    await writeFile(path, pattern(8 * K64, 2));
    const img = await RawImageFile.open(path, { readAhead: 4 * K64 });
    const w = img.write((2 * K64) / 512, pattern(K64, 55)); // in flight while the reader goes on
    const b = new Uint8Array(K64);
    await img.read(0, b);
    await img.read(K64 / 512, b);
    await w;
    await img.read((2 * K64) / 512, b);
    expect(b).toEqual(pattern(K64, 55));
    await img.close();
  });

  it("a reader that jumps gets no stale data and the read-ahead restarts; close waits for reads ahead", async () => {
    const path = join(dir, "raj.img");
    await writeFile(path, pattern(8 * K64, 3));
    const img = await RawImageFile.open(path, { readAhead: 2 * K64 });
    const want = pattern(8 * K64, 3);
    const b = new Uint8Array(K64);
    for (const i of [0, 1, 5, 2, 3, 4]) {
      await img.read((i * K64) / 512, b);
      expect(b).toEqual(want.subarray(i * K64, (i + 1) * K64));
    }
    // 1 reads 2-3 ahead, dropped by the jump to 5; 2 follows no read; 3 follows 2 and reads 4-5
    // ahead, so only 4 is a hit.
    expect(img.readAheadHits).toBe(1);
    await img.close();
    await expect(RawImageFile.open(path, { readAhead: -1 })).rejects.toThrow(RangeError);
  });
});
