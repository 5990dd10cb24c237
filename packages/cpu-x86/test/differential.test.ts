/**
 * Differential tests against the host CPU: random operands and flags for each instruction
 * family run natively through a gcc -m32 harness (test/diff/harness.c) and on cpu-x86; the
 * registers, EFLAGS (undefined flags masked per the SDM) and a 16-byte memory operand must match.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandWorks, externalTool } from "@paravirt/test-support";
import { describe, expect, it } from "vitest";
import { Machine } from "../src/index.ts";
import { COMPILER_MODES, type CompilerMode } from "./compilerModes.ts";

const CODE = 0x800000;
const DATA = 0x900000;
const OUT = DATA + 64;
const MEM = DATA + 0x200;
const TEST_ESP = DATA + 0x1800;
/** Code bytes per record (harness.c CODE_SIZE). */
const CODE_SIZE = 192;
const REC = CODE_SIZE + 36 + 16;

// EFLAGS bits [SDM Vol.1 3.4.3]
const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, DF = 0x400, OF = 0x800;
const ARITH = CF | PF | AF | ZF | SF | OF;

const gcc = externalTool("gcc -m32", () => {
  const dir = mkdtempSync(join(tmpdir(), "cpu-x86-gcc-probe-"));
  writeFileSync(join(dir, "p.c"), "int main(void){return 0;}\n");
  return spawnSync("gcc", ["-m32", "-o", join(dir, "p"), join(dir, "p.c")]).status === 0;
}, "apt-get install gcc-multilib");
void commandWorks;

/** xorshift32: reproducible operands. */
let seed = 0x2545f491;
function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}
const EDGES = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
function value(): number {
  const r = rnd() % 8;
  if (r === 0) return EDGES[rnd() % EDGES.length]!;
  if (r === 1) return rnd() & 0xff;
  if (r === 2) return (EDGES[rnd() % EDGES.length]! ^ (rnd() & 3)) >>> 0;
  return rnd();
}
/** A register other than ESP. */
function gpr(): number {
  const r = rnd() % 7;
  return r >= 4 ? r + 1 : r;
}
function le32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

interface Case {
  readonly family: string;
  readonly insn: number[];
  readonly regs: number[];
  readonly flags: number;
  readonly mem: number[];
  /** EFLAGS bits to compare. */
  readonly flagMask: number;
  /** Registers to compare (bit per register). */
  readonly regMask?: number;
}

function modrmReg(reg: number, rm: number): number {
  return 0xc0 | (reg << 3) | rm;
}
/** ModRM+disp32 for the memory operand at MEM+off. */
function memOperand(reg: number, off: number): number[] {
  return [(reg << 3) | 5, ...le32(MEM + off)];
}

type Gen = () => Omit<Case, "regs" | "flags" | "mem" | "family"> & { regs?: number[]; mem?: number[]; flags?: number };

const families: Record<string, Gen> = {
  alu() {
    const op = rnd() % 8;
    const size = [1, 2, 4][rnd() % 3]!;
    const pre = size === 2 ? [0x66] : [];
    const logic = op === 1 || op === 4 || op === 6;
    const mask = ARITH & ~(logic ? AF : 0);
    const form = rnd() % 4;
    const base = op * 8 + (size === 1 ? 0 : 1);
    if (form === 0) return { insn: [...pre, base, modrmReg(gpr() & (size === 1 ? 7 : 7), gpr())], flagMask: mask };
    if (form === 1) return { insn: [...pre, base + 2, ...memOperand(gpr(), rnd() % 8)], flagMask: mask };
    if (form === 2) return { insn: [...pre, base, ...memOperand(gpr(), rnd() % 8)], flagMask: mask };
    const imm = value();
    if (size === 1) return { insn: [0x80, modrmReg(op, rnd() % 8), imm & 0xff], flagMask: mask };
    if (rnd() % 2 === 0) return { insn: [...pre, 0x83, modrmReg(op, gpr()), imm & 0xff], flagMask: mask };
    return { insn: [...pre, 0x81, modrmReg(op, gpr()), ...le32(imm).slice(0, size)], flagMask: mask };
  },
  unary() {
    // INC, DEC (FE/FF /0 /1), NOT, NEG (F6/F7 /2 /3)
    const size = [1, 2, 4][rnd() % 3]!;
    const pre = size === 2 ? [0x66] : [];
    const k = rnd() % 4;
    const op = k < 2 ? (size === 1 ? 0xfe : 0xff) : size === 1 ? 0xf6 : 0xf7;
    const reg = k < 2 ? k : k;
    return { insn: [...pre, op, modrmReg(reg, size === 1 ? rnd() % 8 : gpr())], flagMask: ARITH };
  },
  shift() {
    const size = [1, 2, 4][rnd() % 3]!;
    const bits = size * 8;
    const pre = size === 2 ? [0x66] : [];
    let op = rnd() % 8;
    if (op === 6) op = 4;
    const form = rnd() % 3;
    let count: number;
    let insn: number[];
    const rm = size === 1 ? [0, 2, 3, 5, 6, 7][rnd() % 6]! : gpr();
    const regs = [value(), value(), value(), value(), TEST_ESP, value(), value(), value()];
    if (form === 0) {
      count = 1;
      insn = [...pre, size === 1 ? 0xd0 : 0xd1, modrmReg(op, rm)];
    } else if (form === 1) {
      count = rnd() % 40;
      insn = [...pre, size === 1 ? 0xc0 : 0xc1, modrmReg(op, rm), count];
    } else {
      count = rnd() % 40;
      regs[1] = (regs[1]! & ~0xff) | count;
      insn = [...pre, size === 1 ? 0xd2 : 0xd3, modrmReg(op, rm === 1 ? 3 : rm)];
    }
    const n = count & 31;
    let mask = ARITH;
    if (n === 0) mask = ARITH;
    else {
      if (op >= 4) mask &= ~AF; // AF undefined for shifts
      if (op < 4) mask = CF | OF; // rotates touch only CF/OF
      const eff = op === 2 || op === 3 ? (size < 4 ? n % (bits + 1) : n) : op < 2 ? n % bits : n;
      if (n !== 1) mask &= ~OF;
      if (op >= 4 && n >= bits) mask &= ~CF;
      if (op < 2 && eff === 0 && n !== 0) mask &= ~OF;
    }
    return { insn, regs, flagMask: mask };
  },
  muldiv() {
    const k = rnd() % 7;
    const size = [1, 2, 4][rnd() % 3]!;
    const pre = size === 2 ? [0x66] : [];
    const r = gpr();
    const mulMask = CF | OF;
    switch (k) {
      case 0:
      case 1: // MUL/IMUL r/m
        return { insn: [...pre, size === 1 ? 0xf6 : 0xf7, modrmReg(4 + k, size === 1 ? rnd() % 8 : r)], flagMask: mulMask };
      case 2: // IMUL r, r/m
        return { insn: [0x0f, 0xaf, modrmReg(gpr(), gpr())], flagMask: mulMask };
      case 3: // IMUL r, r/m, imm
        return { insn: [0x69, modrmReg(gpr(), gpr()), ...le32(value())], flagMask: mulMask };
      case 4:
        return { insn: [0x6b, modrmReg(gpr(), gpr()), rnd() & 0xff], flagMask: mulMask };
      default: {
        // DIV/IDIV with operands that cannot overflow: divisor in EBX/BX/BL.
        const signed = k === 6;
        const bits = size * 8;
        const regs = [0, 0, 0, 0, TEST_ESP, value(), value(), value()];
        let d = bits === 32 ? value() >>> 0 : value() & (2 ** bits - 1);
        if (d === 0) d = 3;
        const ds = signed ? (d << (32 - bits)) >> (32 - bits) : d;
        const qmax = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
        let q = rnd() % (qmax + 1);
        if (signed && rnd() % 2 === 0) q = -q;
        const rem = Math.abs(ds) > 1 ? rnd() % Math.abs(ds) : 0;
        const prod = BigInt(q) * BigInt(ds);
        const big = prod + (prod < 0n ? -BigInt(rem) : BigInt(rem)); // remainder takes the dividend's sign
        const wide = BigInt.asUintN(bits * 2, big);
        regs[3] = d;
        if (size === 1) regs[0] = Number(wide & 0xffffn);
        else if (size === 2) {
          regs[0] = Number(wide & 0xffffn);
          regs[2] = Number((wide >> 16n) & 0xffffn);
        } else {
          regs[0] = Number(wide & 0xffffffffn);
          regs[2] = Number((wide >> 32n) & 0xffffffffn);
        }
        return { insn: [...pre, size === 1 ? 0xf6 : 0xf7, modrmReg(signed ? 7 : 6, 3)], regs, flagMask: 0 };
      }
    }
  },
  bits() {
    const k = rnd() % 8;
    const size = rnd() % 2 === 0 ? 2 : 4;
    const pre = size === 2 ? [0x66] : [];
    const bt = [0xa3, 0xab, 0xb3, 0xbb];
    switch (k) {
      case 0:
      case 1:
        return { insn: [...pre, 0x0f, bt[rnd() % 4]!, modrmReg(gpr(), gpr())], flagMask: CF };
      case 2:
        return { insn: [...pre, 0x0f, 0xba, modrmReg(4 + (rnd() % 4), gpr()), rnd() & 0xff], flagMask: CF };
      case 3: {
        // BSF/BSR with a non-zero source in EBX
        const regs = [value(), value(), value(), value() | 1 << (rnd() % 32), TEST_ESP, value(), value(), value()];
        if (size === 2 && (regs[3]! & 0xffff) === 0) regs[3] = regs[3]! | 0x10;
        return { insn: [...pre, 0x0f, rnd() % 2 === 0 ? 0xbc : 0xbd, modrmReg(gpr(), 3)], regs, flagMask: ZF };
      }
      case 4: {
        // SHLD/SHRD
        const count = rnd() % (size === 2 ? 17 : 32);
        const mask = count === 0 ? ARITH : count === 1 ? ARITH & ~AF : ARITH & ~(AF | OF);
        return { insn: [...pre, 0x0f, rnd() % 2 === 0 ? 0xa4 : 0xac, modrmReg(gpr(), gpr()), count], flagMask: mask };
      }
      case 5:
        return { insn: [0x0f, 0xc8 + gpr()], flagMask: ARITH };
      case 6:
        return { insn: [0x0f, 0x90 + (rnd() % 16), modrmReg(0, rnd() % 8)], flagMask: ARITH };
      default:
        return { insn: [...pre, 0x0f, 0x40 + (rnd() % 16), modrmReg(gpr(), gpr())], flagMask: ARITH };
    }
  },
  atomic() {
    const k = rnd() % 4;
    const size = [1, 2, 4][rnd() % 3]!;
    const pre = size === 2 ? [0x66] : [];
    const regs = [value(), value(), value(), value(), TEST_ESP, value(), value(), value()];
    if (rnd() % 2 === 0) regs[0] = regs[3]!; // make CMPXCHG succeed sometimes
    const mem = Array.from({ length: 16 }, () => rnd() & 0xff);
    if (rnd() % 2 === 0) for (let i = 0; i < size; i++) mem[i] = (regs[0]! >>> (8 * i)) & 0xff;
    switch (k) {
      case 0:
        return { insn: [0xf0, ...pre, 0x0f, size === 1 ? 0xc0 : 0xc1, ...memOperand(gpr(), 0)], regs, mem, flagMask: ARITH };
      case 1:
        return { insn: [0xf0, ...pre, 0x0f, size === 1 ? 0xb0 : 0xb1, ...memOperand(gpr(), 0)], regs, mem, flagMask: ARITH };
      case 2:
        return { insn: [...pre, size === 1 ? 0x86 : 0x87, ...memOperand(gpr(), 0)], regs, mem, flagMask: ARITH };
      default: {
        // CMPXCHG8B m64: EDX:EAX vs memory
        if (rnd() % 2 === 0) {
          for (let i = 0; i < 4; i++) mem[i] = (regs[0]! >>> (8 * i)) & 0xff;
          for (let i = 0; i < 4; i++) mem[4 + i] = (regs[2]! >>> (8 * i)) & 0xff;
        }
        return { insn: [0xf0, 0x0f, 0xc7, ...memOperand(1, 0)], regs, mem, flagMask: ZF };
      }
    }
  },
  misc() {
    const k = rnd() % 8;
    switch (k) {
      case 0:
        return { insn: [[0x98, 0x99][rnd() % 2]!], flagMask: ARITH };
      case 1:
        return { insn: [0x66, [0x98, 0x99][rnd() % 2]!], flagMask: ARITH };
      case 2:
        return { insn: [0x0f, [0xb6, 0xb7, 0xbe, 0xbf][rnd() % 4]!, modrmReg(gpr(), gpr())], flagMask: ARITH };
      case 3: {
        // LEA with SIB: [base + index*scale + disp8]
        const base = gpr();
        const index = gpr();
        return { insn: [0x8d, 0x44 | (gpr() << 3), ((rnd() % 4) << 6) | (index << 3) | base, rnd() & 0xff], flagMask: ARITH };
      }
      case 4:
        return { insn: [0x87, modrmReg(gpr(), gpr())], flagMask: ARITH };
      case 5:
        return { insn: [[0xf5, 0xf8, 0xf9, 0xfc, 0xfd][rnd() % 5]!], flagMask: ARITH | DF };
      case 6:
        return { insn: [0x9e], flagMask: ARITH }; // SAHF
      default:
        return { insn: [0x0f, 0xa5, modrmReg(gpr(), gpr())], regs: [value(), rnd() % 32, value(), value(), TEST_ESP, value(), value(), value()], flagMask: CF | PF | ZF | SF };
    }
  },
  bcd() {
    const k = rnd() % 6;
    const regs = [value(), value(), value(), value(), TEST_ESP, value(), value(), value()];
    switch (k) {
      case 0:
        return { insn: [0x27], regs, flagMask: ARITH & ~OF };
      case 1:
        return { insn: [0x2f], regs, flagMask: ARITH & ~OF };
      case 2:
        return { insn: [0x37], regs, flagMask: AF | CF };
      case 3:
        return { insn: [0x3f], regs, flagMask: AF | CF };
      case 4:
        return { insn: [0xd4, (rnd() % 255) + 1], regs, flagMask: SF | ZF | PF };
      default:
        return { insn: [0xd5, rnd() & 0xff], regs, flagMask: SF | ZF | PF };
    }
  },
  /** A flag-setting instruction, then SETcc, CMOVcc or Jcc reading its flags (compiled: read from the block's locals). */
  condflags() {
    const size = [1, 2, 4][rnd() % 3]!;
    const pre = size === 2 ? [0x66] : [];
    const w = size === 1 ? 0 : 1;
    const r8 = () => rnd() % 8;
    const reg = () => (size === 1 ? r8() : gpr());
    let first: number[];
    let ccs = 16;
    let mask = ARITH & ~AF;
    switch (rnd() % 6) {
      case 0:
        first = [...pre, (rnd() % 8) * 8 + w, modrmReg(reg(), reg())];
        break;
      case 1:
        first = size === 1 ? [0xfe, modrmReg(rnd() % 2, r8())] : [...pre, (rnd() % 2 === 0 ? 0x40 : 0x48) + gpr()];
        mask = ARITH;
        break;
      case 2:
        first = [...pre, 0xf6 + w, modrmReg(3, reg())];
        mask = ARITH;
        break;
      case 3:
        first = [...pre, 0xd0 + w, modrmReg([4, 5, 7][rnd() % 3]!, reg())];
        break;
      case 4:
        first = [0x0f, 0xaf, modrmReg(gpr(), gpr())];
        ccs = 4; // IMUL defines only CF and OF
        mask = CF | OF;
        break;
      default:
        first = [...pre, 0x84 + w, modrmReg(reg(), reg())];
        break;
    }
    const cc = rnd() % ccs;
    const reader = [[0x0f, 0x90 + cc, modrmReg(0, r8())], [0x0f, 0x40 + cc, modrmReg(gpr(), gpr())], [0x70 + cc, 0x01, 0x47]][rnd() % 3]!; // jcc skips inc edi
    return { insn: [...first, ...reader], flagMask: mask };
  },
  /** Memory operands of MOVZX/MOVSX, SETcc, CMOVcc, IMUL, shifts, INC/DEC/NEG/NOT, TEST, PUSH/POP. */
  memforms() {
    const size = [1, 2, 4][rnd() % 3]!;
    const pre = size === 2 ? [0x66] : [];
    const w = size === 1 ? 0 : 1;
    const at = (reg: number) => memOperand(reg, rnd() % 8);
    const immv = le32(value()).slice(0, size);
    switch (rnd() % 8) {
      case 0:
        return { insn: [...(size === 2 ? pre : []), 0x0f, [0xb6, 0xb7, 0xbe, 0xbf][rnd() % 4]!, ...at(gpr())], flagMask: ARITH };
      case 1:
        return { insn: [0x0f, 0x90 + (rnd() % 16), ...at(0)], flagMask: ARITH };
      case 2:
        return { insn: [...(size === 2 ? pre : []), 0x0f, 0x40 + (rnd() % 16), ...at(gpr())], flagMask: ARITH };
      case 3: {
        const p = size === 2 ? pre : [];
        const k = rnd() % 3;
        const insn = k === 0 ? [...p, 0x0f, 0xaf, ...at(gpr())] : k === 1 ? [...p, 0x6b, ...at(gpr()), rnd() & 0xff] : [...p, 0x69, ...at(gpr()), ...le32(value()).slice(0, size === 2 ? 2 : 4)];
        return { insn, flagMask: CF | OF };
      }
      case 4: {
        const op = [0, 1, 4, 5, 7][rnd() % 5]!;
        return { insn: [...pre, 0xd0 + w, ...at(op)], flagMask: op < 4 ? CF | OF : ARITH & ~AF };
      }
      case 5:
      {
        const k = rnd() % 4; // INC, DEC (FE/FF /0 /1), NOT, NEG (F6/F7 /2 /3)
        return { insn: [...pre, (k < 2 ? 0xfe : 0xf6) + w, ...at(k)], flagMask: ARITH };
      }
      case 6:
        return { insn: [...pre, 0xf6 + w, ...at(0), ...immv], flagMask: ARITH & ~AF };
      default:
        return { insn: [0xff, ...at(6), 0x58 + gpr()], flagMask: ARITH };
    }
  },
  string() {
    // REP MOVS/STOS/LODS/SCAS/CMPS within the 16-byte memory window (ESI/EDI point into it).
    const size = [1, 2, 4][rnd() % 3]!;
    const pre = size === 2 ? [0x66] : [];
    const ops = [0xa4, 0xaa, 0xac, 0xae, 0xa6];
    const op = ops[rnd() % ops.length]! + (size === 1 ? 0 : 1);
    const count = rnd() % (8 / size + 1);
    const down = rnd() % 2 === 1;
    const regs = [value(), count, value(), value(), TEST_ESP, value(), MEM + (down ? 8 - size : 0), MEM + 8 + (down ? 8 - size : 0)];
    const rep = op === 0xae || op === 0xaf || op === 0xa6 || op === 0xa7 ? [[0xf3, 0xf2][rnd() % 2]!] : [0xf3];
    const mem = Array.from({ length: 16 }, () => (rnd() % 4 === 0 ? regs[0]! & 0xff : rnd() & 0xff));
    return { insn: [...rep, ...pre, op], regs, mem, flags: down ? DF : 0, flagMask: ARITH | DF };
  },
};

const CASES_PER_FAMILY = 2500;

function snippet(insn: number[]): Uint8Array {
  const b: number[] = [];
  const abs = (op: number[], addr: number) => b.push(...op, ...le32(addr));
  b.push(0x60, 0x9c); // pushad; pushfd
  abs([0x89, 0x25], DATA + 128); // mov [DATA+128], esp
  abs([0xbc], DATA + 0x1000); // mov esp, scratch
  abs([0xff, 0x35], DATA + 32); // push dword [flags]
  b.push(0x9d); // popfd
  abs([0xa1], DATA); // mov eax, [DATA]
  const load = [[0x0d, 4], [0x15, 8], [0x1d, 12], [0x2d, 20], [0x35, 24], [0x3d, 28]] as const;
  for (const [m, o] of load) abs([0x8b, m], DATA + o);
  abs([0x8b, 0x25], DATA + 16); // mov esp, [DATA+16]
  b.push(...insn);
  abs([0x89, 0x25], OUT + 16); // mov [OUT+16], esp
  abs([0xbc], DATA + 0x1000);
  b.push(0x9c); // pushfd
  abs([0x8f, 0x05], OUT + 32); // pop dword [OUT+32]
  abs([0xa3], OUT);
  for (const [m, o] of load) abs([0x89, m], OUT + o);
  abs([0x8b, 0x25], DATA + 128);
  b.push(0x9d, 0x61, 0xc3); // popfd; popad; ret
  if (b.length > CODE_SIZE) throw new Error("snippet too long");
  const out = new Uint8Array(CODE_SIZE);
  out.set(b);
  return out;
}

function makeCases(): Case[] {
  const cases: Case[] = [];
  for (const [family, gen] of Object.entries(families)) {
    for (let i = 0; i < CASES_PER_FAMILY; i++) {
      const g = gen();
      const regs = g.regs ?? [value(), value(), value(), value(), TEST_ESP, value(), value(), value()];
      const flags = ((g.flags ?? 0) | (rnd() & (ARITH))) >>> 0;
      const mem = g.mem ?? Array.from({ length: 16 }, () => rnd() & 0xff);
      cases.push({ family, insn: g.insn, regs, flags: flags | 2, mem, flagMask: g.flagMask, regMask: g.regMask });
    }
  }
  return cases;
}

interface Outcome {
  readonly regs: number[];
  readonly flags: number;
  readonly mem: number[];
}

function runNative(cases: Case[]): Outcome[] {
  const dir = mkdtempSync(join(tmpdir(), "cpu-x86-diff-"));
  const exe = join(dir, "harness");
  const cc = spawnSync("gcc", ["-m32", "-O1", "-o", exe, new URL("./diff/harness.c", import.meta.url).pathname], { encoding: "utf8" });
  if (cc.status !== 0) throw new Error(`gcc failed: ${cc.stderr}`);
  const input = Buffer.alloc(cases.length * REC);
  cases.forEach((c, i) => {
    const o = i * REC;
    input.set(snippet(c.insn), o);
    c.regs.forEach((r, j) => input.writeUInt32LE(r >>> 0, o + CODE_SIZE + j * 4));
    input.writeUInt32LE(c.flags, o + CODE_SIZE + 32);
    input.set(c.mem, o + CODE_SIZE + 36);
  });
  writeFileSync(join(dir, "in.bin"), input);
  const run = spawnSync(exe, [join(dir, "in.bin"), join(dir, "out.bin")], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`harness failed (${run.status} ${run.signal}): ${run.stderr}`);
  const out = readFileSync(join(dir, "out.bin"));
  return cases.map((_, i) => {
    const o = i * 52;
    return {
      regs: Array.from({ length: 8 }, (_, j) => out.readUInt32LE(o + j * 4)),
      flags: out.readUInt32LE(o + 32),
      mem: Array.from(out.subarray(o + 36, o + 52)),
    };
  });
}

function runEmulated(cases: Case[], mode: CompilerMode): Outcome[] {
  const m = new Machine(undefined, { ramSize: 16 * 1024 * 1024, compiler: mode.enabled, compileThreshold: mode.threshold });
  const ram = m.memory.ram;
  const dv = new DataView(ram.buffer);
  return cases.map((c) => {
    ram.set(snippet(c.insn), CODE);
    ram[CODE + 0x100] = 0xf4; // the snippet returns to a HLT
    ram.fill(0, DATA, DATA + 0x2000);
    c.regs.forEach((r, j) => dv.setUint32(DATA + j * 4, r >>> 0, true));
    dv.setUint32(DATA + 32, c.flags, true);
    ram.set(c.mem, MEM);
    m.enterFlat32(CODE);
    m.cpu.regs[4] = 0x700000 - 4;
    dv.setUint32(0x700000 - 4, CODE + 0x100, true);
    const exit = m.cpu.run(100_000);
    if (exit.reason !== "halt") throw new Error(`case ${c.family} ${c.insn.map((x) => x.toString(16)).join(" ")}: ${exit.reason}`);
    return {
      regs: Array.from({ length: 8 }, (_, j) => dv.getUint32(OUT + j * 4, true)),
      flags: dv.getUint32(OUT + 32, true),
      mem: Array.from(ram.subarray(MEM, MEM + 16)),
    };
  });
}

const hex = (n: number) => (n >>> 0).toString(16).padStart(8, "0");

let generated: { cases: Case[]; native: Outcome[] } | undefined;
/** The cases and the host's results, made once for every mode. */
function casesAndNative(): { cases: Case[]; native: Outcome[] } {
  if (generated === undefined) {
    const cases = makeCases();
    generated = { cases, native: runNative(cases) };
  }
  return generated;
}

describe.skipIf(gcc.skip)("differential tests against the host CPU (gcc -m32)", () => {
  it.each(COMPILER_MODES)(`agrees with the host on ${CASES_PER_FAMILY} random cases per family ($name)`, (mode) => {
    gcc.check();
    const { cases, native } = casesAndNative();
    const emulated = runEmulated(cases, mode);
    const failures: string[] = [];
    const perFamily = new Map<string, [number, number]>();
    cases.forEach((c, i) => {
      const n = native[i]!;
      const e = emulated[i]!;
      const problems: string[] = [];
      for (let r = 0; r < 8; r++) {
        if (((c.regMask ?? 0xff) >> r) & 1 && n.regs[r] !== e.regs[r]) problems.push(`r${r} ${hex(e.regs[r]!)} host ${hex(n.regs[r]!)}`);
      }
      if (((n.flags ^ e.flags) & c.flagMask) !== 0) problems.push(`flags ${hex(e.flags)} host ${hex(n.flags)} mask ${hex(c.flagMask)}`);
      if (n.mem.some((b, j) => b !== e.mem[j])) problems.push(`mem ${e.mem.join(",")} host ${n.mem.join(",")}`);
      const s = perFamily.get(c.family) ?? [0, 0];
      s[1]++;
      if (problems.length === 0) s[0]++;
      perFamily.set(c.family, s);
      if (problems.length > 0) {
        failures.push(`${c.family} [${c.insn.map((x) => x.toString(16).padStart(2, "0")).join(" ")}] in ${c.regs.map(hex).join(" ")} fl ${hex(c.flags)}: ${problems.join("; ")}`);
      }
    });
    console.log([...perFamily].map(([f, [ok, n]]) => `${f}: ${ok}/${n}`).join(", "));
    if (failures.length > 0) console.log(failures.slice(0, 30).join("\n"));
    expect(failures).toEqual([]);
  });
});
