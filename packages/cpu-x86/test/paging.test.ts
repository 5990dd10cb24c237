/**
 * Paging details beyond pmode.asm: PSE 4 MiB pages, global pages surviving a CR3 reload while
 * other TLB entries are flushed, NX under PAE with EFER.NXE, and the U/S and R/W checks at CPL 3.
 * [SDM Vol.3A 4.3, 4.4, 4.6, 4.10.4]
 */
import { FlatMemory } from "@paravirt/vm-interfaces/testing";
import { describe, expect, it } from "vitest";
import { CR0, CR4, EFER, MSR, SEG, X86Cpu } from "../src/index.ts";
import { COMPILER_MODES, useCompilerMode } from "./compilerModes.ts";

const PD = 0x10000;
const PT = 0x11000;

function flatPm(mem: FlatMemory): X86Cpu {
  const cpu = new X86Cpu({ memory: mem });
  cpu.setCr0(cpu.cr0 | CR0.PE);
  cpu.setSegment(SEG.CS, { selector: 8, base: 0, limit: 0xffffffff, attributes: 0xc09b });
  for (const s of [SEG.DS, SEG.ES, SEG.SS, SEG.FS, SEG.GS]) cpu.setSegment(s, { selector: 16, base: 0, limit: 0xffffffff, attributes: 0xc093 });
  cpu.regs[4] = 0x8000;
  return cpu;
}

/** Runs `code` at 0x1000 until HLT; returns the exit. */
function exec(cpu: X86Cpu, mem: FlatMemory, code: number[]) {
  mem.bytes.set(code, 0x1000);
  cpu.eip = 0x1000;
  cpu.halted = false;
  return cpu.run(1000);
}

const le = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
/** mov eax, [addr]; hlt */
const load = (addr: number) => [0xa1, ...le(addr), 0xf4];

describe.each(COMPILER_MODES)("2-level paging ($name)", (mode) => {
  useCompilerMode(mode);
  function setup() {
    const mem = new FlatMemory(16 << 20);
    const dv = new DataView(mem.bytes.buffer);
    dv.setUint32(PD, PT | 3, true); // 0-4 MiB through a page table
    for (let i = 0; i < 1024; i++) dv.setUint32(PT + i * 4, (i << 12) | 3, true);
    dv.setUint32(PD + 4, 0x800000 | 0x83, true); // 4-8 MiB -> 8 MiB as a 4 MiB page (PS)
    const cpu = flatPm(mem);
    cpu.setCr4(CR4.PSE | CR4.PGE);
    cpu.setCr3(PD);
    cpu.setCr0(cpu.cr0 | CR0.PG);
    return { mem, dv, cpu };
  }

  it("peekTranslate walks the tables without side effects", () => {
    const { dv, cpu } = setup();
    expect(cpu.peekTranslate(0x412345)).toBe(0x812345);
    expect(cpu.peekTranslate(0x3456)).toBe(0x3456);
    expect(cpu.peekTranslate(0x900000)).toBeUndefined();
    expect(dv.getUint32(PD + 4, true) & 0x20).toBe(0); // no accessed bit
    expect(cpu.cr2).toBe(0);
  });

  it("REP MOVSD stops at a not-present page with ECX/ESI/EDI at the faulting element", () => {
    const { mem, dv, cpu } = setup();
    for (let i = 0; i < 0x400; i += 4) dv.setUint32(0x200000 + i, 0x1000 + i, true);
    dv.setUint32(PT + 0x101 * 4, 0, true); // 0x101000 not present
    cpu.regs[6] = 0x200000;
    cpu.regs[7] = 0x100f00;
    cpu.regs[1] = 0x100;
    cpu.idtrLimit = 0; // the #PF escalates; registers keep the state at the fault
    const exit = exec(cpu, mem, [0xf3, 0xa5, 0xf4]); // rep movsd; hlt
    expect(exit.reason).toBe("triple-fault");
    expect(cpu.cr2).toBe(0x101000);
    expect(cpu.regs[1]).toBe(0xc0);
    expect(cpu.regs[6]).toBe(0x200100);
    expect(cpu.regs[7]).toBe(0x101000);
    expect(dv.getUint32(0x100ffc, true)).toBe(0x10fc);
    expect(cpu.eipU).toBe(0x1000); // restartable: EIP at the REP
  });

  it("maps a 4 MiB PSE page and sets its accessed bit", () => {
    const { mem, dv, cpu } = setup();
    dv.setUint32(0x812345 & ~3, 0xabcd1234, true);
    expect(exec(cpu, mem, load(0x412344)).reason).toBe("halt");
    expect(cpu.regs[0]! >>> 0).toBe(0xabcd1234);
    expect(dv.getUint32(PD + 4, true) & 0x20).toBe(0x20);
  });

  it("CR3 reload flushes ordinary entries but keeps global ones (CR4.PGE)", () => {
    const { mem, dv, cpu } = setup();
    dv.setUint32(PT + 0x100 * 4, 0x100000 | 0x103, true); // 0x100000 global
    dv.setUint32(PT + 0x101 * 4, 0x101000 | 0x003, true); // 0x101000 not global
    dv.setUint32(0x100000, 1, true);
    dv.setUint32(0x101000, 2, true);
    dv.setUint32(0x200000, 3, true);
    exec(cpu, mem, load(0x100000));
    exec(cpu, mem, load(0x101000));
    // Retarget both PTEs to 0x200000 without INVLPG, then reload CR3.
    dv.setUint32(PT + 0x100 * 4, 0x200000 | 0x103, true);
    dv.setUint32(PT + 0x101 * 4, 0x200000 | 0x003, true);
    cpu.setCr3(PD);
    exec(cpu, mem, load(0x100000));
    expect(cpu.regs[0]).toBe(1); // the stale global translation survives
    exec(cpu, mem, load(0x101000));
    expect(cpu.regs[0]).toBe(3); // the non-global one was re-walked
    cpu.invlpg(0x100000);
    exec(cpu, mem, load(0x100000));
    expect(cpu.regs[0]).toBe(3);
  });

  it("a user-mode write to a supervisor page faults with error code 7", () => {
    const { mem, dv, cpu } = setup();
    // IDT vector 14 -> ring-0 handler at 0x3000 via a TSS stack.
    const gdt = 0x20000;
    dv.setUint32(gdt + 8, 0x0000ffff, true);
    dv.setUint32(gdt + 12, 0x00cf9b00, true); // 0x08 ring-0 code
    dv.setUint32(gdt + 16, 0x0000ffff, true);
    dv.setUint32(gdt + 20, 0x00cf9300, true); // 0x10 ring-0 data
    dv.setUint32(gdt + 24, 0x0000ffff, true);
    dv.setUint32(gdt + 28, 0x00cffb00, true); // 0x1b ring-3 code
    dv.setUint32(gdt + 32, 0x0000ffff, true);
    dv.setUint32(gdt + 36, 0x00cff300, true); // 0x23 ring-3 data
    dv.setUint32(gdt + 40, (0x22000 << 16) | 0x67, true); // 0x28 TSS at 0x22000
    dv.setUint32(gdt + 44, 0x00008900 | ((0x22000 >>> 16) & 0xff), true);
    cpu.gdtrBase = gdt;
    cpu.gdtrLimit = 47;
    dv.setUint32(0x22000 + 4, 0x9000, true); // ESP0
    dv.setUint32(0x22000 + 8, 0x10, true); // SS0
    dv.setUint32(0x21000 + 14 * 8, (0x08 << 16) | 0x3000, true);
    dv.setUint32(0x21000 + 14 * 8 + 4, 0x00008e00, true);
    cpu.idtrBase = 0x21000;
    cpu.idtrLimit = 0x7ff;
    for (let i = 0; i < 1024; i++) dv.setUint32(PT + i * 4, (i << 12) | 7, true); // user pages
    dv.setUint32(PD, PT | 7, true);
    dv.setUint32(PT + 0x50 * 4, 0x50000 | 3, true); // supervisor page
    // Ring 0: LTR, then IRET to ring 3 code at 0x2000 that writes to 0x50000.
    mem.bytes.set([0x66, 0xb8, 0x28, 0x00, 0x0f, 0x00, 0xd8, // mov ax,0x28; ltr ax
      0x6a, 0x23, 0x68, ...le(0x7000), 0x6a, 0x02, 0x6a, 0x1b, 0x68, ...le(0x2000), 0xcf], 0x1000); // push ss/esp/eflags/cs/eip; iretd
    // IRET to ring 3 nulled DS (DPL 0 < CPL 3) [SDM Vol.2 IRET]: load the user data segment first.
    mem.bytes.set([0x66, 0xb8, 0x23, 0x00, 0x8e, 0xd8, 0xc7, 0x05, ...le(0x50000), 1, 0, 0, 0], 0x2000);
    mem.bytes.set([0x58, 0xa3, ...le(0x6000), 0x8b, 0x04, 0x24, 0xa3, ...le(0x6004), 0xf4], 0x3000); // pop eax; mov [0x6000],eax; mov eax,[esp]; mov [0x6004],eax; hlt
    cpu.eip = 0x1000;
    const exit = cpu.run(100);
    expect(exit.reason, JSON.stringify({ exit, exc: cpu.lastException, eip: cpu.eipU, cpl: cpu.cpl })).toBe("halt");
    expect(dv.getUint32(0x6000, true)).toBe(7); // P | W | U
    expect(dv.getUint32(0x6004, true)).toBe(0x2006); // faulting EIP
    expect(cpu.cr2).toBe(0x50000);
    expect(cpu.cpl).toBe(0);
    expect(cpu.regs[4]).toBe(0x9000 - 20); // SS, ESP, EFLAGS, CS, EIP on the ring-0 stack (error code popped)
  });
});

describe.each(COMPILER_MODES)("PAE with NX ($name)", (mode) => {
  useCompilerMode(mode);
  it("an instruction fetch from an XD page faults with the I/D bit once EFER.NXE is set", () => {
    const mem = new FlatMemory(16 << 20);
    const dv = new DataView(mem.bytes.buffer);
    dv.setUint32(0x10000, 0x11000 | 1, true); // PDPTE 0
    dv.setUint32(0x11000, 0x12000 | 3, true); // PDE 0
    for (let i = 0; i < 512; i++) dv.setUint32(0x12000 + i * 8, (i << 12) | 3, true);
    dv.setUint32(0x12000 + 0x40 * 8 + 4, 0x80000000, true); // 0x40000: XD
    mem.bytes.set([0xf4], 0x40000);
    const cpu = flatPm(mem);
    cpu.setCr4(CR4.PAE);
    cpu.setCr3(0x10000);
    cpu.setCr0(cpu.cr0 | CR0.PG);
    // Without NXE the XD bit is ignored (reserved-bit checks are not modelled): HLT runs.
    cpu.eip = 0x40000;
    expect(cpu.run(10).reason).toBe("halt");
    cpu.writeMsr(MSR.EFER, EFER.NXE, 0);
    expect(cpu.readMsr(MSR.EFER)).toEqual([EFER.NXE, 0]);
    dv.setUint32(0x21000 + 14 * 8, (0x08 << 16) | 0x3000, true);
    dv.setUint32(0x21000 + 14 * 8 + 4, 0x00008e00, true);
    dv.setUint32(0x20000 + 8, 0x0000ffff, true);
    dv.setUint32(0x20000 + 12, 0x00cf9b00, true);
    cpu.gdtrBase = 0x20000;
    cpu.gdtrLimit = 15;
    cpu.idtrBase = 0x21000;
    cpu.idtrLimit = 0x7ff;
    mem.bytes.set([0x58, 0xa3, ...le(0x6000), 0xf4], 0x3000);
    cpu.eip = 0x40000;
    cpu.halted = false;
    expect(cpu.run(10).reason).toBe("halt");
    expect(dv.getUint32(0x6000, true)).toBe(0x11); // P | I/D
    expect(cpu.cr2).toBe(0x40000);
  });
});
