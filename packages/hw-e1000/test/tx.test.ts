import { describe, expect, it } from "vitest";
import { Bench, PEER_MAC, R, TX_BUFS, TX_RING, buildPacket, csum16, ipv4Valid, l4Valid, pseudoSeed } from "./harness.ts";

// Descriptor command bits [8254x SDM 3.3.3]
const EOP = 0x01,
  IFCS = 0x02,
  IC = 0x04,
  TSE = 0x04,
  RS = 0x08,
  IDE = 0x80,
  VLE = 0x40;
// Context TUCMD [8254x SDM 3.3.6.1]
const TU_TCP = 0x01,
  TU_IP = 0x02,
  TU_TSE = 0x04;
// POPTS [8254x SDM 3.3.7.2]
const IXSM = 0x01,
  TXSM = 0x02;

function payload(n: number, seed = 1): Uint8Array {
  const p = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    p[i] = x >>> 24;
  }
  return p;
}

describe("legacy transmit descriptors", () => {
  it("puts a queued frame on the wire, writes DD back, advances TDH and raises TXDW|TXQE", () => {
    const b = new Bench();
    b.setupTx();
    b.wr(R.IMS, 0x3);
    const frame = buildPacket({ proto: "udp", payload: payload(100) });
    b.memory.write(TX_BUFS, frame);
    b.legacyTx(0, TX_BUFS, frame.length, EOP | IFCS | RS);
    b.wr(R.TDT, 1);
    expect(b.sent).toHaveLength(1);
    expect(b.sent[0]).toEqual(frame);
    expect(b.memory.readU8(TX_RING + 12) & 1).toBe(1);
    expect(b.rd(R.TDH)).toBe(1);
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR)).toBe(0x3);
  });

  it("gathers a frame from several descriptors and counts it in the statistics", () => {
    const b = new Bench();
    b.setupTx();
    const frame = buildPacket({ proto: "tcp", payload: payload(300) });
    b.memory.write(TX_BUFS, frame.subarray(0, 14));
    b.memory.write(TX_BUFS + 0x1000, frame.subarray(14, 100));
    b.memory.write(TX_BUFS + 0x2000, frame.subarray(100));
    b.legacyTx(0, TX_BUFS, 14, 0);
    b.legacyTx(1, TX_BUFS + 0x1000, 86, 0);
    b.legacyTx(2, TX_BUFS + 0x2000, frame.length - 100, EOP | RS);
    b.wr(R.TDT, 3);
    expect(b.sent).toEqual([frame]);
    expect(b.memory.readU8(TX_RING + 12) & 1).toBe(0); // no RS: no write-back
    expect(b.memory.readU8(TX_RING + 2 * 16 + 12) & 1).toBe(1);
    expect(b.rd(R.GPTC)).toBe(1);
    expect(b.rd(R.GPTC)).toBe(0); // read-to-clear
    expect(b.rd(R.TPT)).toBe(1);
    expect(b.rd(R.GOTCL)).toBe(frame.length + 4);
    expect(b.rd(R.GOTCL)).toBe(frame.length + 4); // the low half does not clear
    expect(b.rd(R.GOTCH)).toBe(0);
    expect(b.rd(R.GOTCL)).toBe(0);
  });

  it("pads short frames to 60 bytes when TCTL.PSP is set, and not otherwise", () => {
    const b = new Bench();
    b.setupTx(16, 0x2 | 0x8);
    b.memory.bytes.fill(0x5a, TX_BUFS, TX_BUFS + 42);
    b.memory.bytes.set(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff), TX_BUFS);
    b.legacyTx(0, TX_BUFS, 42, EOP);
    b.wr(R.TDT, 1);
    expect(b.sent[0]!.length).toBe(60);
    expect(b.sent[0]!.subarray(42).every((x) => x === 0)).toBe(true);
    expect(b.rd(R.BPTC)).toBe(1);
    expect(b.rd(R.PTC64)).toBe(1);
    b.wr(R.TCTL, 0x2);
    b.legacyTx(1, TX_BUFS, 42, EOP);
    b.wr(R.TDT, 2);
    expect(b.sent[1]!.length).toBe(42);
  });

  it("inserts a checksum at CSO over CSS..end with IC (legacy offload)", () => {
    const b = new Bench();
    b.setupTx();
    const frame = buildPacket({ proto: "udp", payload: payload(201) });
    // The driver computes the IP header checksum and seeds the UDP field with the pseudo-header sum.
    frame[24] = 0;
    frame[25] = 0;
    const ipc = csum16(frame.subarray(14, 34));
    frame[24] = ipc >> 8;
    frame[25] = ipc & 0xff;
    const seed = pseudoSeed(frame, frame.length - 34);
    frame[40] = seed >> 8;
    frame[41] = seed & 0xff;
    b.memory.write(TX_BUFS, frame);
    b.legacyTx(0, TX_BUFS, frame.length, EOP | IC, 40, 34);
    b.wr(R.TDT, 1);
    expect(ipv4Valid(b.sent[0]!)).toBe(true);
    expect(l4Valid(b.sent[0]!)).toBe(true);
  });

  it("wraps around the ring and stops at TDT", () => {
    const b = new Bench();
    b.setupTx(8);
    b.wr(R.TDH, 6);
    b.wr(R.TDT, 6);
    const frames = [0, 1, 2, 3].map((i) => buildPacket({ proto: "udp", payload: payload(50 + i, i) }));
    frames.forEach((f, i) => {
      b.memory.write(TX_BUFS + i * 0x800, f);
      b.legacyTx((6 + i) % 8, TX_BUFS + i * 0x800, f.length, EOP | RS);
    });
    b.wr(R.TDT, 1); // descriptors 6, 7, 0
    expect(b.sent).toEqual(frames.slice(0, 3));
    expect(b.rd(R.TDH)).toBe(1);
    b.wr(R.TDT, 2);
    expect(b.sent).toEqual(frames);
  });

  it("does nothing while TCTL.EN is clear and starts on the TCTL write", () => {
    const b = new Bench();
    b.setupTx(16, 0);
    const f = buildPacket({ proto: "udp", payload: payload(20) });
    b.memory.write(TX_BUFS, f);
    b.legacyTx(0, TX_BUFS, f.length, EOP);
    b.wr(R.TDT, 1);
    expect(b.sent).toHaveLength(0);
    b.wr(R.TCTL, 0x2);
    expect(b.sent).toHaveLength(1);
  });

  it("inserts an 802.1Q tag from VET and the special field with VLE and CTRL.VME", () => {
    const b = new Bench();
    b.setupTx();
    b.wr(R.CTRL, b.rd(R.CTRL) | (1 << 30));
    const f = buildPacket({ proto: "udp", payload: payload(60) });
    b.memory.write(TX_BUFS, f);
    b.legacyTx(0, TX_BUFS, f.length, EOP | VLE, 0, 0, 0x2064);
    b.wr(R.TDT, 1);
    const out = b.sent[0]!;
    expect(out.length).toBe(f.length + 4);
    expect(Array.from(out.subarray(12, 16))).toEqual([0x81, 0x00, 0x20, 0x64]);
    expect(out.subarray(16)).toEqual(f.subarray(12));
  });
});

describe("checksum offload with context and data descriptors", () => {
  it("computes IP and TCP checksums (IXSM|TXSM) for a frame spread over two descriptors", () => {
    const b = new Bench();
    b.setupTx();
    const f = buildPacket({ proto: "tcp", payload: payload(777) });
    const l4len = f.length - 34;
    const seed = pseudoSeed(f, l4len);
    f[50] = seed >> 8;
    f[51] = seed & 0xff;
    b.memory.write(TX_BUFS, f.subarray(0, 54));
    b.memory.write(TX_BUFS + 0x1000, f.subarray(54));
    b.contextTx(0, { ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, paylen: 0, tucmd: TU_TCP | TU_IP, hdrlen: 0, mss: 0 });
    b.dataTx(1, TX_BUFS, 54, 0, IXSM | TXSM);
    b.dataTx(2, TX_BUFS + 0x1000, f.length - 54, EOP | RS, 0);
    b.wr(R.TDT, 3);
    expect(b.sent).toHaveLength(1);
    const out = b.sent[0]!;
    expect(ipv4Valid(out)).toBe(true);
    expect(l4Valid(out)).toBe(true);
    expect(out.subarray(54)).toEqual(f.subarray(54));
    expect(b.rd(R.TDH)).toBe(3);
  });

  it("computes a UDP checksum and leaves the IP checksum alone without IXSM", () => {
    const b = new Bench();
    b.setupTx();
    const f = buildPacket({ proto: "udp", payload: payload(512, 7) });
    const ipc = csum16(f.subarray(14, 34));
    f[24] = ipc >> 8;
    f[25] = ipc & 0xff;
    const seed = pseudoSeed(f, f.length - 34);
    f[40] = seed >> 8;
    f[41] = seed & 0xff;
    b.memory.write(TX_BUFS, f);
    b.contextTx(0, { ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 40, tucse: 0, paylen: 0, tucmd: TU_IP, hdrlen: 0, mss: 0 });
    b.dataTx(1, TX_BUFS, f.length, EOP | RS, TXSM);
    b.wr(R.TDT, 2);
    const out = b.sent[0]!;
    expect(ipv4Valid(out)).toBe(true);
    expect(l4Valid(out)).toBe(true);
  });
});

describe("TCP segmentation offload", () => {
  it("splits a 64 KiB TCP payload into MSS-sized frames with correct headers", () => {
    const b = new Bench({ memorySize: 0x800000 });
    b.setupTx(64);
    const MSS = 1460;
    const data = payload(65536, 3);
    const hdr = buildPacket({ proto: "tcp", payload: new Uint8Array(0), ipId: 0x4000, seq: 0xfffff000, tcpFlags: 0x19 }); // ACK|PSH|FIN
    // Linux-style preparation: IP total length and checksum zero, TCP checksum seeded with the
    // pseudo-header sum without the length.
    hdr[16] = hdr[17] = 0;
    const seed = pseudoSeed(hdr, 0);
    hdr[50] = seed >> 8;
    hdr[51] = seed & 0xff;
    b.memory.write(TX_BUFS, hdr);
    b.memory.write(TX_BUFS + 0x1000, data);
    b.contextTx(0, { ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, paylen: data.length, tucmd: TU_TCP | TU_IP | TU_TSE, hdrlen: 54, mss: MSS });
    b.dataTx(1, TX_BUFS, 54, TSE, IXSM | TXSM);
    // Payload in 4 KiB descriptors, as a driver maps pages.
    let i = 2;
    for (let off = 0; off < data.length; off += 4096, i++) {
      b.dataTx(i, TX_BUFS + 0x1000 + off, Math.min(4096, data.length - off), TSE | (off + 4096 >= data.length ? EOP | RS : 0), 0);
    }
    b.wr(R.TDT, i);
    const n = Math.ceil(data.length / MSS);
    expect(b.sent).toHaveLength(n);
    const joined = new Uint8Array(data.length);
    let off = 0;
    b.sent.forEach((f, k) => {
      const last = k === n - 1;
      const chunk = last ? data.length - MSS * (n - 1) : MSS;
      expect(f.length).toBe(54 + chunk);
      const dv = new DataView(f.buffer, f.byteOffset);
      expect(dv.getUint16(16)).toBe(40 + chunk); // IP total length
      expect(dv.getUint16(18)).toBe((0x4000 + k) & 0xffff); // IP ID
      expect(dv.getUint32(38)).toBe((0xfffff000 + k * MSS) >>> 0); // sequence number (wraps)
      expect(f[47]).toBe(last ? 0x19 : 0x10); // PSH/FIN only on the last frame
      expect(ipv4Valid(f)).toBe(true);
      expect(l4Valid(f)).toBe(true);
      expect(Array.from(f.subarray(0, 12))).toEqual([...PEER_MAC, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
      joined.set(f.subarray(54), off);
      off += chunk;
    });
    expect(joined).toEqual(data);
    expect(b.rd(R.TSCTC)).toBe(1);
    expect(b.rd(R.GPTC)).toBe(n);
    expect(b.memory.readU8(TX_RING + (i - 1) * 16 + 12) & 1).toBe(1);
  });

  it("sends no empty trailing segment when the payload is a multiple of the MSS (QEMU 7.2 does)", () => {
    const b = new Bench();
    b.setupTx();
    const data = payload(3000, 4);
    const hdr = buildPacket({ proto: "tcp", payload: new Uint8Array(0), tcpFlags: 0x18 });
    hdr[16] = hdr[17] = 0;
    const seed = pseudoSeed(hdr, 0);
    hdr[50] = seed >> 8;
    hdr[51] = seed & 0xff;
    b.memory.write(TX_BUFS, hdr);
    b.memory.write(TX_BUFS + 0x1000, data);
    b.contextTx(0, { ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, paylen: 3000, tucmd: TU_TCP | TU_IP | TU_TSE, hdrlen: 54, mss: 1000 });
    b.dataTx(1, TX_BUFS, 54, TSE, IXSM | TXSM);
    b.dataTx(2, TX_BUFS + 0x1000, 3000, TSE | EOP | RS, 0);
    b.wr(R.TDT, 3);
    expect(b.sent.map((f) => f.length)).toEqual([1054, 1054, 1054]);
    expect(b.sent.map((f) => f[47])).toEqual([0x10, 0x10, 0x18]);
  });

  it("segments UDP (TUCMD.TCP clear) rewriting the UDP length", () => {
    const b = new Bench();
    b.setupTx();
    const data = payload(3000, 9);
    const hdr = buildPacket({ proto: "udp", payload: new Uint8Array(0) });
    hdr[16] = hdr[17] = 0;
    const seed = pseudoSeed(hdr, 0);
    hdr[40] = seed >> 8;
    hdr[41] = seed & 0xff;
    b.memory.write(TX_BUFS, hdr);
    b.memory.write(TX_BUFS + 0x1000, data);
    b.contextTx(0, { ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 40, tucse: 0, paylen: data.length, tucmd: TU_IP | TU_TSE, hdrlen: 42, mss: 1000 });
    b.dataTx(1, TX_BUFS, 42, TSE, IXSM | TXSM);
    b.dataTx(2, TX_BUFS + 0x1000, data.length, TSE | EOP | RS, 0);
    b.wr(R.TDT, 3);
    expect(b.sent.map((f) => f.length)).toEqual([1042, 1042, 1042]);
    for (const f of b.sent) {
      expect((f[38]! << 8) | f[39]!).toBe(1008);
      expect(ipv4Valid(f)).toBe(true);
      expect(l4Valid(f)).toBe(true);
    }
  });

  it("drops a TSO packet with MSS 0 without hanging and counts TSCTFC", () => {
    const b = new Bench();
    b.setupTx();
    const hdr = buildPacket({ proto: "tcp", payload: payload(100) });
    b.memory.write(TX_BUFS, hdr);
    b.contextTx(0, { ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, paylen: 100, tucmd: TU_TCP | TU_IP | TU_TSE, hdrlen: 54, mss: 0 });
    b.dataTx(1, TX_BUFS, hdr.length, TSE | EOP | RS, IXSM | TXSM);
    b.wr(R.TDT, 2);
    expect(b.sent).toHaveLength(0);
    expect(b.rd(R.TDH)).toBe(2);
    expect(b.rd(0x40fc)).toBe(1);
  });
});

describe("transmit interrupt delay", () => {
  it("delays TXDW by TIDV for IDE descriptors, capped by TADV", () => {
    const b = new Bench();
    b.setupTx();
    b.wr(R.IMS, 0x1);
    b.wr(R.TIDV, 100); // 102.4 µs
    b.wr(R.TADV, 150); // 153.6 µs
    const f = buildPacket({ proto: "udp", payload: payload(10) });
    b.memory.write(TX_BUFS, f);
    b.legacyTx(0, TX_BUFS, f.length, EOP | RS | IDE);
    b.wr(R.TDT, 1);
    expect(b.irq.level).toBe(false);
    b.clock.advanceBy(80_000);
    b.legacyTx(1, TX_BUFS, f.length, EOP | RS | IDE);
    b.wr(R.TDT, 2); // restarts TIDV, TADV keeps running
    b.clock.advanceBy(73_000);
    expect(b.irq.level).toBe(false);
    b.clock.advanceBy(1_000); // 154 µs > TADV
    expect(b.irq.level).toBe(true);
    expect(b.rd(R.ICR) & 1).toBe(1);
  });

  it("raises TXDW at once for descriptors without IDE", () => {
    const b = new Bench();
    b.setupTx();
    b.wr(R.IMS, 0x1);
    b.wr(R.TIDV, 100);
    const f = buildPacket({ proto: "udp", payload: payload(10) });
    b.memory.write(TX_BUFS, f);
    b.legacyTx(0, TX_BUFS, f.length, EOP | RS);
    b.wr(R.TDT, 1);
    expect(b.irq.level).toBe(true);
  });
});

describe("DMA addresses", () => {
  it("handles rings and buffers above 2 GiB (bit 31 of TDBAL/RDBAL set)", async () => {
    const { FlatMemory, RecordingIrqLine } = await import("@paravirt/vm-interfaces/testing");
    const { VirtualClock, cable } = await import("@paravirt/vm-interfaces");
    const { E1000 } = await import("../src/index.ts");
    const mem = new FlatMemory(0x100000, 0x80000000);
    const [a, peer] = cable();
    const got: Uint8Array[] = [];
    peer.onReceive((f) => got.push(f));
    const nic = new E1000({ memory: mem, irq: new RecordingIrqLine(), clock: new VirtualClock(), port: a });
    const w = (o: number, v: number) => nic.mmio.write(o, 4, v);
    const f = buildPacket({ proto: "udp", payload: payload(40) });
    mem.write(0x80010000, f);
    mem.writeU32(0x80000000, 0x80010000);
    mem.writeU32(0x80000004, 0);
    mem.writeU32(0x80000008, f.length | ((EOP | RS) << 24));
    w(R.TDBAL, 0x80000000);
    w(R.TDLEN, 128);
    w(R.TCTL, 0x2);
    w(R.TDT, 1);
    expect(got).toEqual([f]);
    expect(mem.readU8(0x8000000c) & 1).toBe(1);
    // Receive into a ring up there too.
    mem.writeU32(0x80001000, 0x80020000);
    w(R.RDBAL, 0x80001000);
    w(R.RDLEN, 128);
    w(R.RDT, 1);
    w(R.RCTL, 0x2 | 0x8 | (1 << 26));
    peer.send(f);
    expect(mem.readU16(0x80001008)).toBe(f.length);
    expect(mem.bytes.subarray(0x20000, 0x20000 + f.length)).toEqual(f);
  });
});
