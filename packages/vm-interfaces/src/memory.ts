/**
 * Guest memory as its consumers see it: device models doing DMA, the CPU, loaders.
 *
 * Consumer-side only (rust-vmm vm-memory DESIGN.md): nothing here creates, adds or removes
 * regions; the provider (hypervisor-core's physical address space, or a test's FlatMemory)
 * owns that. Addresses are 32-bit physical (or bus) addresses held in JS numbers; multi-byte
 * accesses are little-endian, as on x86.
 */

/** Why a guest-memory access failed. */
export type GuestMemoryErrorKind =
  /** No RAM or device answers at that address. */
  | "unmapped"
  /** The address is mapped read-only (a ROM, a read-only grant). */
  | "readonly"
  /** The range wraps past the top of the 32-bit address space. */
  | "overflow";

/** A failed guest-memory access. All-or-error: a failed access transferred nothing. */
export class GuestMemoryError extends Error {
  override readonly name = "GuestMemoryError";
  readonly kind: GuestMemoryErrorKind;
  readonly address: number;
  readonly length: number;
  constructor(kind: GuestMemoryErrorKind, address: number, length: number) {
    super(`guest memory ${kind} at 0x${(address >>> 0).toString(16)} (+${length})`);
    this.kind = kind;
    this.address = address;
    this.length = length;
  }
}

/**
 * Byte-addressed guest (or machine) physical memory.
 *
 * **Errors:** every method throws {@link GuestMemoryError} when any byte of the range is
 * unmapped (or read-only, for writes); nothing is transferred then.
 */
export interface GuestMemory {
  /** Copies `dst.length` bytes starting at `address` into `dst`. */
  read(address: number, dst: Uint8Array): void;
  /** Copies all of `src` to guest memory starting at `address`. */
  write(address: number, src: Uint8Array): void;
  readU8(address: number): number;
  readU16(address: number): number;
  readU32(address: number): number;
  writeU8(address: number, value: number): void;
  writeU16(address: number, value: number): void;
  writeU32(address: number, value: number): void;
  /**
   * A live view of `length` bytes of RAM at `address` when that range is one contiguous piece
   * of RAM, else `undefined` (MMIO, a hole, a read-only range when `writable`). Writes through
   * the view are writes to guest memory: this is the zero-copy path for bulk DMA.
   */
  view?(address: number, length: number, writable: boolean): Uint8Array | undefined;
}

/** Page size of every paravirt address space: x86 small pages, Xen frames. */
export const PAGE_SIZE = 4096;
/** log2(PAGE_SIZE). */
export const PAGE_SHIFT = 12;
