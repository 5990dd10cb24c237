import { describe, expect, it } from "vitest";
import { PCI_COMMAND, PCI_CONFIG, cable } from "@paravirt/vm-interfaces";
import { Bench, MAC, R } from "./harness.ts";

// EECD pins [8254x SDM 13.4.3]
const SK = 1,
  CS = 2,
  DI = 4,
  DO = 8,
  REQ = 0x40,
  GNT = 0x80;

/** Reads one EEPROM word by bit-banging EECD the way Linux' e1000_read_eeprom does (Microwire). */
function bitBangRead(b: Bench, addr: number, words = 1): number[] {
  let eecd = b.rd(R.EECD) | REQ;
  b.wr(R.EECD, eecd);
  expect(b.rd(R.EECD) & GNT).toBe(GNT);
  eecd = (eecd & ~(SK | DI)) | CS;
  b.wr(R.EECD, eecd);
  const shiftOut = (value: number, count: number) => {
    for (let mask = 1 << (count - 1); mask; mask >>= 1) {
      eecd = value & mask ? eecd | DI : eecd & ~DI;
      b.wr(R.EECD, eecd);
      b.wr(R.EECD, eecd | SK);
      b.wr(R.EECD, eecd);
    }
    eecd &= ~DI;
    b.wr(R.EECD, eecd);
  };
  shiftOut(0b110, 3); // start bit + READ opcode
  shiftOut(addr, 6); // 64-word part: 6 address bits
  const out: number[] = [];
  for (let w = 0; w < words; w++) {
    let data = 0;
    for (let i = 0; i < 16; i++) {
      b.wr(R.EECD, eecd | SK);
      data = (data << 1) | (b.rd(R.EECD) & DO ? 1 : 0);
      b.wr(R.EECD, eecd);
    }
    out.push(data);
  }
  b.wr(R.EECD, eecd & ~(CS | REQ));
  return out;
}

function mdic(b: Bench, op: "r" | "w", reg: number, data = 0, phy = 1): number {
  b.wr(R.MDIC, (data & 0xffff) | (reg << 16) | (phy << 21) | (op === "r" ? 2 << 26 : 1 << 26));
  return b.rd(R.MDIC);
}

describe("PCI function", () => {
  it("identifies as an 82540EM with a 128 KiB memory BAR and a 64-byte I/O BAR", () => {
    const b = new Bench();
    const n = b.nic;
    expect(n.configRead(PCI_CONFIG.VENDOR_ID, 2)).toBe(0x8086);
    expect(n.configRead(PCI_CONFIG.DEVICE_ID, 2)).toBe(0x100e);
    expect(n.configRead(PCI_CONFIG.REVISION_ID, 4) >>> 8).toBe(0x020000);
    expect(n.configRead(PCI_CONFIG.INTERRUPT_PIN, 1)).toBe(1);
    expect(n.configRead(PCI_CONFIG.SUBSYSTEM_VENDOR_ID, 2)).toBe(0x8086);
    n.configWrite(PCI_CONFIG.BAR0, 4, 0xffffffff);
    expect(n.configRead(PCI_CONFIG.BAR0, 4)).toBe(0xfffe0000);
    n.configWrite(PCI_CONFIG.BAR0 + 4, 4, 0xffffffff);
    expect(n.configRead(PCI_CONFIG.BAR0 + 4, 4)).toBe(0xffffffc1);
  });

  it("does no DMA without COMMAND.MASTER and catches up when it is set", () => {
    const b = new Bench({ master: false });
    b.setupTx();
    b.memory.bytes.fill(0xab, 0x40000, 0x40000 + 60);
    b.legacyTx(0, 0x40000, 60, 0x01 | 0x08);
    b.wr(R.TDT, 1);
    expect(b.sent).toHaveLength(0);
    expect(b.rd(R.TDH)).toBe(0);
    b.nic.configWrite(PCI_CONFIG.COMMAND, 2, PCI_COMMAND.MEMORY | PCI_COMMAND.IO | PCI_COMMAND.MASTER);
    expect(b.sent).toHaveLength(1);
    expect(b.rd(R.TDH)).toBe(1);
  });

  it("masks INTA# with COMMAND.INTX_DISABLE and mirrors it in STATUS.INTERRUPT", () => {
    const b = new Bench();
    b.wr(R.IMS, 0x4);
    b.wr(R.ICS, 0x4);
    expect(b.irq.level).toBe(true);
    expect(b.nic.configRead(PCI_CONFIG.STATUS, 2) & 0x8).toBe(0x8);
    b.nic.configWrite(PCI_CONFIG.COMMAND, 2, b.nic.configRead(PCI_CONFIG.COMMAND, 2) | PCI_COMMAND.INTX_DISABLE);
    expect(b.irq.level).toBe(false);
    expect(b.nic.configRead(PCI_CONFIG.STATUS, 2) & 0x8).toBe(0x8);
    b.nic.configWrite(PCI_CONFIG.COMMAND, 2, b.nic.configRead(PCI_CONFIG.COMMAND, 2) & ~PCI_COMMAND.INTX_DISABLE);
    expect(b.irq.level).toBe(true);
  });

  it("records a master abort when DMA hits unmapped memory, without throwing", () => {
    const b = new Bench();
    b.wr(R.TDBAL, 0x7ff00000);
    b.wr(R.TDLEN, 128);
    b.wr(R.TCTL, 0x2);
    expect(() => b.wr(R.TDT, 1)).not.toThrow();
    expect(b.nic.configRead(PCI_CONFIG.STATUS, 2) & 0x2000).toBe(0x2000);
  });
});

describe("reset values and CTRL/STATUS", () => {
  it("comes up with the manual's/QEMU's reset values and the MAC in RAL0/RAH0", () => {
    const b = new Bench();
    expect(b.rd(R.CTRL)).toBe(0x00140240);
    expect(b.rd(R.STATUS)).toBe(0x80080783); // link up (LU)
    expect(b.rd(R.RAL0)).toBe(0x12005452);
    expect(b.rd(R.RAH0)).toBe(0x80005634);
    expect(b.rd(R.VET)).toBe(0x8100);
    expect(b.rd(R.PBA)).toBe(0x00100030);
    expect(b.rd(R.ICR)).toBe(0);
    expect(b.rd(0x0e00)).toBe(0x602); // LEDCTL
    expect(b.rd(0x0004)).toBe(0); // reserved
  });

  it("reports the link down without a cable", () => {
    const b = new Bench({ connected: false });
    expect(b.rd(R.STATUS) & 2).toBe(0);
    expect(mdic(b, "r", 1) & 0x24).toBe(0);
  });

  it("CTRL.RST through the I/O BAR resets the MAC registers and self-clears", () => {
    const b = new Bench();
    b.wr(R.IMS, 0x9d);
    b.wr(R.RCTL, 0x8002);
    b.wr(R.RAL0, 0x11223344);
    b.wr(R.TDLEN, 0x1000);
    expect(b.ioRd(R.IMS)).toBe(0x9d);
    b.ioWr(R.CTRL, b.ioRd(R.CTRL) | (1 << 26));
    expect(b.rd(R.CTRL)).toBe(0x00140240);
    expect(b.rd(R.IMS)).toBe(0);
    expect(b.rd(R.RCTL)).toBe(0);
    expect(b.rd(R.TDLEN)).toBe(0);
    expect(b.rd(R.RAL0)).toBe(0x12005452); // reloaded from the EEPROM
    expect(b.rd(R.STATUS) & 2).toBe(2); // the PHY kept the link
  });

  it("IOADDR reads back and reserved I/O offsets read zero", () => {
    const b = new Bench();
    b.ioBus.write(0xc000, 4, 0x5400);
    expect(b.ioBus.read(0xc000, 4)).toBe(0x5400);
    expect(b.ioBus.read(0xc004, 4)).toBe(0x12005452);
    expect(b.ioBus.read(0xc008, 4)).toBe(0);
  });

  it("sub-dword MMIO reads pick bytes of the 32-bit register", () => {
    const b = new Bench();
    expect(b.mmioBus.read(0xfebc0000 + R.RAL0, 2)).toBe(0x5452);
    expect(b.mmioBus.read(0xfebc0000 + R.RAL0 + 2, 2)).toBe(0x1200);
    expect(b.mmioBus.read(0xfebc0000 + R.RAL0 + 3, 1)).toBe(0x12);
  });
});

describe("EEPROM", () => {
  it("bit-banged Microwire reads return the MAC and a checksum making the sum 0xBABA", () => {
    const b = new Bench();
    const words: number[] = [];
    for (let a = 0; a < 64; a++) words.push(bitBangRead(b, a)[0]!);
    expect(words.slice(0, 3)).toEqual([MAC[0]! | (MAC[1]! << 8), MAC[2]! | (MAC[3]! << 8), MAC[4]! | (MAC[5]! << 8)]);
    expect(words.reduce((s, w) => (s + w) & 0xffff, 0)).toBe(0xbaba);
    expect(words[0x0d]).toBe(0x100e);
    expect(words[0x0e]).toBe(0x8086);
  });

  it("sequential Microwire reads continue into the next word", () => {
    const b = new Bench();
    const seq = bitBangRead(b, 0, 3);
    expect(seq).toEqual([0x5452, 0x1200, 0x5634]);
  });

  it("EERD returns data with DONE, and the same words as EECD", () => {
    const b = new Bench();
    for (const a of [0, 1, 2, 0x3f]) {
      b.wr(R.EERD, (a << 8) | 1);
      const v = b.rd(R.EERD);
      expect(v & 0x10).toBe(0x10);
      expect(v >>> 16).toBe(bitBangRead(b, a)[0]);
    }
    b.wr(R.EERD, 0x0000ff00);
    expect(b.rd(R.EERD)).toBe(0x0000ff00); // without START: the value written
  });

  it("EECD presents PRES and DO idle, GNT only while REQ is held", () => {
    const b = new Bench();
    const v = b.rd(R.EECD);
    expect(v & 0x100).toBe(0x100);
    expect(v & GNT).toBe(0);
    b.wr(R.EECD, REQ);
    expect(b.rd(R.EECD) & GNT).toBe(GNT);
  });
});

describe("PHY through MDIC", () => {
  it("answers the identifier and status registers at PHY address 1", () => {
    const b = new Bench();
    const id1 = mdic(b, "r", 2);
    expect(id1 & 0x10000000).toBe(0x10000000); // READY
    expect(id1 & 0xffff).toBe(0x0141);
    expect(mdic(b, "r", 3) & 0xffff).toBe(0x0c20);
    const bmsr = mdic(b, "r", 1) & 0xffff;
    expect(bmsr & 0x4).toBe(0x4); // link status
    expect(bmsr & 0x20).toBe(0x20); // autonegotiation complete
    expect(mdic(b, "r", 0) & 0xffff).toBe(0x1140);
  });

  it("sets ERROR for another PHY address or a missing register", () => {
    const b = new Bench();
    expect(mdic(b, "r", 2, 0, 2) & 0x40000000).toBe(0x40000000);
    expect(mdic(b, "r", 7) & 0x40000000).toBe(0x40000000);
    expect(mdic(b, "w", 1, 0) & 0x40000000).toBe(0x40000000); // BMSR is read-only
  });

  it("stores writable registers and raises MDAC when INT_EN is set", () => {
    const b = new Bench();
    mdic(b, "w", 4, 0x01e1);
    expect(mdic(b, "r", 4) & 0xffff).toBe(0x01e1);
    b.wr(R.IMS, 0x200);
    b.wr(R.MDIC, (2 << 26) | (1 << 21) | (2 << 16) | (1 << 29));
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR)).toBe(0x200);
  });

  it("restarting autonegotiation drops the link and brings it back with LSC after 500 ms", () => {
    const b = new Bench();
    b.wr(R.IMS, 0x4);
    mdic(b, "w", 0, 0x1140 | 0x200);
    expect(b.rd(R.STATUS) & 2).toBe(0);
    expect(mdic(b, "r", 1) & 0x24).toBe(0);
    expect(b.rd(R.ICR)).toBe(0x4); // link went down
    b.clock.advanceBy(499_000_000);
    expect(b.rd(R.STATUS) & 2).toBe(0);
    b.clock.advanceBy(1_000_000);
    expect(b.rd(R.STATUS) & 2).toBe(2);
    expect(mdic(b, "r", 1) & 0x24).toBe(0x24);
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR)).toBe(0x4);
  });

  it("powering the PHY down drops the link", () => {
    const b = new Bench();
    expect(mdic(b, "r", 0x11) & 0xffff).toBe(0xac00);
    mdic(b, "w", 0, 0x1140 | 0x800);
    expect(b.rd(R.STATUS) & 2).toBe(0);
    expect(mdic(b, "r", 0x11) & 0x0c00).toBe(0); // M88 PSSR: not resolved, no link
    mdic(b, "w", 0, 0x1140);
    expect(b.rd(R.STATUS) & 2).toBe(2);
  });
});

describe("interrupts", () => {
  it("ICR is read-to-clear and lowers INTA#", () => {
    const b = new Bench();
    b.wr(R.IMS, 0x9d);
    b.wr(R.ICS, 0x4 | 0x10);
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR)).toBe(0x14);
    expect(b.irq.level).toBe(false);
    expect(b.rd(R.ICR)).toBe(0);
  });

  it("IMS/IMC mask causes; a masked cause stays in ICR and asserts when unmasked", () => {
    const b = new Bench();
    b.wr(R.ICS, 0x80);
    expect(b.irq.level).toBe(false);
    b.wr(R.IMS, 0x80);
    expect(b.rd(R.IMS)).toBe(0x80);
    expect(b.irq.level).toBe(true);
    b.wr(R.IMC, 0x80);
    expect(b.rd(R.IMS)).toBe(0);
    expect(b.irq.level).toBe(false);
    expect(b.rd(R.IMC)).toBe(0);
    b.wr(R.ICR, 0x80); // write-1-to-clear
    expect(b.rd(R.ICS)).toBe(0);
  });

  it("ITR holds the next assertion until the interval has passed", () => {
    const b = new Bench();
    b.wr(R.ITR, 1000); // 1000 x 256 ns = 256 µs
    b.wr(R.IMS, 0x4);
    b.wr(R.ICS, 0x4);
    expect(b.irq.raised).toBe(1);
    b.rd(R.ICR);
    b.clock.advanceBy(100_000);
    b.wr(R.ICS, 0x4);
    expect(b.irq.level).toBe(false);
    b.clock.advanceBy(155_000);
    expect(b.irq.level).toBe(false);
    b.clock.advanceBy(1_000);
    expect(b.irq.level).toBe(true);
    expect(b.irq.raised).toBe(2);
    // After a quiet interval the next cause asserts at once.
    b.rd(R.ICR);
    b.clock.advanceBy(300_000);
    b.wr(R.ICS, 0x4);
    expect(b.irq.level).toBe(true);
  });

  it("ITR = 0 asserts immediately every time", () => {
    const b = new Bench();
    b.wr(R.IMS, 0x4);
    for (let i = 0; i < 3; i++) {
      b.wr(R.ICS, 0x4);
      expect(b.irq.level).toBe(true);
      b.rd(R.ICR);
    }
    expect(b.irq.raised).toBe(3);
  });
});

describe("link changes on the wire", () => {
  it("raises LSC on disconnect and on connect", () => {
    const b = new Bench();
    b.wr(R.IMS, 0x4);
    b.nic.device.disconnect();
    expect(b.rd(R.STATUS) & 2).toBe(0);
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR)).toBe(0x4);
    const [a] = cable();
    b.nic.device.connect(a);
    expect(b.rd(R.STATUS) & 2).toBe(2);
    expect(b.rd(R.ICR)).toBe(0x4);
    expect(b.nic.device.linkUp).toBe(true);
  });

  it("CTRL.SLU gates the MAC's link indication", () => {
    const b = new Bench();
    b.wr(R.CTRL, b.rd(R.CTRL) & ~0x40);
    expect(b.rd(R.STATUS) & 2).toBe(0);
    b.wr(R.CTRL, b.rd(R.CTRL) | 0x40);
    expect(b.rd(R.STATUS) & 2).toBe(2);
  });
});
