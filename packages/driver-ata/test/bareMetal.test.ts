/**
 * The ATA driver on bare metal: a PcBoard with hw-ide's PIIX function, disks on RAM disks or
 * an image file, the driver seeing only the BareMetalPlatform.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlockError, type BlockDevice } from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { BareMetalPlatform, PcBoard, trackBlockDevice } from "@paravirt/pc-board";
import { AtaDisk as IdeDisk, PiixIde } from "@paravirt/hw-ide";
import { RawImageFile } from "@paravirt/disk-image";
import { probeAta, type AtaDisk } from "../src/index.ts";

function machine(masterDisk: BlockDevice, slave?: BlockDevice) {
  const board = new PcBoard({ ramBytes: 32 << 20 });
  const master = trackBlockDevice(masterDisk, board.hostIo);
  const ide = new PiixIde({
    memory: board.memory,
    timers: board.clock,
    irq14: board.irqLine(14),
    irq15: board.irqLine(15),
    primary: { master: new IdeDisk(master), ...(slave ? { slave: new IdeDisk(slave) } : {}) },
  });
  ide.registerLegacyPorts(board.ports);
  board.plugPci(1, ide, 1);
  board.boot();
  const platform = new BareMetalPlatform(board);
  return { board, platform, ide };
}

/** Runs the machine until `p` settles. */
async function run<T>(board: PcBoard, p: Promise<T>): Promise<T> {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  p.then((v) => ((value = v), (done = true)), (e) => ((error = e), (done = true)));
  await board.run(() => done, { idleTimeoutMs: 10_000 });
  if (error !== undefined) throw error;
  return value as T;
}

/** Byte equality without vitest's element-by-element diffing (slow on megabytes). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + (i >> 9)) & 0xff);
}

describe("driver-ata on bare metal", () => {
  it("finds the PIIX function by PCI id and identifies master and slave", async () => {
    const { board, platform } = machine(new MemoryBlockDevice(20480), new MemoryBlockDevice(4096));
    const [ctl] = await run(board, probeAta(platform));
    expect(ctl!.controller.vendorId).toBe(0x8086);
    expect(ctl!.disks.map((d) => [d.name, d.info.sectors])).toEqual([["hda", 20480], ["hdb", 4096]]);
    expect(ctl!.disks[0]!.identity.dma).toBe(true);
    expect(platform.logs.some((l) => l.startsWith("hda:"))).toBe(true);
  });

  it("writes and reads back patterns with bus-master DMA, zero copy from DMA-able memory", async () => {
    const backing = new MemoryBlockDevice(20480);
    const { board, platform } = machine(backing);
    const [ctl] = await run(board, probeAta(platform));
    const disk = ctl!.disks[0]!;
    // A buffer in machine RAM (DMA-able) and one on the JS heap (bounced).
    const dmaBuf = platform.dmaAlloc(64 * 1024).bytes;
    dmaBuf.set(pattern(64 * 1024, 1));
    const heapBuf = pattern(3 * 512, 2);
    await run(board, Promise.all([disk.write(100, dmaBuf), disk.write(7, heapBuf)]));
    expect(same(backing.data.subarray(100 * 512, 100 * 512 + 65536), pattern(64 * 1024, 1))).toBe(true);
    expect(same(backing.data.subarray(7 * 512, 10 * 512), heapBuf)).toBe(true);
    const back = new Uint8Array(64 * 1024);
    await run(board, disk.read(100, back));
    expect(same(back, pattern(64 * 1024, 1))).toBe(true);
    expect(disk.channel.stats.zeroCopy).toBeGreaterThan(0);
    expect(disk.channel.stats.bounced).toBeGreaterThan(0);
  });

  it("splits a large request, keeps many in flight, and completes them all", async () => {
    const backing = new MemoryBlockDevice(20480);
    const { board, platform } = machine(backing);
    const disk = (await run(board, probeAta(platform)))[0]!.disks[0]!;
    const big = pattern(1024 * 1024, 3);
    const smalls = Array.from({ length: 20 }, (_, i) => pattern(4096, 10 + i));
    await run(board, Promise.all([disk.write(4096, big), ...smalls.map((b, i) => disk.write(i * 8, b))]));
    expect(same(backing.data.subarray(4096 * 512, 4096 * 512 + big.length), big)).toBe(true);
    smalls.forEach((b, i) => expect(backing.data.subarray(i * 8 * 512, i * 8 * 512 + 4096)).toEqual(b));
  });

  it("writes and reads scattered DMA-able pieces with one command per transfer (readv/writev)", async () => {
    const backing = new MemoryBlockDevice(20480);
    const { board, platform } = machine(backing);
    const disk = (await run(board, probeAta(platform)))[0]!.disks[0]!;
    // Three pages that are not adjacent in memory.
    const pages = [platform.dmaAlloc(4096), platform.dmaAlloc(4096), platform.dmaAlloc(4096)];
    platform.dmaAlloc(4096);
    const far = platform.dmaAlloc(4096);
    const bufs = [pages[0]!.bytes, far.bytes, pages[1]!.bytes];
    bufs.forEach((b, i) => b.set(pattern(4096, 40 + i)));
    const before = disk.channel.stats.commands;
    await run(board, disk.writev(64, bufs));
    expect(disk.channel.stats.commands - before).toBe(1);
    bufs.forEach((b, i) => expect(same(backing.data.subarray((64 + i * 8) * 512, (72 + i * 8) * 512), pattern(4096, 40 + i))).toBe(true));
    const back = [platform.dmaAlloc(8192).bytes, platform.dmaAlloc(4096).bytes];
    await run(board, disk.readv(64, back));
    expect(disk.channel.stats.commands - before).toBe(2);
    expect(same(back[0]!.subarray(4096), pattern(4096, 41))).toBe(true);
    expect(same(back[1]!, pattern(4096, 42))).toBe(true);
  });

  it("sends FLUSH CACHE on flush()", async () => {
    const backing = new MemoryBlockDevice(4096);
    const { board, platform } = machine(backing);
    const disk = (await run(board, probeAta(platform)))[0]!.disks[0]!;
    await run(board, disk.flush());
    expect(backing.log.some((l) => l.op === "flush")).toBe(true);
  });

  it("reports a medium error as a BlockError and keeps serving", async () => {
    const backing = new MemoryBlockDevice(4096);
    const { board, platform } = machine(backing);
    const disk = (await run(board, probeAta(platform)))[0]!.disks[0]!;
    backing.failNext = true;
    await expect(run(board, disk.read(0, new Uint8Array(512)))).rejects.toBeInstanceOf(BlockError);
    await run(board, disk.write(1, pattern(512, 9)));
    expect(same(backing.data.subarray(512, 1024), pattern(512, 9))).toBe(true);
  });

  it("rejects requests beyond the disk before they reach the hardware", async () => {
    const { board, platform } = machine(new MemoryBlockDevice(1024));
    const disk: AtaDisk = (await run(board, probeAta(platform)))[0]!.disks[0]!;
    await expect(disk.read(1024, new Uint8Array(512))).rejects.toMatchObject({ kind: "out-of-range" });
  });

  it("writes a raw image file that holds exactly the pattern afterwards", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ata-"));
    const path = join(dir, "disk.img");
    const image = await RawImageFile.open(path, { create: 8 << 20 });
    const { board, platform } = machine(image);
    const disk = (await run(board, probeAta(platform)))[0]!.disks[0]!;
    await run(board, disk.write(2049, pattern(8192, 5)));
    await run(board, disk.flush());
    await image.close();
    expect(same(readFileSync(path).subarray(2049 * 512, 2049 * 512 + 8192), Buffer.from(pattern(8192, 5)))).toBe(true);
  });
});
