import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlockError } from "@paravirt/vm-interfaces";
import { RamDisk, RawImageFile } from "../src/index.ts";

const fill = (n: number, v: number) => new Uint8Array(n).fill(v);

describe("scatter-gather I/O", () => {
  it("RawImageFile.writev puts the pieces at consecutive sectors, readv reads them back", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "vec-")), "d.img");
    const img = await RawImageFile.open(path, { create: 64 * 512 });
    await img.writev(3, [fill(512, 1), fill(1024, 2), fill(512, 3)]);
    const a = new Uint8Array(1024);
    const b = new Uint8Array(1024);
    await img.readv(3, [a, b]);
    expect([a[0], a[511], a[512], b[511], b[512]]).toEqual([1, 1, 2, 2, 3]);
    await img.close();
    const file = readFileSync(path);
    expect([file[3 * 512 - 1], file[3 * 512], file[5 * 512], file[6 * 512], file[7 * 512]]).toEqual([0, 1, 2, 3, 0]);
  });

  it("finishes a short readv piecewise, and reports a file that shrank underneath as an I/O error", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "vec-")), "d.img");
    const img = await RawImageFile.open(path, { create: 16 * 512 });
    await img.writev(0, [fill(4096, 7), fill(4096, 8)]);
    truncateSync(path, 6 * 512); // the host file loses its tail while the image is open
    const a = new Uint8Array(4 * 512);
    const b = new Uint8Array(4 * 512);
    await expect(img.readv(0, [a, b])).rejects.toMatchObject({ kind: "io" });
    expect(a.every((x) => x === 7)).toBe(true); // what was there was read
    expect(b.subarray(0, 1024).every((x) => x === 7)).toBe(true); // bytes 2048..3071, still in the file
    expect(b.subarray(1024).every((x) => x === 0)).toBe(true); // past the new end: nothing read
    await img.close();
  });

  it("refuses a vector that leaves the disk or has a partial sector, writing nothing", async () => {
    const d = new RamDisk(8);
    await expect(d.writev(7, [fill(512, 1), fill(512, 2)])).rejects.toMatchObject({ kind: "out-of-range" });
    await expect(d.writev(0, [fill(100, 1)])).rejects.toBeInstanceOf(BlockError);
    expect(d.toBytes().every((x) => x === 0)).toBe(true);
    await d.writev(6, [fill(512, 5), fill(512, 6)]);
    const back = [new Uint8Array(512), new Uint8Array(512)];
    await d.readv(6, back);
    expect([back[0]![0], back[1]![0]]).toEqual([5, 6]);
  });
});
