/**
 * The machine's physical address space: RAM from 0 in one ArrayBuffer, and MMIO ranges
 * routed to devices through an IoBus (the provider side that vm-interfaces leaves out). It
 * implements GuestMemory for the CPU and for bus-master DMA, with a zero-copy `view` of RAM.
 */
import { GuestMemoryError, IoBus, PAGE_SIZE, type GuestMemory, type IoDevice, type IoRange } from "@paravirt/vm-interfaces";

export class PhysicalAddressSpace implements GuestMemory {
  /** All of RAM; byteOffset 0 is physical address 0. */
  readonly ram: Uint8Array;
  /** Memory-mapped I/O, routed by address. */
  readonly mmio: IoBus;
  private readonly dv: DataView;

  /**
   * @param ram RAM size in bytes, or an existing buffer to use as RAM (e.g. the machine memory
   * a hypervisor manages, so devices DMA into the very frames it hands to domains). Either way
   * a multiple of 4 KiB below the 3 GiB PCI hole.
   * @param mmio the MMIO bus to route to (default: a new one).
   */
  constructor(ram: number | ArrayBuffer, mmio?: IoBus) {
    const ramBytes = typeof ram === "number" ? ram : ram.byteLength;
    if (ramBytes <= 0 || ramBytes % PAGE_SIZE !== 0 || ramBytes > 0xc000_0000) {
      throw new RangeError(`RAM size ${ramBytes} must be a positive multiple of 4096 below 3 GiB`);
    }
    this.ram = new Uint8Array(typeof ram === "number" ? new ArrayBuffer(ramBytes) : ram);
    this.dv = new DataView(this.ram.buffer);
    this.mmio = mmio ?? new IoBus(2 ** 32);
  }

  /** Claims an MMIO range (must lie above RAM). */
  mapMmio(range: IoRange, device: IoDevice, name?: string): void {
    if (range.base < this.ram.length) throw new RangeError(`MMIO at 0x${range.base.toString(16)} overlaps RAM`);
    this.mmio.register(range, device, name);
  }

  unmapMmio(base: number, device: IoDevice): void {
    this.mmio.unregister(base, device);
  }

  private inRam(address: number, length: number): boolean {
    return address >= 0 && address + length <= this.ram.length;
  }

  read(address: number, dst: Uint8Array): void {
    if (this.inRam(address, dst.length)) {
      dst.set(this.ram.subarray(address, address + dst.length));
      return;
    }
    for (let i = 0; i < dst.length; i++) dst[i] = this.readU8(address + i);
  }

  write(address: number, src: Uint8Array): void {
    if (this.inRam(address, src.length)) {
      this.ram.set(src, address);
      return;
    }
    this.check(address, src.length);
    for (let i = 0; i < src.length; i++) this.writeU8(address + i, src[i]!);
  }

  readU8(address: number): number {
    if (this.inRam(address, 1)) return this.ram[address]!;
    return this.mmioRead(address, 1);
  }
  readU16(address: number): number {
    if (this.inRam(address, 2)) return this.dv.getUint16(address, true);
    return this.mmioRead(address, 2);
  }
  readU32(address: number): number {
    if (this.inRam(address, 4)) return this.dv.getUint32(address, true);
    return this.mmioRead(address, 4);
  }
  writeU8(address: number, value: number): void {
    if (this.inRam(address, 1)) this.ram[address] = value;
    else this.mmioWrite(address, 1, value);
  }
  writeU16(address: number, value: number): void {
    if (this.inRam(address, 2)) this.dv.setUint16(address, value, true);
    else this.mmioWrite(address, 2, value);
  }
  writeU32(address: number, value: number): void {
    if (this.inRam(address, 4)) this.dv.setUint32(address, value >>> 0, true);
    else this.mmioWrite(address, 4, value);
  }

  view(address: number, length: number): Uint8Array | undefined {
    return this.inRam(address, length) ? this.ram.subarray(address, address + length) : undefined;
  }

  /** The physical address of a buffer that is a view of this RAM, else undefined. */
  addressOf(buffer: Uint8Array): number | undefined {
    return buffer.buffer === this.ram.buffer ? buffer.byteOffset : undefined;
  }

  private check(address: number, length: number): void {
    if (address < 0 || address + length > 2 ** 32) throw new GuestMemoryError("overflow", address, length);
    for (let a = address; a < address + length; a++) {
      if (!this.inRam(a, 1) && this.mmio.find(a) === undefined) throw new GuestMemoryError("unmapped", address, length);
    }
  }

  private mmioRead(address: number, size: 1 | 2 | 4): number {
    this.check(address, size);
    return this.mmio.read(address, size);
  }

  private mmioWrite(address: number, size: 1 | 2 | 4, value: number): void {
    this.check(address, size);
    this.mmio.write(address, size, value);
  }
}
