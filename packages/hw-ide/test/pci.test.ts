import { describe, expect, it } from "vitest";
import { IoBus, PCI_CONFIG, PCI_STATUS } from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { BM_STATUS } from "../src/index.ts";
import { BM, machine, P } from "./harness.ts";

describe("PIIX IDE PCI function", () => {
  it("identifies as PIIX3 IDE 8086:7010, class 01/01/80, QEMU's reset values", () => {
    const { ide } = machine({ command: 0 });
    expect(ide.configRead(PCI_CONFIG.VENDOR_ID, 2)).toBe(0x8086);
    expect(ide.configRead(PCI_CONFIG.DEVICE_ID, 2)).toBe(0x7010);
    expect(ide.configRead(PCI_CONFIG.REVISION_ID, 4) >>> 8).toBe(0x010180);
    expect(ide.configRead(PCI_CONFIG.STATUS, 2)).toBe(0x0280);
    expect(ide.configRead(PCI_CONFIG.HEADER_TYPE, 1)).toBe(0);
    expect(ide.configRead(PCI_CONFIG.INTERRUPT_PIN, 1)).toBe(0);
    for (let bar = 0; bar < 4; bar++) {
      ide.configWrite(PCI_CONFIG.BAR0 + bar * 4, 4, 0xffffffff);
      expect(ide.configRead(PCI_CONFIG.BAR0 + bar * 4, 4)).toBe(0);
    }
  });

  it("PIIX4 variant is 8086:7111", () => {
    expect(machine({ variant: "piix4" }).ide.configRead(PCI_CONFIG.DEVICE_ID, 2)).toBe(0x7111);
  });

  it("BAR4 is 16 I/O ports (sizing reads 0xfffffff1) and decodes with COMMAND.IO", () => {
    const { ide } = machine({ command: 0 });
    ide.reset();
    expect(ide.configRead(0x20, 4)).toBe(0x00000001);
    ide.configWrite(0x20, 4, 0xffffffff);
    expect(ide.configRead(0x20, 4)).toBe(0xfffffff1);
    ide.configWrite(0x20, 4, 0xd000);
    expect(ide.barAddress(4)).toBeUndefined();
    ide.configWrite(PCI_CONFIG.COMMAND, 2, 1);
    expect(ide.barAddress(4)).toBe(0xd000);
    expect(ide.bars[4]?.device).toBe(ide.busMasterBlock);
  });

  it("configuration bytes 0x40-0xFF are plain storage (IDETIM etc.)", () => {
    const { ide } = machine();
    ide.configWrite(0x40, 4, 0x8000a307);
    expect(ide.configRead(0x40, 4)).toBe(0x8000a307);
    ide.configWrite(0xfc, 4, 0x12345678);
    expect(ide.configRead(0xfc, 4)).toBe(0x12345678);
  });

  it("offers the legacy ranges 0x1F0/8, 0x3F6/1, 0x170/8, 0x376/1 for the board's port bus", () => {
    const { ide } = machine();
    expect(ide.legacyPorts.map((r) => [r.base, r.length])).toEqual([
      [0x1f0, 8],
      [0x3f6, 1],
      [0x170, 8],
      [0x376, 1],
    ]);
    const bus = new IoBus();
    ide.registerLegacyPorts(bus);
    expect(() => ide.registerLegacyPorts(bus)).toThrow();
  });

  it("legacy ports decode with PCI COMMAND = 0 (as QEMU)", () => {
    const m = machine({ master: new MemoryBlockDevice(64), command: 0 });
    expect(m.inb(P.STATUS)).toBe(0x50);
  });

  it("hardware reset restores the configuration and the bus-master registers", () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    let decodeChanges = 0;
    m.ide.onDecodeChange(() => decodeChanges++);
    m.outl(BM.PRDT, 0x1000);
    m.outb(BM.STATUS, BM_STATUS.DMA0_CAPABLE);
    m.ide.configWrite(0x40, 2, 0xa307);
    m.ide.reset();
    expect(decodeChanges).toBe(2);
    expect(m.ide.barAddress(4)).toBeUndefined();
    expect(m.ide.configRead(0x20, 4)).toBe(1);
    expect(m.ide.configRead(PCI_CONFIG.COMMAND, 2)).toBe(0);
    expect(m.ide.configRead(0x40, 2)).toBe(0);
    expect(m.ide.configRead(PCI_CONFIG.STATUS, 2)).toBe(PCI_STATUS.FAST_BACK | PCI_STATUS.DEVSEL_MEDIUM);
    m.ide.configWrite(PCI_CONFIG.COMMAND, 2, 1);
    m.ide.configWrite(0x20, 4, 0xc000);
    expect(m.inl(BM.PRDT)).toBe(0);
    expect(m.inb(BM.STATUS)).toBe(0);
  });
});

describe("bus-master register block", () => {
  it("command stores START and READ only; status RW1C and capable bits; offsets 1 and 3 read 0xFF", () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    m.outb(BM.CMD, 0xff);
    expect(m.inb(BM.CMD)).toBe(0x09);
    expect(m.inb(BM.STATUS) & BM_STATUS.ACTIVE).toBe(BM_STATUS.ACTIVE);
    m.outb(BM.STATUS, 0xff); // ACTIVE is read-only, capable bits stick
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.ACTIVE | BM_STATUS.DMA0_CAPABLE | BM_STATUS.DMA1_CAPABLE);
    m.outb(BM.CMD, 0);
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.DMA0_CAPABLE | BM_STATUS.DMA1_CAPABLE);
    expect(m.inb(BM.CMD + 1)).toBe(0xff);
    expect(m.inb(BM.CMD + 3)).toBe(0xff);
    expect(m.inw(BM.CMD)).toBe(0xffff);
    expect(m.inl(BM.CMD)).toBe(0xffffffff);
  });

  it("the PRD table pointer takes any width and reads bits 1:0 as zero", () => {
    const m = machine();
    m.outl(BM.PRDT, 0x12345677);
    expect(m.inl(BM.PRDT)).toBe(0x12345674);
    m.outw(BM.PRDT + 2, 0xabcd);
    expect(m.inl(BM.PRDT)).toBe(0xabcd5674);
    m.outb(BM.PRDT, 0xff);
    expect(m.inl(BM.PRDT)).toBe(0xabcd56fc);
    expect(m.inb(BM.PRDT + 3)).toBe(0xab);
    m.outl(BM.PRDT + 8, 0x2000);
    expect(m.inl(BM.PRDT)).toBe(0xabcd56fc);
    expect(m.inl(BM.PRDT + 8)).toBe(0x2000);
  });

  it("INTERRUPT and ERROR are write-1-to-clear, independently", () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    m.outb(P.CMD, 0xe5); // CHECK POWER MODE: a non-data command, still raises IRQ14
    expect(m.inb(BM.STATUS)).toBe(0);
    return m.settle().then(() => {
      expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
      m.outb(BM.STATUS, BM_STATUS.ERROR);
      expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
      m.outb(BM.STATUS, BM_STATUS.INTERRUPT);
      expect(m.inb(BM.STATUS)).toBe(0);
    });
  });
});
