import { describe, expect, it } from "vitest";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { RamDisk } from "@paravirt/disk-image";
import { ATA_CMD, ATA_STATUS, getAtaString, ID_WORD } from "../src/index.ts";
import { machine, P } from "./harness.ts";

async function identify(m: ReturnType<typeof machine>): Promise<Uint16Array> {
  m.outb(P.CMD, ATA_CMD.IDENTIFY_DEVICE);
  await m.waitNotBusy();
  expect(m.inb(P.STATUS) & (ATA_STATUS.DRQ | ATA_STATUS.ERR)).toBe(ATA_STATUS.DRQ);
  return m.readWords(256);
}

describe("IDENTIFY DEVICE", () => {
  it("follows ide-test /ide/identify: DRQ for every word, IRQ semantics, strings", async () => {
    const m = machine({ master: new MemoryBlockDevice(130 * 16 * 63), disk: { serial: "testdisk", firmware: "version", model: "QEMU HARDDISK" } });
    m.outb(P.DEV, 0);
    expect(m.inb(P.DEV) & 0x10).toBe(0);
    m.outb(P.CMD, ATA_CMD.IDENTIFY_DEVICE);
    // Completion is scheduled in virtual time, not done inside the register write.
    expect(m.inb(P.CTL) & ATA_STATUS.BSY).toBe(ATA_STATUS.BSY);
    expect(m.irq14.level).toBe(false);
    await m.settle();
    expect(m.irq14.level).toBe(true);
    expect(m.inb(P.CTL)).toBe(0x58); // alternate status does not acknowledge
    expect(m.irq14.level).toBe(true);
    expect(m.inb(P.STATUS)).toBe(0x58);
    expect(m.irq14.level).toBe(false); // reading the status register clears the IRQ
    const w = new Uint16Array(256);
    for (let i = 0; i < 256; i++) {
      const st = m.inb(P.CTL);
      expect(st & (ATA_STATUS.DRDY | ATA_STATUS.DRQ)).toBe(ATA_STATUS.DRDY | ATA_STATUS.DRQ);
      expect(st & (ATA_STATUS.BSY | ATA_STATUS.DF | ATA_STATUS.ERR)).toBe(0);
      w[i] = m.inw(P.DATA);
    }
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(m.inw(P.DATA)).toBe(0); // no data phase: reads 0
    expect(getAtaString(w, ID_WORD.SERIAL, 20)).toBe("testdisk".padEnd(20));
    expect(getAtaString(w, ID_WORD.FIRMWARE, 8)).toBe("version ");
    expect(getAtaString(w, ID_WORD.MODEL, 40)).toBe("QEMU HARDDISK".padEnd(40));
    expect(w[ID_WORD.ENABLED1]! & (1 << 5)).toBe(1 << 5); // write cache enabled
  });

  it("is a complete, self-consistent block (QEMU's values on a 130x16x63 image)", async () => {
    const sectors = 130 * 16 * 63;
    const m = machine({ master: new MemoryBlockDevice(sectors) });
    const w = await identify(m);
    expect(w[0]).toBe(0x0040);
    expect([w[1], w[3], w[6]]).toEqual([130, 16, 63]);
    expect([w[54], w[55], w[56]]).toEqual([130, 16, 63]);
    expect(w[57]! | (w[58]! << 16)).toBe(sectors);
    expect(w[47]).toBe(0x8010);
    expect(w[49]! & 0x0300).toBe(0x0300); // LBA and DMA
    expect(w[53]).toBe(0x0007);
    expect(w[59]).toBe(0x0110);
    expect(w[60]! | (w[61]! << 16)).toBe(sectors);
    expect(w[63]! & 0x7).toBe(0x7);
    expect(w[64]).toBe(0x0003);
    expect(w[88]).toBe(0x203f); // UDMA 0-5, UDMA5 selected
    expect(w[100]! + w[101]! * 65536 + w[102]! * 2 ** 32 + w[103]! * 2 ** 48).toBe(sectors);
    // Enabled features are a subset of the supported ones; bit 14 = 1 and bit 15 = 0 where required.
    expect(w[85]! & ~w[82]!).toBe(0);
    expect(w[86]! & ~w[83]! & 0x3fff).toBe(0);
    expect(w[87]! & ~w[84]! & 0x3fff).toBe(0);
    for (const i of [83, 84, 87]) expect(w[i]! & 0xc000).toBe(0x4000);
    expect(w[83]! & (1 << 10)).not.toBe(0); // LBA48
    expect(w[83]! & (3 << 12)).toBe(3 << 12); // FLUSH CACHE (EXT)
    // Integrity word: signature A5h and a zero byte sum.
    expect(w[255]! & 0xff).toBe(0xa5);
    let sum = 0;
    for (let i = 0; i < 256; i++) sum += (w[i]! & 0xff) + (w[i]! >> 8);
    expect(sum & 0xff).toBe(0);
  });

  it("reports LBA28 capacity saturated at 0x0FFFFFFF and the full LBA48 capacity", async () => {
    const sectors = 2 ** 33 + 5;
    const m = machine({ master: new RamDisk(sectors) });
    const w = await identify(m);
    expect(w[60]! | (w[61]! << 16)).toBe(0x0fffffff);
    expect(w[100]! + w[101]! * 65536 + w[102]! * 2 ** 32 + w[103]! * 2 ** 48).toBe(sectors);
    expect([w[1], w[3], w[6]]).toEqual([16383, 16, 63]);
  });

  it("can be read with 32-bit data port accesses", async () => {
    const m = machine({ master: new MemoryBlockDevice(1000) });
    m.outb(P.CMD, ATA_CMD.IDENTIFY_DEVICE);
    await m.waitNotBusy();
    const expected = m.disks.master!.identify();
    for (let i = 0; i < 128; i++) expect(m.inl(P.DATA)).toBe((expected[2 * i]! | (expected[2 * i + 1]! << 16)) >>> 0);
    expect(m.inb(P.STATUS)).toBe(0x50);
  });

  it("word 59 follows SET MULTIPLE MODE, word 85 the write cache, words 63/88 the transfer mode", async () => {
    const m = machine({ master: new MemoryBlockDevice(1000) });
    m.outb(P.COUNT, 4);
    m.outb(P.CMD, ATA_CMD.SET_MULTIPLE_MODE);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x50);
    m.outb(P.FEAT, 0x82); // disable write cache
    m.outb(P.CMD, ATA_CMD.SET_FEATURES);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x50);
    m.outb(P.FEAT, 0x03);
    m.outb(P.COUNT, 0x22); // MWDMA2
    m.outb(P.CMD, ATA_CMD.SET_FEATURES);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x50);
    let w = await identify(m);
    expect(w[59]).toBe(0x0104);
    expect(w[85]! & (1 << 5)).toBe(0);
    expect(w[63]).toBe(0x0407);
    expect(w[88]).toBe(0x003f);
    m.outb(P.FEAT, 0x03);
    m.outb(P.COUNT, 0x42); // UDMA2
    m.outb(P.CMD, ATA_CMD.SET_FEATURES);
    await m.settle();
    m.outb(P.FEAT, 0x02);
    m.outb(P.CMD, ATA_CMD.SET_FEATURES);
    await m.settle();
    w = await identify(m);
    expect(w[63]).toBe(0x0007);
    expect(w[88]).toBe(0x043f);
    expect(w[85]! & (1 << 5)).toBe(1 << 5);
  });

  it("describes 4096-byte logical sectors in words 106 and 117-118", async () => {
    const m = machine({ master: new MemoryBlockDevice(100, { sectorSize: 4096 }) });
    const w = await identify(m);
    expect(w[106]! & 0xf000).toBe(0x5000);
    expect(w[117]! | (w[118]! << 16)).toBe(2048);
  });
});
