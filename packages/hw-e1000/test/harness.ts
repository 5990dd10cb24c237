/**
 * Test bench: an E1000PciFunction with its BARs mapped on IoBuses, FlatMemory for DMA, a
 * RecordingIrqLine, a VirtualClock and a cable whose far end records frames. Everything the
 * tests do to the device goes through configuration space and the BARs.
 */
import { IoBus, PCI_COMMAND, PCI_CONFIG, VirtualClock, cable, type EthernetPort } from "@paravirt/vm-interfaces";
import { FlatMemory, RecordingIrqLine } from "@paravirt/vm-interfaces/testing";
import { E1000PciFunction } from "../src/index.ts";

export const MMIO_BASE = 0xfebc0000;
export const IO_BASE = 0xc000;

/** Register offsets used by tests, written out independently of src/registers.ts [8254x SDM 13.4]. */
export const R = {
  CTRL: 0x0000,
  STATUS: 0x0008,
  EECD: 0x0010,
  EERD: 0x0014,
  MDIC: 0x0020,
  VET: 0x0038,
  ICR: 0x00c0,
  ITR: 0x00c4,
  ICS: 0x00c8,
  IMS: 0x00d0,
  IMC: 0x00d8,
  RCTL: 0x0100,
  TCTL: 0x0400,
  PBA: 0x1000,
  RDBAL: 0x2800,
  RDBAH: 0x2804,
  RDLEN: 0x2808,
  RDH: 0x2810,
  RDT: 0x2818,
  RDTR: 0x2820,
  RADV: 0x282c,
  TDBAL: 0x3800,
  TDBAH: 0x3804,
  TDLEN: 0x3808,
  TDH: 0x3810,
  TDT: 0x3818,
  TIDV: 0x3820,
  TADV: 0x382c,
  RXCSUM: 0x5000,
  MTA: 0x5200,
  RAL0: 0x5400,
  RAH0: 0x5404,
  VFTA: 0x5600,
  MPC: 0x4010,
  GPRC: 0x4074,
  BPRC: 0x4078,
  MPRC: 0x407c,
  GPTC: 0x4080,
  GORCL: 0x4088,
  GORCH: 0x408c,
  GOTCL: 0x4090,
  GOTCH: 0x4094,
  RNBC: 0x40a0,
  ROC: 0x40ac,
  TPR: 0x40d0,
  TPT: 0x40d4,
  PTC64: 0x40d8,
  BPTC: 0x40f4,
  TSCTC: 0x40f8,
} as const;

export const MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
export const PEER_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x02);

export const TX_RING = 0x10000;
export const RX_RING = 0x20000;
export const TX_BUFS = 0x40000;
export const RX_BUFS = 0x100000;

export interface BenchOptions {
  connected?: boolean;
  master?: boolean;
  memorySize?: number;
}

export class Bench {
  readonly clock = new VirtualClock();
  readonly memory: FlatMemory;
  readonly irq = new RecordingIrqLine();
  readonly mmioBus = new IoBus(2 ** 32);
  readonly ioBus = new IoBus(0x10000);
  readonly nic: E1000PciFunction;
  readonly wire: EthernetPort; // the far end
  readonly nicEnd: EthernetPort;
  readonly sent: Uint8Array[] = [];

  constructor(o: BenchOptions = {}) {
    this.memory = new FlatMemory(o.memorySize ?? 0x400000);
    const [a, b] = cable();
    this.nicEnd = a;
    this.wire = b;
    b.onReceive((f) => this.sent.push(f));
    this.nic = new E1000PciFunction({
      memory: this.memory,
      irq: this.irq,
      clock: this.clock,
      mac: MAC,
      ...(o.connected === false ? {} : { port: a }),
    });
    this.nic.configWrite(PCI_CONFIG.BAR0, 4, MMIO_BASE);
    this.nic.configWrite(PCI_CONFIG.BAR0 + 4, 4, IO_BASE);
    const cmd = PCI_COMMAND.MEMORY | PCI_COMMAND.IO | (o.master === false ? 0 : PCI_COMMAND.MASTER);
    this.nic.configWrite(PCI_CONFIG.COMMAND, 2, cmd);
    this.mmioBus.register({ base: MMIO_BASE, length: 0x20000 }, this.nic.bars[0]!.device, "e1000-mmio");
    this.ioBus.register({ base: IO_BASE, length: 64 }, this.nic.bars[1]!.device, "e1000-io");
  }

  rd(off: number): number {
    return this.mmioBus.read(MMIO_BASE + off, 4);
  }
  wr(off: number, v: number): void {
    this.mmioBus.write(MMIO_BASE + off, 4, v >>> 0);
  }
  ioWr(off: number, v: number): void {
    this.ioBus.write(IO_BASE, 4, off);
    this.ioBus.write(IO_BASE + 4, 4, v >>> 0);
  }
  ioRd(off: number): number {
    this.ioBus.write(IO_BASE, 4, off);
    return this.ioBus.read(IO_BASE + 4, 4);
  }

  /** Tx ring of `n` descriptors at TX_RING, TCTL.EN|PSP. */
  setupTx(n = 16, tctl = 0x2 | 0x8 | (0x0f << 4) | (0x40 << 12)): void {
    this.wr(R.TDBAL, TX_RING);
    this.wr(R.TDBAH, 0);
    this.wr(R.TDLEN, n * 16);
    this.wr(R.TDH, 0);
    this.wr(R.TDT, 0);
    this.wr(R.TCTL, tctl);
  }

  /** Rx ring of `n` descriptors with `bufSize`-byte buffers; `fill` of them given to hardware. */
  setupRx(rctl: number, n = 16, fill = n - 1, bufSize = 2048): void {
    for (let i = 0; i < n; i++) {
      const d = RX_RING + i * 16;
      this.memory.bytes.fill(0, d, d + 16);
      this.memory.writeU32(d, RX_BUFS + i * bufSize);
    }
    this.wr(R.RDBAL, RX_RING);
    this.wr(R.RDBAH, 0);
    this.wr(R.RDLEN, n * 16);
    this.wr(R.RDH, 0);
    this.wr(R.RDT, fill);
    this.wr(R.RCTL, rctl);
  }

  /** Writes a legacy Tx descriptor at index `i`. */
  legacyTx(i: number, addr: number, len: number, cmd: number, cso = 0, css = 0, special = 0): void {
    const d = TX_RING + i * 16;
    this.memory.writeU32(d, addr);
    this.memory.writeU32(d + 4, 0);
    this.memory.writeU16(d + 8, len);
    this.memory.writeU8(d + 10, cso);
    this.memory.writeU8(d + 11, cmd);
    this.memory.writeU8(d + 12, 0);
    this.memory.writeU8(d + 13, css);
    this.memory.writeU16(d + 14, special);
  }

  /** Writes a TCP/IP context descriptor at index `i`. */
  contextTx(
    i: number,
    c: { ipcss: number; ipcso: number; ipcse: number; tucss: number; tucso: number; tucse: number; paylen: number; tucmd: number; hdrlen: number; mss: number },
  ): void {
    const d = TX_RING + i * 16;
    this.memory.writeU8(d, c.ipcss);
    this.memory.writeU8(d + 1, c.ipcso);
    this.memory.writeU16(d + 2, c.ipcse);
    this.memory.writeU8(d + 4, c.tucss);
    this.memory.writeU8(d + 5, c.tucso);
    this.memory.writeU16(d + 6, c.tucse);
    // PAYLEN 19:0, DTYP=0 (context) 23:20, TUCMD 31:24 with DEXT
    this.memory.writeU32(d + 8, (c.paylen & 0xfffff) | (((c.tucmd | 0x20) & 0xff) << 24));
    this.memory.writeU8(d + 12, 0);
    this.memory.writeU8(d + 13, c.hdrlen);
    this.memory.writeU16(d + 14, c.mss);
  }

  /** Writes a TCP/IP data descriptor at index `i` (DTYP=1, DEXT set). */
  dataTx(i: number, addr: number, len: number, dcmd: number, popts: number, special = 0): void {
    const d = TX_RING + i * 16;
    this.memory.writeU32(d, addr);
    this.memory.writeU32(d + 4, 0);
    this.memory.writeU32(d + 8, (len & 0xfffff) | (1 << 20) | (((dcmd | 0x20) & 0xff) << 24));
    this.memory.writeU8(d + 12, 0);
    this.memory.writeU8(d + 13, popts);
    this.memory.writeU16(d + 14, special);
  }

  rxDesc(i: number): { addr: number; length: number; csum: number; status: number; errors: number; special: number } {
    const d = RX_RING + i * 16;
    return {
      addr: this.memory.readU32(d),
      length: this.memory.readU16(d + 8),
      csum: this.memory.readU16(d + 10),
      status: this.memory.readU8(d + 12),
      errors: this.memory.readU8(d + 13),
      special: this.memory.readU16(d + 14),
    };
  }
}

// ----- independent packet helpers (RFC 791/793/768/1071) -------------------------------------

/** RFC 1071 checksum, computed the slow obvious way. */
export function csum16(bytes: Uint8Array | number[]): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += ((bytes[i] ?? 0) << 8) + (bytes[i + 1] ?? 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

export function ipv4Valid(frame: Uint8Array): boolean {
  const ihl = (frame[14]! & 0xf) * 4;
  return csum16(frame.subarray(14, 14 + ihl)) === 0;
}

/** Checks the TCP or UDP checksum of an untagged IPv4 frame over the pseudo-header. */
export function l4Valid(frame: Uint8Array): boolean {
  const ihl = (frame[14]! & 0xf) * 4;
  const total = (frame[16]! << 8) | frame[17]!;
  const proto = frame[23]!;
  const l4 = frame.subarray(14 + ihl, 14 + total);
  const pseudo = [...frame.subarray(26, 34), 0, proto, l4.length >> 8, l4.length & 0xff];
  return csum16([...pseudo, ...l4]) === 0;
}

export interface PacketSpec {
  dst?: Uint8Array;
  src?: Uint8Array;
  srcIp?: number[];
  dstIp?: number[];
  proto: "tcp" | "udp";
  payload: Uint8Array;
  ipId?: number;
  seq?: number;
  tcpFlags?: number;
}

/** An Ethernet+IPv4+TCP/UDP frame with *zero* checksums and the given lengths. */
export function buildPacket(p: PacketSpec): Uint8Array {
  const l4h = p.proto === "tcp" ? 20 : 8;
  const total = 20 + l4h + p.payload.length;
  const f = new Uint8Array(14 + total);
  const dv = new DataView(f.buffer);
  f.set(p.dst ?? PEER_MAC, 0);
  f.set(p.src ?? MAC, 6);
  dv.setUint16(12, 0x0800);
  f[14] = 0x45;
  dv.setUint16(16, total & 0xffff);
  dv.setUint16(18, p.ipId ?? 0x1234);
  dv.setUint16(20, 0x4000); // DF
  f[22] = 64;
  f[23] = p.proto === "tcp" ? 6 : 17;
  f.set(p.srcIp ?? [10, 0, 2, 15], 26);
  f.set(p.dstIp ?? [10, 0, 2, 2], 30);
  const l4 = 34;
  dv.setUint16(l4, 40000);
  dv.setUint16(l4 + 2, 7);
  if (p.proto === "tcp") {
    dv.setUint32(l4 + 4, p.seq ?? 1000);
    dv.setUint32(l4 + 8, 1);
    f[l4 + 12] = 5 << 4;
    f[l4 + 13] = p.tcpFlags ?? 0x18;
    dv.setUint16(l4 + 14, 65535);
  } else {
    dv.setUint16(l4 + 4, 8 + p.payload.length);
  }
  f.set(p.payload, l4 + l4h);
  return f;
}

/** Fills in valid IPv4 and TCP/UDP checksums (the way a software stack would). */
export function finishChecksums(f: Uint8Array): Uint8Array {
  const ihl = (f[14]! & 0xf) * 4;
  f[24] = f[25] = 0;
  const ipc = csum16(f.subarray(14, 14 + ihl));
  f[24] = ipc >> 8;
  f[25] = ipc & 0xff;
  const proto = f[23]!;
  const off = 14 + ihl + (proto === 6 ? 16 : 6);
  f[off] = f[off + 1] = 0;
  const total = (f[16]! << 8) | f[17]!;
  const l4 = f.subarray(14 + ihl, 14 + total);
  const pseudo = [...f.subarray(26, 34), 0, proto, l4.length >> 8, l4.length & 0xff];
  let c = csum16([...pseudo, ...l4]);
  if (c === 0 && proto === 17) c = 0xffff;
  f[off] = c >> 8;
  f[off + 1] = c & 0xff;
  return f;
}

/** Folded (not inverted) pseudo-header sum with the given length, as drivers seed it. */
export function pseudoSeed(f: Uint8Array, length: number): number {
  const proto = f[23]!;
  const bytes = [...f.subarray(26, 34), 0, proto, length >> 8, length & 0xff];
  return ~csum16(bytes) & 0xffff;
}

/** Reference CRC-32 (bitwise, IEEE 802.3). */
export function refCrc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
