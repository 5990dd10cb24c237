import { describe, expect, it } from "vitest";
import { Bench, MAC, PEER_MAC, R, RX_BUFS, buildPacket, finishChecksums, refCrc32 } from "./harness.ts";

// RCTL bits [8254x SDM 13.4.22]
const EN = 1 << 1,
  UPE = 1 << 3,
  MPE = 1 << 4,
  LPE = 1 << 5,
  BAM = 1 << 15,
  VFE = 1 << 18,
  BSEX = 1 << 25,
  SECRC = 1 << 26;
const bsize = (v: number) => v << 16;
const mo = (v: number) => v << 12;
// Rx status [8254x SDM 3.2.3.1]
const DD = 0x01,
  EOP = 0x02,
  IXSM = 0x04,
  VP = 0x08,
  TCPCS = 0x20,
  IPCS = 0x40;

function frameTo(dst: Uint8Array, len = 64, type = 0x88b5): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(PEER_MAC, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  for (let i = 14; i < len; i++) f[i] = i & 0xff;
  return f;
}

const BCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
const OTHER = Uint8Array.of(0x52, 0x54, 0x00, 0x99, 0x99, 0x99);
const MCAST = Uint8Array.of(0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb); // 224.0.0.251

/** MTA bit for `da` under RCTL.MO (computed independently from the SDM's bit ranges). */
function mtaBit(da: Uint8Array, offset: number): number {
  const v = da[4]! | (da[5]! << 8); // bits 47:32 of the address as the SDM numbers them
  const shift = [4, 3, 2, 0][offset]!;
  return (v >> shift) & 0xfff;
}

describe("receive filtering", () => {
  type Case = { name: string; rctl: number; dst: Uint8Array; accept: boolean; setup?: (b: Bench) => void };
  const cases: Case[] = [
    { name: "own unicast", rctl: EN, dst: MAC, accept: true },
    { name: "other unicast", rctl: EN, dst: OTHER, accept: false },
    { name: "other unicast, UPE", rctl: EN | UPE, dst: OTHER, accept: true },
    { name: "broadcast without BAM", rctl: EN, dst: BCAST, accept: false },
    { name: "broadcast, BAM", rctl: EN | BAM, dst: BCAST, accept: true },
    { name: "multicast, no filter", rctl: EN | BAM, dst: MCAST, accept: false },
    { name: "multicast, MPE", rctl: EN | MPE, dst: MCAST, accept: true },
    { name: "multicast, UPE only", rctl: EN | UPE, dst: MCAST, accept: false },
    ...[0, 1, 2, 3].map((o) => ({
      name: `multicast, MTA hash MO=${o}`,
      rctl: EN | mo(o),
      dst: MCAST,
      accept: true,
      setup: (b: Bench) => {
        const h = mtaBit(MCAST, o);
        b.wr(R.MTA + (h >> 5) * 4, 1 << (h & 31));
      },
    })),
    {
      name: "multicast, MTA bit of another offset",
      rctl: EN | mo(0),
      dst: MCAST,
      accept: false,
      setup: (b: Bench) => {
        const h = mtaBit(MCAST, 3);
        b.wr(R.MTA + (h >> 5) * 4, 1 << (h & 31));
      },
    },
    {
      name: "unicast in RA[3] with AV",
      rctl: EN,
      dst: OTHER,
      accept: true,
      setup: (b: Bench) => {
        b.wr(R.RAL0 + 24, 0x99005452);
        b.wr(R.RAH0 + 24, 0x80009999);
      },
    },
    {
      name: "unicast in RA[3] without AV",
      rctl: EN,
      dst: OTHER,
      accept: false,
      setup: (b: Bench) => {
        b.wr(R.RAL0 + 24, 0x99005452);
        b.wr(R.RAH0 + 24, 0x00009999);
      },
    },
    {
      name: "own unicast after RAH0.AV cleared",
      rctl: EN,
      dst: MAC,
      accept: false,
      setup: (b: Bench) => b.wr(R.RAH0, b.rd(R.RAH0) & 0xffff),
    },
    { name: "own unicast, receiver disabled", rctl: BAM | UPE, dst: MAC, accept: false },
  ];

  it.each(cases)("$name → accepted: $accept", (c) => {
    const b = new Bench();
    c.setup?.(b);
    b.setupRx(c.rctl | SECRC);
    b.wire.send(frameTo(c.dst));
    expect(b.rd(R.RDH)).toBe(c.accept ? 1 : 0);
    expect(b.rd(R.GPRC)).toBe(c.accept ? 1 : 0);
    if (c.accept) expect(b.rxDesc(0).status & (DD | EOP)).toBe(DD | EOP);
  });

  it("counts broadcast and multicast receptions", () => {
    const b = new Bench();
    b.setupRx(EN | BAM | MPE | SECRC);
    b.wire.send(frameTo(BCAST));
    b.wire.send(frameTo(MCAST));
    b.wire.send(frameTo(MCAST));
    expect(b.rd(R.BPRC)).toBe(1);
    expect(b.rd(R.MPRC)).toBe(2);
    expect(b.rd(R.TPR)).toBe(3);
    expect(b.rd(R.GORCL)).toBe(3 * 68);
  });

  it("drops VLAN frames whose VID is not in VFTA when RCTL.VFE is set", () => {
    const b = new Bench();
    b.setupRx(EN | VFE | SECRC);
    const tagged = (vid: number) => {
      const f = frameTo(MAC, 68, 0x8100);
      f[14] = vid >> 8;
      f[15] = vid & 0xff;
      f[16] = 0x08;
      f[17] = 0x00;
      return f;
    };
    b.wr(R.VFTA + (100 >> 5) * 4, 1 << (100 & 31));
    b.wire.send(tagged(101));
    expect(b.rd(R.RDH)).toBe(0);
    b.wire.send(tagged(100));
    expect(b.rd(R.RDH)).toBe(1);
  });
});

describe("receive descriptors and buffers", () => {
  it("stores the frame, its length and DD|EOP; SECRC strips the FCS", () => {
    const b = new Bench();
    b.setupRx(EN | BAM | SECRC);
    b.wr(R.IMS, 0x80);
    const f = frameTo(MAC, 65);
    b.wire.send(f);
    const d = b.rxDesc(0);
    expect(d.length).toBe(65);
    expect(d.status).toBe(DD | EOP | IXSM);
    expect(b.memory.bytes.subarray(RX_BUFS, RX_BUFS + 65)).toEqual(f);
    expect(b.rd(R.RDH)).toBe(1);
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR) & 0x80).toBe(0x80);
  });

  it("without SECRC the length includes the FCS and the buffer holds the CRC-32", () => {
    const b = new Bench();
    b.setupRx(EN);
    const f = frameTo(MAC, 100);
    b.wire.send(f);
    const d = b.rxDesc(0);
    expect(d.length).toBe(104);
    const fcs = b.memory.readU32(RX_BUFS + 100);
    expect(fcs).toBe(refCrc32(f));
  });

  it("pads runts to 60 bytes", () => {
    const b = new Bench();
    b.setupRx(EN | SECRC);
    b.wire.send(frameTo(MAC, 42));
    expect(b.rxDesc(0).length).toBe(60);
  });

  it.each([
    { rctl: bsize(3), size: 256 },
    { rctl: bsize(2), size: 512 },
    { rctl: bsize(1), size: 1024 },
    { rctl: bsize(0), size: 2048 },
    { rctl: BSEX | bsize(3), size: 4096 },
  ])("spreads a long frame over $size-byte buffers", ({ rctl, size }) => {
    const b = new Bench({ memorySize: 0x800000 });
    const len = 1514;
    b.setupRx(EN | SECRC | rctl, 16, 15, size);
    const f = frameTo(MAC, len);
    b.wire.send(f);
    const n = Math.ceil(len / size);
    expect(b.rd(R.RDH)).toBe(n);
    const got = new Uint8Array(len);
    for (let i = 0; i < n; i++) {
      const d = b.rxDesc(i);
      const l = Math.min(size, len - i * size);
      expect(d.length).toBe(l);
      expect(d.status & EOP).toBe(i === n - 1 ? EOP : 0);
      expect(d.status & DD).toBe(DD);
      got.set(b.memory.bytes.subarray(d.addr, d.addr + l), i * size);
    }
    expect(got).toEqual(f);
  });

  it("drops frames over 1522 bytes (with FCS) unless RCTL.LPE", () => {
    const b = new Bench({ memorySize: 0x800000 });
    b.setupRx(EN | SECRC | BSEX | bsize(3), 16, 15, 4096);
    b.wire.send(frameTo(MAC, 1518)); // 1522 with FCS: accepted
    expect(b.rd(R.RDH)).toBe(1);
    b.wire.send(frameTo(MAC, 1519));
    expect(b.rd(R.RDH)).toBe(1);
    expect(b.rd(R.ROC)).toBe(1);
    b.wr(R.RCTL, EN | SECRC | BSEX | bsize(3) | LPE);
    b.wire.send(frameTo(MAC, 9000));
    expect(b.rd(R.RDH)).toBe(4);
  });

  it("holds frames while no descriptors are free and delivers them on the RDT write", () => {
    const b = new Bench();
    b.setupRx(EN | SECRC, 8, 1);
    b.wire.send(frameTo(MAC, 80));
    b.wire.send(frameTo(MAC, 81));
    b.wire.send(frameTo(MAC, 82));
    expect(b.rd(R.RDH)).toBe(1);
    expect(b.rd(R.RNBC)).toBe(2);
    b.wr(R.RDT, 3);
    expect(b.rd(R.RDH)).toBe(3);
    expect([0, 1, 2].map((i) => b.rxDesc(i).length)).toEqual([80, 81, 82]);
  });

  it("overruns (RXO, MPC) when the packet buffer is full", () => {
    const b = new Bench({ memorySize: 0x800000 });
    b.wr(R.PBA, 0x30 - 44); // 4 KiB of Rx packet buffer
    b.wr(R.IMS, 0x40);
    b.setupRx(EN | SECRC | LPE | BSEX | bsize(1), 8, 0, 16384);
    b.wire.send(frameTo(MAC, 3000)); // held
    expect(b.irq.level).toBe(false);
    b.wire.send(frameTo(MAC, 3000)); // does not fit
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR) & 0x40).toBe(0x40);
    expect(b.rd(R.MPC)).toBe(1);
    b.wr(R.RDT, 4);
    expect(b.rd(R.RDH)).toBe(1);
  });

  it("raises RXDMT0 when free descriptors fall to the RDMTS threshold", () => {
    const b = new Bench();
    b.setupRx(EN | SECRC, 16, 15); // RDMTS = 1/2: 8 descriptors
    for (let i = 0; i < 6; i++) b.wire.send(frameTo(MAC));
    expect(b.rd(R.ICR) & 0x10).toBe(0); // 9 left
    b.wire.send(frameTo(MAC)); // 8 left
    expect(b.rd(R.ICR) & 0x10).toBe(0x10);
  });

  it("strips the VLAN tag into the special field with CTRL.VME", () => {
    const b = new Bench();
    b.wr(R.CTRL, b.rd(R.CTRL) | (1 << 30));
    b.setupRx(EN | SECRC);
    const f = frameTo(MAC, 80, 0x8100);
    f[14] = 0x20;
    f[15] = 0x05;
    f[16] = 0x88;
    f[17] = 0xb5;
    b.wire.send(f);
    const d = b.rxDesc(0);
    expect(d.special).toBe(0x2005);
    expect(d.status & VP).toBe(VP);
    expect(d.length).toBe(76);
    expect(b.memory.bytes.subarray(RX_BUFS + 12, RX_BUFS + 14)).toEqual(Uint8Array.of(0x88, 0xb5));
  });

  it("reports IP and TCP checksums as verified, and errors for a corrupted one", () => {
    const b = new Bench();
    expect(b.rd(R.RXCSUM)).toBe(0); // offloads are off after reset
    b.wr(R.RXCSUM, 0x300); // IPOFLD | TUOFLD
    b.setupRx(EN | SECRC);
    const good = finishChecksums(buildPacket({ dst: MAC, src: PEER_MAC, proto: "tcp", payload: new Uint8Array(50).fill(7) }));
    b.wire.send(good);
    expect(b.rxDesc(0).status).toBe(DD | EOP | IPCS | TCPCS);
    expect(b.rxDesc(0).errors).toBe(0);
    const bad = good.slice();
    bad[60] = bad[60]! ^ 0xff;
    b.wire.send(bad);
    expect(b.rxDesc(1).status).toBe(DD | EOP | IPCS | TCPCS);
    expect(b.rxDesc(1).errors).toBe(0x20); // TCPE
    const badIp = good.slice();
    badIp[22] = 1; // TTL changed, checksum stale
    b.wire.send(badIp);
    expect(b.rxDesc(2).errors & 0x40).toBe(0x40); // IPE
    b.wr(R.RXCSUM, 0);
    b.wire.send(good);
    expect(b.rxDesc(3).status).toBe(DD | EOP | IXSM);
  });

  it("drops frames while the link is down", () => {
    const b = new Bench();
    b.setupRx(EN | SECRC);
    b.wr(R.CTRL, b.rd(R.CTRL) & ~0x40);
    b.wire.send(frameTo(MAC));
    expect(b.rd(R.RDH)).toBe(0);
  });
});

describe("receive interrupt delay", () => {
  it("delays RXT0 by RDTR, restarted per packet, capped by RADV", () => {
    const b = new Bench();
    b.setupRx(EN | SECRC);
    b.wr(R.IMS, 0x80);
    b.wr(R.RDTR, 100); // 102.4 µs
    b.wr(R.RADV, 250); // 256 µs
    b.wire.send(frameTo(MAC));
    expect(b.irq.level).toBe(false);
    for (let i = 0; i < 3; i++) {
      b.clock.advanceBy(80_000);
      b.wire.send(frameTo(MAC)); // keeps restarting the packet timer
      expect(b.irq.level).toBe(false);
    }
    b.clock.advanceBy(15_000); // 255 µs
    expect(b.irq.level).toBe(false);
    b.clock.advanceBy(1_000);
    expect(b.irq.level).toBe(true);
  });

  it("fires at once when RDTR is written with FPD", () => {
    const b = new Bench();
    b.setupRx(EN | SECRC);
    b.wr(R.IMS, 0x80);
    b.wr(R.RDTR, 1000);
    b.wire.send(frameTo(MAC));
    expect(b.irq.level).toBe(false);
    b.wr(R.RDTR, (1 << 31) | 1000);
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.RDTR)).toBe(1000);
  });

  it("RDTR alone delays by the packet timer", () => {
    const b = new Bench();
    b.setupRx(EN | SECRC);
    b.wr(R.IMS, 0x80);
    b.wr(R.RDTR, 10);
    b.wire.send(frameTo(MAC));
    b.clock.advanceBy(10_239);
    expect(b.irq.level).toBe(false);
    b.clock.advanceBy(1);
    expect(b.irq.level).toBe(true);
  });
});
