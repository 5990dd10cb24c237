/**
 * Bare-metal test machine: a PcBoard with an hw-e1000 82540EM in slot 3, firmware-assigned
 * BARs and IRQ, the BareMetalPlatform the driver runs on, and the far end of the NIC's cable.
 */
import { E1000PciFunction } from "@paravirt/hw-e1000";
import { BareMetalPlatform, PcBoard, runUntil } from "@paravirt/pc-board";
import { cable, type EthernetPort } from "@paravirt/vm-interfaces";

export const NIC_MAC = Uint8Array.of(0x02, 0x11, 0x22, 0x33, 0x44, 0x55);
export const PEER_MAC = Uint8Array.of(0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee);
export const SLOT = 3;

export interface MachineOptions {
  mac?: Uint8Array;
  connected?: boolean;
  autonegNs?: number;
}

export class Machine {
  readonly board = new PcBoard({ ramBytes: 64 << 20 });
  readonly fn: E1000PciFunction;
  readonly platform: BareMetalPlatform;
  /** The NIC's end of the cable (plugged into the model). */
  readonly nicEnd: EthernetPort;
  /** The far end: what tests send from and hear on. */
  readonly wire: EthernetPort;
  /** Frames the NIC put on the wire. */
  readonly onWire: Uint8Array[] = [];

  constructor(o: MachineOptions = {}) {
    const [a, b] = cable();
    this.nicEnd = a;
    this.wire = b;
    b.onReceive((f) => this.onWire.push(f));
    this.fn = new E1000PciFunction({
      memory: this.board.memory,
      irq: this.board.intxLine(SLOT),
      clock: this.board.clock,
      mac: o.mac ?? NIC_MAC,
      ...(o.connected === false ? {} : { port: a }),
      ...(o.autonegNs !== undefined ? { autonegNs: o.autonegNs } : {}),
    });
    this.board.plugPci(SLOT, this.fn);
    this.board.boot();
    this.platform = new BareMetalPlatform(this.board);
  }

  get irq(): number {
    return this.platform.pciDevices({ vendorId: 0x8086, deviceId: 0x100e })[0]!.irq!;
  }

  /** Whether the NIC's IRQ line is asserted right now. */
  get irqLevel(): boolean {
    return this.board.irqs.level(this.irq);
  }

  /** Runs virtual time until `done()`. */
  run(done: () => boolean, virtualLimitNs = 60e9): Promise<void> {
    return runUntil(this.board.clock, done, { virtualLimitNs, idleTimeoutMs: 2000 });
  }

  /** Runs the machine until `p` settles, and returns its value. */
  async settle<T>(p: Promise<T>): Promise<T> {
    let done = false;
    let value: T | undefined;
    let error: unknown;
    p.then(
      (v) => {
        value = v;
        done = true;
      },
      (e: unknown) => {
        error = e;
        done = true;
      },
    );
    await this.run(() => done);
    if (error !== undefined) throw error;
    return value as T;
  }

  /** Lets virtual time pass (timers fire, interrupts are handled). */
  async idle(ns: number): Promise<void> {
    const until = this.board.clock.now() + ns;
    const marker = this.board.clock.schedule(until, () => {});
    await this.run(() => this.board.clock.now() >= until);
    this.board.clock.cancel(marker);
  }
}

// ----- independent packet helpers (RFC 791, 793, 768, 1071) --------------------------------

/** RFC 1071 checksum, the slow obvious way. */
export function csum16(bytes: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += ((bytes[i] ?? 0) << 8) + (bytes[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

export function ipHeaderValid(f: Uint8Array, l3 = 14): boolean {
  const ihl = (f[l3]! & 0xf) * 4;
  return csum16(f.subarray(l3, l3 + ihl)) === 0;
}

/** TCP/UDP checksum over the pseudo-header verifies to zero. */
export function l4Valid(f: Uint8Array, l3 = 14): boolean {
  const ihl = (f[l3]! & 0xf) * 4;
  const total = (f[l3 + 2]! << 8) | f[l3 + 3]!;
  const proto = f[l3 + 9]!;
  const l4 = f.subarray(l3 + ihl, l3 + total);
  const pseudo = [...f.subarray(l3 + 12, l3 + 20), 0, proto, l4.length >> 8, l4.length & 0xff];
  return csum16([...pseudo, ...l4]) === 0;
}

/** An Ethernet + IPv4 + TCP/UDP frame with deliberately wrong checksums (0xdead). */
export function ipFrame(proto: "tcp" | "udp", payload: Uint8Array, o: { dst?: Uint8Array; src?: Uint8Array; ipId?: number; vlan?: number } = {}): Uint8Array {
  const l4h = proto === "tcp" ? 20 : 8;
  const total = 20 + l4h + payload.length;
  const l3 = o.vlan !== undefined ? 18 : 14;
  const f = new Uint8Array(l3 + total);
  const dv = new DataView(f.buffer);
  f.set(o.dst ?? PEER_MAC, 0);
  f.set(o.src ?? NIC_MAC, 6);
  if (o.vlan !== undefined) {
    dv.setUint16(12, 0x8100);
    dv.setUint16(14, o.vlan);
  }
  dv.setUint16(l3 - 2, 0x0800);
  f[l3] = 0x45;
  dv.setUint16(l3 + 2, total);
  dv.setUint16(l3 + 4, o.ipId ?? 0x4321);
  dv.setUint16(l3 + 6, 0x4000);
  f[l3 + 8] = 64;
  f[l3 + 9] = proto === "tcp" ? 6 : 17;
  dv.setUint16(l3 + 10, 0xdead);
  f.set([192, 168, 7, 1], l3 + 12);
  f.set([192, 168, 7, 200], l3 + 16);
  const l4 = l3 + 20;
  dv.setUint16(l4, 49152);
  dv.setUint16(l4 + 2, proto === "tcp" ? 80 : 53);
  if (proto === "tcp") {
    dv.setUint32(l4 + 4, 0x01020304);
    dv.setUint32(l4 + 8, 0x0a0b0c0d);
    f[l4 + 12] = 5 << 4;
    f[l4 + 13] = 0x18;
    dv.setUint16(l4 + 14, 29200);
    dv.setUint16(l4 + 16, 0xdead);
  } else {
    dv.setUint16(l4 + 4, 8 + payload.length);
    dv.setUint16(l4 + 6, 0xdead);
  }
  f.set(payload, l4 + l4h);
  return f;
}

/** A plain frame carrying a 32-bit sequence number and a fill pattern. */
export function seqFrame(seq: number, length: number, dst: Uint8Array, src: Uint8Array): Uint8Array {
  const f = new Uint8Array(length);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5; // IEEE 802 local experimental EtherType
  new DataView(f.buffer).setUint32(14, seq);
  for (let i = 18; i < length; i++) f[i] = (seq + i) & 0xff;
  return f;
}

export function seqOf(f: Uint8Array): number {
  return new DataView(f.buffer, f.byteOffset).getUint32(14);
}
