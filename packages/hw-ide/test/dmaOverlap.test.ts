/**
 * A DMA command's host I/O starts with its data phase (bus master started, PRD table read), as
 * QEMU's ide/dma submits its AIO; the command completes (status, INTRQ) at the later of the
 * modelled transfer end and the host's completion. Read data reaches guest memory only then.
 */
import { describe, expect, it } from "vitest";
import { BlockError, type BlockDevice } from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { ATA_CMD, ATA_ERROR, ATA_STATUS, BM_STATUS, DEFAULT_ATA_TIMING, type HostOverlap } from "../src/index.ts";
import { BM, held, machine, P, pattern } from "./harness.ts";

/** An overlap hook counting what the machine would wait for, as a HostIoTracker does. */
function counting(block: BlockDevice) {
  const o = {
    waits: 0,
    inFlight: 0,
    overlap: {
      block,
      wait: (p: Promise<void>) => {
        o.waits++;
        o.inFlight++;
        return p.finally(() => o.inFlight--);
      },
    } satisfies HostOverlap,
  };
  return o;
}

const MODELLED_4 = DEFAULT_ATA_TIMING.commandNs + 4 * DEFAULT_ATA_TIMING.sectorNs;

function readDma(dev: BlockDevice, overlap?: HostOverlap) {
  const m = machine({ master: dev, ...(overlap ? { disk: { overlap } } : {}) });
  m.prdTable(0x1000, [{ addr: 0x8000, bytes: 2048 }]);
  m.lba28(0, 4);
  m.outb(P.CMD, ATA_CMD.READ_DMA);
  m.startBm(true);
  return m;
}

/** A READ DMA of sectors 0-3 whose host read is in flight (through a counting overlap hook with `overlap`). */
async function inFlight(overlap = false) {
  const d = new MemoryBlockDevice(64);
  d.data.set(pattern(0, 4));
  const h = held(d);
  const o = counting(h.dev);
  const m = readDma(h.dev, overlap ? o.overlap : undefined);
  await m.drain();
  return { h, o, m };
}

describe("DMA host I/O overlaps the modelled transfer", () => {
  it("the host read starts when the bus master starts, before any virtual time passes", async () => {
    const h = held(new MemoryBlockDevice(64));
    const m = readDma(h.dev);
    await m.drain();
    expect(h.waiting.length).toBe(1);
    expect(m.clock.now()).toBe(0);
    expect(m.disks.master!.phase).toBe("dma-run");
  });

  it("a read the host finished early completes at the modelled end, and its data reaches guest memory only then", async () => {
    const { h, o, m } = await inFlight(true);
    h.releaseAll();
    await m.drain();
    // The host is done; the disk is still in its data phase and guest memory is untouched.
    expect(m.inb(P.CTL)).toBe(0x58);
    expect(m.irq14.level).toBe(false);
    expect(m.mem.bytes.subarray(0x8000, 0x8800).every((b) => b === 0)).toBe(true);
    await m.settle();
    expect(m.clock.now()).toBe(MODELLED_4);
    expect(m.irq14.level).toBe(true);
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
    expect(m.mem.bytes.subarray(0x8000, 0x8800)).toEqual(pattern(0, 4));
    // The machine never had to wait for the host.
    expect(o.waits).toBe(0);
  });

  it("a read the host finishes late: the machine waits for it from the modelled end, virtual time stays there", async () => {
    const { h, o, m } = await inFlight(true);
    await m.settle();
    expect(m.clock.now()).toBe(MODELLED_4);
    expect(o.waits).toBe(1);
    expect(o.inFlight).toBe(1);
    expect(m.irq14.level).toBe(false);
    expect(m.inb(P.CTL)).toBe(0x58);
    h.releaseAll();
    await m.settle();
    expect(o.inFlight).toBe(0);
    expect(m.clock.now()).toBe(MODELLED_4);
    expect(m.irq14.level).toBe(true);
    expect(m.mem.bytes.subarray(0x8000, 0x8800)).toEqual(pattern(0, 4));
  });

  it("stopping the bus master with the read in flight: the late data never reaches guest memory", async () => {
    const { h, m } = await inFlight();
    m.stopBm();
    h.releaseAll();
    await m.settle();
    expect(m.mem.bytes.subarray(0x8000, 0x8800).every((b) => b === 0)).toBe(true);
    expect(m.irq14.raised).toBe(0);
    expect(m.disks.master!.phase).toBe("dma-wait");
  });

  it("a software reset with the read in flight: the late data never reaches guest memory", async () => {
    const { h, m } = await inFlight();
    m.outb(P.CTL, 0x04); // SRST
    m.outb(P.CTL, 0x00);
    h.releaseAll();
    await m.settle();
    expect(m.mem.bytes.subarray(0x8000, 0x8800).every((b) => b === 0)).toBe(true);
    expect(m.inb(P.STATUS)).toBe(ATA_STATUS.DRDY | ATA_STATUS.DSC);
  });

  it("a host read error reported before the modelled end is UNC at the modelled end", async () => {
    const h = held(new MemoryBlockDevice(64));
    const m = readDma(h.dev);
    await m.drain();
    h.failAll(new BlockError("io", "medium error"));
    await m.drain();
    expect(m.inb(P.CTL)).toBe(0x58);
    await m.settle();
    expect(m.clock.now()).toBe(MODELLED_4);
    expect(m.inb(P.STATUS)).toBe(ATA_STATUS.DRDY | ATA_STATUS.ERR);
    expect(m.inb(P.ERR)).toBe(ATA_ERROR.UNC);
    expect(m.mem.bytes.subarray(0x8000, 0x8800).every((b) => b === 0)).toBe(true);
  });

  it("a write's host I/O starts with the data phase and reads guest memory then; status comes at the modelled end", async () => {
    const d = new MemoryBlockDevice(64);
    const o = counting(d);
    const m = machine({ master: d, disk: { overlap: o.overlap } });
    m.mem.bytes.set(pattern(7, 4), 0x8000);
    m.prdTable(0x1000, [{ addr: 0x8000, bytes: 2048 }]);
    m.lba28(7, 4);
    m.outb(P.CMD, ATA_CMD.WRITE_DMA);
    m.startBm(false);
    await m.drain();
    expect(d.data.subarray(7 * 512, 11 * 512)).toEqual(pattern(7, 4));
    expect(m.inb(P.CTL)).toBe(0x58);
    expect(m.irq14.level).toBe(false);
    await m.settle();
    expect(m.clock.now()).toBe(MODELLED_4);
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(o.waits).toBe(0);
  });

  it("an out-of-range write through the overlap device is IDNF with nothing written", async () => {
    const d = new MemoryBlockDevice(64);
    const o = counting(d);
    const m = machine({ master: d, disk: { overlap: o.overlap } });
    m.mem.bytes.fill(0xaa, 0x8000, 0x8800);
    m.prdTable(0x1000, [{ addr: 0x8000, bytes: 2048 }]);
    m.lba28(62, 4);
    m.outb(P.CMD, ATA_CMD.WRITE_DMA);
    m.startBm(false);
    await m.settle();
    expect(m.inb(P.STATUS) & ATA_STATUS.ERR).toBe(ATA_STATUS.ERR);
    expect(m.inb(P.ERR)).toBe(ATA_ERROR.IDNF);
    expect(d.data.every((b) => b === 0)).toBe(true);
  });

  it("the I/O goes to the overlap device, not the drive's own", async () => {
    const own = new MemoryBlockDevice(64);
    const other = new MemoryBlockDevice(64);
    other.data.set(pattern(0, 4, 3));
    const m = readDma(own, counting(other).overlap);
    await m.settle();
    expect(m.mem.bytes.subarray(0x8000, 0x8800)).toEqual(pattern(0, 4, 3));
  });
});
