import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { BlockError } from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { RamDisk, ReadOnlyBlockDevice } from "../src/index.ts";

describe("RamDisk", () => {
  it("reads zeros where nothing was written and allocates nothing for them", async () => {
    const d = new RamDisk(1 << 30); // 512 GiB, sparse
    const b = new Uint8Array(1024).fill(9);
    await d.read((1 << 30) - 2, b);
    expect(b.every((x) => x === 0)).toBe(true);
    await d.write(5, new Uint8Array(512));
    expect(d.allocatedBytes).toBe(0);
    await d.write(5, new Uint8Array(512).fill(1));
    expect(d.allocatedBytes).toBe(65536);
  });

  it("round-trips writes across chunk boundaries", async () => {
    const d = new RamDisk(1024);
    const src = new Uint8Array(300 * 512).map((_, i) => (i * 13) & 0xff);
    await d.write(100, src);
    const dst = new Uint8Array(src.length);
    await d.read(100, dst);
    expect(dst).toEqual(src);
    expect(d.toBytes().subarray(100 * 512, 400 * 512)).toEqual(src);
  });

  it("behaves as the reference MemoryBlockDevice for any sequence of requests", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ op: fc.constantFrom("read", "write", "discard"), sector: fc.integer({ min: 0, max: 300 }), count: fc.integer({ min: 1, max: 200 }), fill: fc.integer({ min: 0, max: 255 }) }),
          { maxLength: 25 },
        ),
        async (ops) => {
          const d = new RamDisk(300);
          const ref = new MemoryBlockDevice(300);
          for (const o of ops) {
            const bytes = o.count * 512;
            if (o.op === "write") {
              const src = new Uint8Array(bytes).fill(o.fill);
              const a = await d.write(o.sector, src).then(() => "ok", (e: BlockError) => e.kind);
              const b = await ref.write(o.sector, src).then(() => "ok", (e: BlockError) => e.kind);
              expect(a).toBe(b);
            } else if (o.op === "discard") {
              const a = await d.discard(o.sector, o.count).then(() => "ok", (e: BlockError) => e.kind);
              const b = await ref.discard(o.sector, o.count).then(() => "ok", (e: BlockError) => e.kind);
              expect(a).toBe(b);
            } else {
              const x = new Uint8Array(bytes);
              const y = new Uint8Array(bytes);
              const a = await d.read(o.sector, x).then(() => "ok", (e: BlockError) => e.kind);
              const b = await ref.read(o.sector, y).then(() => "ok", (e: BlockError) => e.kind);
              expect(a).toBe(b);
              if (a === "ok") expect(same(x, y)).toBe(true);
            }
          }
          expect(same(d.toBytes(), ref.data)).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("from() copies the bytes; bad sizes are host errors", async () => {
    const bytes = new Uint8Array(1024).fill(7);
    const d = RamDisk.from(bytes);
    bytes.fill(0);
    expect(d.toBytes().every((b) => b === 7)).toBe(true);
    expect(() => RamDisk.from(new Uint8Array(100))).toThrow(RangeError);
    expect(() => new RamDisk(0)).toThrow(RangeError);
    expect(() => new RamDisk(8, { sectorSize: 500 })).toThrow(RangeError);
  });
});

describe("ReadOnlyBlockDevice", () => {
  it("reads through and refuses writes without touching the inner device", async () => {
    const inner = new MemoryBlockDevice(8);
    inner.data.fill(3);
    const ro = new ReadOnlyBlockDevice(inner);
    expect(ro.info.readOnly).toBe(true);
    expect(ro.info.discard).toBe(false);
    const b = new Uint8Array(512);
    await ro.read(1, b);
    expect(b.every((x) => x === 3)).toBe(true);
    const e = await ro.write(0, new Uint8Array(512)).catch((x: BlockError) => x);
    expect(e).toBeInstanceOf(BlockError);
    expect((e as BlockError).kind).toBe("read-only");
    const e2 = await ro.write(9, new Uint8Array(512)).catch((x: BlockError) => x);
    expect((e2 as BlockError).kind).toBe("out-of-range");
    await ro.flush();
    expect(inner.log.filter((l) => l.op !== "read")).toEqual([]);
  });
});

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}
