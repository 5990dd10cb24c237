import { describe, expect, it } from "vitest";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { RamDisk } from "@paravirt/disk-image";
import { ATA_CMD, ATA_ERROR, ATA_STATUS } from "../src/index.ts";
import { machine, P, pattern } from "./harness.ts";

function disk(sectors = 1024): MemoryBlockDevice {
  const d = new MemoryBlockDevice(sectors);
  d.data.set(pattern(0, sectors));
  return d;
}

describe("READ SECTORS (PIO data-in)", () => {
  it("BSY until the block is read, then DRQ + IRQ per sector; the task file ends at the next LBA", async () => {
    const d = disk();
    const m = machine({ master: d });
    m.lba28(5, 2);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    expect(m.inb(P.CTL)).toBe(ATA_STATUS.BSY | ATA_STATUS.DRDY);
    // Not before the command delay.
    m.clock.advanceBy(19_000);
    await m.drain();
    expect(m.inb(P.CTL) & ATA_STATUS.BSY).toBe(ATA_STATUS.BSY);
    await m.waitNotBusy();
    expect(m.irq14.raised).toBe(1);
    expect(m.inb(P.STATUS)).toBe(0x58);
    expect(m.irq14.level).toBe(false);
    expect(m.readBytes(512)).toEqual(pattern(5, 1));
    await m.waitNotBusy();
    expect(m.irq14.raised).toBe(2);
    expect(m.inb(P.STATUS)).toBe(0x58);
    expect(m.readBytes(512)).toEqual(pattern(6, 1));
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(m.irq14.raised).toBe(2); // no interrupt after the last block of a read
    expect(m.inb(P.COUNT)).toBe(0);
    expect(m.inb(P.LBAL)).toBe(7);
    expect(d.log).toEqual([
      { op: "read", sector: 5, bytes: 512 },
      { op: "read", sector: 6, bytes: 512 },
    ]);
  });

  it("count 0 means 256 sectors", async () => {
    const d = disk(300);
    const m = machine({ master: d });
    m.lba28(10, 0);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    for (let s = 0; s < 256; s++) {
      await m.waitNotBusy();
      expect(m.inb(P.STATUS)).toBe(0x58);
      const got = m.readBytes(512);
      expect(got[0]).toBe(pattern(10 + s, 1)[0]);
    }
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(m.irq14.raised).toBe(256);
  });

  it("8-bit data reads consume a word and return its low byte", async () => {
    const m = machine({ master: disk() });
    m.lba28(1, 1);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    await m.waitNotBusy();
    const p = pattern(1, 1);
    expect(m.inb(P.DATA)).toBe(p[0]);
    expect(m.inb(P.DATA)).toBe(p[2]);
  });

  it("CHS addressing uses the current translation (16 heads, 63 sectors)", async () => {
    const m = machine({ master: disk(2100) });
    // C/H/S = 1/2/3 -> LBA (1*16+2)*63 + 2 = 1136
    m.outb(P.DEV, 0xa0 | 2);
    m.outb(P.COUNT, 1);
    m.outb(P.LBAL, 3);
    m.outb(P.LBAM, 1);
    m.outb(P.LBAH, 0);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    await m.waitNotBusy();
    expect(m.inb(P.STATUS)).toBe(0x58);
    expect(m.readBytes(512)).toEqual(pattern(1136, 1));
    // The next address is written back in CHS form: sector 4.
    expect(m.inb(P.LBAL)).toBe(4);
    expect(m.inb(P.DEV) & 0xf).toBe(2);
  });

  it("CHS sector 0 is outside the translation: IDNF", async () => {
    const m = machine({ master: disk(2100) });
    m.outb(P.DEV, 0xa0);
    m.outb(P.COUNT, 1);
    m.outb(P.LBAL, 0);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x41);
    expect(m.inb(P.ERR)).toBe(ATA_ERROR.IDNF);
  });
});

describe("WRITE SECTORS (PIO data-out)", () => {
  it("DRQ at once without IRQ, IRQ after each block is on the disk, final 0x50", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    m.lba28(3, 2);
    m.outb(P.CMD, ATA_CMD.WRITE_SECTORS);
    expect(m.inb(P.CTL)).toBe(0x58);
    expect(m.irq14.raised).toBe(0);
    m.writeBytes(pattern(3, 1, 9));
    expect(m.inb(P.CTL) & ATA_STATUS.BSY).toBe(ATA_STATUS.BSY);
    expect(d.log).toEqual([]); // not written inside the register write
    await m.waitNotBusy();
    expect(m.irq14.raised).toBe(1);
    expect(m.inb(P.STATUS)).toBe(0x58);
    expect(d.data.subarray(3 * 512, 4 * 512)).toEqual(pattern(3, 1, 9));
    m.writeBytes(pattern(4, 1, 9));
    await m.waitNotBusy();
    expect(m.irq14.raised).toBe(2);
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(d.data.subarray(4 * 512, 5 * 512)).toEqual(pattern(4, 1, 9));
    expect(m.inb(P.LBAL)).toBe(5);
  });

  it("32-bit data writes", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    m.lba28(0, 1);
    m.outb(P.CMD, ATA_CMD.WRITE_SECTORS);
    const src = pattern(0, 1, 3);
    const dv = new DataView(src.buffer);
    for (let i = 0; i < 512; i += 4) m.outl(P.DATA, dv.getUint32(i, true));
    await m.waitNotBusy();
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(d.data.subarray(0, 512)).toEqual(src);
  });

  it("with the write cache disabled every block is flushed before its interrupt", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    m.outb(P.FEAT, 0x82);
    m.outb(P.CMD, ATA_CMD.SET_FEATURES);
    await m.settle();
    d.log.length = 0;
    m.lba28(0, 1);
    m.outb(P.CMD, ATA_CMD.WRITE_SECTORS);
    m.writeBytes(pattern(0, 1));
    await m.settle();
    expect(d.log.map((l) => l.op)).toEqual(["write", "flush"]);
  });
});

describe("READ/WRITE MULTIPLE", () => {
  it("moves multiple-count blocks per DRQ/IRQ after SET MULTIPLE MODE 4", async () => {
    const d = disk(64);
    const m = machine({ master: d });
    m.outb(P.COUNT, 4);
    m.outb(P.CMD, ATA_CMD.SET_MULTIPLE_MODE);
    await m.settle();
    m.inb(P.STATUS);
    m.lba28(8, 10);
    m.outb(P.CMD, ATA_CMD.READ_MULTIPLE);
    const got: Uint8Array[] = [];
    for (const n of [4, 4, 2]) {
      await m.waitNotBusy();
      expect(m.inb(P.STATUS)).toBe(0x58);
      got.push(m.readBytes(n * 512));
    }
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(m.irq14.raised).toBe(4); // SET MULTIPLE + three blocks
    expect(Buffer.concat(got)).toEqual(Buffer.from(pattern(8, 10)));
    expect(d.log.map((l) => l.bytes)).toEqual([2048, 2048, 1024]);

    m.lba28(40, 6);
    m.outb(P.CMD, ATA_CMD.WRITE_MULTIPLE);
    expect(m.inb(P.CTL)).toBe(0x58);
    m.writeBytes(pattern(40, 4, 1));
    await m.waitNotBusy();
    expect(m.inb(P.STATUS)).toBe(0x58);
    m.writeBytes(pattern(44, 2, 1));
    await m.waitNotBusy();
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(d.data.subarray(40 * 512, 46 * 512)).toEqual(pattern(40, 6, 1));
  });

  it("SET MULTIPLE MODE refuses a count that is not a power of two up to 16; 0 disables multiple mode", async () => {
    const m = machine({ master: disk(64) });
    for (const [count, status] of [
      [3, 0x41],
      [32, 0x41],
      [16, 0x50],
      [0, 0x50],
    ] as const) {
      m.outb(P.COUNT, count);
      m.outb(P.CMD, ATA_CMD.SET_MULTIPLE_MODE);
      await m.settle();
      expect(m.inb(P.STATUS)).toBe(status);
    }
    m.lba28(0, 1);
    m.outb(P.CMD, ATA_CMD.READ_MULTIPLE);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x41);
    expect(m.inb(P.ERR)).toBe(ATA_ERROR.ABRT);
  });
});

describe("LBA48 commands", () => {
  it("READ SECTORS EXT beyond 2^28 with the HOB bytes, and HOB reads back", async () => {
    const d = new RamDisk(2 ** 33);
    const lba = 0x1_2345_6789;
    await d.write(lba, pattern(7, 1));
    const m = machine({ master: d });
    m.lba48(lba, 1);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS_EXT);
    await m.waitNotBusy();
    expect(m.inb(P.STATUS)).toBe(0x58);
    expect(m.readBytes(512)).toEqual(pattern(7, 1));
    expect(m.inb(P.STATUS)).toBe(0x50);
    // Next address lba+1 = 0x1_2345_678A in LOB and HOB registers.
    expect([m.inb(P.LBAL), m.inb(P.LBAM), m.inb(P.LBAH)]).toEqual([0x8a, 0x67, 0x45]);
    m.outb(P.CTL, 0x80);
    expect([m.inb(P.LBAL), m.inb(P.LBAM), m.inb(P.LBAH)]).toEqual([0x23, 0x01, 0x00]);
    m.outb(P.CTL, 0);
  });

  it("WRITE SECTORS EXT and READ MULTIPLE EXT with a 16-bit count", async () => {
    const d = new RamDisk(70000);
    const m = machine({ master: d });
    m.lba48(0x10000, 0x101);
    m.outb(P.CMD, ATA_CMD.WRITE_SECTORS_EXT);
    for (let s = 0; s < 0x101; s++) {
      await m.waitNotBusy();
      expect(m.inb(P.CTL) & 0x08).toBe(0x08);
      m.writeBytes(pattern(s, 1));
    }
    await m.waitNotBusy();
    expect(m.inb(P.STATUS)).toBe(0x50);
    const back = new Uint8Array(0x101 * 512);
    await d.read(0x10000, back);
    expect(back).toEqual(pattern(0, 0x101));
    m.lba48(0x10000 + 0x100, 1);
    m.outb(P.CMD, ATA_CMD.READ_MULTIPLE_EXT);
    await m.waitNotBusy();
    expect(m.readBytes(512)).toEqual(pattern(0x100, 1));
  });
});

describe("task-file register semantics", () => {
  it("registers 1-6 are written to both devices and ignored while BSY or DRQ", async () => {
    const m = machine({ master: disk(64) });
    m.lba28(1, 1);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    m.outb(P.LBAL, 0x55); // BSY: ignored
    expect(m.inb(P.LBAL)).toBe(1);
    await m.waitNotBusy();
    m.outb(P.LBAL, 0x66); // DRQ: ignored
    m.outb(P.CMD, ATA_CMD.IDENTIFY_DEVICE); // ignored too
    expect(m.inb(P.LBAL)).toBe(2);
    m.readBytes(512);
    m.outb(P.LBAL, 0x77);
    expect(m.inb(P.LBAL)).toBe(0x77);
  });

  it("Device reads back with bits 7 and 5 set; HOB selects the previous bytes and any write clears HOB", () => {
    const m = machine({ master: disk(64) });
    m.outb(P.DEV, 0x40);
    expect(m.inb(P.DEV)).toBe(0xe0);
    m.outb(P.COUNT, 0x12);
    m.outb(P.COUNT, 0x34);
    m.outb(P.FEAT, 0xaa);
    m.outb(P.FEAT, 0xbb);
    m.outb(P.CTL, 0x80);
    expect(m.inb(P.COUNT)).toBe(0x12);
    expect(m.inb(P.ERR)).toBe(0xaa);
    m.outb(P.LBAL, 1); // clears HOB
    expect(m.inb(P.COUNT)).toBe(0x34);
  });
});
