import { describe, expect, it } from "vitest";
import { BlockError, checkBlockRequest, readVectored, writeVectored } from "../src/index.ts";
import { MemoryBlockDevice } from "../src/testing/index.ts";

describe("block requests", () => {
  const info = { sectorSize: 512, sectors: 100, readOnly: false, flush: true, discard: false };

  it("accepts whole sectors inside the device and refuses the rest", () => {
    expect(checkBlockRequest(info, 99, 512, true)).toBeUndefined();
    expect(checkBlockRequest(info, 99, 1024, false)?.kind).toBe("out-of-range");
    expect(checkBlockRequest(info, 0, 100, false)?.kind).toBe("misaligned");
    expect(checkBlockRequest({ ...info, readOnly: true }, 0, 512, true)?.kind).toBe("read-only");
    expect(checkBlockRequest(info, -1, 512, false)?.kind).toBe("out-of-range");
  });

  it("falls back to one call per buffer for devices without readv/writev, at consecutive sectors", async () => {
    const dev = new MemoryBlockDevice(16);
    await writeVectored(dev, 2, [new Uint8Array(512).fill(1), new Uint8Array(1024).fill(2)]);
    expect(dev.log.map((l) => [l.op, l.sector, l.bytes])).toEqual([["write", 2, 512], ["write", 3, 1024]]);
    const a = new Uint8Array(1024);
    const b = new Uint8Array(512);
    await readVectored(dev, 2, [a, b]);
    expect([a[0], a[511], a[512], b[0]]).toEqual([1, 1, 2, 2]);
    await expect(writeVectored(dev, 0, [new Uint8Array(100)])).rejects.toBeInstanceOf(BlockError);
  });
});
