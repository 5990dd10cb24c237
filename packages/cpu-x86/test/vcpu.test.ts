/**
 * The Vcpu seam: run exits (budget, halt, intercept, triple fault, stopped), interrupt delivery
 * from an InterruptController, HLT wake-up, state save/restore, and the ring-1 PAE environment
 * the Xen PV GRUB guest runs in (see /work/shared/reference/pv-grub.md §2, §6).
 */
import { FlatMemory } from "@paravirt/vm-interfaces/testing";
import type { InterruptController } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import { CR0, CR4, FLAG, SEG, X86Cpu, X86CpuError } from "../src/index.ts";
import { COMPILER_MODES, useCompilerMode } from "./compilerModes.ts";

/** A controller with one pending vector at a time. */
class OneShotPic implements InterruptController {
  pending: number[] = [];
  hasPending(): boolean {
    return this.pending.length > 0;
  }
  acknowledge(): number {
    return this.pending.shift()!;
  }
}

function realModeCpu(code: number[], at = 0x7c00, pic?: InterruptController): { cpu: X86Cpu; mem: FlatMemory } {
  const mem = new FlatMemory(1 << 20);
  mem.bytes.set(code, at);
  const cpu = new X86Cpu({ memory: mem, interrupts: pic });
  cpu.setSegment(SEG.CS, { selector: 0, base: 0, limit: 0xffff, attributes: 0x9b });
  cpu.eip = at;
  cpu.regs[4] = 0x7000;
  return { cpu, mem };
}

describe.each(COMPILER_MODES)("run exits ($name)", (mode) => {
  useCompilerMode(mode);
  it("stops on budget with the executed count", () => {
    const { cpu } = realModeCpu([0xeb, 0xfe]); // jmp $
    expect(cpu.run(1000)).toEqual({ reason: "budget", executed: 1000 });
    expect(cpu.instructionsRetired).toBe(1000);
  });

  it("HLT returns halt, and stays halted until an interrupt arrives with IF=1", () => {
    const pic = new OneShotPic();
    // IVT[0x20] -> 0:0x9000 where the handler increments BX and IRETs.
    const { cpu, mem } = realModeCpu([0xfb, 0xf4, 0x43, 0xeb, 0xfc], 0x7c00, pic); // sti; hlt; inc bx; jmp -4
    mem.bytes.set([0x00, 0x90, 0x00, 0x00], 0x20 * 4);
    mem.bytes.set([0x41, 0xcf], 0x9000); // inc cx; iret
    expect(cpu.run(100).reason).toBe("halt");
    expect(cpu.run(100)).toEqual({ reason: "halt", executed: 0 });
    pic.pending.push(0x20);
    const exit = cpu.run(10);
    expect(exit).toEqual({ reason: "halt", executed: 5 }); // iret handler (2), inc, jmp, hlt
    expect(cpu.regs[1]).toBe(1); // the handler ran once
    expect(cpu.regs[3]).toBe(1); // execution resumed after HLT
  });

  it("interrupts wait for IF=1 and for the instruction after STI", () => {
    const pic = new OneShotPic();
    pic.pending.push(0x21);
    const { cpu, mem } = realModeCpu([0x90, 0xfb, 0x40, 0x40, 0xf4], 0x7c00, pic); // nop; sti; inc ax; inc ax; hlt
    mem.bytes.set([0x00, 0x90, 0x00, 0x00], 0x21 * 4);
    mem.bytes.set([0x89, 0xc2, 0xcf], 0x9000); // mov dx, ax; iret
    cpu.run(100);
    expect(cpu.regs[2]).toBe(1); // delivered after the first INC that follows STI
    expect(cpu.regs[0]).toBe(2);
  });

  it("an interrupt raised while IF=1 code runs is taken within POLL_INTERVAL instructions", () => {
    const pic = new OneShotPic();
    const { cpu, mem } = realModeCpu([0xfb, 0x40, 0xeb, 0xfd], 0x7c00, pic); // sti; inc ax; jmp -3
    mem.bytes.set([0x00, 0x90, 0x00, 0x00], 0x22 * 4);
    mem.bytes.set([0x41, 0xcf], 0x9000); // inc cx; iret
    cpu.run(1000);
    expect(cpu.regs[1]).toBe(0);
    pic.pending.push(0x22);
    cpu.run(X86Cpu.POLL_INTERVAL + 1);
    expect(cpu.regs[1]).toBe(1);
  });

  it("intercepted int n stops with the vector and EIP past the instruction", () => {
    const { cpu } = realModeCpu([0xb8, 0x05, 0x00, 0xcd, 0x82, 0x40, 0xf4]); // mov ax,5; int 0x82; inc ax; hlt
    cpu.interceptVector(0x82);
    const exit = cpu.run(100);
    expect(exit).toEqual({ reason: "intercept", vector: 0x82, executed: 2 });
    expect(cpu.eipU).toBe(0x7c05);
    cpu.regs[0] = 41; // the embedder's reply
    expect(cpu.run(100).reason).toBe("halt");
    expect(cpu.regs[0]).toBe(42);
  });

  it("requestStop ends run at the next instruction boundary", () => {
    const { cpu } = realModeCpu([0xeb, 0xfe]);
    cpu.requestStop();
    expect(cpu.run(10).reason).toBe("budget"); // a request made before run does not carry over
    let c2: X86Cpu | undefined;
    const io = { read: () => 0xff, write: () => c2!.requestStop() };
    const mem = new FlatMemory(1 << 20);
    mem.bytes.set([0xe6, 0x80, 0xeb, 0xfc], 0x7c00); // out 0x80, al; jmp -4
    c2 = new X86Cpu({ memory: mem, io });
    c2.setSegment(SEG.CS, { selector: 0, base: 0, limit: 0xffff, attributes: 0x9b });
    c2.eip = 0x7c00;
    expect(c2.run(1000)).toEqual({ reason: "stopped", executed: 1 });
  });

  it("fetching past the CS limit raises #GP", () => {
    const mem = new FlatMemory(1 << 20);
    mem.bytes.set([0x90, 0x90, 0x90], 0x10ffe); // nop at the limit, then beyond it
    const cpu = new X86Cpu({ memory: mem });
    cpu.setCr0(cpu.cr0 | CR0.PE);
    cpu.setSegment(SEG.CS, { selector: 8, base: 0x10000, limit: 0xfff, attributes: 0x409b });
    cpu.setSegment(SEG.SS, { selector: 16, base: 0, limit: 0xffffffff, attributes: 0xc093 });
    cpu.interceptException(13);
    cpu.eip = 0xffe;
    const exit = cpu.run(10);
    expect(exit).toEqual({ reason: "intercept", vector: 13, executed: 3 });
    expect(cpu.eipU).toBe(0x1000);
  });

  it("a fault with an unusable IDT escalates to a triple fault", () => {
    const mem = new FlatMemory(1 << 20);
    mem.bytes.set([0x0f, 0x0b], 0x1000); // ud2
    const cpu = new X86Cpu({ memory: mem });
    cpu.setCr0(cpu.cr0 | CR0.PE);
    cpu.setSegment(SEG.CS, { selector: 8, base: 0, limit: 0xffffffff, attributes: 0xc09b });
    cpu.setSegment(SEG.SS, { selector: 16, base: 0, limit: 0xffffffff, attributes: 0xc093 });
    cpu.idtrLimit = 0;
    cpu.eip = 0x1000;
    cpu.regs[4] = 0x8000;
    const exit = cpu.run(10);
    expect(exit.reason).toBe("triple-fault");
  });
});

describe.each(COMPILER_MODES)("memory without a view() ($name)", (mode) => {
  useCompilerMode(mode);
  it("runs through the GuestMemory methods (MMIO-style) with the same results", () => {
    const flat = new FlatMemory(1 << 20);
    // A GuestMemory that hides view(): every access goes through readU8/writeU8.
    const noView = {
      read: (a: number, d: Uint8Array) => flat.read(a, d),
      write: (a: number, s2: Uint8Array) => flat.write(a, s2),
      readU8: (a: number) => flat.readU8(a),
      readU16: (a: number) => flat.readU16(a),
      readU32: (a: number) => flat.readU32(a),
      writeU8: (a: number, v: number) => flat.writeU8(a, v),
      writeU16: (a: number, v: number) => flat.writeU16(a, v),
      writeU32: (a: number, v: number) => flat.writeU32(a, v),
    };
    const code = [0x66, 0xb9, 0x10, 0x27, 0, 0, 0x66, 0x31, 0xc0, 0x66, 0x01, 0xc8, 0xff, 0x06, 0x00, 0x60, 0xe2, 0xf7, 0xf4];
    flat.bytes.set(code, 0x7c00);
    const cpu = new X86Cpu({ memory: noView });
    cpu.setSegment(SEG.CS, { selector: 0, base: 0, limit: 0xffff, attributes: 0x9b });
    cpu.eip = 0x7c00;
    cpu.regs[4] = 0x7000;
    expect(cpu.run(1e6).reason).toBe("halt");
    expect(cpu.regs[0]).toBe((10000 * 10001) / 2);
    expect(flat.readU16(0x6000)).toBe(10000);
  });
});

describe.each(COMPILER_MODES)("state save and restore ($name)", (mode) => {
  useCompilerMode(mode);
  it("continues identically after a JSON round trip", () => {
    // A loop summing 1..N with a memory counter, interrupted half-way by the budget.
    const code = [0x66, 0xb9, 0x10, 0x27, 0, 0, 0x66, 0x31, 0xc0, 0x66, 0x01, 0xc8, 0xff, 0x06, 0x00, 0x60, 0xe2, 0xf7, 0xf4];
    const a = realModeCpu(code);
    a.cpu.run(5000);
    const saved = JSON.parse(JSON.stringify(a.cpu.saveState()));
    const b = realModeCpu([]);
    b.mem.bytes.set(a.mem.bytes);
    b.cpu.restoreState(saved);
    const ea = a.cpu.run(1e6);
    const eb = b.cpu.run(1e6);
    expect(eb).toEqual(ea);
    expect(b.cpu.saveState()).toEqual(a.cpu.saveState());
    expect(a.cpu.regs[0]).toBe((10000 * 10001) / 2);
    expect(() => b.cpu.restoreState({ version: 2 } as never)).toThrow(X86CpuError);
  });
});

describe.each(COMPILER_MODES)("the PV GRUB environment: ring 1, PAE, int 0x82 ($name)", (mode) => {
  useCompilerMode(mode);
  // Layout after pv-grub.md §2: L3 at 0x10000 with Xen-style 0x67 entries, one L2 at 0x11000,
  // L1 at 0x12000 mapping 0-2 MiB with P|RW|A (0x23) and the page-table frames read-only.
  function pvGuest(code: number[]): { cpu: X86Cpu; mem: FlatMemory } {
    const mem = new FlatMemory(4 << 20);
    const dv = new DataView(mem.bytes.buffer);
    dv.setUint32(0x10000, 0x11000 | 0x67, true); // PDPTE with RW/US/A/D set (Xen compat L3)
    dv.setUint32(0x11000, 0x12000 | 0x67, true);
    for (let i = 0; i < 512; i++) dv.setUint32(0x12000 + i * 8, (i << 12) | 0x23, true);
    for (const pt of [0x10, 0x11, 0x12]) dv.setUint32(0x12000 + pt * 8, (pt << 12) | 0x21, true); // read-only
    mem.bytes.set(code, 0x1000);
    const cpu = new X86Cpu({ memory: mem });
    cpu.setCr4(CR4.PAE);
    cpu.setCr0(cpu.cr0 | CR0.PE | CR0.PG | CR0.WP);
    cpu.setCr3(0x10000);
    cpu.setSegment(SEG.CS, { selector: 0xe019, base: 0, limit: 0xffffffff, attributes: 0xc0bb }); // DPL 1 code
    for (const s of [SEG.DS, SEG.ES, SEG.SS, SEG.FS, SEG.GS]) cpu.setSegment(s, { selector: 0xe021, base: 0, limit: 0xffffffff, attributes: 0xc0b3 });
    cpu.writeFlags(FLAG.IF, -1);
    cpu.eip = 0x1000;
    cpu.regs[4] = 0x9000;
    cpu.interceptVector(0x82);
    return { cpu, mem };
  }

  it("runs at CPL 1 through PAE paging and stops at int 0x82 with the hypercall registers", () => {
    const { cpu, mem } = pvGuest([
      0x0f, 0xae, 0xf0, // mfence
      0x0f, 0xae, 0xf8, // sfence
      0x31, 0xc0, 0x0f, 0xa2, // xor eax,eax; cpuid
      0x0f, 0x31, // rdtsc
      0x89, 0x05, 0x00, 0x50, 0x00, 0x00, // mov [0x5000], eax
      0xb8, 0x1d, 0, 0, 0, // mov eax, 29 (a hypercall number)
      0xbb, 0x11, 0, 0, 0, // mov ebx, 17
      0xcd, 0x82, // int 0x82
      0xf4,
    ]);
    const exit = cpu.run(100);
    expect(exit).toEqual({ reason: "intercept", vector: 0x82, executed: 9 });
    expect(cpu.cpl).toBe(1);
    expect(cpu.regs[0]).toBe(29);
    expect(cpu.regs[3]).toBe(17);
    expect(mem.bytes[0x5000]).not.toBeUndefined();
    // The accessed and dirty bits were set in the L1 entry for 0x5000.
    expect(new DataView(mem.bytes.buffer).getUint32(0x12000 + 5 * 8, true) & 0x60).toBe(0x60);
  });

  it("POPF at CPL 1 with IOPL 0 leaves IF alone without faulting, and EFLAGS.ID toggles", () => {
    const { cpu } = pvGuest([
      0x9c, 0x58, // pushfd; pop eax
      0x89, 0xc3, // mov ebx, eax
      0x35, 0x00, 0x02, 0x20, 0x00, // xor eax, IF|ID
      0x50, 0x9d, // push eax; popfd
      0x9c, 0x5a, // pushfd; pop edx
      0xcd, 0x82,
    ]);
    expect(cpu.run(100).reason).toBe("intercept");
    const before = cpu.regs[3]!;
    const after = cpu.regs[2]!;
    expect(before & FLAG.IF).toBe(FLAG.IF);
    expect(after & FLAG.IF).toBe(FLAG.IF); // unchanged: CPL 1 > IOPL 0
    expect((before ^ after) & FLAG.ID).toBe(FLAG.ID); // ID toggled
  });

  it("intercepted guest faults stop run with the vector, error code and CR2 (no IDT needed)", () => {
    const { cpu } = pvGuest([0xc7, 0x05, 0x00, 0x20, 0x01, 0x00, 0x01, 0, 0, 0]); // mov dword [0x12000], 1
    cpu.interceptException(14);
    cpu.interceptException(13);
    const exit = cpu.run(10);
    expect(exit).toEqual({ reason: "intercept", vector: 14, executed: 1 });
    expect(cpu.lastIntercept).toEqual({ kind: "exception", vector: 14, errorCode: 3 });
    expect(cpu.cr2 >>> 0).toBe(0x12000);
    expect(cpu.eipU).toBe(0x1000); // restartable
    // int 0x82 still reports a software intercept.
    cpu.eip = 0x1000;
    const { cpu: c2 } = pvGuest([0xcd, 0x82]);
    expect(c2.run(10).reason).toBe("intercept");
    expect(c2.lastIntercept).toEqual({ kind: "software", vector: 0x82, errorCode: -1 });
  });

  it("a write to a read-only page-table frame at CPL 1 raises #PF(3) through a ring-1 IDT gate", () => {
    const { cpu, mem } = pvGuest([0xc7, 0x05, 0x00, 0x20, 0x01, 0x00, 0x01, 0, 0, 0]); // mov dword [0x12000], 1
    const dv = new DataView(mem.bytes.buffer);
    // GDT: entry 3 (selector 0x19) = flat DPL 1 code; IDT vector 14 -> 0x19:0x3000 (interrupt gate).
    dv.setUint32(0x20000 + 3 * 8, 0x0000ffff, true);
    dv.setUint32(0x20000 + 3 * 8 + 4, 0x00cfbb00, true);
    cpu.gdtrBase = 0x20000;
    cpu.gdtrLimit = 0x1f;
    dv.setUint32(0x21000 + 14 * 8, (0x19 << 16) | 0x3000, true);
    dv.setUint32(0x21000 + 14 * 8 + 4, 0x00008e00, true);
    cpu.idtrBase = 0x21000;
    cpu.idtrLimit = 0x7ff;
    mem.bytes.set([0x58, 0x89, 0x05, 0x00, 0x60, 0x00, 0x00, 0xcd, 0x82], 0x3000); // pop eax; mov [0x6000], eax; int 0x82
    expect(cpu.run(20).reason).toBe("intercept");
    expect(dv.getUint32(0x6000, true)).toBe(3); // P | W, supervisor (CPL 1)
    expect(cpu.cr2 >>> 0).toBe(0x12000);
    expect(cpu.getFlags() & FLAG.IF).toBe(0); // interrupt gate cleared IF
    expect(dv.getUint32(0x12000, true)).toBe(0x23); // the write did not happen
  });
});
