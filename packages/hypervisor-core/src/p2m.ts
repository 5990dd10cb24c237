/**
 * A domain's pseudo-physical address space through its P2M (pfn → mfn), as the domain's own
 * kernel sees its RAM. For an x86 PV guest at boot, virtual = pseudo-physical (VA == pfn << 12,
 * /work/shared/reference/pv-grub.md §2), which {@link identityVirtualMemory} provides until
 * the guest's page tables are walked by cpu-x86.
 */
import { GuestMemoryError, PAGE_SIZE, type GuestMemory } from "@paravirt/vm-interfaces";
import type { Domain, GuestVirtualMemory } from "./domain.ts";
import type { MachineMemory } from "./machineMemory.ts";

/** A domain's pseudo-physical address space, translated page by page through its P2M. */
export class PseudoPhysicalMemory implements GuestMemory {
  private readonly machine_: MachineMemory;
  private readonly d: Domain;

  constructor(machine: MachineMemory, d: Domain) {
    this.machine_ = machine;
    this.d = d;
  }

  private machine(address: number, length: number): number {
    if (address < 0 || length < 0 || address + length > 2 ** 32) throw new GuestMemoryError("overflow", address, length);
    const pfn = Math.floor(address / PAGE_SIZE);
    const lastPfn = Math.floor((address + Math.max(length, 1) - 1) / PAGE_SIZE);
    const mfn = pfn < this.d.p2m.length ? this.d.p2m[pfn]! : -1;
    if (mfn < 0) throw new GuestMemoryError("unmapped", address, length);
    for (let p = pfn + 1; p <= lastPfn; p++) {
      if (p >= this.d.p2m.length || this.d.p2m[p] !== mfn + (p - pfn)) return -1;
    }
    return mfn * PAGE_SIZE + (address % PAGE_SIZE);
  }

  private each(address: number, length: number, fn: (machine: number, done: number, n: number) => void): void {
    let done = 0;
    while (done < length) {
      const a = address + done;
      const n = Math.min(length - done, PAGE_SIZE - (a % PAGE_SIZE));
      const m = this.machine(a, n);
      fn(m, done, n);
      done += n;
    }
  }

  read(address: number, dst: Uint8Array): void {
    this.each(address, dst.length, () => {});
    this.each(address, dst.length, (m, done, n) => dst.set(this.machine_.bytes.subarray(m, m + n), done));
  }
  write(address: number, src: Uint8Array): void {
    this.each(address, src.length, () => {});
    this.each(address, src.length, (m, done, n) => this.machine_.bytes.set(src.subarray(done, done + n), m));
  }
  private scalar(address: number, size: number): number {
    const m = this.machine(address, size);
    if (m >= 0) return m;
    return -1;
  }
  readU8(address: number): number {
    return this.machine_.bytes[this.scalar(address, 1)]!;
  }
  readU16(address: number): number {
    const m = this.scalar(address, 2);
    if (m >= 0) return this.machine_.dv.getUint16(m, true);
    return this.readU8(address) | (this.readU8(address + 1) << 8);
  }
  readU32(address: number): number {
    const m = this.scalar(address, 4);
    if (m >= 0) return this.machine_.dv.getUint32(m, true);
    const b = new Uint8Array(4);
    this.read(address, b);
    return new DataView(b.buffer).getUint32(0, true);
  }
  writeU8(address: number, value: number): void {
    this.machine_.bytes[this.scalar(address, 1)] = value;
  }
  writeU16(address: number, value: number): void {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, value, true);
    this.write(address, b);
  }
  writeU32(address: number, value: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value >>> 0, true);
    this.write(address, b);
  }
  view(address: number, length: number): Uint8Array | undefined {
    try {
      const m = this.machine(address, length);
      return m < 0 ? undefined : this.machine_.bytes.subarray(m, m + length);
    } catch {
      return undefined;
    }
  }
}

/** Guest-virtual access over a memory where VA == address; faults become `undefined` / false. */
export function identityVirtualMemory(mem: GuestMemory): GuestVirtualMemory {
  const r = (fn: () => number): number | undefined => {
    try {
      return fn();
    } catch {
      return undefined;
    }
  };
  const w = (fn: () => void): boolean => {
    try {
      fn();
      return true;
    } catch {
      return false;
    }
  };
  return {
    readU8: (va) => r(() => mem.readU8(va >>> 0)),
    readU16: (va) => r(() => mem.readU16(va >>> 0)),
    readU32: (va) => r(() => mem.readU32(va >>> 0)),
    writeU8: (va, v) => w(() => mem.writeU8(va >>> 0, v)),
    writeU16: (va, v) => w(() => mem.writeU16(va >>> 0, v)),
    writeU32: (va, v) => w(() => mem.writeU32(va >>> 0, v)),
  };
}
