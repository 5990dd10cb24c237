/**
 * PAE page tables of x86_32 PV guests, walked in machine memory [Intel SDM Vol. 3A §4.4:
 * CR3 → 4 PDPTEs → 512 PDEs → 512 PTEs, 8 bytes each], and the hypervisor's side of the
 * page-table hypercalls (update_va_mapping, mmuext_op) [xen/include/public/xen.h].
 *
 * CR3 uses Xen's extended format for PAE guests above 4 GiB: `(mfn << 12) | (mfn >> 20)`
 * [xen-x86_32.h xen_pfn_to_cr3].
 */
import type { GuestVirtualMemory } from "./domain.ts";
import type { MachineMemory } from "./machineMemory.ts";

/** Page-table entry bits [SDM Vol. 3A Table 4-11]. */
export const PTE = {
  P: 1 << 0,
  RW: 1 << 1,
  US: 1 << 2,
  A: 1 << 5,
  D: 1 << 6,
  PS: 1 << 7,
} as const;

/** `MMUEXT_*` commands of mmuext_op [xen.h]. */
export const MMUEXT = {
  PIN_L1_TABLE: 0,
  PIN_L2_TABLE: 1,
  PIN_L3_TABLE: 2,
  PIN_L4_TABLE: 3,
  UNPIN_TABLE: 4,
  NEW_BASEPTR: 5,
  TLB_FLUSH_LOCAL: 6,
  INVLPG_LOCAL: 7,
  TLB_FLUSH_MULTI: 8,
  INVLPG_MULTI: 9,
  TLB_FLUSH_ALL: 10,
  INVLPG_ALL: 11,
} as const;

/** update_va_mapping flags [xen.h UVMF_*]. */
export const UVMF = {
  NONE: 0,
  TLB_FLUSH: 1,
  INVLPG: 2,
  FLUSHTYPE_MASK: 3,
  ALL: 1 << 2,
} as const;

/**
 * What the hypervisor needs of a PV vCPU's paging unit: read and load CR3 (a load also reloads
 * the PDPTE cache), flush the TLB. cpu-x86 provides these.
 */
export interface PvPaging {
  readonly cr3: number;
  loadCr3(value: number): void;
  flushTlb(all: boolean): void;
  invlpg?(va: number): void;
}

/** xen_pfn_to_cr3 for PAE guests (extended CR3). */
export function mfnToCr3(mfn: number): number {
  return ((mfn * 4096) | (mfn >>> 20)) >>> 0;
}

/** xen_cr3_to_pfn for PAE guests. */
export function cr3ToMfn(cr3: number): number {
  return (cr3 >>> 12) + ((cr3 & 0xfff) >>> 0) * 2 ** 20;
}

/** Reads the 64-bit entry at machine address `at` as [low, high]. */
function entry(mem: MachineMemory, at: number): [number, number] {
  return [mem.dv.getUint32(at, true), mem.dv.getUint32(at + 4, true)];
}

/** Frame number of an entry: bits 51:12. */
export function entryMfn(lo: number, hi: number): number {
  return (lo >>> 12) + (hi & 0xfffff) * 2 ** 20;
}

/** Machine address of the L1 entry mapping `va` under the L3 at `l3Mfn`, or undefined. */
export function l1EntryAddress(mem: MachineMemory, l3Mfn: number, va: number): number | undefined {
  if (!mem.valid(l3Mfn)) return undefined;
  const [l3lo, l3hi] = entry(mem, l3Mfn * 4096 + ((va >>> 30) & 3) * 8);
  if ((l3lo & PTE.P) === 0) return undefined;
  const l2 = entryMfn(l3lo, l3hi);
  if (!mem.valid(l2)) return undefined;
  const [l2lo, l2hi] = entry(mem, l2 * 4096 + ((va >>> 21) & 511) * 8);
  if ((l2lo & PTE.P) === 0 || (l2lo & PTE.PS) !== 0) return undefined;
  const l1 = entryMfn(l2lo, l2hi);
  if (!mem.valid(l1)) return undefined;
  return l1 * 4096 + ((va >>> 12) & 511) * 8;
}

/** Translates `va` to a machine address through the PAE tables at `l3Mfn`; undefined on a fault. */
export function translate(mem: MachineMemory, l3Mfn: number, va: number, write: boolean): number | undefined {
  if (!mem.valid(l3Mfn)) return undefined;
  const [l3lo, l3hi] = entry(mem, l3Mfn * 4096 + ((va >>> 30) & 3) * 8);
  if ((l3lo & PTE.P) === 0) return undefined;
  const l2 = entryMfn(l3lo, l3hi);
  if (!mem.valid(l2)) return undefined;
  const [l2lo, l2hi] = entry(mem, l2 * 4096 + ((va >>> 21) & 511) * 8);
  if ((l2lo & PTE.P) === 0 || (write && (l2lo & PTE.RW) === 0)) return undefined;
  if ((l2lo & PTE.PS) !== 0) {
    const big = entryMfn(l2lo & ~0x1fe000, l2hi) + ((va >>> 12) & 511);
    return mem.valid(big) ? big * 4096 + (va & 0xfff) : undefined;
  }
  const l1 = entryMfn(l2lo, l2hi);
  if (!mem.valid(l1)) return undefined;
  const [lo, hi] = entry(mem, l1 * 4096 + ((va >>> 12) & 511) * 8);
  if ((lo & PTE.P) === 0 || (write && (lo & PTE.RW) === 0)) return undefined;
  const mfn = entryMfn(lo, hi);
  return mem.valid(mfn) ? mfn * 4096 + (va & 0xfff) : undefined;
}

/**
 * Guest-virtual memory through the PAE tables `paging.cr3` points at (what Xen's
 * copy_from_guest / copy_to_guest do for a PV guest's hypercall arguments).
 */
export function pagingVirtualMemory(mem: MachineMemory, paging: { readonly cr3: number }): GuestVirtualMemory {
  const at = (va: number, write: boolean) => translate(mem, cr3ToMfn(paging.cr3), va >>> 0, write);
  const read = (va: number, n: number): number | undefined => {
    let v = 0;
    for (let i = n - 1; i >= 0; i--) {
      const a = at(va + i, false);
      if (a === undefined) return undefined;
      v = v * 256 + mem.bytes[a]!;
    }
    return v;
  };
  const write = (va: number, n: number, value: number): boolean => {
    const addrs: number[] = [];
    for (let i = 0; i < n; i++) {
      const a = at(va + i, true);
      if (a === undefined) return false;
      addrs.push(a);
    }
    addrs.forEach((a, i) => (mem.bytes[a] = Math.floor(value / 2 ** (8 * i)) & 0xff));
    return true;
  };
  return {
    readU8: (va) => read(va, 1),
    readU16: (va) => read(va, 2),
    readU32: (va) => read(va, 4),
    writeU8: (va, v) => write(va, 1, v >>> 0),
    writeU16: (va, v) => write(va, 2, v >>> 0),
    writeU32: (va, v) => write(va, 4, v >>> 0),
  };
}

/** Every frame of the page-table tree under an L3 (the L3, its L2s and their L1s). */
export function tableFrames(mem: MachineMemory, l3Mfn: number): number[] | undefined {
  if (!mem.valid(l3Mfn)) return undefined;
  const frames = [l3Mfn];
  for (let i = 0; i < 4; i++) {
    const [lo, hi] = entry(mem, l3Mfn * 4096 + i * 8);
    if ((lo & PTE.P) === 0) continue;
    const l2 = entryMfn(lo, hi);
    if (!mem.valid(l2)) return undefined;
    frames.push(l2);
    for (let j = 0; j < 512; j++) {
      const [plo, phi] = entry(mem, l2 * 4096 + j * 8);
      if ((plo & PTE.P) === 0 || (plo & PTE.PS) !== 0) continue;
      const l1 = entryMfn(plo, phi);
      if (!mem.valid(l1)) return undefined;
      frames.push(l1);
    }
  }
  return frames;
}
