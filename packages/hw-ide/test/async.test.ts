import { describe, expect, it } from "vitest";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { ATA_CMD, ATA_STATUS, BM_STATUS } from "../src/index.ts";
import { BM, held, machine, P, pattern, S } from "./harness.ts";

describe("block I/O that settles later than the timers", () => {
  it("a READ DMA stays in the data phase until the block read settles", async () => {
    const d = new MemoryBlockDevice(64);
    d.data.set(pattern(0, 4));
    const h = held(d);
    const m = machine({ master: h.dev });
    m.prdTable(0x1000, [{ addr: 0x8000, bytes: 2048 }]);
    m.lba28(0, 4);
    m.outb(P.CMD, ATA_CMD.READ_DMA);
    m.startBm(true);
    await m.settle();
    expect(h.waiting.length).toBe(1);
    expect(m.inb(P.CTL)).toBe(0x58);
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.ACTIVE);
    expect(m.irq14.level).toBe(false);
    h.releaseAll();
    await m.settle();
    expect(m.irq14.level).toBe(true);
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
    expect(m.mem.bytes.subarray(0x8000, 0x8800)).toEqual(pattern(0, 4));
  });

  it("stopping the bus master while the block read is in flight: the late result is dropped; a restart redoes it", async () => {
    const d = new MemoryBlockDevice(64);
    d.data.set(pattern(0, 4));
    const h = held(d);
    const m = machine({ master: h.dev });
    m.prdTable(0x1000, [{ addr: 0x8000, bytes: 2048 }]);
    m.lba28(0, 4);
    m.outb(P.CMD, ATA_CMD.READ_DMA);
    m.startBm(true);
    await m.settle();
    m.stopBm();
    h.releaseAll();
    await m.settle();
    expect(m.irq14.raised).toBe(0);
    expect(m.inb(BM.STATUS)).toBe(0);
    expect(m.inb(P.CTL)).toBe(0x58);
    m.startBm(true);
    await m.settle();
    h.releaseAll();
    await m.settle();
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(m.mem.bytes.subarray(0x8000, 0x8800)).toEqual(pattern(0, 4));
  });

  it("the two channels run at the same time, and complete in the order their I/O settles", async () => {
    const d0 = new MemoryBlockDevice(64);
    const d1 = new MemoryBlockDevice(64);
    d1.data.set(pattern(0, 2, 9));
    const h0 = held(d0);
    const h1 = held(d1);
    const m = machine({ master: h0.dev, secondaryMaster: h1.dev });
    m.outb(P.CMD, ATA_CMD.FLUSH_CACHE);
    m.outb(S.DEV, 0xe0);
    m.outb(S.COUNT, 1);
    m.outb(S.LBAL, 1);
    m.outb(S.LBAM, 0);
    m.outb(S.LBAH, 0);
    m.outb(S.CMD, ATA_CMD.READ_SECTORS);
    await m.settle();
    expect(h0.waiting.length + h1.waiting.length).toBe(2);
    h1.releaseAll();
    await m.settle();
    expect(m.irq15.level).toBe(true);
    expect(m.irq14.level).toBe(false);
    expect(m.inb(P.CTL) & ATA_STATUS.BSY).toBe(ATA_STATUS.BSY);
    expect(m.inb(S.STATUS)).toBe(0x58);
    expect(m.readBytes(512, S.DATA)).toEqual(pattern(1, 1, 9));
    h0.releaseAll();
    await m.settle();
    expect(m.irq14.level).toBe(true);
    expect(m.inb(P.STATUS)).toBe(0x50);
  });

  it("a PIO write block is committed only when the BlockDevice write settles", async () => {
    const d = new MemoryBlockDevice(64);
    const h = held(d);
    const m = machine({ master: h.dev });
    m.lba28(5, 2);
    m.outb(P.CMD, ATA_CMD.WRITE_SECTORS);
    m.writeBytes(pattern(5, 1));
    await m.settle();
    expect(m.inb(P.CTL)).toBe(ATA_STATUS.BSY | ATA_STATUS.DRDY);
    expect(m.irq14.level).toBe(false);
    h.releaseAll();
    await m.settle();
    expect(m.irq14.level).toBe(true);
    expect(m.inb(P.STATUS)).toBe(0x58);
    expect(m.inb(P.LBAL)).toBe(6);
    expect(m.inb(P.COUNT)).toBe(1);
  });
});
