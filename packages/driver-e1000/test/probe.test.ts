import { describe, expect, it } from "vitest";
import { PCI_COMMAND, PCI_CONFIG, type DriverPlatform, type MmioWindow } from "@paravirt/vm-interfaces";
import { probeE1000 } from "../src/index.ts";
import { Machine, NIC_MAC } from "./machine.ts";

// Register offsets written out independently of src/registers.ts [8254x SDM 13.4].
const REG = { CTRL: 0x0, STATUS: 0x8, EERD: 0x14, ICR: 0xc0, ITR: 0xc4, IMS: 0xd0, RCTL: 0x100, TCTL: 0x400, TIPG: 0x410, RDLEN: 0x2808, RDH: 0x2810, RDT: 0x2818, TDLEN: 0x3808, TDH: 0x3810, TDT: 0x3818, RXCSUM: 0x5000, MTA: 0x5200, RAL0: 0x5400, RAH0: 0x5404 };

function regsOf(m: Machine): MmioWindow {
  const d = m.platform.pciDevices({ vendorId: 0x8086, deviceId: 0x100e })[0]!;
  return m.platform.ioremap(d.bars[0]!.base, 0x20000);
}

describe("probe and init", () => {
  it("finds the 82540EM by PCI id and reads the MAC address the EEPROM holds", async () => {
    const m = new Machine();
    const r = await m.settle(probeE1000(m.platform));
    expect(r.failed).toEqual([]);
    expect(r.nics).toHaveLength(1);
    const nic = r.nics[0]!;
    expect(Array.from(nic.mac)).toEqual(Array.from(NIC_MAC));
    expect(Array.from(m.fn.device.mac)).toEqual(Array.from(NIC_MAC));
    expect(nic.eepromAccess).toBe("eerd");
    expect(nic.eepromWords).toHaveLength(64);
    expect(nic.eepromWords.reduce((s, w) => (s + w) & 0xffff, 0)).toBe(0xbaba);
    expect(nic.phyId).toBe(0x01410c20); // Marvell OUI, M88E1011 [8254x SDM 8.1.3]
    expect(nic.mtu).toBe(1500);
    expect(m.platform.logs.some((l) => l.includes("02:11:22:33:44:55"))).toBe(true);
  });

  it("enables memory decoding and bus mastering, and programs filters, rings and interrupts", async () => {
    const m = new Machine();
    // Firmware left the function disabled: the driver must turn it on itself.
    const addr = m.platform.pciDevices({ vendorId: 0x8086, deviceId: 0x100e })[0]!.address;
    m.platform.pciConfigWrite(addr, PCI_CONFIG.COMMAND, 2, 0);
    const { nics } = await m.settle(probeE1000(m.platform, { txRingSize: 64, rxRingSize: 32 }));
    const cmd = m.platform.pciConfigRead(addr, PCI_CONFIG.COMMAND, 2);
    expect(cmd & (PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER)).toBe(PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER);
    expect(cmd & PCI_COMMAND.INTX_DISABLE).toBe(0);
    const r = regsOf(m);
    expect(r.readl(REG.RAL0) >>> 0).toBe(0x33221102);
    expect(r.readl(REG.RAH0) >>> 0).toBe((0x80000000 | 0x5544) >>> 0);
    for (let i = 0; i < 128; i++) expect(r.readl(REG.MTA + 4 * i)).toBe(0);
    expect(r.readl(REG.TDLEN)).toBe(64 * 16);
    expect(r.readl(REG.RDLEN)).toBe(32 * 16);
    expect(r.readl(REG.TDH)).toBe(0);
    expect(r.readl(REG.TDT)).toBe(0);
    expect(r.readl(REG.RDH)).toBe(0);
    expect(r.readl(REG.RDT)).toBe(31); // every buffer but one pre-posted
    const rctl = r.readl(REG.RCTL);
    expect(rctl & 0x2).toBe(0x2); // EN
    expect(rctl & 0x8000).toBe(0x8000); // BAM
    expect(rctl & 0x30000).toBe(0); // BSIZE 2048
    expect(rctl & 0x0400_0000).toBe(0x0400_0000); // SECRC
    expect(rctl & 0x18).toBe(0); // not promiscuous
    const tctl = r.readl(REG.TCTL);
    expect(tctl & 0xa).toBe(0xa); // EN | PSP
    expect((tctl >> 4) & 0xff).toBe(0x0f);
    expect((tctl >> 12) & 0x3ff).toBe(0x40);
    expect(r.readl(REG.TIPG)).toBe(10 | (8 << 10) | (6 << 20));
    expect(r.readl(REG.IMS) & 0xd5).toBe(0xd5); // TXDW | LSC | RXDMT0 | RXO | RXT0
    expect(r.readl(REG.CTRL) & 0x40).toBe(0x40); // SLU
    expect(r.readl(REG.RXCSUM) & 0x300).toBe(0x300);
    expect(nics[0]!.linkUp).toBe(true);
    expect(nics[0]!.speedMbps).toBe(1000);
    expect(nics[0]!.duplex).toBe("full");
  });

  it("restarts autonegotiation and reports the link once the PHY has negotiated", async () => {
    const m = new Machine({ autonegNs: 700_000_000 });
    const start = m.board.clock.now();
    const { nics } = await m.settle(probeE1000(m.platform));
    const nic = nics[0]!;
    expect(nic.linkUp).toBe(true);
    // The link went down for the restart and came back after the model's autonegotiation time.
    expect(m.board.clock.now() - start).toBeGreaterThanOrEqual(700_000_000);
    expect(nic.statistics().linkChanges).toBe(1);
  });

  it("returns without link when no cable is plugged, and reports it when one is", async () => {
    const m = new Machine({ connected: false });
    const { nics } = await m.settle(probeE1000(m.platform, { waitForLinkNs: 100_000_000 }));
    const nic = nics[0]!;
    expect(nic.linkUp).toBe(false);
    const seen: boolean[] = [];
    nic.onLinkChange((up) => seen.push(up));
    m.fn.device.connect(m.nicEnd);
    await m.run(() => seen.length > 0);
    expect(seen).toEqual([true]);
    expect(nic.linkUp).toBe(true);
  });

  it("reads the EEPROM by bit-banging EECD (Microwire) when asked to", async () => {
    const m = new Machine();
    const { nics } = await m.settle(probeE1000(m.platform, { eeprom: "microwire" }));
    const nic = nics[0]!;
    expect(nic.eepromAccess).toBe("microwire");
    expect(Array.from(nic.mac)).toEqual(Array.from(NIC_MAC));
    expect(Array.from(nic.eepromWords)).toEqual(Array.from(m.fn.device.eeprom.words));
  });

  it("falls back to Microwire when EERD never reports DONE", async () => {
    const m = new Machine();
    // A platform whose EERD reads never show DONE (a MAC without the EERD path).
    const p = m.platform;
    const noEerd: DriverPlatform = Object.create(p) as DriverPlatform;
    noEerd.ioremap = (base, length) => {
      const w = p.ioremap(base, length);
      return { ...w, readl: (o: number) => (o === REG.EERD ? 0 : w.readl(o)) };
    };
    const { nics, failed } = await m.settle(probeE1000(noEerd));
    expect(failed).toEqual([]);
    expect(nics[0]!.eepromAccess).toBe("microwire");
    expect(Array.from(nics[0]!.mac)).toEqual(Array.from(NIC_MAC));
  });

  it("refuses a NIC whose EEPROM checksum is wrong", async () => {
    const m = new Machine();
    m.fn.device.eeprom.words[0x20]! ^= 0x0100;
    const r = await m.settle(probeE1000(m.platform));
    expect(r.nics).toHaveLength(0);
    expect(r.failed).toHaveLength(1);
    expect(r.failed[0]!.reason).toMatch(/checksum/);
    expect(r.failed[0]!.device.deviceId).toBe(0x100e);
  });

  it("finds nothing on a board without the NIC", async () => {
    const m = new Machine();
    const empty: DriverPlatform = Object.create(m.platform) as DriverPlatform;
    empty.pciDevices = () => [];
    const r = await m.settle(probeE1000(empty));
    expect(r).toEqual({ nics: [], failed: [] });
  });

  it("rejects ring sizes the hardware cannot take", async () => {
    const m = new Machine();
    await expect(probeE1000(m.platform, { txRingSize: 12 })).rejects.toThrow(RangeError);
  });
});

describe("attach failures are results, not exceptions", () => {
  it("reports a refused IRQ and leaves the NIC stopped with its DMA memory returned", async () => {
    const m = new Machine();
    const p: DriverPlatform = Object.create(m.platform) as DriverPlatform;
    p.requestIrq = () => {
      throw new Error("irq 11 is not yours");
    };
    const freed: number[] = [];
    p.dmaFree = (r) => {
      freed.push(r.busAddress);
      m.platform.dmaFree(r);
    };
    const r = await m.settle(probeE1000(p));
    expect(r.nics).toEqual([]);
    expect(r.failed[0]!.reason).toMatch(/not yours/);
    expect(freed).toHaveLength(4);
    const addr = r.failed[0]!.device.address;
    expect(m.platform.pciConfigRead(addr, PCI_CONFIG.COMMAND, 2) & PCI_COMMAND.MASTER).toBe(0);
  });

  it("reports a BAR0 it cannot map", async () => {
    const m = new Machine();
    const p: DriverPlatform = Object.create(m.platform) as DriverPlatform;
    p.ioremap = () => {
      throw new Error("EPERM");
    };
    const r = await m.settle(probeE1000(p));
    expect(r.failed[0]!.reason).toMatch(/cannot map BAR0.*EPERM/);
  });

  it("reports a device that reads all ones", async () => {
    const m = new Machine();
    const p: DriverPlatform = Object.create(m.platform) as DriverPlatform;
    p.ioremap = (base, len) => ({ ...m.platform.ioremap(base, len), readl: () => 0xffffffff });
    const r = await m.settle(probeE1000(p));
    expect(r.failed[0]!.reason).toMatch(/does not respond/);
  });
});
