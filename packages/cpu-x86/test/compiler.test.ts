/**
 * The block compiler against the interpreter: random straight-line programs built from the
 * forms the compiler emits run on two CPUs, one interpreted and one compiling every block on
 * first execution, in the same random run() budgets; registers, EIP, EFLAGS, the retired count,
 * how each run ended (faults included, intercepted with their error codes) and memory must
 * agree after every run. Plus the cache rules: a block dropped by a store is recompiled, a fault
 * in the middle of a block reports the faulting instruction with the earlier ones committed,
 * and budgets are exact.
 */
import { FlatMemory } from "@paravirt/vm-interfaces/testing";
import { describe, expect, it } from "vitest";
import { CR0, SEG, X86Cpu } from "../src/index.ts";

const CODE = 0x1000;
const DATA = 0x3000;
const HOLE = 0x5000; // not present when paging is on
const COUNTER = 0x3ffc;
const PD = 0x10000;
const PT = 0x11000;

let seed = 0x9e3779b9;
function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}
const pick = <T>(xs: readonly T[]): T => xs[rnd() % xs.length]!;
const le32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
/** A register other than ESP. */
const gpr = (): number => pick([0, 1, 2, 3, 5, 6, 7]);
const value = (): number => pick([0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, rnd(), rnd() & 0xff, rnd()]);

/**
 * A memory operand (ModRM with `reg`, SIB, displacement): usually absolute in the data page,
 * sometimes in the page that is not present, sometimes relative to a random register (which
 * may fault on the segment limit or read open bus).
 */
function mem(reg: number): number[] {
  const r = rnd() % 10;
  if (r < 6) return [(reg << 3) | 5, ...le32(DATA + (rnd() % 0xf00))];
  if (r === 6) return [(reg << 3) | 5, ...le32(HOLE + (rnd() % 0x1000))];
  if (r === 7) return [0x44 | (reg << 3), ((rnd() % 4) << 6) | (gpr() << 3) | gpr(), rnd() & 0xff]; // [base+index*s+d8]
  if (r === 8) return [0x80 | (reg << 3) | gpr(), ...le32(DATA)]; // [reg+d32]
  return [0x04 | (reg << 3), 0x25, ...le32(DATA + (rnd() % 0x100))]; // SIB, no base, no index
}
function rm(reg: number): number[] {
  return rnd() % 2 === 0 ? [0xc0 | (reg << 3) | gpr()] : mem(reg);
}
function sized(): { pre: number[]; w: number; bits: number } {
  const bits = pick([8, 16, 32, 32]);
  return { pre: bits === 16 ? [0x66] : [], w: bits === 8 ? 0 : 1, bits };
}
function imm(bits: number): number[] {
  return le32(value()).slice(0, bits >> 3);
}

/** One instruction of a form the compiler handles (or a neighbour it leaves to the interpreter). */
function instruction(): number[] {
  const { pre, w, bits } = sized();
  switch (rnd() % 28) {
    case 0:
    case 1: // ALU Eb/Ev,Gb/Gv and Gb/Gv,Eb/Ev
      return [...pre, (rnd() % 8) * 8 + w + (rnd() % 2) * 2, ...rm(gpr())];
    case 2: // ALU AL/eAX,imm
      return [...pre, (rnd() % 8) * 8 + 4 + w, ...imm(bits)];
    case 3: // group 1 immediates
      if (bits === 8) return [0x80, ...rm(rnd() % 8), rnd() & 0xff];
      return rnd() % 2 === 0 ? [...pre, 0x83, ...rm(rnd() % 8), rnd() & 0xff] : [...pre, 0x81, ...rm(rnd() % 8), ...imm(bits)];
    case 4: // INC/DEC r
      return [...pre, 0x40 + (rnd() % 2) * 8 + gpr()];
    case 5: // INC/DEC r/m
      return [...pre, 0xfe + w, ...rm(rnd() % 2)];
    case 6: // shifts and rotates by CL
      return [...pre, 0xd2 + w, ...rm(rnd() % 8)];
    case 7: {
      // shifts and rotates by 1 or imm8
      const op = pick([0xd0, 0xc0, 0xd2]) + w;
      const body = [...pre, op, ...rm(rnd() % 8)];
      return op === 0xc0 || op === 0xc1 ? [...body, pick([0, 1, 2, 7, 8, 15, 16, 17, 31, rnd() & 0xff])] : body;
    }
    case 8: // IMUL
      if (bits === 8) return [0x0f, 0xaf, ...rm(gpr())];
      return pick([[...pre, 0x0f, 0xaf, ...rm(gpr())], [...pre, 0x6b, ...rm(gpr()), rnd() & 0xff], [...pre, 0x69, ...rm(gpr()), ...imm(bits)]]);
    case 9: // MOVZX/MOVSX
      return [...(bits === 16 ? pre : []), 0x0f, pick([0xb6, 0xb7, 0xbe, 0xbf]), ...rm(gpr())];
    case 10: // SETcc
      return [0x0f, 0x90 + (rnd() % 16), ...rm(0)];
    case 11: // CMOVcc
      return [...(bits === 16 ? pre : []), 0x0f, 0x40 + (rnd() % 16), ...rm(gpr())];
    case 12: // TEST
      return pick([[...pre, 0x84 + w, ...rm(gpr())], [...pre, 0xa8 + w, ...imm(bits)], [...pre, 0xf6 + w, ...rm(0), ...imm(bits)]]);
    case 13: // XCHG
      return pick([[...pre, 0x86 + w, ...rm(gpr())], [...pre, 0x90 + gpr()]]);
    case 14: // LEA with SIB
      return [...pre, 0x8d, 0x84 | (gpr() << 3), ((rnd() % 4) << 6) | (gpr() << 3) | gpr(), ...le32(value())];
    case 15: // PUSH/POP
      return pick([[...(bits === 16 ? pre : []), 0x50 + gpr()], [...(bits === 16 ? pre : []), 0x58 + gpr()], [0x68, ...le32(value())], [0x6a, rnd() & 0xff], [0xff, ...mem(6)]]);
    case 16: // NOT/NEG
      return [...pre, 0xf6 + w, ...rm(2 + (rnd() % 2))];
    case 17: // MOV
      return pick([[...pre, 0x88 + w + (rnd() % 2) * 2, ...rm(gpr())], [...pre, 0xc6 + w, ...rm(0), ...imm(bits)], [...pre, 0xb8 + gpr(), ...imm(bits === 8 ? 32 : bits)], [...pre, 0xa0 + w + (rnd() % 2) * 2, ...le32(DATA + (rnd() % 0x100))]]);
    case 18: // CBW/CWDE, CWD/CDQ, BSWAP
      return pick([[...pre, 0x98], [...pre, 0x99], [0x0f, 0xc8 + gpr()]]);
    case 19: // flag bits
      return [pick([0xf8, 0xf9, 0xfc, 0xf5])];
    case 20: // ADC/SBB right after an instruction that set CF some other way
      return [...pre, pick([0x10, 0x18]) + w, ...rm(gpr())];
    case 21: // segment override
      return [pick([0x3e, 0x26, 0x36]), 0x8b, ...mem(gpr())];
    case 22: // LOOPcc over a skipped INC
      return [pick([0xe0, 0xe1, 0xe2, 0xe3]), 1, 0x40 + gpr()];
    case 23: // MUL/DIV: left to the interpreter, between compiled blocks
      return [0xf7, 0xe0 | gpr()];
    case 24: {
      // JMP or CALL forward over the next instruction (the block follows it)
      const next = instruction();
      return pick([[0xeb, next.length, ...next], [0xe9, ...le32(next.length), ...next], [0xe8, ...le32(next.length), ...next]]);
    }
    case 25: {
      // MOVS/STOS/LODS without REP, either direction: ESI in the data page, the hole or anywhere
      const esi = [0xbe, ...le32(pick([DATA + (rnd() % 0xff0), HOLE + (rnd() % 0x1000), value()]))];
      const edi = [0xbf, ...le32(DATA + (rnd() % 0xff0))];
      return [...esi, ...edi, pick([0xfc, 0xfd]), ...pick([[], [0x26], [0x36]]), ...pre, pick([0xa4, 0xaa, 0xac]) + w];
    }
    default: {
      // Jcc over the next instruction (rel8 or rel32)
      const next = instruction();
      const cc = rnd() % 16;
      return rnd() % 2 === 0 ? [0x70 + cc, next.length, ...next] : [0x0f, 0x80 + cc, ...le32(next.length), ...next];
    }
  }
}

function program(): number[] {
  const body: number[] = [];
  const n = 5 + (rnd() % 60);
  for (let i = 0; i < n; i++) body.push(...instruction());
  // dec dword [COUNTER]; jnz body; hlt
  const tail = [0xff, 0x0d, ...le32(COUNTER)];
  const jnz = [0x0f, 0x85, ...le32(-(body.length + tail.length + 6))];
  return [...body, ...tail, ...jnz, 0xf4];
}

function machine(code: number[], regs: number[], data: Uint8Array, paging: boolean, compiler: boolean): { cpu: X86Cpu; mem: FlatMemory } {
  const mem = new FlatMemory(1 << 20);
  mem.bytes.set(code, CODE);
  mem.bytes.set(data, DATA);
  new DataView(mem.bytes.buffer).setUint32(COUNTER, 3, true);
  const cpu = new X86Cpu({ memory: mem, compiler, compileThreshold: 0 });
  cpu.setCr0(cpu.cr0 | CR0.PE);
  cpu.setSegment(SEG.CS, { selector: 8, base: 0, limit: 0xffffffff, attributes: 0xc09b });
  // Data segments end with RAM: random base registers fault with #GP, as they do interpreted.
  for (const s of [SEG.DS, SEG.ES, SEG.SS, SEG.FS, SEG.GS]) cpu.setSegment(s, { selector: 16, base: 0, limit: 0xfffff, attributes: 0xc093 });
  if (paging) {
    const dv = new DataView(mem.bytes.buffer);
    dv.setUint32(PD, PT | 3, true);
    for (let i = 0; i < 256; i++) dv.setUint32(PT + i * 4, (i << 12) | 3, true);
    dv.setUint32(PT + (HOLE >>> 12) * 4, 0, true);
    cpu.setCr3(PD);
    cpu.setCr0(cpu.cr0 | CR0.PG);
  }
  for (let v = 0; v < 32; v++) cpu.interceptException(v);
  for (let r = 0; r < 8; r++) cpu.regs[r] = regs[r]!;
  cpu.regs[4] = 0x8000;
  cpu.eip = CODE;
  return { cpu, mem };
}

function state(cpu: X86Cpu, mem: FlatMemory): string {
  const m = mem.bytes;
  let sum = 0;
  for (const [a, b] of [[DATA, DATA + 0x1000], [0x7000, 0x8000]] as const) for (let i = a; i < b; i++) sum = (Math.imul(sum, 31) + m[i]!) | 0;
  return `regs ${Array.from(cpu.regs, (r) => (r >>> 0).toString(16)).join(",")} eip ${cpu.eipU.toString(16)} fl ${cpu.getFlags().toString(16)} n ${cpu.instructionsRetired} cr2 ${cpu.cr2} mem ${sum}`;
}

describe("compiled blocks agree with the interpreter", () => {
  for (const paging of [false, true]) {
    it(`on 150 random programs in random run() budgets${paging ? " (paging, a page not present)" : ""}`, () => {
      let compiled = 0;
      for (let round = 0; round < 150; round++) {
        const code = program();
        const regs = Array.from({ length: 8 }, value);
        const data = Uint8Array.from({ length: 0x1000 }, () => rnd() & 0xff);
        const a = machine(code, regs, data, paging, false);
        const b = machine(code, regs, data, paging, true);
        for (let total = 0; total < 4000; ) {
          const budget = 1 + (rnd() % 40);
          const ea = a.cpu.run(budget);
          const eb = b.cpu.run(budget);
          const ctx = `round ${round} after ${total} (+${budget}), code ${code.map((x) => x.toString(16).padStart(2, "0")).join(" ")}`;
          expect(eb, ctx).toEqual(ea);
          expect(state(b.cpu, b.mem), ctx).toBe(state(a.cpu, a.mem));
          if (ea.reason === "intercept") expect(b.cpu.lastIntercept, ctx).toEqual(a.cpu.lastIntercept);
          total += ea.executed;
          if (ea.reason !== "budget") break;
        }
        compiled += b.cpu.blocks.compiled;
        expect(b.cpu.blocks.failed).toBe(0);
      }
      expect(compiled).toBeGreaterThan(150);
    });
  }
});

/** Flat 32-bit CPU with `code` at CODE. */
function flat(code: number[], options: { compiler?: boolean; compileThreshold?: number } = {}): { cpu: X86Cpu; mem: FlatMemory } {
  const mem = new FlatMemory(1 << 20);
  mem.bytes.set(code, CODE);
  const cpu = new X86Cpu({ memory: mem, compiler: options.compiler ?? true, compileThreshold: options.compileThreshold ?? 0 });
  cpu.setCr0(cpu.cr0 | CR0.PE);
  cpu.setSegment(SEG.CS, { selector: 8, base: 0, limit: 0xffffffff, attributes: 0xc09b });
  for (const s of [SEG.DS, SEG.ES, SEG.SS, SEG.FS, SEG.GS]) cpu.setSegment(s, { selector: 16, base: 0, limit: 0xfffff, attributes: 0xc093 });
  cpu.regs[4] = 0x8000;
  cpu.eip = CODE;
  return { cpu, mem };
}

describe("block cache", () => {
  it("compiles hot code after the threshold, and not before", () => {
    const loop = [0x40, 0x43, 0xeb, 0xfc]; // 1000: inc eax; inc ebx; jmp 1000
    const { cpu } = flat(loop, { compileThreshold: 5 });
    cpu.run(3 * 5);
    expect(cpu.blocks.compiled).toBe(0);
    cpu.run(3 * 2);
    expect(cpu.blocks.compiled).toBe(1);
    cpu.run(300);
    expect(cpu.blocks.compiled).toBe(1);
    expect(cpu.regs[0]).toBe(cpu.regs[3]);
    expect(cpu.instructionsRetired).toBe(321);
  });

  it("with the compiler off, runs hot code on the interpreter alone", () => {
    const loop = [0x40, 0x43, 0xeb, 0xfc]; // 1000: inc eax; inc ebx; jmp 1000
    const { cpu } = flat(loop, { compiler: false, compileThreshold: 0 });
    expect(cpu.run(3000).executed).toBe(3000);
    expect([cpu.regs[0], cpu.regs[3]]).toEqual([1000, 1000]);
    expect([cpu.blocks.compiled, cpu.blockRuns, cpu.interpreted]).toEqual([0, 0, 0]);
  });

  it("drops a block when a store writes its bytes, and recompiles the new code", () => {
    const { cpu, mem } = flat([
      0x40, //                               1000 inc eax   (patched to inc ebx)
      0x81, 0xfe, 0x03, 0x00, 0x00, 0x00, // 1001 cmp esi, 3
      0x75, 0x07, //                         1007 jne 1010
      0xc6, 0x05, 0x00, 0x10, 0x00, 0x00, 0x43, // 1009 mov byte [1000], 0x43
      0x46, //                               1010 inc esi
      0x83, 0xfe, 0x06, //                   1011 cmp esi, 6
      0x75, 0xea, //                         1014 jne 1000
      0xf4, //                               1016 hlt
    ]);
    expect(cpu.run(1000).reason).toBe("halt");
    expect([cpu.regs[0], cpu.regs[3]]).toEqual([4, 2]); // passes 0-3 ran INC EAX, 4-5 INC EBX
    expect(cpu.blocks.invalidations).toBeGreaterThanOrEqual(1);
    const before = cpu.blocks.compiled;
    // The embedder patches the code between runs: the block's bytes are checked and it is rebuilt.
    mem.bytes[0x1000] = 0x41; // inc ecx
    cpu.regs[6] = 0;
    cpu.eip = 0x1000;
    cpu.halted = false;
    expect(cpu.run(1000).reason).toBe("halt");
    expect(cpu.regs[1]).toBe(4);
    expect(cpu.blocks.compiled).toBeGreaterThan(before);
  });

  it("stops a block at a store into a later instruction of the same block", () => {
    const { cpu } = flat([
      0xc6, 0x05, 0x08, 0x10, 0x00, 0x00, 0x43, // 1000 mov byte [1008], 0x43  (the INC below)
      0x90, //                                     1007 nop
      0x40, //                                     1008 inc eax -> inc ebx
      0xf4, //                                     1009 hlt
    ]);
    expect(cpu.run(100).reason).toBe("halt");
    expect([cpu.regs[0], cpu.regs[3]]).toEqual([0, 1]);
    expect(cpu.instructionsRetired).toBe(4);
  });

  it("reports a fault in the middle of a block at the faulting instruction, earlier effects committed", () => {
    const code = [
      0xb8, 0x01, 0x00, 0x00, 0x00, //       1000 mov eax, 1
      0x83, 0xf8, 0x02, //                   1005 cmp eax, 2      (CF=1 SF=1)
      0xa3, 0x00, 0x40, 0x00, 0x00, //       1008 mov [0x4000], eax
      0x8b, 0x1d, 0x00, 0x00, 0x20, 0x00, // 100d mov ebx, [0x200000]  (beyond the DS limit: #GP(0))
      0x40, //                               1013 inc eax
      0xf4,
    ];
    const results = [false, true].map((compiler) => {
      const { cpu, mem } = flat(code, { compiler });
      cpu.interceptException(13);
      const exit = cpu.run(100);
      return { exit, eip: cpu.eipU, eax: cpu.regs[0], flags: cpu.getFlags(), stored: mem.bytes[0x4000], n: cpu.instructionsRetired, err: cpu.lastIntercept.errorCode, compiled: cpu.blocks.compiled };
    });
    const [interp, comp] = results;
    expect(comp!.compiled).toBe(1);
    expect(comp!.exit).toEqual({ reason: "intercept", vector: 13, executed: 4 });
    expect(comp!.eip).toBe(0x100d);
    expect(comp!.eax).toBe(1);
    expect(comp!.stored).toBe(1);
    expect(comp!.flags & 0x81).toBe(0x81);
    expect({ ...comp!, compiled: 0 }).toEqual({ ...interp!, compiled: 0 });
  });

  it("never runs past the budget: every budget leaves the interpreter's state", () => {
    const code = [
      0xb9, 0x40, 0x00, 0x00, 0x00, // 1000 mov ecx, 64
      0x01, 0xc8, //                   1005 add eax, ecx
      0x43, //                         1007 inc ebx
      0xd1, 0xe0, //                   1008 shl eax, 1
      0xe2, 0xf9, //                   100a loop 1005
      0xf4, //                         100c hlt
    ];
    for (let budget = 1; budget < 60; budget++) {
      const runs = [false, true].map((compiler) => {
        const { cpu } = flat(code, { compiler });
        const exits = [cpu.run(budget), cpu.run(budget), cpu.run(budget)];
        return { exits, regs: Array.from(cpu.regs), eip: cpu.eipU, flags: cpu.getFlags(), n: cpu.instructionsRetired };
      });
      expect(runs[1]).toEqual(runs[0]);
      expect(runs[1]!.exits[0]!.executed).toBe(budget);
    }
  });

  it("runs a MOVSB copy loop as one self-looping block, stopping exactly at each budget", () => {
    const copy = (std: boolean): number[] => [
      ...(std ? [0xfd] : [0xfc]), //                     1000 std / cld
      0xbe, ...(std ? [0x63, 0x30] : [0x00, 0x30]), 0, 0, // 1001 mov esi, 3000 (3063 going down)
      0xbf, ...(std ? [0x63, 0x38] : [0x00, 0x38]), 0, 0, // 1006 mov edi, 3800 (3863 going down)
      0xb9, 0x64, 0x00, 0x00, 0x00, //                   100b mov ecx, 100
      0xa4, //                                           1010 movsb
      0xe2, 0xfd, //                                     1011 loop 1010
      0xf4, //                                           1013 hlt
    ];
    const source = Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 0xff);
    for (const std of [false, true]) {
      const { cpu, mem } = flat(copy(std));
      mem.bytes.set(source, 0x3000);
      expect(cpu.run(1000).reason).toBe("halt");
      expect(Array.from(mem.bytes.subarray(0x3800, 0x3864))).toEqual(source);
      expect(cpu.regs[6]).toBe(std ? 0x2fff : 0x3064);
      expect(cpu.blockRuns).toBeLessThan(10); // 100 passes of the loop in a handful of calls
      for (let budget = 1; budget < 80; budget += 7) {
        const runs = [false, true].map((compiler) => {
          const m = flat(copy(std), { compiler });
          m.mem.bytes.set(source, 0x3000);
          const exits = [m.cpu.run(budget), m.cpu.run(budget)];
          return { exits, regs: Array.from(m.cpu.regs), eip: m.cpu.eipU, copied: Array.from(m.mem.bytes.subarray(0x3800, 0x3864)) };
        });
        expect(runs[1]).toEqual(runs[0]);
      }
    }
  });

  it("keeps blocks apart by mode: the same bytes compile again for another CPL", () => {
    const { cpu } = flat([0x40, 0xeb, 0xfd]); // inc eax; jmp 1000
    cpu.run(10);
    const n = cpu.blocks.compiled;
    cpu.setSegment(SEG.CS, { selector: 0x1b, base: 0, limit: 0xffffffff, attributes: 0xc0fb }); // ring 3
    cpu.setSegment(SEG.SS, { selector: 0x23, base: 0, limit: 0xfffff, attributes: 0xc0f3 });
    cpu.run(10);
    expect(cpu.blocks.compiled).toBe(n + 1);
    expect(cpu.regs[0]).toBe(10);
  });
});
