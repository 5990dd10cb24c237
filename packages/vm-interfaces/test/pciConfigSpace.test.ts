import { describe, expect, it } from "vitest";
import { PCI_COMMAND, PCI_CONFIG, PciConfigSpace, type IoDevice } from "../src/index.ts";

const dummy: IoDevice = { read: () => 0, write: () => {} };

function e1000Like() {
  const cfg = new PciConfigSpace({ vendorId: 0x8086, deviceId: 0x100e, classCode: 0x020000, interruptPin: 1 });
  cfg.setBar(0, { kind: "mem32", size: 0x20000, device: dummy });
  cfg.setBar(1, { kind: "io", size: 0x40, device: dummy });
  return cfg;
}

describe("PciConfigSpace", () => {
  it("reads the identity as the header lays it out (PCI 3.0 §6.1)", () => {
    const cfg = e1000Like();
    expect(cfg.configRead(0, 4)).toBe(0x100e8086);
    expect(cfg.configRead(PCI_CONFIG.PROG_IF, 1)).toBe(0);
    expect(cfg.configRead(0x08, 4) >>> 8).toBe(0x020000);
    expect(cfg.configRead(PCI_CONFIG.INTERRUPT_PIN, 1)).toBe(1);
  });

  it("keeps read-only bytes: the vendor id cannot be written", () => {
    const cfg = e1000Like();
    cfg.configWrite(0, 4, 0);
    expect(cfg.configRead(0, 4)).toBe(0x100e8086);
  });

  it("sizes a BAR: all ones written reads back as the size mask with type bits (§6.2.5.1)", () => {
    const cfg = e1000Like();
    cfg.configWrite(PCI_CONFIG.BAR0, 4, 0xffffffff);
    expect(cfg.configRead(PCI_CONFIG.BAR0, 4)).toBe(0xfffe0000);
    cfg.configWrite(PCI_CONFIG.BAR0 + 4, 4, 0xffffffff);
    expect(cfg.configRead(PCI_CONFIG.BAR0 + 4, 4)).toBe(0xffffffc1);
    // An unimplemented BAR reads zero whatever is written.
    cfg.configWrite(PCI_CONFIG.BAR0 + 8, 4, 0xffffffff);
    expect(cfg.configRead(PCI_CONFIG.BAR0 + 8, 4)).toBe(0);
  });

  it("decodes a BAR only while its COMMAND enable bit is set, and tells listeners", () => {
    const cfg = e1000Like();
    let changes = 0;
    cfg.onDecodeChange(() => changes++);
    cfg.configWrite(PCI_CONFIG.BAR0, 4, 0xfebc0000);
    expect(cfg.barAddress(0)).toBeUndefined();
    cfg.configWrite(PCI_CONFIG.COMMAND, 2, PCI_COMMAND.MEMORY);
    expect(cfg.barAddress(0)).toBe(0xfebc0000);
    expect(cfg.barAddress(1)).toBeUndefined();
    expect(changes).toBe(2);
  });

  it("tells listeners when INTx Disable (COMMAND bit 10, in the high byte) changes", () => {
    const cfg = e1000Like();
    let changes = 0;
    cfg.onDecodeChange(() => changes++);
    cfg.configWrite(PCI_CONFIG.COMMAND, 2, PCI_COMMAND.INTX_DISABLE);
    expect(changes).toBe(1);
    expect(cfg.intxDisabled).toBe(true);
  });

  it("clears RW1C status bits only where 1 is written", () => {
    const cfg = e1000Like();
    cfg.setU16(PCI_CONFIG.STATUS, 0x3000 | 0x10);
    cfg.configWrite(PCI_CONFIG.STATUS, 2, 0x1000);
    expect(cfg.configRead(PCI_CONFIG.STATUS, 2)).toBe(0x2010);
  });

  it("rejects BAR sizes that are not powers of two", () => {
    const cfg = e1000Like();
    expect(() => cfg.setBar(2, { kind: "mem32", size: 0x3000, device: dummy })).toThrow(RangeError);
  });
});
