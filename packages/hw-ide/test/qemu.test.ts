/**
 * Differential test against QEMU 7.2's PIIX3 IDE (Debian qemu-system-x86): the same port-I/O
 * script runs on QEMU (boot.asm under SeaBIOS, results out of the debug console) and on this
 * model; every value read back, the data moved by DMA and the final disk image must agree, except
 * for the differences listed in KNOWN_DIFFERENCES (where this model follows the ATA spec).
 *
 * Skipped with one line when qemu-system-x86_64 or nasm are missing, failing under CI=true.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { commandWorks, externalTool } from "@paravirt/test-support";
import type { IoDevice } from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { ATA_CMD } from "../src/index.ts";
import { machine, pattern } from "./harness.ts";
import { decode, runOnModel, Script } from "./qemu/script.ts";

const tools = externalTool(
  "qemu-system-x86_64 and nasm",
  () => commandWorks("qemu-system-x86_64", ["--version"]) && commandWorks("nasm", ["-v"]),
  "apt-get install qemu-system-x86 nasm",
);

const SECTORS = 20 * 16 * 63; // 20160: a 20/16/63 default geometry
const SCRIPT_SECTORS = 60;
const SLAVE_SECTORS = 10 * 16 * 63;
const P = { DATA: 0x1f0, ERR: 0x1f1, COUNT: 0x1f2, LBAL: 0x1f3, LBAM: 0x1f4, LBAH: 0x1f5, DEV: 0x1f6, ST: 0x1f7, CTL: 0x3f6 } as const;
const BM = { CMD: 0xc000, ST: 0xc002, PRDT: 0xc004 } as const;
const CF8 = 0xcf8;
const CFC = 0xcfc;
const cfg = (reg: number) => (0x80000000 | (1 << 11) | (1 << 8) | reg) >>> 0; // 00:01.1

/**
 * Where this model deliberately differs from QEMU 7.2 (label prefix -> why). Each is a place
 * where QEMU departs from the ATA specification in a way real drivers do not rely on.
 */
const KNOWN_DIFFERENCES: [RegExp, string][] = [
  [/^srst: irq$/, "SRST clears a pending INTRQ, as drives document (QEMU keeps it asserted)"],
  [/^identify.*\[(50|62|69|82|85|105|106|255)\]$/, "IDENTIFY: word 50 bit 14 set, no SWDMA/SMART, no deterministic read after TRIM, a DSM limit in word 105, look-ahead and power management advertised, integrity checksum (QEMU leaves 0)"],
  [/^identify32\[(25|31|34|41|42|52|53|127)\]$/, "the same IDENTIFY words read as dwords"],
  [/^identify after (udma2|mwdma2 and cache off)\[59\]$/, "word 59 follows SET MULTIPLE MODE (QEMU caches the block)"],
  [/^identify after set multiple\[59\]$/, "word 59 follows SET MULTIPLE MODE (QEMU caches the block)"],
  [/^out of range: error$/, "IDNF for an address outside the device (QEMU reports ABRT)"],
  [/^dma out of range: (alt status before start|bm status|irq|status)/, "an out-of-range DMA command fails at once with IDNF, before DMARQ (QEMU waits for START, then ABRT)"],
  [/^chs sector 0: (alt status|status|error)$/, "READ VERIFY SECTORS checks its address: CHS sector 0 is IDNF (QEMU verifies nothing)"],
  [/^power after standby: count$/, "CHECK POWER MODE reports standby (00h) after STANDBY IMMEDIATE (QEMU always FFh)"],
  [/^device 1 pending, device 0 selected: irq$/, "only the selected device drives INTRQ [ATA/ATAPI-6 Device Control] (QEMU's line ignores selection)"],
  [/^device 1 reselected: irq$/, "each device keeps its own INTRQ pending until its own Status is read (QEMU: one flag per channel)"],
  [/^nien cleared: irq$/, "clearing nIEN with INTRQ pending asserts the line [ATA/ATAPI-6 Device Control] (QEMU only gates raising)"],
];

function scenario(data: (lba: number, count: number) => Uint8Array): Script {
  const s = new Script();
  const lba28 = (lba: number, count: number) =>
    s.outb(P.DEV, 0xe0 | ((lba >>> 24) & 0xf)).outb(P.COUNT, count).outb(P.LBAL, lba & 0xff).outb(P.LBAM, (lba >>> 8) & 0xff).outb(P.LBAH, (lba >>> 16) & 0xff);
  const regs = (l: string) =>
    s.inb(P.ERR, `${l}: error`).inb(P.COUNT, `${l}: count`).inb(P.LBAL, `${l}: lba low`).inb(P.LBAM, `${l}: lba mid`).inb(P.LBAH, `${l}: lba high`).inb(P.DEV, `${l}: device`);
  const nonData = (l: string, cmd: number) => {
    s.outb(P.ST, cmd).poll(P.CTL, 0x80, 0, `${l}: alt status`).irq(`${l}: irq`).inb(P.ST, `${l}: status`).irq(`${l}: irq after status`);
    regs(l);
  };
  const identify = (l: string) =>
    s.outb(P.DEV, 0xa0).outb(P.ST, ATA_CMD.IDENTIFY_DEVICE).poll(P.CTL, 0x80, 0, `${l}: alt status`).inb(P.ST, `${l}: status`).inwN(P.DATA, 256, l).inb(P.ST, `${l}: final status`);
  const prd = (table: number, entries: [number, number, boolean][]) => {
    const b = new Uint8Array(entries.length * 8);
    const dv = new DataView(b.buffer);
    entries.forEach(([addr, bytes, eot], i) => {
      dv.setUint32(i * 8, addr, true);
      dv.setUint16(i * 8 + 4, bytes & 0xffff, true);
      dv.setUint16(i * 8 + 6, eot ? 0x8000 : 0, true);
    });
    s.memw(table, b).outl(BM.PRDT, table);
  };

  // PCI function: identity, BAR4, bus mastering, timing register storage.
  s.outl(CF8, cfg(0x00)).inl(CFC, "pci id");
  s.outl(CF8, cfg(0x08)).inl(CFC, "pci class/revision");
  s.outl(CF8, cfg(0x20)).outl(CFC, 0xc000).inl(CFC, "pci BAR4");
  s.outl(CF8, cfg(0x04)).outw(CFC, 0x0005).inl(CFC, "pci status/command");
  s.outl(CF8, cfg(0x40)).outl(CFC, 0x8000a307).inl(CFC, "pci IDETIM");
  s.outb(BM.CMD, 0).outb(BM.ST, 0x06).inb(BM.ST, "bm status at start").inb(BM.CMD + 1, "bm reserved byte").inl(BM.PRDT, "bm prdt at start");

  // Software reset and signature, with an interrupt pending from IDLE IMMEDIATE.
  s.inb(P.ST, "before srst: status").outb(P.ST, ATA_CMD.IDLE_IMMEDIATE).poll(P.CTL, 0x80, 0, "before srst: alt status").irq("before srst: irq");
  s.outb(P.CTL, 0x04).outb(P.CTL, 0x00).poll(P.CTL, 0x80, 0, "srst: alt status").irq("srst: irq");
  regs("srst");
  s.inb(P.ST, "srst: status");

  // IDENTIFY with the IRQ protocol.
  s.outb(P.DEV, 0xa0).outb(P.ST, ATA_CMD.IDENTIFY_DEVICE).poll(P.CTL, 0x80, 0, "identify: alt status");
  s.irq("identify: irq").inb(P.CTL, "identify: alt status again").irq("identify: irq after alt status");
  s.inb(P.ST, "identify: status").irq("identify: irq after status").inb(0xc002, "identify: bm status");
  s.inwN(P.DATA, 256, "identify").inb(P.ST, "identify: final status").inw(P.DATA, "identify: data after the end");
  s.outb(P.DEV, 0xa0).outb(P.ST, ATA_CMD.IDENTIFY_DEVICE).poll(P.CTL, 0x80, 0, "identify32: alt status").inlN(P.DATA, 128, "identify32");

  // READ SECTORS, two blocks.
  lba28(1000, 2);
  s.outb(P.ST, ATA_CMD.READ_SECTORS);
  for (const b of [0, 1]) {
    s.poll(P.CTL, 0x80, 0, `read block ${b}: alt status`).irq(`read block ${b}: irq`).inb(P.ST, `read block ${b}: status`);
    s.inwN(P.DATA, 256, `read block ${b}`);
  }
  s.inb(P.ST, "read: final status").irq("read: final irq");
  regs("read");

  // WRITE SECTORS, two blocks.
  lba28(2000, 2);
  s.outb(P.ST, ATA_CMD.WRITE_SECTORS).poll(P.CTL, 0x88, 0x08, "write: first DRQ").irq("write: irq before first block");
  s.outwN(P.DATA, data(2000, 1)).poll(P.CTL, 0x88, 0x08, "write: second DRQ").irq("write: irq after block 0").inb(P.ST, "write: status after block 0");
  s.outwN(P.DATA, data(2001, 1)).poll(P.CTL, 0x80, 0, "write: done").irq("write: irq after block 1").inb(P.ST, "write: final status");
  regs("write");

  // SET MULTIPLE MODE 4, READ MULTIPLE 6 (4 + 2), WRITE MULTIPLE 5 (4 + 1).
  s.outb(P.COUNT, 4);
  nonData("set multiple", ATA_CMD.SET_MULTIPLE_MODE);
  lba28(3000, 6);
  s.outb(P.ST, ATA_CMD.READ_MULTIPLE);
  for (const [b, n] of [[0, 4], [1, 2]] as const) {
    s.poll(P.CTL, 0x80, 0, `read multiple ${b}: alt status`).irq(`read multiple ${b}: irq`).inb(P.ST, `read multiple ${b}: status`);
    s.inwN(P.DATA, 256 * n, `read multiple ${b}`);
  }
  s.inb(P.ST, "read multiple: final status");
  lba28(3100, 5);
  s.outb(P.ST, ATA_CMD.WRITE_MULTIPLE).poll(P.CTL, 0x88, 0x08, "write multiple: first DRQ");
  s.outwN(P.DATA, data(3100, 4)).poll(P.CTL, 0x88, 0x08, "write multiple: second DRQ").irq("write multiple: irq").inb(P.ST, "write multiple: status");
  s.outwN(P.DATA, data(3104, 1)).poll(P.CTL, 0x80, 0, "write multiple: done").inb(P.ST, "write multiple: final status");
  regs("write multiple");
  identify("identify after set multiple");

  // READ DMA into one region.
  s.outb(BM.CMD, 0).outb(BM.ST, 0x06);
  prd(0x10000, [[0x20000, 1024, true]]);
  lba28(4000, 2);
  s.outb(P.ST, ATA_CMD.READ_DMA).poll(P.CTL, 0x80, 0, "read dma: alt status before start").inb(BM.ST, "read dma: bm status before start").irq("read dma: irq before start");
  s.outb(BM.CMD, 0x09).poll(BM.ST, 0x04, 0x04, "read dma: bm status").irq("read dma: irq").inb(P.ST, "read dma: status").irq("read dma: irq after status");
  s.inb(BM.CMD, "read dma: bm command").outb(BM.CMD, 0x00).inb(BM.ST, "read dma: bm status after stop").memr(0x20000, 1024, "read dma: memory");
  regs("read dma");

  // WRITE DMA from two regions of odd sizes.
  s.outb(BM.ST, 0x06).memw(0x20000, data(5000, 3).subarray(0, 1000)).memw(0x30000, data(5000, 3).subarray(1000));
  prd(0x10000, [[0x20000, 1000, false], [0x30000, 536, true]]);
  lba28(5000, 3);
  s.outb(P.ST, ATA_CMD.WRITE_DMA).outb(BM.CMD, 0x01).poll(BM.ST, 0x04, 0x04, "write dma: bm status").inb(P.ST, "write dma: status").outb(BM.CMD, 0);

  // PRDs shorter than the transfer: no interrupt, no error, ACTIVE clear.
  s.outb(BM.ST, 0x06);
  prd(0x10000, [[0x20000, 512, true]]);
  lba28(4100, 2);
  s.outb(P.ST, ATA_CMD.READ_DMA).outb(BM.CMD, 0x09).poll(P.CTL, 0x08, 0, "short prd: alt status").inb(BM.ST, "short prd: bm status").irq("short prd: irq");
  s.inb(P.ST, "short prd: status").outb(BM.CMD, 0);

  // PRDs longer than the transfer: INTERRUPT with ACTIVE still set.
  s.outb(BM.ST, 0x06);
  prd(0x10000, [[0x20000, 4096, true]]);
  lba28(4200, 1);
  s.outb(P.ST, ATA_CMD.READ_DMA).outb(BM.CMD, 0x09).poll(BM.ST, 0x04, 0x04, "long prd: bm status").inb(P.ST, "long prd: status").outb(BM.CMD, 0);
  s.inb(BM.ST, "long prd: bm status after stop");

  // READ DMA EXT.
  s.outb(BM.ST, 0x06);
  prd(0x10000, [[0x20000, 512, true]]);
  s.outb(P.DEV, 0x40).outb(P.COUNT, 0).outb(P.LBAL, 0).outb(P.LBAM, 0).outb(P.LBAH, 0).outb(P.COUNT, 1).outb(P.LBAL, 0x70).outb(P.LBAM, 0x17).outb(P.LBAH, 0);
  s.outb(P.ST, ATA_CMD.READ_DMA_EXT).outb(BM.CMD, 0x09).poll(BM.ST, 0x04, 0x04, "read dma ext: bm status").inb(P.ST, "read dma ext: status").outb(BM.CMD, 0);
  s.memr(0x20000, 512, "read dma ext: memory");

  // DATA SET MANAGEMENT / TRIM (QEMU runs with discard=unmap): two ranges, then one past the end.
  const trim = (l: string, ranges: [number, number][]) => {
    const b = new Uint8Array(512);
    const dv = new DataView(b.buffer);
    ranges.forEach(([lba, n], i) => {
      dv.setUint32(i * 8, lba, true);
      dv.setUint16(i * 8 + 6, n, true);
    });
    s.outb(BM.ST, 0x06).memw(0x20000, b);
    prd(0x10000, [[0x20000, 512, true]]);
    s.outb(P.DEV, 0x40).outb(P.ERR, 0).outb(P.ERR, 1).outb(P.COUNT, 0).outb(P.COUNT, 1);
    s.outb(P.ST, ATA_CMD.DATA_SET_MANAGEMENT).outb(BM.CMD, 0x01).poll(BM.ST, 0x04, 0x04, `${l}: bm status`).irq(`${l}: irq`);
    s.inb(P.ST, `${l}: status`).inb(P.ERR, `${l}: error`).outb(BM.CMD, 0);
  };
  trim("trim", [[7000, 8], [7100, 3]]);
  trim("trim past the end", [[7200, 8], [SECTORS - 1, 2]]);
  lba28(7000, 1);
  s.outb(P.ST, ATA_CMD.READ_SECTORS).poll(P.CTL, 0x80, 0, "read trimmed: alt status").inb(P.ST, "read trimmed: status").inwN(P.DATA, 256, "read trimmed");

  // Errors.
  lba28(SECTORS, 1);
  s.outb(P.ST, ATA_CMD.READ_SECTORS).poll(P.CTL, 0x80, 0, "out of range: alt status").irq("out of range: irq").inb(P.ST, "out of range: status").inb(P.ERR, "out of range: error");
  s.outb(BM.ST, 0x06);
  prd(0x10000, [[0x20000, 1024, true]]);
  lba28(SECTORS - 1, 2);
  s.outb(P.ST, ATA_CMD.READ_DMA).poll(P.CTL, 0x80, 0, "dma out of range: alt status before start").outb(BM.CMD, 0x09);
  s.poll(P.CTL, 0x88, 0, "dma out of range: alt status").inb(BM.ST, "dma out of range: bm status").irq("dma out of range: irq").inb(P.ST, "dma out of range: status").outb(BM.CMD, 0);
  s.outb(BM.ST, 0x06);
  nonData("unknown command", 0x50);
  nonData("nop", ATA_CMD.NOP);
  s.outb(P.ERR, 0x00);
  nonData("set features 0", ATA_CMD.SET_FEATURES);

  // Power management.
  s.outb(P.COUNT, 0x12);
  nonData("power", ATA_CMD.CHECK_POWER_MODE);
  nonData("standby immediate", ATA_CMD.STANDBY_IMMEDIATE);
  nonData("power after standby", ATA_CMD.CHECK_POWER_MODE);
  s.outb(P.COUNT, 0x12);
  nonData("idle immediate", ATA_CMD.IDLE_IMMEDIATE);
  nonData("power after idle", ATA_CMD.CHECK_POWER_MODE);
  nonData("flush", ATA_CMD.FLUSH_CACHE);
  nonData("flush ext", ATA_CMD.FLUSH_CACHE_EXT);
  lba28(10, 5);
  nonData("read verify", ATA_CMD.READ_VERIFY_SECTORS);
  nonData("recalibrate", 0x10);

  // SET FEATURES: transfer mode, write cache.
  s.outb(P.ERR, 0x03).outb(P.COUNT, 0x42);
  nonData("udma2", ATA_CMD.SET_FEATURES);
  identify("identify after udma2");
  s.outb(P.ERR, 0x03).outb(P.COUNT, 0x22);
  nonData("mwdma2", ATA_CMD.SET_FEATURES);
  s.outb(P.ERR, 0x82);
  nonData("write cache off", ATA_CMD.SET_FEATURES);
  identify("identify after mwdma2 and cache off");
  s.outb(P.ERR, 0x02);
  nonData("write cache on", ATA_CMD.SET_FEATURES);

  // READ NATIVE MAX ADDRESS (EXT).
  s.outb(P.DEV, 0xe0);
  nonData("native max", ATA_CMD.READ_NATIVE_MAX_ADDRESS);
  s.outb(P.DEV, 0x40);
  nonData("native max ext", ATA_CMD.READ_NATIVE_MAX_ADDRESS_EXT);
  s.outb(P.CTL, 0x80).inb(P.LBAL, "native max ext: hob lba low").inb(P.LBAM, "native max ext: hob lba mid").outb(P.CTL, 0x00);

  // Absent device 1.
  s.outb(P.DEV, 0xb0).inb(P.ST, "slave: status").inb(P.CTL, "slave: alt status").inb(P.ERR, "slave: error");
  s.outb(P.LBAL, 0x5a).inb(P.LBAL, "slave: lba low").inb(P.DEV, "slave: device");
  s.outb(P.ST, ATA_CMD.IDENTIFY_DEVICE).inb(P.ST, "slave: status after command").irq("slave: irq");
  s.outb(P.DEV, 0xa0).inb(P.ST, "master again: status");

  // nIEN.
  s.outb(P.CTL, 0x02);
  s.outb(P.ST, ATA_CMD.CHECK_POWER_MODE).poll(P.CTL, 0x80, 0, "nien: alt status").irq("nien: irq").inb(BM.ST, "nien: bm status");
  s.outb(P.CTL, 0x00).irq("nien cleared: irq").inb(P.ST, "nien: status").irq("nien: irq after status");

  // The empty secondary channel.
  for (const [port, name] of [[0x170, "data"], [0x171, "error"], [0x172, "count"], [0x176, "device"], [0x177, "status"], [0x376, "alt status"]] as const) {
    s.inb(port, `secondary: ${name}`);
  }

  // EXECUTE DEVICE DIAGNOSTIC with device 0 selected.
  s.outb(P.DEV, 0xa0);
  nonData("diagnostic", ATA_CMD.EXECUTE_DEVICE_DIAGNOSTIC);
  s.inb(P.ST, "diagnostic: status");
  return s;
}

/** Device 1 present: what changes with two devices on the channel. */
function twoDisks(data: (lba: number, count: number) => Uint8Array): Script {
  const s = new Script();
  const regs = (l: string) =>
    s.inb(P.ERR, `${l}: error`).inb(P.COUNT, `${l}: count`).inb(P.LBAL, `${l}: lba low`).inb(P.LBAM, `${l}: lba mid`).inb(P.LBAH, `${l}: lba high`).inb(P.DEV, `${l}: device`);
  const select = (dev: number, lba: number, count: number) =>
    s.outb(P.DEV, 0xe0 | (dev << 4)).outb(P.COUNT, count).outb(P.LBAL, lba & 0xff).outb(P.LBAM, (lba >>> 8) & 0xff).outb(P.LBAH, (lba >>> 16) & 0xff);
  s.outl(CF8, cfg(0x20)).outl(CFC, 0xc000).outl(CF8, cfg(0x04)).outw(CFC, 0x0005);
  s.outb(BM.CMD, 0).outb(BM.ST, 0x06);

  s.outb(P.CTL, 0x04).outb(P.CTL, 0x00).poll(P.CTL, 0x80, 0, "srst: device 0 alt status");
  regs("srst device 0");
  s.outb(P.DEV, 0xb0).poll(P.CTL, 0x80, 0, "srst: device 1 alt status");
  regs("srst device 1");
  s.inb(P.ST, "srst device 1: status");

  // IDENTIFY device 1 (its own serial and capacity).
  s.outb(P.DEV, 0xb0).outb(P.ST, ATA_CMD.IDENTIFY_DEVICE).poll(P.CTL, 0x80, 0, "identify 1: alt status").irq("identify 1: irq").inb(P.ST, "identify 1: status");
  s.inwN(P.DATA, 256, "identify 1").inb(P.ST, "identify 1: final status");

  // PIO on device 1.
  select(1, 700, 1);
  s.outb(P.ST, ATA_CMD.READ_SECTORS).poll(P.CTL, 0x80, 0, "read 1: alt status").irq("read 1: irq").inb(P.ST, "read 1: status").inwN(P.DATA, 256, "read 1");
  select(1, 800, 1);
  s.outb(P.ST, ATA_CMD.WRITE_SECTORS).poll(P.CTL, 0x88, 0x08, "write 1: DRQ").outwN(P.DATA, data(800, 1)).poll(P.CTL, 0x80, 0, "write 1: done").irq("write 1: irq").inb(P.ST, "write 1: status");
  regs("write 1");

  // Device 0 still has its own data.
  select(0, 700, 1);
  s.outb(P.ST, ATA_CMD.READ_SECTORS).poll(P.CTL, 0x80, 0, "read 0: alt status").inb(P.ST, "read 0: status").inwN(P.DATA, 256, "read 0");

  // DMA on device 1.
  const prd = new Uint8Array(8);
  new DataView(prd.buffer).setUint32(0, 0x20000, true);
  new DataView(prd.buffer).setUint32(4, 0x80000000 | 1024, true);
  s.outb(BM.ST, 0x06).memw(0x10000, prd).outl(BM.PRDT, 0x10000);
  select(1, 900, 2);
  s.outb(P.ST, ATA_CMD.READ_DMA).outb(BM.CMD, 0x09).poll(BM.ST, 0x04, 0x04, "dma 1: bm status").irq("dma 1: irq").inb(P.ST, "dma 1: status").outb(BM.CMD, 0);
  s.memr(0x20000, 1024, "dma 1: memory");
  s.outb(BM.ST, 0x06).memw(0x20000, data(950, 2));
  select(1, 950, 2);
  s.outb(P.ST, ATA_CMD.WRITE_DMA).outb(BM.CMD, 0x01).poll(BM.ST, 0x04, 0x04, "dma write 1: bm status").inb(P.ST, "dma write 1: status").outb(BM.CMD, 0).outb(BM.ST, 0x06);

  // An interrupt from device 1, then device 0 selected.
  s.outb(P.DEV, 0xb0).outb(P.ST, ATA_CMD.CHECK_POWER_MODE).poll(P.CTL, 0x80, 0, "device 1 done: alt status").irq("device 1 done: irq");
  s.outb(P.DEV, 0xa0).irq("device 1 pending, device 0 selected: irq").inb(P.ST, "device 0: status");
  s.outb(P.DEV, 0xb0).irq("device 1 reselected: irq").inb(P.ST, "device 1: status").irq("device 1 acked: irq");

  // EXECUTE DEVICE DIAGNOSTIC with device 1 selected.
  s.outb(P.DEV, 0xb0).outb(P.ST, ATA_CMD.EXECUTE_DEVICE_DIAGNOSTIC).poll(P.CTL, 0x80, 0, "diagnostic: alt status").irq("diagnostic: irq");
  regs("diagnostic device 0");
  s.inb(P.ST, "diagnostic device 0: status");
  s.outb(P.DEV, 0xb0);
  regs("diagnostic device 1");
  s.inb(P.ST, "diagnostic device 1: status");

  // SET MULTIPLE on device 1 does not change device 0.
  s.outb(P.DEV, 0xb0).outb(P.COUNT, 2).outb(P.ST, ATA_CMD.SET_MULTIPLE_MODE).poll(P.CTL, 0x80, 0, "multiple 1: alt status").inb(P.ST, "multiple 1: status");
  select(0, 600, 4);
  s.outb(P.ST, ATA_CMD.READ_MULTIPLE).poll(P.CTL, 0x80, 0, "read multiple 0: alt status").inb(P.ST, "read multiple 0: status").inwN(P.DATA, 256 * 4, "read multiple 0");
  s.inb(P.ST, "read multiple 0: final status");
  select(1, 600, 4);
  s.outb(P.ST, ATA_CMD.READ_MULTIPLE);
  for (const b of [0, 1]) s.poll(P.CTL, 0x80, 0, `read multiple 1 block ${b}: alt status`).inb(P.ST, `read multiple 1 block ${b}: status`).inwN(P.DATA, 256 * 2, `read multiple 1 block ${b}`);
  s.inb(P.ST, "read multiple 1: final status");
  return s;
}

/** Addressing modes and corners: CHS, LBA48 PIO, 32-bit PIO writes, SRST in a data phase. */
function corners(data: (lba: number, count: number) => Uint8Array): Script {
  const s = new Script();
  const regs = (l: string) =>
    s.inb(P.ERR, `${l}: error`).inb(P.COUNT, `${l}: count`).inb(P.LBAL, `${l}: lba low`).inb(P.LBAM, `${l}: lba mid`).inb(P.LBAH, `${l}: lba high`).inb(P.DEV, `${l}: device`);
  const hob = (l: string) => s.outb(P.CTL, 0x80).inb(P.COUNT, `${l}: hob count`).inb(P.LBAL, `${l}: hob lba low`).inb(P.LBAM, `${l}: hob lba mid`).inb(P.LBAH, `${l}: hob lba high`).outb(P.CTL, 0);
  const chs = (c: number, h: number, sec: number, count: number) =>
    s.outb(P.DEV, 0xa0 | h).outb(P.COUNT, count).outb(P.LBAL, sec).outb(P.LBAM, c & 0xff).outb(P.LBAH, c >> 8);
  const lba48 = (lba: number, count: number) =>
    s.outb(P.DEV, 0x40).outb(P.COUNT, count >> 8).outb(P.LBAL, (lba / 2 ** 24) & 0xff).outb(P.LBAM, 0).outb(P.LBAH, 0)
      .outb(P.COUNT, count & 0xff).outb(P.LBAL, lba & 0xff).outb(P.LBAM, (lba >> 8) & 0xff).outb(P.LBAH, (lba >> 16) & 0xff);
  s.outl(CF8, cfg(0x20)).outl(CFC, 0xc000).outl(CF8, cfg(0x04)).outw(CFC, 0x0005);
  s.outb(P.CTL, 0x04).outb(P.CTL, 0x00).poll(P.CTL, 0x80, 0, "srst: alt status");

  // CHS with the default translation (16 heads, 63 sectors): C/H/S 1/2/3 = LBA 1136, two sectors.
  chs(1, 2, 3, 2);
  s.outb(P.ST, ATA_CMD.READ_SECTORS);
  for (const b of [0, 1]) s.poll(P.CTL, 0x80, 0, `chs read ${b}: alt status`).inb(P.ST, `chs read ${b}: status`).inwN(P.DATA, 256, `chs read ${b}`);
  regs("chs read");
  // Across a track end: C/H/S 0/15/63 then 1/0/1.
  chs(0, 15, 63, 2);
  s.outb(P.ST, ATA_CMD.WRITE_SECTORS).poll(P.CTL, 0x88, 0x08, "chs write: DRQ").outwN(P.DATA, data(1007, 1));
  s.poll(P.CTL, 0x88, 0x08, "chs write: second DRQ").inb(P.ST, "chs write: status").outwN(P.DATA, data(1008, 1)).poll(P.CTL, 0x80, 0, "chs write: done").inb(P.ST, "chs write: final status");
  regs("chs write");
  // Sector 0 is not a CHS address.
  chs(0, 0, 0, 1);
  s.outb(P.ST, ATA_CMD.READ_VERIFY_SECTORS).poll(P.CTL, 0x80, 0, "chs sector 0: alt status").inb(P.ST, "chs sector 0: status").inb(P.ERR, "chs sector 0: error");
  // READ NATIVE MAX ADDRESS in CHS form.
  s.outb(P.DEV, 0xa0).outb(P.ST, ATA_CMD.READ_NATIVE_MAX_ADDRESS).poll(P.CTL, 0x80, 0, "native max chs: alt status").inb(P.ST, "native max chs: status");
  regs("native max chs");

  // LBA48 PIO: READ SECTORS EXT of 2 at 12000, WRITE SECTORS EXT of 1 with 32-bit data writes.
  lba48(12000, 2);
  s.outb(P.ST, ATA_CMD.READ_SECTORS_EXT);
  for (const b of [0, 1]) s.poll(P.CTL, 0x80, 0, `read ext ${b}: alt status`).inb(P.ST, `read ext ${b}: status`).inlN(P.DATA, 128, `read ext ${b}`);
  regs("read ext");
  hob("read ext");
  lba48(12100, 1);
  s.outb(P.ST, ATA_CMD.WRITE_SECTORS_EXT).poll(P.CTL, 0x88, 0x08, "write ext: DRQ");
  const w = data(12100, 1);
  const dv = new DataView(w.buffer);
  for (let i = 0; i < 512; i += 4) s.outl(P.DATA, dv.getUint32(i, true));
  s.poll(P.CTL, 0x80, 0, "write ext: done").irq("write ext: irq").inb(P.ST, "write ext: status");
  regs("write ext");
  hob("write ext");
  lba48(12200, 3);
  s.outb(P.ST, ATA_CMD.READ_VERIFY_SECTORS_EXT).poll(P.CTL, 0x80, 0, "verify ext: alt status").inb(P.ST, "verify ext: status");
  lba48(0, 0x100);
  s.outb(P.ST, ATA_CMD.READ_MULTIPLE_EXT);
  for (let b = 0; b < 16; b++) s.poll(P.CTL, 0x80, 0, `read multiple ext ${b}: alt status`).inb(P.ST, `read multiple ext ${b}: status`).inwN(P.DATA, 16 * 256, `read multiple ext ${b}`);
  s.inb(P.ST, "read multiple ext: final status");
  regs("read multiple ext");

  // READ then WRITE DMA EXT, 64 KiB through one PRD with byte count 0.
  const prd = new Uint8Array(8);
  new DataView(prd.buffer).setUint32(0, 0x20000, true);
  new DataView(prd.buffer).setUint32(4, 0x80000000, true);
  s.outb(BM.CMD, 0).outb(BM.ST, 0x06).memw(0x10000, prd).outl(BM.PRDT, 0x10000);
  lba48(3000, 128);
  s.outb(P.ST, ATA_CMD.READ_DMA_EXT).outb(BM.CMD, 0x09).poll(BM.ST, 0x04, 0x04, "read dma ext 64k: bm status").inb(P.ST, "read dma ext 64k: status").outb(BM.CMD, 0).outb(BM.ST, 0x06);
  s.memr(0x20000 + 65536 - 512, 512, "read dma ext 64k: last sector in memory");
  lba48(13000, 128);
  s.outb(P.ST, ATA_CMD.WRITE_DMA_EXT).outb(BM.CMD, 0x01).poll(BM.ST, 0x04, 0x04, "write dma ext: bm status").inb(P.ST, "write dma ext: status").outb(BM.CMD, 0).inb(BM.ST, "write dma ext: bm status after stop");
  regs("write dma ext");

  // SRST in the middle of a PIO read: the data phase ends, the signature returns.
  s.outb(P.DEV, 0xe0).outb(P.COUNT, 2).outb(P.LBAL, 0x10).outb(P.LBAM, 0).outb(P.LBAH, 0).outb(P.ST, ATA_CMD.READ_SECTORS);
  s.poll(P.CTL, 0x80, 0, "srst in read: alt status").inwN(P.DATA, 100, "srst in read: partial");
  s.outb(P.CTL, 0x04).outb(P.CTL, 0x00).poll(P.CTL, 0x80, 0, "srst in read: after reset").inb(P.ST, "srst in read: status");
  regs("srst in read");
  s.inw(P.DATA, "srst in read: data after reset");

  // SET FEATURES revert-to-defaults on: SRST restores the multiple setting and the write cache.
  s.outb(P.COUNT, 2).outb(P.ST, ATA_CMD.SET_MULTIPLE_MODE).poll(P.CTL, 0x80, 0, "multiple 2: alt status");
  s.outb(P.ERR, 0xcc).outb(P.ST, ATA_CMD.SET_FEATURES).poll(P.CTL, 0x80, 0, "revert on: alt status").inb(P.ST, "revert on: status");
  s.outb(P.CTL, 0x04).outb(P.CTL, 0x00).poll(P.CTL, 0x80, 0, "revert srst: alt status");
  s.outb(P.DEV, 0xe0).outb(P.COUNT, 4).outb(P.LBAL, 0x20).outb(P.ST, ATA_CMD.READ_MULTIPLE).poll(P.CTL, 0x80, 0, "after revert: alt status").inb(P.ST, "after revert: status").inwN(P.DATA, 1024, "after revert: read multiple");
  s.inb(P.ST, "after revert: final status");
  // INITIALIZE DEVICE PARAMETERS to 4 heads / 17 sectors, then a CHS read in that translation.
  s.outb(P.DEV, 0xa3).outb(P.COUNT, 17).outb(P.ST, ATA_CMD.INITIALIZE_DEVICE_PARAMETERS).poll(P.CTL, 0x80, 0, "idp: alt status").inb(P.ST, "idp: status");
  chs(2, 1, 5, 1); // LBA (2*4+1)*17+4 = 157
  s.outb(P.ST, ATA_CMD.READ_SECTORS).poll(P.CTL, 0x80, 0, "idp read: alt status").inb(P.ST, "idp read: status").inwN(P.DATA, 256, "idp read");
  regs("idp read");
  return s;
}

function imageBytes(base: Uint8Array, script: Uint8Array, boot: Uint8Array): Uint8Array {
  const img = base.slice();
  img.set(boot, 0);
  if (script.length > SCRIPT_SECTORS * 512) throw new Error(`script of ${script.length} bytes does not fit`);
  img.fill(0, 512, (1 + SCRIPT_SECTORS) * 512);
  img.set(script, 512);
  return img;
}

/** PCI configuration mechanism #1 with one function, 00:01.1. */
function configPorts(ide: { configRead(o: number, s: 1 | 2 | 4): number; configWrite(o: number, s: 1 | 2 | 4, v: number): void }): IoDevice {
  let address = 0;
  const target = () => ((address & 0x80ffff00) >>> 0 === cfg(0) ? address & 0xfc : undefined);
  return {
    read(offset, size) {
      if (offset < 4) return size === 4 && offset === 0 ? address >>> 0 : 0xffffffff >>> (32 - size * 8);
      const t = target();
      return t === undefined ? 0xffffffff >>> (32 - size * 8) : ide.configRead(t + offset - 4, size);
    },
    write(offset, size, value) {
      if (offset === 0 && size === 4) address = value >>> 0;
      else if (offset >= 4) {
        const t = target();
        if (t !== undefined) ide.configWrite(t + offset - 4, size, value);
      }
    },
  };
}

/** Runs `script` on QEMU and on the model with the given images; compares everything. */
async function differential(script: Script, images: { master: Uint8Array; slave?: Uint8Array }, imageDifferences: readonly number[] = []): Promise<void> {
  tools.check();
  const dir = mkdtempSync(join(tmpdir(), "hw-ide-qemu-"));
  try {
    const here = dirname(fileURLToPath(import.meta.url));
    const bootPath = join(dir, "boot.bin");
    const asm = spawnSync("nasm", ["-f", "bin", "-o", bootPath, join(here, "qemu", "boot.asm")], { encoding: "utf8" });
    expect(asm.status, asm.stderr).toBe(0);
    const master = imageBytes(images.master, script.encode(), readFileSync(bootPath));
    const paths = [join(dir, "master.img"), join(dir, "slave.img")] as const;
    const outPath = join(dir, "debugcon.bin");
    writeFileSync(paths[0], master);
    const drives = ["-drive", `file=${paths[0]},format=raw,if=ide,index=0,discard=unmap`];
    if (images.slave) {
      writeFileSync(paths[1], images.slave);
      drives.push("-drive", `file=${paths[1]},format=raw,if=ide,index=1,discard=unmap`);
    }
    const run = spawnSync(
      "qemu-system-x86_64",
      ["-nodefaults", "-machine", "pc", "-accel", "tcg", "-display", "none", "-m", "16", "-no-reboot", ...drives,
        "-debugcon", `file:${outPath}`, "-device", "isa-debug-exit,iobase=0xf4,iosize=4"],
      { encoding: "utf8", timeout: 120_000 },
    );
    expect(run.status, `QEMU exited with ${run.status}: ${run.stderr}`).toBe(1); // isa-debug-exit(0) -> 1
    const theirs = new Uint8Array(readFileSync(outPath));

    const disk0 = new MemoryBlockDevice(master.length / 512);
    disk0.data.set(master);
    const disk1 = images.slave ? new MemoryBlockDevice(images.slave.length / 512) : undefined;
    disk1?.data.set(images.slave!);
    const m = machine({
      master: disk0,
      slave: disk1,
      disk: { model: "QEMU HARDDISK", serial: "QM00001", firmware: "2.5+" },
      slaveDisk: { model: "QEMU HARDDISK", serial: "QM00002", firmware: "2.5+" },
    });
    m.io.register({ base: CF8, length: 8 }, configPorts(m.ide), "pci config");
    const ours = await runOnModel(script, {
      io: m.io,
      mem: m.mem,
      irq14: m.irq14,
      irq15: m.irq15,
      step: async () => {
        await m.drain();
        m.clock.runNext();
      },
    });

    const a = decode(script, ours);
    const b = decode(script, theirs);
    expect(theirs.length).toBe(ours.length);
    const mismatches = a.flatMap((r, i) => (r.value === b[i]!.value ? [] : [{ label: r.label, ours: fmt(r.value), qemu: fmt(b[i]!.value) }]));
    const unexplained = mismatches.filter((d) => !KNOWN_DIFFERENCES.some(([re]) => re.test(d.label)));
    if (mismatches.length > 0) console.log(`known differences from QEMU 7.2:\n${mismatches.map((d) => `  ${d.label}: ours ${d.ours}, QEMU ${d.qemu}`).join("\n")}`);
    expect(unexplained).toEqual([]);
    const q0 = readFileSync(paths[0]);
    const differing: number[] = [];
    for (let sct = 0; sct < disk0.data.length / 512 && differing.length < 64; sct++) {
      if (!Buffer.from(disk0.data.subarray(sct * 512, sct * 512 + 512)).equals(q0.subarray(sct * 512, sct * 512 + 512))) differing.push(sct);
    }
    expect(differing, "sectors that differ between the model's disk and QEMU's").toEqual(imageDifferences);
    if (disk1) expect(Buffer.from(disk1.data).equals(readFileSync(paths[1]))).toBe(true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function patterned(sectors: number, seed: number): Uint8Array {
  const img = new Uint8Array(sectors * 512);
  for (let s = 0; s < sectors; s++) img.set(pattern(s, 1, seed), s * 512);
  return img;
}

describe.skipIf(tools.skip)("differential against QEMU 7.2 PIIX3 IDE", () => {
  it("one disk: the same register script reads the same values and leaves the same disk image", async () => {
    // A TRIM with a range past the end discards nothing here; QEMU discards the ranges before it.
    const trimmedByQemuOnly = Array.from({ length: 8 }, (_, i) => 7200 + i);
    await differential(scenario((lba, count) => pattern(lba, count, 0xa7)), { master: patterned(SECTORS, 0x5c) }, trimmedByQemuOnly);
  }, 180_000);

  it("addressing corners: CHS, LBA48 PIO, 32-bit writes, 64 KiB PRD, SRST in a data phase, revert to defaults", async () => {
    await differential(corners((lba, count) => pattern(lba, count, 0x77)), { master: patterned(SECTORS, 0x5c) });
  }, 180_000);

  it("master and slave: signatures, selection, diagnostics, PIO and DMA on device 1", async () => {
    await differential(twoDisks((lba, count) => pattern(lba, count, 0x3d)), { master: patterned(SECTORS, 0x5c), slave: patterned(SLAVE_SECTORS, 0x11) });
  }, 180_000);
});

function fmt(v: number | string): string {
  return typeof v === "number" ? `0x${v.toString(16)}` : v.length > 40 ? `${v.slice(0, 40)}...` : v;
}
