/**
 * The declarative opcode table, and table-driven single instructions (raw bytes with their
 * disassembly) in 32-bit flat protected mode.
 */
import { FlatMemory } from "@paravirt/vm-interfaces/testing";
import { describe, expect, it } from "vitest";
import { CR0, FLAG, OPCODE_TABLE, SEG, X86Cpu } from "../src/index.ts";

describe("OPCODE_TABLE", () => {
  it("has one row per opcode", () => {
    const ops = OPCODE_TABLE.map((r) => r.op);
    expect(new Set(ops).size).toBe(ops.length);
  });

  it("defines every one-byte opcode an i686 has", () => {
    // Undefined or unused on i686 in 32-bit mode: none among 00-FF except D6 (SALC is
    // undocumented but present) -- so all 256 rows must exist.
    const one = new Set(OPCODE_TABLE.filter((r) => r.op <= 0xff).map((r) => r.op));
    const missing = [...Array(256).keys()].filter((op) => !one.has(op));
    expect(missing).toEqual([]);
  });

  it("marks exactly the SDM's LOCK-able instruction families", () => {
    // [SDM Vol.2 LOCK]: ADD ADC AND BTC BTR BTS CMPXCHG CMPXCHG8B DEC INC NEG NOT OR SBB SUB XOR XADD XCHG
    const lockable = OPCODE_TABLE.filter((r) => r.lockable).map((r) => r.op.toString(16));
    expect(lockable).toEqual(expect.arrayContaining(["0", "1", "8", "9", "10", "11", "18", "19", "20", "21", "28", "29", "30", "31", "80", "81", "83", "86", "87", "f6", "f7", "fe", "ff", "fab", "fb0", "fb1", "fb3", "fba", "fbb", "fc0", "fc1", "fc7"]));
    for (const op of [0x38, 0x39, 0x84, 0x88, 0x8b, 0xa4, 0x0fa3]) expect(OPCODE_TABLE.find((r) => r.op === op)!.lockable).toBe(false);
  });
});

type Regs = Partial<Record<"eax" | "ecx" | "edx" | "ebx" | "esp" | "ebp" | "esi" | "edi", number>>;
const NAMES = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] as const;

function run1(bytes: number[], regs: Regs, flags = 0): { regs: Regs; flags: number } {
  const mem = new FlatMemory(1 << 20);
  mem.bytes.set([...bytes, 0xf4], 0x1000);
  const cpu = new X86Cpu({ memory: mem });
  cpu.setCr0(cpu.cr0 | CR0.PE);
  cpu.setSegment(SEG.CS, { selector: 8, base: 0, limit: 0xffffffff, attributes: 0xc09b });
  for (const s of [SEG.DS, SEG.ES, SEG.SS, SEG.FS, SEG.GS]) cpu.setSegment(s, { selector: 16, base: 0, limit: 0xffffffff, attributes: 0xc093 });
  NAMES.forEach((n, i) => (cpu.regs[i] = regs[n] ?? (n === "esp" ? 0x8000 : 0)));
  cpu.writeFlags(flags, -1);
  cpu.eip = 0x1000;
  expect(cpu.run(10).reason).toBe("halt");
  const out: Regs = {};
  NAMES.forEach((n, i) => (out[n] = cpu.regs[i]! >>> 0));
  return { regs: out, flags: cpu.getFlags() };
}

const C = FLAG.CF, Z = FLAG.ZF, S = FLAG.SF, O = FLAG.OF, P = FLAG.PF, A = FLAG.AF;
const cases: [string, number[], Regs, number, Regs, number, number][] = [
  // name, bytes, input regs, input flags, expected regs (subset), expected flags, flags mask
  ["add eax, ebx", [0x01, 0xd8], { eax: 0xffffffff, ebx: 1 }, 0, { eax: 0 }, C | Z | P | A, C | Z | S | O | P | A],
  ["sub eax, 1 (83 /5)", [0x83, 0xe8, 0x01], { eax: 0x80000000 }, 0, { eax: 0x7fffffff }, O | P | A, C | Z | S | O | P | A],
  ["adc al, 0x7f", [0x14, 0x7f], { eax: 0 }, C, { eax: 0x80 }, S | O | A, C | Z | S | O | A],
  ["inc ecx keeps CF", [0x41], { ecx: 0xffffffff }, C, { ecx: 0 }, C | Z | P | A, C | Z | S | O | P | A],
  ["neg edx", [0xf7, 0xda], { edx: 5 }, 0, { edx: 0xfffffffb }, C | S | A, C | Z | S | O | A],
  ["imul eax, ecx, 0x10000", [0x69, 0xc1, 0, 0, 1, 0], { ecx: 0x10000 }, 0, { eax: 0 }, C | O, C | O],
  ["mul ebx", [0xf7, 0xe3], { eax: 0x80000000, ebx: 4 }, 0, { eax: 0, edx: 2 }, C | O, C | O],
  ["div ecx", [0xf7, 0xf1], { eax: 10, edx: 1, ecx: 3 }, 0, { eax: 0x55555558, edx: 2 }, 0, 0],
  ["shl eax, 31", [0xc1, 0xe0, 31], { eax: 3 }, 0, { eax: 0x80000000 }, C, C],
  ["sar eax, cl", [0xd3, 0xf8], { eax: 0x80000000, ecx: 4 }, 0, { eax: 0xf8000000 }, S, C | S | Z],
  ["rol al, 1", [0xd0, 0xc0], { eax: 0x81 }, 0, { eax: 0x03 }, C | O, C | O],
  ["rcr ebx, 1", [0xd1, 0xdb], { ebx: 1 }, C, { ebx: 0x80000000 }, C | O, C | O],
  ["shld eax, edx, 8", [0x0f, 0xa4, 0xd0, 8], { eax: 0x11223344, edx: 0xaabbccdd }, 0, { eax: 0x223344aa }, C, C],
  ["bsf ecx, eax", [0x0f, 0xbc, 0xc8], { eax: 0x80 }, 0, { ecx: 7 }, 0, Z],
  ["bts eax, 33 (imm masked)", [0x0f, 0xba, 0xe8, 33], { eax: 0 }, 0, { eax: 2 }, 0, C],
  ["cmovz eax, ebx", [0x0f, 0x44, 0xc3], { eax: 1, ebx: 2 }, Z, { eax: 2 }, Z, Z],
  ["setc dl", [0x0f, 0x92, 0xc2], { edx: 0xffffff00 }, C, { edx: 0xffffff01 }, C, C],
  ["bswap esi", [0x0f, 0xce], { esi: 0x01020304 }, 0, { esi: 0x04030201 }, 0, 0],
  ["xadd eax, ebx", [0x0f, 0xc1, 0xd8], { eax: 1, ebx: 2 }, 0, { eax: 3, ebx: 1 }, P, C | Z | S | O | P],
  ["cmpxchg ecx, edx (equal)", [0x0f, 0xb1, 0xd1], { eax: 7, ecx: 7, edx: 9 }, 0, { ecx: 9, eax: 7 }, Z | P, Z],
  ["cdq", [0x99], { eax: 0x80000000 }, 0, { edx: 0xffffffff }, 0, 0],
  ["movsx eax, bl", [0x0f, 0xbe, 0xc3], { ebx: 0x80 }, 0, { eax: 0xffffff80 }, 0, 0],
  ["lea eax, [ebx+ecx*4+8]", [0x8d, 0x44, 0x8b, 0x08], { ebx: 0x100, ecx: 3 }, 0, { eax: 0x114 }, 0, 0],
  ["daa", [0x27], { eax: 0x9a }, 0, { eax: 0x00 }, C | Z | P | A, C | Z | P | A],
  ["aam 10", [0xd4, 0x0a], { eax: 0x3f }, 0, { eax: 0x0603 }, P, Z | S | P],
  ["push/pop esp round trip", [0x54, 0x5b], { esp: 0x8000 }, 0, { ebx: 0x8000, esp: 0x8000 }, 0, 0],
  ["pushad/popad", [0x60, 0x31, 0xc0, 0x61], { eax: 5, esp: 0x8000 }, 0, { eax: 5, esp: 0x8000 }, 0, 0],
  ["enter 8, 0 / leave", [0xc8, 8, 0, 0, 0xc9], { ebp: 0x1234, esp: 0x8000 }, 0, { ebp: 0x1234, esp: 0x8000 }, 0, 0],
  ["xchg ax, dx (16-bit)", [0x66, 0x92], { eax: 0x11112222, edx: 0x33334444 }, 0, { eax: 0x11114444, edx: 0x33332222 }, 0, 0],
];

describe("single instructions", () => {
  it.each(cases)("%s", (_name, bytes, input, flags, want, wantFlags, mask) => {
    const r = run1(bytes, input, flags);
    for (const [k, v] of Object.entries(want)) expect(r.regs[k as keyof Regs], k).toBe(v >>> 0);
    expect(r.flags & mask).toBe(wantFlags & mask);
  });
});

describe("x87 control and status words (no FPU arithmetic)", () => {
  it("FNINIT, FNSTCW, FLDCW, FNSTSW AX and FNSTSW m16", () => {
    const mem = new FlatMemory(1 << 20);
    // fninit; fnstcw [0x2000]; mov word [0x2002], 0x027f; fldcw [0x2002]; fnstcw [0x2004];
    // fnstsw ax; fnstsw [0x2006]; hlt
    mem.bytes.set([0xdb, 0xe3, 0xd9, 0x3d, 0x00, 0x20, 0, 0, 0x66, 0xc7, 0x05, 0x02, 0x20, 0, 0, 0x7f, 0x02,
      0xd9, 0x2d, 0x02, 0x20, 0, 0, 0xd9, 0x3d, 0x04, 0x20, 0, 0, 0xdf, 0xe0, 0xdd, 0x3d, 0x06, 0x20, 0, 0, 0xf4], 0x1000);
    const cpu = new X86Cpu({ memory: mem });
    cpu.setCr0(cpu.cr0 | CR0.PE);
    cpu.setSegment(SEG.CS, { selector: 8, base: 0, limit: 0xffffffff, attributes: 0xc09b });
    for (const s of [SEG.DS, SEG.ES, SEG.SS]) cpu.setSegment(s, { selector: 16, base: 0, limit: 0xffffffff, attributes: 0xc093 });
    cpu.fpuSw = 0x1234;
    cpu.regs[0] = 0xffffffff;
    cpu.eip = 0x1000;
    expect(cpu.run(20).reason).toBe("halt");
    const dv = new DataView(mem.bytes.buffer);
    expect(dv.getUint16(0x2000, true)).toBe(0x037f); // FNINIT's control word [SDM Vol.1 8.1.5]
    expect(dv.getUint16(0x2004, true)).toBe(0x027f);
    expect(cpu.regs[0]! >>> 0).toBe(0xffff0000); // FNSTSW AX after FNINIT: status 0
    expect(dv.getUint16(0x2006, true)).toBe(0);
  });

  it("escapes raise #NM when CR0.EM is set", () => {
    const mem = new FlatMemory(1 << 20);
    mem.bytes.set([0xdb, 0xe3, 0xf4], 0x1000);
    const cpu = new X86Cpu({ memory: mem });
    cpu.setCr0(cpu.cr0 | CR0.PE | CR0.EM);
    cpu.setSegment(SEG.CS, { selector: 8, base: 0, limit: 0xffffffff, attributes: 0xc09b });
    cpu.interceptException(7);
    cpu.eip = 0x1000;
    expect(cpu.run(5)).toEqual({ reason: "intercept", vector: 7, executed: 1 });
  });
});
