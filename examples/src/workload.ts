/**
 * The demo's disk workload, for any BlockDevice: write known patterns at several offsets,
 * flush, read everything back and verify, and report each region's SHA-256 so the image
 * can be checked from outside (`dd` + `sha256sum`).
 */
import { createHash } from "node:crypto";
import type { BlockDevice } from "@paravirt/vm-interfaces";

export interface WrittenRegion {
  /** Byte offset in the device (= in the raw image file). */
  offset: number;
  length: number;
  sha256: string;
}

export interface WorkloadResult {
  writes: WrittenRegion[];
  verified: boolean;
  bytesWritten: number;
  bytesRead: number;
}

/** Deterministic pattern bytes (xorshift32 seeded by region), so a rerun writes the same data. */
export function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
    if (i + 1 < length) out[i + 1] = (x >>> 8) & 0xff;
    if (i + 2 < length) out[i + 2] = (x >>> 16) & 0xff;
    if (i + 3 < length) out[i + 3] = x >>> 24;
  }
  return out;
}

/** Regions spread over the device: the first sector, unaligned middles, the very end. */
export function planRegions(device: BlockDevice): { sector: number; sectors: number }[] {
  const { sectors } = device.info;
  const plan = [
    { sector: 0, sectors: 8 },
    { sector: 2048 + 3, sectors: 129 },
    { sector: Math.floor(sectors / 3) + 1, sectors: 256 },
    { sector: Math.floor(sectors / 2), sectors: 1 },
    { sector: Math.floor((sectors * 2) / 3) - 7, sectors: 64 },
    { sector: sectors - 128, sectors: 128 },
  ];
  return plan.filter((r) => r.sector >= 0 && r.sector + r.sectors <= sectors);
}

export interface WorkloadHooks {
  /** Called as each phase starts ("write", "flush", "read", "verify"). */
  phase?(name: string): void;
}

/** Runs the workload. Throws when a read-back differs from what was written. */
export async function runDiskWorkload(device: BlockDevice, hooks: WorkloadHooks = {}): Promise<WorkloadResult> {
  const ss = device.info.sectorSize;
  const regions = planRegions(device);
  const data = regions.map((r, i) => pattern(r.sectors * ss, i + 1));
  hooks.phase?.("write");
  await Promise.all(regions.map((r, i) => device.write(r.sector, data[i]!)));
  hooks.phase?.("flush");
  await device.flush();
  hooks.phase?.("read");
  const back = regions.map((r) => new Uint8Array(r.sectors * ss));
  await Promise.all(regions.map((r, i) => device.read(r.sector, back[i]!)));
  hooks.phase?.("verify");
  const bad = regions.findIndex((_, i) => Buffer.compare(Buffer.from(back[i]!), Buffer.from(data[i]!)) !== 0);
  if (bad >= 0) throw new Error(`read-back of region ${bad} (sector ${regions[bad]!.sector}) differs from what was written`);
  const bytes = data.reduce((n, d) => n + d.length, 0);
  return {
    writes: regions.map((r, i) => ({
      offset: r.sector * ss,
      length: data[i]!.length,
      sha256: createHash("sha256").update(data[i]!).digest("hex"),
    })),
    verified: true,
    bytesWritten: bytes,
    bytesRead: bytes,
  };
}

export interface ThroughputResult {
  pattern: "sequential" | "random";
  op: "read" | "write";
  blockBytes: number;
  bytes: number;
  /** Wall-clock seconds: what the emulator costs on this host. */
  seconds: number;
  mibPerSecond: number;
  iops: number;
  /** Virtual seconds, when a clock was given: what the emulated machine experienced. */
  virtualSeconds?: number;
  virtualMibPerSecond?: number;
  virtualIops?: number;
}

/**
 * The bytes the throughput runs write into their scratch area: a function of the byte's
 * position only, so whatever the order and overlap of writes, the area ends up holding exactly
 * `scratchPattern(area length)` and can be checked from outside.
 */
export function scratchPattern(length: number): Uint8Array {
  const out = new Uint8Array(length);
  const dv = new DataView(out.buffer);
  for (let i = 0; i + 4 <= length; i += 4) {
    let x = (i / 4 + 0x9e3779b9) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
    dv.setUint32(i, (x ^ (x >>> 16)) >>> 0, true);
  }
  return out;
}

/**
 * Wall-clock throughput of `count` requests of `blockBytes`, `depth` in flight, sequential or at
 * seeded random aligned offsets, within the scratch area `[startSector, startSector + scratch.length/ss)`.
 * Writes put `scratch`'s own bytes at their place (see {@link scratchPattern}).
 */
export async function measureThroughput(
  device: BlockDevice,
  op: "read" | "write",
  patternKind: "sequential" | "random",
  blockBytes: number,
  count: number,
  depth: number,
  startSector: number,
  scratch: Uint8Array,
  clock?: { now(): number },
): Promise<ThroughputResult> {
  const ss = device.info.sectorSize;
  const per = blockBytes / ss;
  const slots = Math.max(1, Math.floor(scratch.length / blockBytes));
  let x = 0x9e3779b9;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const readBufs = Array.from({ length: depth }, () => new Uint8Array(blockBytes));
  let issued = 0;
  const t0 = performance.now();
  const v0 = clock?.now();
  const worker = async (w: number) => {
    while (issued < count) {
      const i = issued++;
      const slot = patternKind === "sequential" ? i % slots : next() % slots;
      if (op === "read") await device.read(startSector + slot * per, readBufs[w]!);
      else await device.write(startSector + slot * per, scratch.subarray(slot * blockBytes, (slot + 1) * blockBytes));
    }
  };
  await Promise.all(Array.from({ length: depth }, (_, w) => worker(w)));
  const seconds = (performance.now() - t0) / 1000;
  const bytes = count * blockBytes;
  const r: ThroughputResult = { pattern: patternKind, op, blockBytes, bytes, seconds, mibPerSecond: bytes / 2 ** 20 / seconds, iops: count / seconds };
  if (clock !== undefined && v0 !== undefined) {
    const vs = (clock.now() - v0) / 1e9;
    r.virtualSeconds = vs;
    r.virtualMibPerSecond = bytes / 2 ** 20 / vs;
    r.virtualIops = count / vs;
  }
  return r;
}
