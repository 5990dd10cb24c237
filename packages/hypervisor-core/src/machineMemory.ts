/**
 * Machine memory: one ArrayBuffer of 4 KiB frames, and the frame table that records who owns
 * each frame, what it is used for, and how many grant mappings hold it.
 *
 * Xen keeps the same facts in `struct page_info` (owner in `v.inuse._domain`, use in
 * `u.inuse.type_info`, references in `count_info`) [xen/include/asm-x86/mm.h]. A frame whose
 * owner is being destroyed while another domain still maps it stays allocated ("zombie")
 * until the last reference goes, as Xen keeps a dying domain's pages until their references drop.
 *
 * The machine memory doubles as the DMA address space: bus address = machine address, and it
 * implements {@link GuestMemory} so the board can hand it to device models.
 */
import { GuestMemoryError, PAGE_SHIFT, PAGE_SIZE, type GuestMemory } from "@paravirt/vm-interfaces";

/** What a frame is used for (our own classification, after Xen's PGT_* / PGC_* page types). */
export const FRAME_TYPE = {
  free: 0,
  /** Ordinary domain RAM, in the owner's P2M. */
  ram: 1,
  /** The domain's shared_info page [xen.h struct shared_info]. */
  shared_info: 2,
  /** A v1 grant-table frame of the owner [grant_table.h]. */
  grant_table: 3,
  /** Owned by the hypervisor itself. */
  xen: 4,
} as const;
export type FrameType = (typeof FRAME_TYPE)[keyof typeof FRAME_TYPE];

/** `owner` value of a free frame. */
export const NO_OWNER = -1;

/** Frames and their frame table. Host API: misuse throws. */
export class MachineMemory implements GuestMemory {
  readonly buffer: ArrayBuffer;
  /** The whole machine memory; machine address = byte offset. */
  readonly bytes: Uint8Array;
  /** Little-endian access to the whole machine memory. */
  readonly dv: DataView;
  readonly frameCount: number;
  /** Owning domain id per frame, {@link NO_OWNER} when free. */
  readonly owner: Int32Array;
  /** {@link FRAME_TYPE} per frame. */
  readonly type: Uint8Array;
  /** Grant-mapping references per frame. */
  readonly refs: Uint32Array;
  /** Machine → pseudo-physical map (Xen's M2P, `machine_to_phys_mapping`), -1 where none. */
  readonly m2p: Int32Array;
  /** Frames whose owner is gone, kept until their references drop. */
  readonly zombie: Uint8Array;
  private free: number;
  /** Called when a zombie frame is finally freed, with its former owner. */
  onZombieFreed: ((owner: number) => void) | undefined;
  /** Lowest frame that may be free (allocation scans up from here). */
  private hint = 0;

  constructor(frameCount: number) {
    if (!Number.isInteger(frameCount) || frameCount <= 0 || frameCount > 1 << 20) {
      throw new RangeError(`frame count ${frameCount} must be 1..2^20 (4 GiB)`);
    }
    this.frameCount = frameCount;
    this.buffer = new ArrayBuffer(frameCount * PAGE_SIZE);
    this.bytes = new Uint8Array(this.buffer);
    this.dv = new DataView(this.buffer);
    this.owner = new Int32Array(frameCount).fill(NO_OWNER);
    this.type = new Uint8Array(frameCount);
    this.refs = new Uint32Array(frameCount);
    this.zombie = new Uint8Array(frameCount);
    this.m2p = new Int32Array(frameCount).fill(-1);
    this.free = frameCount;
  }

  /** Frames not allocated to anyone. */
  get freeFrames(): number {
    return this.free;
  }

  /** Frames currently owned by `domid` (zombies included). */
  framesOwnedBy(domid: number): number {
    let n = 0;
    for (let i = 0; i < this.frameCount; i++) if (this.owner[i] === domid) n++;
    return n;
  }

  /**
   * Allocates `count` machine-contiguous frames (first fit), zeroed, for `owner`.
   * Returns the first MFN, or -1 when no run that long is free.
   */
  allocContiguous(count: number, owner: number, type: FrameType): number {
    let run = 0;
    for (let mfn = this.hint; mfn < this.frameCount; mfn++) {
      if (this.owner[mfn] === NO_OWNER) {
        run++;
        if (run === count) {
          const first = mfn - count + 1;
          for (let f = first; f <= mfn; f++) this.claim(f, owner, type);
          if (first === this.hint) this.hint = mfn + 1;
          return first;
        }
      } else run = 0;
    }
    return -1;
  }

  /** Allocates one zeroed frame, or -1 when memory is exhausted. */
  allocFrame(owner: number, type: FrameType): number {
    return this.allocContiguous(1, owner, type);
  }

  private claim(mfn: number, owner: number, type: FrameType): void {
    this.owner[mfn] = owner;
    this.type[mfn] = type;
    this.refs[mfn] = 0;
    this.zombie[mfn] = 0;
    this.bytes.fill(0, mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE);
    this.free--;
  }

  /** Returns a frame to the free pool. Host misuse (double free) throws. */
  freeFrame(mfn: number): void {
    this.check(mfn);
    if (this.owner[mfn] === NO_OWNER) throw new Error(`double free of mfn 0x${mfn.toString(16)}`);
    this.owner[mfn] = NO_OWNER;
    this.type[mfn] = FRAME_TYPE.free;
    this.m2p[mfn] = -1;
    this.refs[mfn] = 0;
    this.zombie[mfn] = 0;
    this.free++;
    if (mfn < this.hint) this.hint = mfn;
  }

  /**
   * Releases a frame of a dying owner: freed now (returns false), or marked zombie while
   * references remain (returns true).
   */
  release(mfn: number): boolean {
    if (this.refs[mfn]! > 0) {
      this.zombie[mfn] = 1;
      return true;
    }
    this.freeFrame(mfn);
    return false;
  }

  /** Adds a grant-mapping reference. */
  get(mfn: number): void {
    this.refs[mfn]!++;
  }

  /** Drops a reference; a zombie frame is freed with its last reference. */
  put(mfn: number): void {
    if (this.refs[mfn] === 0) throw new Error(`reference underflow on mfn 0x${mfn.toString(16)}`);
    this.refs[mfn]!--;
    if (this.refs[mfn] === 0 && this.zombie[mfn] === 1) {
      const owner = this.owner[mfn]!;
      this.freeFrame(mfn);
      this.onZombieFreed?.(owner);
    }
  }

  /** Whether `mfn` names a frame of this machine. */
  valid(mfn: number): boolean {
    return Number.isInteger(mfn) && mfn >= 0 && mfn < this.frameCount;
  }

  /** A live view of frame `mfn`. */
  page(mfn: number): Uint8Array {
    this.check(mfn);
    return this.bytes.subarray(mfn * PAGE_SIZE, (mfn + 1) * PAGE_SIZE);
  }

  private check(mfn: number): void {
    if (!this.valid(mfn)) throw new RangeError(`mfn 0x${mfn.toString(16)} outside machine memory`);
  }

  // ---- GuestMemory: the machine (bus) address space seen by DMA-capable devices ----

  private range(address: number, length: number): void {
    if (address < 0 || address + length > 2 ** 32) throw new GuestMemoryError("overflow", address, length);
    if (address + length > this.bytes.length) throw new GuestMemoryError("unmapped", address, length);
  }
  read(address: number, dst: Uint8Array): void {
    this.range(address, dst.length);
    dst.set(this.bytes.subarray(address, address + dst.length));
  }
  write(address: number, src: Uint8Array): void {
    this.range(address, src.length);
    this.bytes.set(src, address);
  }
  readU8(address: number): number {
    this.range(address, 1);
    return this.bytes[address]!;
  }
  readU16(address: number): number {
    this.range(address, 2);
    return this.dv.getUint16(address, true);
  }
  readU32(address: number): number {
    this.range(address, 4);
    return this.dv.getUint32(address, true);
  }
  writeU8(address: number, value: number): void {
    this.range(address, 1);
    this.bytes[address] = value;
  }
  writeU16(address: number, value: number): void {
    this.range(address, 2);
    this.dv.setUint16(address, value, true);
  }
  writeU32(address: number, value: number): void {
    this.range(address, 4);
    this.dv.setUint32(address, value >>> 0, true);
  }
  view(address: number, length: number, _writable: boolean): Uint8Array | undefined {
    if (address < 0 || length < 0 || address + length > this.bytes.length) return undefined;
    return this.bytes.subarray(address, address + length);
  }
}

/** Machine frame number of a machine address. */
export function mfnOf(address: number): number {
  return Math.floor(address / PAGE_SIZE);
}
export { PAGE_SHIFT, PAGE_SIZE };
