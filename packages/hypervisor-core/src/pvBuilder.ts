/**
 * The x86_32 PAE PV domain builder: loads a PV kernel ELF (PT_LOAD segments, Xen notes in
 * PT_NOTE) into a new domain and lays out what Xen's toolstack does before the first
 * instruction (/work/shared/reference/pv-grub.md §2, after tools/libs/guest/xg_dom_core.c and
 * xg_dom_x86.c): kernel → p2m list → start_info → xenstore page → console page → PAE page
 * tables (L3, four L2s, L1s covering the 4 MiB-rounded bootstrap region, page-table frames
 * mapped read-only, L3 pinned) → boot stack. Returns the initial vCPU state for the CPU.
 */
import type { Domain, PvVcpu } from "./domain.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { PTE, mfnToCr3, tableFrames } from "./pae.ts";

/** `struct start_info` (x86_32) [xen.h]; size 1112. */
export const START_INFO = {
  MAGIC: 0,
  NR_PAGES: 32,
  SHARED_INFO: 36,
  FLAGS: 40,
  STORE_MFN: 44,
  STORE_EVTCHN: 48,
  CONSOLE_MFN: 52,
  CONSOLE_EVTCHN: 56,
  PT_BASE: 60,
  NR_PT_FRAMES: 64,
  MFN_LIST: 68,
  MOD_START: 72,
  MOD_LEN: 76,
  CMD_LINE: 80,
  FIRST_P2M_PFN: 1104,
  NR_P2M_FRAMES: 1108,
  SIZE: 1112,
  MAX_GUEST_CMDLINE: 1024,
} as const;

/** start_info.flags [xen.h SIF_*]. */
export const SIF = { PRIVILEGED: 1 << 0, INITDOMAIN: 1 << 1 } as const;

/** Xen ELF note types [xen/include/public/elfnote.h XEN_ELFNOTE_*]. */
export const XEN_ELFNOTE = {
  ENTRY: 1,
  HYPERCALL_PAGE: 2,
  VIRT_BASE: 3,
  PADDR_OFFSET: 4,
  XEN_VERSION: 5,
  GUEST_OS: 6,
  GUEST_VERSION: 7,
  LOADER: 8,
  PAE_MODE: 9,
  FEATURES: 10,
} as const;

/** Flat ring-1 selectors of a 32-bit PV guest [arch-x86/xen-x86_32.h]. */
export const FLAT_RING1 = { CS: 0xe019, DS: 0xe021, SS: 0xe021 } as const;

/** Start of the hypervisor's hole for PAE guests [xen-x86_32.h __HYPERVISOR_VIRT_START_PAE]. */
export const HYPERVISOR_VIRT_START_PAE = 0xf5800000;

/** Entry flags of the initial tables (xg_dom_x86.c): L2/L3 P|RW|A|D|US, L1 P|RW|A, tables P|A. */
const FLAGS_UPPER = PTE.P | PTE.RW | PTE.A | PTE.D | PTE.US;
const FLAGS_L1 = PTE.P | PTE.RW | PTE.A;
const FLAGS_L1_RO = PTE.P | PTE.A;

/** A parsed PV kernel image. */
export interface PvImage {
  segments: { paddr: number; vaddr: number; fileOffset: number; filesz: number; memsz: number }[];
  entry: number;
  virtBase: number;
  /** Xen notes by type: numbers for ENTRY/VIRT_BASE/..., strings for the string notes. */
  notes: Map<number, number | string>;
}

/** Why an image was refused. */
export class PvImageError extends Error {
  override readonly name = "PvImageError";
}

const NUMERIC_NOTES = new Set<number>([XEN_ELFNOTE.ENTRY, XEN_ELFNOTE.HYPERCALL_PAGE, XEN_ELFNOTE.VIRT_BASE, XEN_ELFNOTE.PADDR_OFFSET]);

/**
 * Parses an ELF32 i386 executable [System V ABI, ELF header / program headers]: PT_LOAD (1)
 * segments and the Xen notes of PT_NOTE (4). A note whose descriptor runs past its segment
 * (PV GRUB's PAE note) is cut at the segment end; strings stop at NUL.
 */
export function parsePvImage(image: Uint8Array): PvImage {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.length < 52 || dv.getUint32(0, false) !== 0x7f454c46) throw new PvImageError("not an ELF file");
  if (image[4] !== 1 || image[5] !== 1) throw new PvImageError("not a 32-bit little-endian ELF");
  if (dv.getUint16(18, true) !== 3) throw new PvImageError("not an i386 ELF");
  const phoff = dv.getUint32(28, true);
  const phentsize = dv.getUint16(42, true);
  const phnum = dv.getUint16(44, true);
  if (phoff + phnum * phentsize > image.length || phentsize < 32) throw new PvImageError("program headers outside the file");
  const segments: PvImage["segments"] = [];
  const notes = new Map<number, number | string>();
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    const type = dv.getUint32(o, true);
    const fileOffset = dv.getUint32(o + 4, true);
    const vaddr = dv.getUint32(o + 8, true);
    const paddr = dv.getUint32(o + 12, true);
    const filesz = dv.getUint32(o + 16, true);
    const memsz = dv.getUint32(o + 20, true);
    if (type === 1) {
      if (fileOffset + filesz > image.length || filesz > memsz) throw new PvImageError(`segment ${i} outside the file`);
      segments.push({ paddr, vaddr, fileOffset, filesz, memsz });
    } else if (type === 4) {
      const end = Math.min(image.length, fileOffset + filesz);
      let p = fileOffset;
      while (p + 12 <= end) {
        const namesz = dv.getUint32(p, true);
        const descsz = dv.getUint32(p + 4, true);
        const ntype = dv.getUint32(p + 8, true);
        const nameAt = p + 12;
        const descAt = nameAt + ((namesz + 3) & ~3);
        const name = new TextDecoder().decode(image.subarray(nameAt, Math.min(end, nameAt + namesz))).replace(/\0.*$/s, "");
        const descEnd = Math.min(end, descAt + descsz);
        if (name === "Xen" && descAt <= end) {
          const desc = image.subarray(descAt, descEnd);
          if (NUMERIC_NOTES.has(ntype)) {
            const ddv = new DataView(desc.buffer, desc.byteOffset, desc.byteLength);
            if (desc.length >= 8) notes.set(ntype, ddv.getUint32(0, true) + ddv.getUint32(4, true) * 2 ** 32);
            else if (desc.length >= 4) notes.set(ntype, ddv.getUint32(0, true));
          } else {
            const nul = desc.indexOf(0);
            notes.set(ntype, new TextDecoder().decode(nul < 0 ? desc : desc.subarray(0, nul)));
          }
        }
        p = descAt + ((descsz + 3) & ~3);
      }
    }
  }
  if (segments.length === 0) throw new PvImageError("no PT_LOAD segment");
  const virtBase = (notes.get(XEN_ELFNOTE.VIRT_BASE) as number | undefined) ?? 0;
  const entry = (notes.get(XEN_ELFNOTE.ENTRY) as number | undefined) ?? dv.getUint32(24, true);
  return { segments, entry, virtBase, notes };
}

export interface PvBuildOptions {
  name: string;
  /** RAM pages (pseudo-physical frames 0..n-1). */
  memoryPages: number;
  /** The kernel ELF. */
  image: Uint8Array;
  vcpu: PvVcpu;
  cmdline?: string;
  privileged?: boolean;
  weight?: number;
}

/** What the builder leaves for the CPU and for inspection. */
export interface PvBootState {
  domain: Domain;
  /** Initial registers [xg_dom_x86.c vcpu_x86_32]. */
  eip: number;
  esp: number;
  esi: number;
  eflags: number;
  cs: number;
  ds: number;
  ss: number;
  /** Extended-format CR3 of the pinned L3 (PAE on). */
  cr3: number;
  layout: {
    kernelEnd: number;
    p2mPfn: number;
    p2mPages: number;
    startInfoPfn: number;
    storePfn: number;
    consolePfn: number;
    ptPfn: number;
    ptPages: number;
    stackPfn: number;
    /** End of the initial mapping [0, end) (VA). */
    mappedEnd: number;
  };
}

const MIB4 = 4 << 20;

/** How many page-table pages cover `[0, end)` after `ptPfn` (count_pgtables, PAE: L3 + 4 L2 + L1s). */
function pageTablePages(ptPfn: number): { pages: number; end: number } {
  let pages = 1 + 4 + 1;
  for (;;) {
    const end = Math.ceil(((ptPfn + pages + 1) * 4096 + 512 * 1024) / MIB4) * MIB4;
    const need = 1 + 4 + Math.ceil(end / (2 << 20));
    if (need === pages) return { pages, end };
    pages = need;
  }
}

/** Builds an x86_32 PAE PV domain from `options.image`. Refuses images it cannot lay out (throws). */
export function buildPvDomain(hv: Hypervisor, options: PvBuildOptions): PvBootState {
  const img = parsePvImage(options.image);
  const pae = img.notes.get(XEN_ELFNOTE.PAE_MODE);
  if (typeof pae !== "string" || !pae.startsWith("yes")) throw new PvImageError(`not a PAE guest (PAE_MODE ${String(pae)})`);
  const n = options.memoryPages;
  let imageEnd = 0;
  for (const s of img.segments) imageEnd = Math.max(imageEnd, s.paddr + s.memsz);
  const kernelEnd = Math.ceil(imageEnd / 4096);
  const p2mPfn = kernelEnd;
  const p2mPages = Math.ceil((n * 4) / 4096);
  const startInfoPfn = p2mPfn + p2mPages;
  const storePfn = startInfoPfn + 1;
  const consolePfn = storePfn + 1;
  const ptPfn = consolePfn + 1;
  const { pages: ptPages, end: mappedEnd } = pageTablePages(ptPfn);
  const stackPfn = ptPfn + ptPages;
  if (mappedEnd / 4096 > n || mappedEnd > HYPERVISOR_VIRT_START_PAE) throw new PvImageError(`${n} pages cannot hold the image and its bootstrap region (${mappedEnd / 4096} pages)`);

  const d = hv.createPvDomain({
    name: options.name,
    memoryPages: n,
    vcpu: options.vcpu,
    privileged: options.privileged ?? false,
    weight: options.weight ?? 256,
    layout: { storePfn, consolePfn },
  });
  const mem = hv.memory;
  const mfnOf = (pfn: number) => d.p2m[pfn]!;
  const pageOf = (pfn: number) => mem.page(mfnOf(pfn));

  // Kernel segments, byte-exact; bss stays zero (frames are allocated zeroed).
  const phys = hv.pseudoPhysical(d.domid);
  for (const s of img.segments) phys.write(s.paddr, options.image.subarray(s.fileOffset, s.fileOffset + s.filesz));

  // p2m list: u32 MFNs for every pfn.
  for (let pfn = 0; pfn < n; pfn++) phys.writeU32(p2mPfn * 4096 + pfn * 4, mfnOf(pfn));

  // Page tables: L3, L2 x4, L1s; entries are 64-bit (high word = mfn >> 20).
  const setEntry = (pfn: number, index: number, mfn: number, flags: number) => {
    const at = mfnOf(pfn) * 4096 + index * 8;
    mem.dv.setUint32(at, ((mfn * 4096) | flags) >>> 0, true);
    mem.dv.setUint32(at + 4, Math.floor(mfn / 2 ** 20), true);
  };
  const l3 = ptPfn;
  const l2 = (i: number) => ptPfn + 1 + i;
  const l1Count = ptPages - 5;
  for (let i = 0; i < 4; i++) setEntry(l3, i, mfnOf(l2(i)), FLAGS_UPPER);
  for (let j = 0; j < l1Count; j++) setEntry(l2(0), j, mfnOf(ptPfn + 5 + j), FLAGS_UPPER);
  for (let pfn = 0; pfn < mappedEnd / 4096; pfn++) {
    const table = ptPfn + 5 + Math.floor(pfn / 512);
    const ro = pfn >= ptPfn && pfn < ptPfn + ptPages;
    setEntry(table, pfn % 512, mfnOf(pfn), ro ? FLAGS_L1_RO : FLAGS_L1);
  }
  d.pinned.set(mfnOf(l3), tableFrames(mem, mfnOf(l3))!);

  // start_info.
  const va = (pfn: number) => (img.virtBase + pfn * 4096) >>> 0;
  const si = pageOf(startInfoPfn);
  const sdv = new DataView(si.buffer, si.byteOffset, 4096);
  si.set(new TextEncoder().encode("xen-3.0-x86_32p"), START_INFO.MAGIC);
  sdv.setUint32(START_INFO.NR_PAGES, n, true);
  sdv.setUint32(START_INFO.SHARED_INFO, d.sharedInfoMfn * 4096, true);
  sdv.setUint32(START_INFO.FLAGS, (options.privileged ? SIF.PRIVILEGED : 0) | (d.domid === 0 ? SIF.INITDOMAIN : 0), true);
  sdv.setUint32(START_INFO.STORE_MFN, d.storePfn >= 0 ? mfnOf(d.storePfn) : 0, true);
  sdv.setUint32(START_INFO.STORE_EVTCHN, d.storePort, true);
  sdv.setUint32(START_INFO.CONSOLE_MFN, mfnOf(consolePfn), true);
  sdv.setUint32(START_INFO.CONSOLE_EVTCHN, d.consolePort, true);
  sdv.setUint32(START_INFO.PT_BASE, va(ptPfn), true);
  sdv.setUint32(START_INFO.NR_PT_FRAMES, ptPages, true);
  sdv.setUint32(START_INFO.MFN_LIST, va(p2mPfn), true);
  const cmd = new TextEncoder().encode(options.cmdline ?? "").subarray(0, START_INFO.MAX_GUEST_CMDLINE - 1);
  si.set(cmd, START_INFO.CMD_LINE);

  hv.log(`d${d.domid}: PV build: kernel 0-${(kernelEnd - 1).toString(16)}, start_info pfn ${startInfoPfn.toString(16)}, ${ptPages} page-table frames, mapped to 0x${mappedEnd.toString(16)}`);
  return {
    domain: d,
    eip: img.entry >>> 0,
    esp: va(stackPfn + 1),
    esi: va(startInfoPfn),
    eflags: 0x200,
    cs: FLAT_RING1.CS,
    ds: FLAT_RING1.DS,
    ss: FLAT_RING1.SS,
    cr3: mfnToCr3(mfnOf(l3)),
    layout: { kernelEnd, p2mPfn, p2mPages, startInfoPfn, storePfn, consolePfn, ptPfn, ptPages, stackPfn, mappedEnd },
  };
}
