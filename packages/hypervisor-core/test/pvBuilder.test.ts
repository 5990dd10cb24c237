import type { VcpuExit } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import {
  HYPERVISOR, Hypervisor, MMUEXT, PTE, START_INFO, UVMF, XEN_ELFNOTE, buildPvDomain, cr3ToMfn, pagingVirtualMemory, parsePvImage, registerFile, translate,
  type GuestVirtualMemory, type PvPaging, type PvVcpu,
} from "../src/index.ts";

/** An ELF32 i386 image: PT_LOAD segments and a PT_NOTE with Xen notes (the PAE note overruns, as PV GRUB's does). */
function elf(segments: { vaddr: number; data: Uint8Array; memsz: number }[], notes: { type: number; desc: Uint8Array; descsz?: number }[]): Uint8Array {
  const phnum = segments.length + 1;
  let off = 0x1000;
  const placed = segments.map((s) => {
    const p = { ...s, offset: off };
    off += s.data.length;
    return p;
  });
  const noteParts: number[] = [];
  for (const n of notes) {
    const name = [0x58, 0x65, 0x6e, 0]; // "Xen\0"
    const descsz = n.descsz ?? n.desc.length;
    const w = (v: number) => noteParts.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
    w(4);
    w(descsz);
    w(n.type);
    noteParts.push(...name);
    noteParts.push(...n.desc);
    while (noteParts.length % 4) noteParts.push(0);
  }
  const noteOff = off;
  const total = noteOff + noteParts.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 3, true); // EM_386
  dv.setUint32(24, 0, true);
  dv.setUint32(28, 52, true);
  dv.setUint16(42, 32, true);
  dv.setUint16(44, phnum, true);
  placed.forEach((s, i) => {
    const o = 52 + i * 32;
    dv.setUint32(o, 1, true);
    dv.setUint32(o + 4, s.offset, true);
    dv.setUint32(o + 8, s.vaddr, true);
    dv.setUint32(o + 12, s.vaddr, true);
    dv.setUint32(o + 16, s.data.length, true);
    dv.setUint32(o + 20, s.memsz, true);
    out.set(s.data, s.offset);
  });
  const o = 52 + segments.length * 32;
  dv.setUint32(o, 4, true);
  dv.setUint32(o + 4, noteOff, true);
  dv.setUint32(o + 16, noteParts.length, true);
  out.set(noteParts, noteOff);
  return out;
}

const u32 = (v: number) => new Uint8Array(new Uint32Array([v]).buffer);
const str = (s: string) => new TextEncoder().encode(`${s}\0`);
const grubNotes = [
  { type: XEN_ELFNOTE.GUEST_OS, desc: str("GRUB") },
  { type: XEN_ELFNOTE.LOADER, desc: str("generic") },
  { type: XEN_ELFNOTE.XEN_VERSION, desc: str("xen-3.0") },
  { type: XEN_ELFNOTE.ENTRY, desc: u32(0) },
  { type: XEN_ELFNOTE.VIRT_BASE, desc: u32(0) },
  { type: XEN_ELFNOTE.PAE_MODE, desc: str("yes"), descsz: 12 }, // claims 12 bytes, runs off the end
];

class FakePaging implements PvPaging {
  cr3 = 0;
  flushes = 0;
  loadCr3(v: number): void {
    this.cr3 = v;
  }
  flushTlb(): void {
    this.flushes++;
  }
}

function vcpu(paging: FakePaging): PvVcpu {
  return {
    regs: registerFile(new Int32Array(8)),
    memory: undefined as unknown as GuestVirtualMemory,
    paging,
    run: (): VcpuExit => ({ reason: "halt", executed: 1 }),
    requestStop() {},
    instructionsRetired: 0,
  };
}

describe("the x86_32 PAE PV domain builder", () => {
  it("parses PT_LOAD and Xen notes, tolerating PV GRUB's overrunning PAE note", () => {
    const img = parsePvImage(elf([{ vaddr: 0, data: new Uint8Array(16), memsz: 0x2000 }], grubNotes));
    expect(img.notes.get(XEN_ELFNOTE.PAE_MODE)).toBe("yes");
    expect(img.notes.get(XEN_ELFNOTE.GUEST_OS)).toBe("GRUB");
    expect(img.entry).toBe(0);
    expect(() => parsePvImage(new Uint8Array(100))).toThrow(/not an ELF/);
  });

  it("lays out a 64 MiB domain exactly as pv-grub.md §2's worked example", () => {
    const hv = new Hypervisor({ memoryFrames: 16384 + 64 });
    const dom0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 16 });
    const code = new Uint8Array(0x100).map((_, i) => i);
    const modules = new Uint8Array(0x40).fill(0xaa);
    const image = elf(
      [
        { vaddr: 0, data: code, memsz: 0x416858 },
        { vaddr: 0x416858, data: modules, memsz: 0x5810c4 - 0x416858 },
      ],
      grubNotes,
    );
    const paging = new FakePaging();
    const boot = buildPvDomain(hv, { name: "grub", memoryPages: 16384, image, vcpu: vcpu(paging) });
    const L = boot.layout;
    expect([L.kernelEnd, L.p2mPfn, L.startInfoPfn, L.storePfn, L.consolePfn, L.ptPfn, L.ptPages, L.stackPfn, L.mappedEnd]).toEqual([
      0x582, 0x582, 0x592, 0x593, 0x594, 0x595, 9, 0x59e, 0x800000,
    ]);
    expect([boot.esi, boot.esp, boot.eip, boot.eflags, boot.cs, boot.ds]).toEqual([0x592000, 0x59f000, 0, 0x200, 0xe019, 0xe021]);
    const d = boot.domain;
    paging.cr3 = boot.cr3;
    const mem = hv.memory;
    const l3 = cr3ToMfn(boot.cr3);
    expect(l3).toBe(d.p2m[0x595]);
    // VA == pfn << 12 across the bootstrap region; page tables read-only; nothing past the end.
    expect(translate(mem, l3, 0x10, true)).toBe(d.p2m[0]! * 4096 + 0x10);
    expect(mem.bytes[translate(mem, l3, 0x416858, false)!]).toBe(0xaa);
    expect(mem.bytes[translate(mem, l3, 0x416858 + 0x40, false)!]).toBe(0); // bss/remainder zero
    expect(translate(mem, l3, 0x595000, false)).toBe(d.p2m[0x595]! * 4096);
    expect(translate(mem, l3, 0x595000, true)).toBeUndefined();
    expect(translate(mem, l3, 0x7ff000, true)).toBe(d.p2m[0x7ff]! * 4096);
    expect(translate(mem, l3, 0x800000, false)).toBeUndefined();
    // start_info, read through the guest's own page tables.
    const vm = pagingVirtualMemory(mem, paging);
    const si = (o: number) => vm.readU32(boot.esi + o);
    expect(new TextDecoder().decode(mem.page(d.p2m[0x592]!).subarray(0, 15))).toBe("xen-3.0-x86_32p");
    expect(si(START_INFO.NR_PAGES)).toBe(16384);
    expect(si(START_INFO.SHARED_INFO)).toBe(d.sharedInfoMfn * 4096);
    expect(si(START_INFO.FLAGS)).toBe(0);
    expect(si(START_INFO.STORE_MFN)).toBe(d.p2m[0x593]);
    expect(si(START_INFO.STORE_EVTCHN)).toBe(d.storePort);
    expect(si(START_INFO.CONSOLE_MFN)).toBe(d.p2m[0x594]);
    expect(si(START_INFO.CONSOLE_EVTCHN)).toBe(d.consolePort);
    expect(si(START_INFO.PT_BASE)).toBe(0x595000);
    expect(si(START_INFO.NR_PT_FRAMES)).toBe(9);
    expect(si(START_INFO.MFN_LIST)).toBe(0x582000);
    // The p2m list holds every pfn's MFN.
    expect(vm.readU32(0x582000 + 4 * 0x3fff)).toBe(d.p2m[0x3fff]);
    // shared_info: upcalls masked, time published.
    expect(d.sharedInfo.upcallMask(0)).toBe(1);
    expect(d.sharedInfo.readTime().mul).toBe(0x80000000);
    // The console page is the one the hypervisor drains.
    void dom0;
  });

  it("update_va_mapping and mmuext_op: map, pin, switch base pointer, unpin; refusals change nothing", () => {
    const hv = new Hypervisor({ memoryFrames: 2048 });
    const dom0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 16 });
    const paging = new FakePaging();
    const image = elf([{ vaddr: 0, data: new Uint8Array(64).fill(1), memsz: 0x1000 }], grubNotes);
    const boot = buildPvDomain(hv, { name: "pv", memoryPages: 1024, image, vcpu: vcpu(paging) });
    paging.cr3 = boot.cr3;
    const d = boot.domain;
    const hc = hv.hypercalls;
    const mem = hv.memory;
    const window = 0x3000; // an ordinary mapped page
    const target = 900; // a pfn above the initial mapping
    // Map pfn 900 at the window, then read it back through the tables.
    expect(hc.updateVaMapping(d, window, (d.p2m[target]! * 4096) | PTE.P | PTE.RW | PTE.US, 0, UVMF.INVLPG)).toBe(0);
    expect(translate(mem, cr3ToMfn(paging.cr3), window, true)).toBe(d.p2m[target]! * 4096);
    expect(paging.flushes).toBe(1);
    const l1Before = mem.page(d.p2m[boot.layout.ptPfn + 5]!).slice();
    // Refused: another domain's frame; a writable mapping of a pinned page-table frame.
    expect(hc.updateVaMapping(d, window, (dom0.record.p2m[0]! * 4096) | PTE.P, 0, 0)).toBe(-22);
    expect(hc.updateVaMapping(d, window, (d.p2m[boot.layout.ptPfn]! * 4096) | PTE.P | PTE.RW, 0, 0)).toBe(-22);
    expect(mem.page(d.p2m[boot.layout.ptPfn + 5]!)).toEqual(l1Before);
    // Read-only mapping of the page table is fine; so is shared_info (GRUB maps it).
    expect(hc.updateVaMapping(d, window, (d.sharedInfoMfn * 4096) | PTE.P | PTE.RW, 0, UVMF.TLB_FLUSH)).toBe(0);
    // A second L3 reusing the L2s: pin it, switch to it, unpin the old one.
    const newL3 = 950;
    mem.page(d.p2m[newL3]!).set(mem.page(d.p2m[boot.layout.ptPfn]!).subarray(0, 32));
    expect(hc.mmuextOp(d, [{ cmd: MMUEXT.NEW_BASEPTR, arg1: d.p2m[newL3]! }])).toEqual({ rc: -22, done: 0 }); // not pinned
    expect(hc.mmuextOp(d, [{ cmd: MMUEXT.PIN_L3_TABLE, arg1: dom0.record.p2m[1]! }])).toEqual({ rc: -22, done: 0 });
    const r = hc.mmuextOp(d, [
      { cmd: MMUEXT.PIN_L3_TABLE, arg1: d.p2m[newL3]! },
      { cmd: MMUEXT.NEW_BASEPTR, arg1: d.p2m[newL3]! },
      { cmd: MMUEXT.UNPIN_TABLE, arg1: d.p2m[boot.layout.ptPfn]! },
    ]);
    expect(r).toEqual({ rc: 0, done: 3 });
    expect(cr3ToMfn(paging.cr3)).toBe(d.p2m[newL3]);
    expect(translate(mem, cr3ToMfn(paging.cr3), 0x10, false)).toBe(d.p2m[0]! * 4096 + 0x10);
    // The same through the x86 register path: update_va_mapping(ebx=va, ecx:edx=pte, esi=flags).
    const regs = { eax: HYPERVISOR.update_va_mapping, ebx: window, ecx: 0, edx: 0, esi: UVMF.INVLPG, edi: 0, ebp: 0 };
    hc.x86(d, regs, pagingVirtualMemory(mem, paging));
    expect(regs.eax).toBe(0);
    expect(translate(mem, cr3ToMfn(paging.cr3), window, false)).toBeUndefined();
  });
});
