/**
 * The register sequence Linux' e1000 driver performs for an 82540EM (probe, reset, link setup,
 * open; devices.md §1.9), replayed against the model: what the driver checks must hold.
 */
import { describe, expect, it } from "vitest";
import { SimulatedHost, ethernetFrame, icmpEcho, ipv4Packet, parseIpv4 } from "@paravirt/net-wire";
import { Bench, MAC, R } from "./harness.ts";

const HOST_MAC = Uint8Array.of(0x02, 0, 0, 0, 0, 2);

function eepromReadMicrowire(b: Bench, addr: number): number {
  const SK = 1,
    CS = 2,
    DI = 4,
    DO = 8,
    REQ = 0x40;
  let e = b.rd(R.EECD) | REQ;
  b.wr(R.EECD, e);
  e = (e | CS) & ~(SK | DI);
  b.wr(R.EECD, e);
  const out = (v: number, n: number) => {
    for (let m = 1 << (n - 1); m; m >>= 1) {
      e = v & m ? e | DI : e & ~DI;
      b.wr(R.EECD, e);
      b.wr(R.EECD, e | SK);
      b.wr(R.EECD, e);
    }
  };
  out(0b110, 3);
  out(addr, 6);
  e &= ~DI;
  let d = 0;
  for (let i = 0; i < 16; i++) {
    b.wr(R.EECD, e | SK);
    d = (d << 1) | (b.rd(R.EECD) & DO ? 1 : 0);
    b.wr(R.EECD, e);
  }
  b.wr(R.EECD, e & ~(CS | REQ));
  return d;
}

function mdic(b: Bench, reg: number, write?: number): number {
  b.wr(R.MDIC, (write ?? 0) | (reg << 16) | (1 << 21) | (write === undefined ? 2 << 26 : 1 << 26));
  const v = b.rd(R.MDIC);
  expect(v & (1 << 28)).not.toBe(0); // READY
  expect(v & (1 << 30)).toBe(0); // ERROR
  return v & 0xffff;
}

describe("Linux e1000 bring-up sequence", () => {
  it("probe, reset, link setup and open work as the driver expects", () => {
    const b = new Bench({ connected: false });
    // e1000_sw_init → e1000_irq_disable
    b.wr(R.IMC, 0xffffffff);
    // EEPROM: 82540 uses Microwire; checksum over 64 words must be 0xBABA.
    let sum = 0;
    const words: number[] = [];
    for (let a = 0; a < 64; a++) {
      words.push(eepromReadMicrowire(b, a));
      sum = (sum + words[a]!) & 0xffff;
    }
    expect(sum).toBe(0xbaba);
    const mac = Uint8Array.of(words[0]! & 0xff, words[0]! >> 8, words[1]! & 0xff, words[1]! >> 8, words[2]! & 0xff, words[2]! >> 8);
    expect(mac).toEqual(MAC);
    // e1000_reset_hw
    b.wr(R.IMC, 0xffffffff);
    b.wr(R.RCTL, 0);
    b.wr(R.TCTL, 0x8);
    b.rd(R.STATUS);
    b.clock.advanceBy(10_000_000);
    b.ioWr(R.CTRL, b.rd(R.CTRL) | (1 << 26)); // through the I/O BAR
    b.clock.advanceBy(5_000_000);
    expect(b.rd(R.CTRL) & (1 << 26)).toBe(0);
    b.wr(0x5820, b.rd(0x5820) & ~(1 << 13)); // MANC.ARP_EN
    b.wr(R.IMC, 0xffffffff);
    b.rd(R.ICR);
    // e1000_init_hw
    b.wr(R.VET, 0);
    for (let i = 0; i < 128; i++) b.wr(R.VFTA + 4 * i, 0);
    b.wr(R.RAL0, (mac[0]! | (mac[1]! << 8) | (mac[2]! << 16) | (mac[3]! << 24)) >>> 0);
    b.wr(R.RAH0, (mac[4]! | (mac[5]! << 8) | (1 << 31)) >>> 0);
    for (let i = 1; i < 16; i++) {
      b.wr(R.RAL0 + 8 * i, 0);
      b.wr(R.RAH0 + 8 * i, 0);
    }
    for (let i = 0; i < 128; i++) b.wr(R.MTA + 4 * i, 0);
    // e1000_setup_copper_link: SLU, PHY id, M88 settings, autonegotiation.
    b.wr(R.CTRL, (b.rd(R.CTRL) | 0x40) & ~(0x1800));
    expect((mdic(b, 2) << 16) | mdic(b, 3)).toBe(0x01410c20);
    mdic(b, 0x10, 0x0068);
    mdic(b, 4, 0x01e1);
    mdic(b, 9, 0x0200);
    mdic(b, 0, 0x1000 | 0x0200); // AN enable + restart
    b.wr(R.VET, 0x8100);
    // Statistics are cleared by reading them.
    for (let o = 0x4000; o <= 0x40fc; o += 4) b.rd(o);
    // e1000_open → configure Tx/Rx
    b.wr(R.TDBAL, 0x10000);
    b.wr(R.TDBAH, 0);
    b.wr(R.TDLEN, 256 * 16);
    b.wr(R.TDH, 0);
    b.wr(R.TDT, 0);
    b.wr(0x0410, 0x00602008); // TIPG
    b.wr(R.TIDV, 8);
    b.wr(R.TADV, 32);
    b.wr(R.TCTL, 0x2 | 0x8 | (0x0f << 4) | (0x40 << 12) | (1 << 24));
    b.wr(R.RCTL, 0);
    b.wr(R.RDTR, 0);
    b.wr(R.RADV, 8);
    b.wr(R.ITR, 488); // 8000 interrupts/s
    b.wr(R.RDLEN, 256 * 16);
    b.wr(R.RDBAH, 0);
    b.wr(R.RDBAL, 0x20000);
    b.wr(R.RDT, 0);
    b.wr(R.RDH, 0);
    b.wr(R.RXCSUM, 1 << 9);
    b.wr(R.RCTL, 0x2 | (1 << 15)); // EN | BAM, BSIZE 2048, RDMTS 1/2, FCS kept (Linux strips 4 bytes)
    for (let i = 0; i < 256; i++) b.memory.writeU32(0x20000 + 16 * i, 0x100000 + 2048 * i);
    b.wr(R.RDT, 255);
    b.wr(R.IMS, 0x9d);
    b.wr(R.ICS, 0x4); // kick the watchdog
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR) & 0x4).toBe(0x4);
    // No cable yet: the watchdog sees no link.
    expect(b.rd(R.STATUS) & 2).toBe(0);

    // Cable plugged in: a host answers pings.
    const host = new SimulatedHost({ mac: HOST_MAC, ip: parseIpv4("10.0.2.2"), clock: b.clock, replyDelayNs: 30_000 });
    b.nic.device.connect(host);
    expect(b.rd(R.STATUS) & 2).toBe(2);
    b.clock.advanceBy(200_000); // past the ITR interval since the watchdog kick
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR) & 0x4).toBe(0x4); // LSC
    const bmsr = mdic(b, 1);
    expect(bmsr & 0x24).toBe(0x24);

    // Transmit 8 pings back to back; replies arrive 30 µs later, interrupts respect ITR.
    for (let i = 0; i < 8; i++) {
      const f = ethernetFrame(HOST_MAC, MAC, 0x0800, ipv4Packet(parseIpv4("10.0.2.15"), parseIpv4("10.0.2.2"), 1, icmpEcho(8, 1, i, new Uint8Array(56))));
      b.memory.write(0x200000 + i * 2048, f);
      b.memory.writeU32(0x10000 + i * 16, 0x200000 + i * 2048);
      b.memory.writeU32(0x10000 + i * 16 + 4, 0);
      b.memory.writeU32(0x10000 + i * 16 + 8, f.length | ((0x01 | 0x02 | 0x08 | 0x80) << 24)); // EOP|IFCS|RS|IDE
      b.memory.writeU32(0x10000 + i * 16 + 12, 0);
      b.wr(R.TDT, i + 1);
      b.clock.advanceBy(5_000);
    }
    expect(host.counters.echoReplies).toBe(8);
    const edges: number[] = [];
    let last = b.irq.raised;
    for (let t = 0; t < 2_000; t++) {
      b.clock.advanceBy(1_000);
      if (b.irq.raised !== last) {
        edges.push(b.clock.now());
        last = b.irq.raised;
        b.rd(R.ICR); // the handler reads ICR
      }
    }
    expect(edges.length).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < edges.length; i++) expect(edges[i]! - edges[i - 1]!).toBeGreaterThanOrEqual(488 * 256);
    expect(b.rd(R.RDH)).toBe(8);
    for (let i = 0; i < 8; i++) {
      const len = b.memory.readU16(0x20000 + 16 * i + 8);
      expect(len).toBe(98 + 4); // FCS included: the driver drops 4 bytes
      expect(b.memory.readU8(0x20000 + 16 * i + 12)).toBe(0x07); // DD|EOP|IXSM: RXCSUM.IPOFL off, ICMP not offloaded
    }
    expect(b.rd(0x4074)).toBe(8); // GPRC
    expect(b.rd(R.GPTC)).toBe(8);
  });
});
