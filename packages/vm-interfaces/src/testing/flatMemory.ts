import { GuestMemoryError, type GuestMemory } from "../memory.ts";

/**
 * RAM from address `base` (default 0), backed by one Uint8Array; everything else unmapped.
 * The reference GuestMemory for tests of DMA-capable devices and of the CPU.
 */
export class FlatMemory implements GuestMemory {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;

  /** Physical address of the first byte. */
  readonly base: number;

  constructor(size: number, base = 0) {
    this.base = base;
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
  }

  private at(address: number, length: number, write: boolean): number {
    const off = address - this.base;
    if (address < 0 || address + length > 2 ** 32) throw new GuestMemoryError("overflow", address, length);
    if (off < 0 || off + length > this.bytes.length) throw new GuestMemoryError("unmapped", address, length);
    void write;
    return off;
  }

  read(address: number, dst: Uint8Array): void {
    const o = this.at(address, dst.length, false);
    dst.set(this.bytes.subarray(o, o + dst.length));
  }
  write(address: number, src: Uint8Array): void {
    this.bytes.set(src, this.at(address, src.length, true));
  }
  readU8(address: number): number {
    return this.bytes[this.at(address, 1, false)]!;
  }
  readU16(address: number): number {
    return this.dv.getUint16(this.at(address, 2, false), true);
  }
  readU32(address: number): number {
    return this.dv.getUint32(this.at(address, 4, false), true);
  }
  writeU8(address: number, value: number): void {
    this.bytes[this.at(address, 1, true)] = value;
  }
  writeU16(address: number, value: number): void {
    this.dv.setUint16(this.at(address, 2, true), value, true);
  }
  writeU32(address: number, value: number): void {
    this.dv.setUint32(this.at(address, 4, true), value >>> 0, true);
  }
  view(address: number, length: number): Uint8Array | undefined {
    const off = address - this.base;
    if (off < 0 || length < 0 || off + length > this.bytes.length) return undefined;
    return this.bytes.subarray(off, off + length);
  }
}
