import { describe, expect, it } from "vitest";
import { IoBus, IoBusError, type AccessSize, type IoDevice } from "../src/index.ts";

/** A device with `length` byte registers, implementing only the given access sizes. */
function regs(length: number, accessSizes?: AccessSize[]) {
  const bytes = new Uint8Array(length);
  const calls: string[] = [];
  const dev: IoDevice = {
    accessSizes,
    read(offset, size) {
      calls.push(`r${size}@${offset}`);
      let v = 0;
      for (let i = size - 1; i >= 0; i--) v = (v << 8) | bytes[offset + i]!;
      return v >>> 0;
    },
    write(offset, size, value) {
      calls.push(`w${size}@${offset}`);
      for (let i = 0; i < size; i++) bytes[offset + i] = (value >>> (8 * i)) & 0xff;
    },
  };
  return { dev, bytes, calls };
}

describe("IoBus", () => {
  it("routes accesses to the device with offsets from its base", () => {
    const bus = new IoBus();
    const r = regs(8);
    bus.register({ base: 0x1f0, length: 8 }, r.dev, "ide");
    bus.write(0x1f2, 1, 0x5a);
    expect(r.bytes[2]).toBe(0x5a);
    expect(bus.read(0x1f2, 1)).toBe(0x5a);
    expect(r.calls).toEqual(["w1@2", "r1@2"]);
  });

  it("refuses overlapping claims and keeps the first", () => {
    const bus = new IoBus();
    bus.register({ base: 0x170, length: 8 }, regs(8).dev, "ide1");
    expect(() => bus.register({ base: 0x177, length: 2 }, regs(2).dev, "other")).toThrow(IoBusError);
    expect(bus.find(0x177)?.name).toBe("ide1");
    expect(bus.find(0x178)).toBeUndefined();
  });

  it("refuses empty ranges and ranges leaving the space", () => {
    const bus = new IoBus(0x10000);
    expect(() => bus.register({ base: 0, length: 0 }, regs(1).dev)).toThrow(/empty/);
    expect(() => bus.register({ base: 0xffff, length: 2 }, regs(2).dev)).toThrow(/leaves the bus/);
  });

  it("reads all ones from unclaimed addresses and drops writes", () => {
    const bus = new IoBus();
    expect(bus.read(0x80, 1)).toBe(0xff);
    expect(bus.read(0x80, 2)).toBe(0xffff);
    expect(bus.read(0x80, 4)).toBe(0xffffffff);
    bus.write(0x80, 4, 0);
  });

  it("splits a dword access into bytes for a byte-only device, little-endian", () => {
    const bus = new IoBus();
    const r = regs(4, [1]);
    bus.register({ base: 0x60, length: 4 }, r.dev);
    bus.write(0x60, 4, 0x44332211);
    expect(Array.from(r.bytes)).toEqual([0x11, 0x22, 0x33, 0x44]);
    expect(bus.read(0x60, 4)).toBe(0x44332211);
    expect(r.calls.filter((c) => c.startsWith("w"))).toEqual(["w1@0", "w1@1", "w1@2", "w1@3"]);
  });

  it("turns a byte access to a dword-only device into a read-modify-write of the dword", () => {
    const bus = new IoBus(2 ** 32);
    const r = regs(8, [4]);
    bus.register({ base: 0xfebc0000, length: 8 }, r.dev);
    bus.write(0xfebc0000, 4, 0xaabbccdd);
    bus.write(0xfebc0001, 1, 0x11);
    expect(bus.read(0xfebc0000, 4)).toBe(0xaabb11dd);
    expect(bus.read(0xfebc0002, 1)).toBe(0xbb);
  });

  it("answers all ones for the part of a wide access past the end of a claim", () => {
    const bus = new IoBus();
    const r = regs(1, [1]);
    r.bytes[0] = 0x12;
    bus.register({ base: 0x3f6, length: 1 }, r.dev);
    expect(bus.read(0x3f6, 2)).toBe(0xff12);
  });

  it("stops routing after unregister", () => {
    const bus = new IoBus();
    const r = regs(2);
    bus.register({ base: 0x10, length: 2 }, r.dev);
    bus.unregister(0x10, r.dev);
    expect(bus.read(0x10, 1)).toBe(0xff);
    expect(() => bus.unregister(0x10, r.dev)).toThrow(IoBusError);
  });
});
