/**
 * Port-I/O and MMIO devices and the bus that routes to them.
 *
 * A device sees offsets into its own range, never absolute addresses (vm-device `BusDevice`,
 * Firecracker `BusDevice`). The bus splits accesses the device does not implement into
 * smaller ones (QEMU `MemoryRegionOps.impl`), refuses overlapping claims, and answers
 * all-ones for addresses nobody claims (the floating ISA bus, v86 `io.js`).
 */

/** Access widths in bytes. */
export type AccessSize = 1 | 2 | 4;

/** A device on a port-I/O or MMIO bus. */
export interface IoDevice {
  /** Reads `size` bytes at `offset` from the start of the claimed range (little-endian value). */
  read(offset: number, size: AccessSize): number;
  /** Writes the low `size` bytes of `value` at `offset`. */
  write(offset: number, size: AccessSize, value: number): void;
  /**
   * The access sizes the device implements. The bus turns other accesses into a series of
   * the largest implemented size (little-endian order). Default: all of 1, 2 and 4.
   */
  readonly accessSizes?: readonly AccessSize[];
}

/** A claimed address range. */
export interface IoRange {
  readonly base: number;
  readonly length: number;
}

/** Raised by {@link IoBus.register} for a claim that cannot be made. */
export class IoBusError extends Error {
  override readonly name = "IoBusError";
  readonly kind: "overlap" | "empty" | "out-of-space" | "not-registered";
  constructor(kind: "overlap" | "empty" | "out-of-space" | "not-registered", message: string) {
    super(message);
    this.kind = kind;
  }
}

interface Claim {
  readonly base: number;
  readonly end: number; // exclusive
  readonly device: IoDevice;
  readonly sizes: number; // bitmask of implemented sizes: 1 | 2 | 4
  readonly name: string;
}

const ALL_ONES = [0, 0xff, 0xffff, 0, 0xffffffff] as const;

/**
 * An address space of claimed ranges: one instance for x86 I/O ports (64 KiB), one for MMIO
 * (4 GiB). Lookups are by binary search over sorted, disjoint claims.
 */
export class IoBus {
  private claims: Claim[] = [];
  private last: Claim | undefined;

  /** Size of the address space in bytes. */
  readonly space: number;

  /** @param space size of the address space in bytes: 0x10000 for ports, 2**32 for MMIO. */
  constructor(space = 0x10000) {
    this.space = space;
  }

  /**
   * Claims `range` for `device`.
   * **Errors:** `IoBusError` "overlap" when any byte is already claimed, "empty" for a zero
   * length, "out-of-space" when the range leaves the address space.
   */
  register(range: IoRange, device: IoDevice, name = "device"): void {
    const base = range.base;
    const end = range.base + range.length;
    if (range.length <= 0) throw new IoBusError("empty", `${name}: empty range`);
    if (base < 0 || end > this.space) {
      throw new IoBusError("out-of-space", `${name}: range 0x${base.toString(16)}+0x${range.length.toString(16)} leaves the bus`);
    }
    for (const c of this.claims) {
      if (base < c.end && c.base < end) {
        throw new IoBusError(
          "overlap",
          `${name}: 0x${base.toString(16)}-0x${(end - 1).toString(16)} overlaps ${c.name} at 0x${c.base.toString(16)}-0x${(c.end - 1).toString(16)}`,
        );
      }
    }
    let sizes = 0;
    for (const s of device.accessSizes ?? [1, 2, 4]) sizes |= s;
    this.claims.push({ base, end, device, sizes, name });
    this.claims.sort((a, b) => a.base - b.base);
  }

  /** Releases the claim that starts at `base` for `device`. */
  unregister(base: number, device: IoDevice): void {
    const i = this.claims.findIndex((c) => c.base === base && c.device === device);
    if (i < 0) throw new IoBusError("not-registered", `nothing registered at 0x${base.toString(16)}`);
    this.claims.splice(i, 1);
    this.last = undefined;
  }

  /** The claim covering `address`, if any. */
  find(address: number): { base: number; length: number; device: IoDevice; name: string } | undefined {
    const c = this.lookup(address);
    return c && { base: c.base, length: c.end - c.base, device: c.device, name: c.name };
  }

  /** Reads `size` bytes at `address`; unclaimed bytes read as all ones. */
  read(address: number, size: AccessSize): number {
    const c = this.lookup(address);
    if (c !== undefined && address + size <= c.end && (c.sizes & size) !== 0) {
      return c.device.read(address - c.base, size) >>> 0;
    }
    if (c === undefined && size === 1) return 0xff;
    return this.splitRead(address, size);
  }

  /** Writes `size` bytes at `address`; writes to unclaimed bytes are dropped. */
  write(address: number, size: AccessSize, value: number): void {
    const c = this.lookup(address);
    if (c !== undefined && address + size <= c.end && (c.sizes & size) !== 0) {
      c.device.write(address - c.base, size, value);
      return;
    }
    if (c === undefined && size === 1) return;
    this.splitWrite(address, size, value);
  }

  private splitRead(address: number, size: AccessSize): number {
    if (size === 1) {
      const c = this.lookup(address);
      if (c === undefined) return ALL_ONES[1];
      // A device that implements no byte access gets a wider aligned read, and we pick the byte.
      const wide: AccessSize = (c.sizes & 2) !== 0 ? 2 : 4;
      const aligned = address - ((address - c.base) % wide);
      return (c.device.read(aligned - c.base, wide) >>> ((address - aligned) * 8)) & 0xff;
    }
    const half = (size >> 1) as AccessSize;
    const lo = this.read(address, half);
    const hi = this.read(address + half, half);
    return (lo | (hi << (half * 8))) >>> 0;
  }

  private splitWrite(address: number, size: AccessSize, value: number): void {
    if (size === 1) {
      const c = this.lookup(address);
      if (c === undefined) return;
      // Read-modify-write of the smallest implemented width around the byte.
      const wide: AccessSize = (c.sizes & 2) !== 0 ? 2 : 4;
      const aligned = address - ((address - c.base) % wide);
      const shift = (address - aligned) * 8;
      const old = c.device.read(aligned - c.base, wide);
      const mask = 0xff << shift;
      c.device.write(aligned - c.base, wide, ((old & ~mask) | ((value & 0xff) << shift)) >>> 0);
      return;
    }
    const half = (size >> 1) as AccessSize;
    this.write(address, half, value & ALL_ONES[half]);
    this.write(address + half, half, (value >>> (half * 8)) & ALL_ONES[half]);
  }

  private lookup(address: number): Claim | undefined {
    const last = this.last;
    if (last !== undefined && address >= last.base && address < last.end) return last;
    const cs = this.claims;
    let lo = 0;
    let hi = cs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = cs[mid]!;
      if (address < c.base) hi = mid - 1;
      else if (address >= c.end) lo = mid + 1;
      else {
        this.last = c;
        return c;
      }
    }
    return undefined;
  }
}
