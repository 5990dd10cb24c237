/**
 * The shared_info page, x86_32 layout [xen/include/public/xen.h `struct shared_info`,
 * `struct vcpu_info`, `struct vcpu_time_info`; xen/include/public/arch-x86/xen.h
 * `struct arch_vcpu_info`, `xen_ulong_t` = 32 bits on x86_32]. Offsets agree with
 * /work/shared/reference/pv-grub.md §2 (size 2344; time mul at +56, shift at +60 for vcpu 0).
 *
 * Every domain, native or x86 PV, gets this page; event-channel pending/mask bits use the
 * 2-level ABI over 32 words of 32 bits (EVTCHN_2L_NR_CHANNELS = 1024 for a 32-bit guest).
 */
import { EVTCHN_2L_NR_CHANNELS_32 } from "@paravirt/device-channel";

/** `struct shared_info` (x86_32) [xen.h]. */
export const SHARED_INFO = {
  /** `struct vcpu_info vcpu_info[XEN_LEGACY_MAX_VCPUS]` */
  VCPU_INFO: 0,
  /** XEN_LEGACY_MAX_VCPUS [arch-x86/xen.h] */
  MAX_VCPUS: 32,
  /** `xen_ulong_t evtchn_pending[sizeof(xen_ulong_t) * 8]` */
  EVTCHN_PENDING: 2048,
  /** `xen_ulong_t evtchn_mask[sizeof(xen_ulong_t) * 8]` */
  EVTCHN_MASK: 2176,
  WC_VERSION: 2304,
  WC_SEC: 2308,
  WC_NSEC: 2312,
  /** `struct arch_shared_info` */
  ARCH: 2316,
  /** arch_shared_info.max_pfn */
  ARCH_MAX_PFN: 2316,
  SIZE: 2344,
} as const;

/** `struct vcpu_info` (x86_32) [xen.h]: 64 bytes. */
export const VCPU_INFO = {
  UPCALL_PENDING: 0,
  UPCALL_MASK: 1,
  /** `xen_ulong_t evtchn_pending_sel` */
  PENDING_SEL: 4,
  /** `struct arch_vcpu_info` (cr2, pad[5]) */
  ARCH: 8,
  /** `struct vcpu_time_info` */
  TIME: 32,
  SIZE: 64,
} as const;

/** `struct vcpu_time_info` [xen.h]: 32 bytes. */
export const VCPU_TIME_INFO = {
  VERSION: 0,
  /** u64 TSC at `system_time` */
  TSC_TIMESTAMP: 8,
  /** u64 ns since boot */
  SYSTEM_TIME: 16,
  TSC_TO_SYSTEM_MUL: 24,
  /** int8 */
  TSC_SHIFT: 28,
  FLAGS: 29,
  SIZE: 32,
} as const;

/** Ports of the 2-level ABI for a 32-bit guest. */
export const NR_EVTCHN_PORTS = EVTCHN_2L_NR_CHANNELS_32;
/** Bits per `xen_ulong_t` word on x86_32. */
export const BITS_PER_EVTCHN_WORD = 32;

/**
 * Picks `tsc_to_system_mul` and `tsc_shift` for a TSC of `tscHz` so that
 * `ns = ((tsc << shift) * mul) >> 32` (right shift for a negative shift) [xen.h vcpu_time_info
 * comment]; mul is normalised into [2^31, 2^32).
 */
export function tscScale(tscHz: number): { mul: number; shift: number } {
  // ns per tick * 2^32 = mul * 2^shift
  let shift = 0;
  let v = (1e9 / tscHz) * 2 ** 32;
  while (v >= 2 ** 32) {
    v /= 2;
    shift++;
  }
  while (v < 2 ** 31) {
    v *= 2;
    shift--;
  }
  return { mul: Math.round(v) >>> 0, shift };
}

/** A view of one domain's shared_info page with the operations the hypervisor and guests need. */
export class SharedInfoPage {
  readonly bytes: Uint8Array;
  readonly dv: DataView;

  constructor(page: Uint8Array) {
    this.bytes = page;
    this.dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  }

  private vcpu(v: number): number {
    return SHARED_INFO.VCPU_INFO + v * VCPU_INFO.SIZE;
  }

  upcallPending(v = 0): number {
    return this.bytes[this.vcpu(v) + VCPU_INFO.UPCALL_PENDING]!;
  }
  setUpcallPending(v: number, value: number): void {
    this.bytes[this.vcpu(v) + VCPU_INFO.UPCALL_PENDING] = value;
  }
  upcallMask(v = 0): number {
    return this.bytes[this.vcpu(v) + VCPU_INFO.UPCALL_MASK]!;
  }
  setUpcallMask(v: number, value: number): void {
    this.bytes[this.vcpu(v) + VCPU_INFO.UPCALL_MASK] = value;
  }
  pendingSel(v = 0): number {
    return this.dv.getUint32(this.vcpu(v) + VCPU_INFO.PENDING_SEL, true);
  }
  setPendingSel(v: number, value: number): void {
    this.dv.setUint32(this.vcpu(v) + VCPU_INFO.PENDING_SEL, value >>> 0, true);
  }

  pendingWord(w: number): number {
    return this.dv.getUint32(SHARED_INFO.EVTCHN_PENDING + w * 4, true);
  }
  maskWord(w: number): number {
    return this.dv.getUint32(SHARED_INFO.EVTCHN_MASK + w * 4, true);
  }

  /** Sets `port`'s bit in evtchn_pending; returns whether it was already set (test_and_set). */
  testAndSetPending(port: number): boolean {
    const off = SHARED_INFO.EVTCHN_PENDING + (port >>> 5) * 4;
    const bit = 1 << (port & 31);
    const w = this.dv.getUint32(off, true);
    if ((w & bit) !== 0) return true;
    this.dv.setUint32(off, (w | bit) >>> 0, true);
    return false;
  }
  clearPending(port: number): void {
    const off = SHARED_INFO.EVTCHN_PENDING + (port >>> 5) * 4;
    this.dv.setUint32(off, (this.dv.getUint32(off, true) & ~(1 << (port & 31))) >>> 0, true);
  }
  isPending(port: number): boolean {
    return (this.pendingWord(port >>> 5) & (1 << (port & 31))) !== 0;
  }
  isMasked(port: number): boolean {
    return (this.maskWord(port >>> 5) & (1 << (port & 31))) !== 0;
  }
  setMasked(port: number, masked: boolean): void {
    const off = SHARED_INFO.EVTCHN_MASK + (port >>> 5) * 4;
    const bit = 1 << (port & 31);
    const w = this.dv.getUint32(off, true);
    this.dv.setUint32(off, (masked ? w | bit : w & ~bit) >>> 0, true);
  }

  /**
   * Publishes system time for vCPU `v` with the version protocol (odd while updating)
   * [xen.h vcpu_time_info]: `tsc` and `systemTimeNs` are taken at the same instant.
   */
  writeTime(v: number, tsc: number, systemTimeNs: number, mul: number, shift: number): void {
    const o = this.vcpu(v) + VCPU_INFO.TIME;
    const version = this.dv.getUint32(o + VCPU_TIME_INFO.VERSION, true);
    this.dv.setUint32(o + VCPU_TIME_INFO.VERSION, (version + 1) >>> 0, true);
    this.dv.setBigUint64(o + VCPU_TIME_INFO.TSC_TIMESTAMP, BigInt(Math.floor(tsc)), true);
    this.dv.setBigUint64(o + VCPU_TIME_INFO.SYSTEM_TIME, BigInt(Math.floor(systemTimeNs)), true);
    this.dv.setUint32(o + VCPU_TIME_INFO.TSC_TO_SYSTEM_MUL, mul >>> 0, true);
    this.dv.setInt8(o + VCPU_TIME_INFO.TSC_SHIFT, shift);
    this.dv.setUint32(o + VCPU_TIME_INFO.VERSION, (version + 2) >>> 0, true);
  }

  /** Reads vCPU `v`'s published time (for guests and tests). */
  readTime(v = 0): { version: number; tscTimestamp: number; systemTime: number; mul: number; shift: number } {
    const o = this.vcpu(v) + VCPU_INFO.TIME;
    return {
      version: this.dv.getUint32(o + VCPU_TIME_INFO.VERSION, true),
      tscTimestamp: Number(this.dv.getBigUint64(o + VCPU_TIME_INFO.TSC_TIMESTAMP, true)),
      systemTime: Number(this.dv.getBigUint64(o + VCPU_TIME_INFO.SYSTEM_TIME, true)),
      mul: this.dv.getUint32(o + VCPU_TIME_INFO.TSC_TO_SYSTEM_MUL, true),
      shift: this.dv.getInt8(o + VCPU_TIME_INFO.TSC_SHIFT),
    };
  }

  /** Publishes the wall clock at system time 0 (wc_version odd while updating) [xen.h]. */
  writeWallClock(sec: number, nsec: number): void {
    const version = this.dv.getUint32(SHARED_INFO.WC_VERSION, true);
    this.dv.setUint32(SHARED_INFO.WC_VERSION, (version + 1) >>> 0, true);
    this.dv.setUint32(SHARED_INFO.WC_SEC, sec >>> 0, true);
    this.dv.setUint32(SHARED_INFO.WC_NSEC, nsec >>> 0, true);
    this.dv.setUint32(SHARED_INFO.WC_VERSION, (version + 2) >>> 0, true);
  }

  readWallClock(): { version: number; sec: number; nsec: number } {
    return {
      version: this.dv.getUint32(SHARED_INFO.WC_VERSION, true),
      sec: this.dv.getUint32(SHARED_INFO.WC_SEC, true),
      nsec: this.dv.getUint32(SHARED_INFO.WC_NSEC, true),
    };
  }
}
