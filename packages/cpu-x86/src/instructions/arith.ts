/**
 * Integer arithmetic and logic: the eight ALU operations, INC/DEC/NEG/NOT, TEST, MUL/IMUL/DIV/IDIV,
 * CBW/CWD, CMPXCHG/CMPXCHG8B/XADD. [SDM Vol.2 ADD..XOR, MUL, IMUL, DIV, IDIV, CMPXCHG, XADD]
 */
import type { X86Cpu } from "../cpu.ts";
import { EXC } from "../registers.ts";

// Module-local copies of FLAG/SEG values: literals fold into optimized code, imported
// object properties do not. [SDM Vol.1 3.4.3 EFLAGS; Vol.2 3.1.1.3 Sreg order]
const F_CF = 0x1;
const F_OF = 0x800;
const F_ZF = 0x40;

/** ALU operation numbers, as in opcode bits 3-5 and group-1 reg fields. */
export const ALU = { ADD: 0, OR: 1, ADC: 2, SBB: 3, AND: 4, SUB: 5, XOR: 6, CMP: 7 } as const;

/** Performs ALU op `op` on `a`,`b` of width `bits`, setting flags; returns the (unmasked) result. */
export function alu(c: X86Cpu, op: number, a: number, b: number, bits: number): number {
  let r: number;
  switch (op) {
    case 0:
      r = (a + b) | 0;
      c.setArith(a, b, r, bits, 0);
      return r;
    case 1:
      r = a | b;
      c.setLogic(r, bits);
      return r;
    case 2:
      r = (a + b + c.getCF()) | 0;
      c.setArith(a, b, r, bits, 0);
      return r;
    case 3:
      r = (a - b - c.getCF()) | 0;
      c.setArith(a, b, r, bits, 1);
      return r;
    case 4:
      r = a & b;
      c.setLogic(r, bits);
      return r;
    case 6:
      r = a ^ b;
      c.setLogic(r, bits);
      return r;
    default:
      r = (a - b) | 0;
      c.setArith(a, b, r, bits, 1);
      return r;
  }
}

/** Specialized 32-bit register-or-memory forms for the hottest ops (ADD, SUB, AND, OR, XOR, CMP). */
function fastAlu32(op: number, form: number): ((c: X86Cpu) => void) | undefined {
  if (form !== 1 && form !== 3) return undefined;
  const toE = form === 1;
  switch (op) {
    case 0:
      return (c) => {
        c.modrm();
        const reg = c.reg;
        const regs = c.regs;
        if (toE) {
          const a = c.readE32W();
          const b = regs[reg]!;
          const r = (a + b) | 0;
          c.setArith(a, b, r, 32, 0);
          c.writeE32R(r);
        } else {
          const a = regs[reg]!;
          const b = c.readE32();
          const r = (a + b) | 0;
          c.setArith(a, b, r, 32, 0);
          regs[reg] = r;
        }
      };
    case 5:
    case 7:
      return (c) => {
        c.modrm();
        const reg = c.reg;
        const regs = c.regs;
        if (toE) {
          const a = op === 7 ? c.readE32() : c.readE32W();
          const b = regs[reg]!;
          const r = (a - b) | 0;
          c.setArith(a, b, r, 32, 1);
          if (op === 5) c.writeE32R(r);
        } else {
          const a = regs[reg]!;
          const b = c.readE32();
          const r = (a - b) | 0;
          c.setArith(a, b, r, 32, 1);
          if (op === 5) regs[reg] = r;
        }
      };
    case 1:
    case 4:
    case 6:
      return (c) => {
        c.modrm();
        const reg = c.reg;
        const regs = c.regs;
        const a = toE ? c.readE32W() : regs[reg]!;
        const b = toE ? regs[reg]! : c.readE32();
        const r = op === 1 ? a | b : op === 4 ? a & b : a ^ b;
        c.setLogic(r, 32);
        if (toE) c.writeE32R(r);
        else regs[reg] = r;
      };
    default:
      return undefined;
  }
}

/** Handlers for opcodes 00-3F ALU forms: `form` = opcode & 7 (0-5). */
export function aluHandler(op: number, form: number, os32: boolean): (c: X86Cpu) => void {
  if (os32) {
    const fast = fastAlu32(op, form);
    if (fast !== undefined) return fast;
  }
  const write = op !== ALU.CMP;
  switch (form) {
    case 0:
      return (c) => {
        c.modrm();
        const a = write ? c.readE8W() : c.readE8();
        const r = alu(c, op, a, c.getReg8(c.reg), 8);
        if (write) c.writeE8R(r);
      };
    case 1:
      return os32
        ? (c) => {
            c.modrm();
            const a = write ? c.readE32W() : c.readE32();
            const r = alu(c, op, a, c.regs[c.reg]!, 32);
            if (write) c.writeE32R(r);
          }
        : (c) => {
            c.modrm();
            const a = write ? c.readE16W() : c.readE16();
            const r = alu(c, op, a, c.r16[c.reg << 1]!, 16);
            if (write) c.writeE16R(r);
          };
    case 2:
      return (c) => {
        c.modrm();
        const reg = c.reg;
        const r = alu(c, op, c.getReg8(reg), c.readE8(), 8);
        if (write) c.setReg8(reg, r);
      };
    case 3:
      return os32
        ? (c) => {
            c.modrm();
            const reg = c.reg;
            const r = alu(c, op, c.regs[reg]!, c.readE32(), 32);
            if (write) c.regs[reg] = r;
          }
        : (c) => {
            c.modrm();
            const reg = c.reg;
            const r = alu(c, op, c.r16[reg << 1]!, c.readE16(), 16);
            if (write) c.r16[reg << 1] = r;
          };
    case 4:
      return (c) => {
        const r = alu(c, op, c.r8[0]!, c.fetch8(), 8);
        if (write) c.r8[0] = r;
      };
    default:
      return os32
        ? (c) => {
            const r = alu(c, op, c.regs[0]!, c.fetch32(), 32);
            if (write) c.regs[0] = r;
          }
        : (c) => {
            const r = alu(c, op, c.r16[0]!, c.fetch16(), 16);
            if (write) c.r16[0] = r;
          };
  }
}

/** 80/82 /n Eb,Ib */
export function grp1Eb(c: X86Cpu): void {
  c.modrm();
  const op = c.reg;
  const a = op !== 7 ? c.readE8W() : c.readE8();
  const r = alu(c, op, a, c.fetch8(), 8);
  if (op !== 7) c.writeE8R(r);
}
/** 81 /n Ev,Iv */
export function grp1EvIv16(c: X86Cpu): void {
  c.modrm();
  const op = c.reg;
  const a = op !== 7 ? c.readE16W() : c.readE16();
  const r = alu(c, op, a, c.fetch16(), 16);
  if (op !== 7) c.writeE16R(r);
}
export function grp1EvIv32(c: X86Cpu): void {
  c.modrm();
  const op = c.reg;
  const a = op !== 7 ? c.readE32W() : c.readE32();
  const r = alu(c, op, a, c.fetch32(), 32);
  if (op !== 7) c.writeE32R(r);
}
/** 83 /n Ev,Ib (sign-extended) */
export function grp1EvIb16(c: X86Cpu): void {
  c.modrm();
  const op = c.reg;
  const a = op !== 7 ? c.readE16W() : c.readE16();
  const r = alu(c, op, a, c.fetchS8() & 0xffff, 16);
  if (op !== 7) c.writeE16R(r);
}
export function grp1EvIb32(c: X86Cpu): void {
  c.modrm();
  const op = c.reg;
  const a = op !== 7 ? c.readE32W() : c.readE32();
  const r = alu(c, op, a, c.fetchS8(), 32);
  if (op !== 7) c.writeE32R(r);
}

/** 40+r INC, 48+r DEC (16/32). */
export function incDecReg(dec: boolean, reg: number, os32: boolean): (c: X86Cpu) => void {
  if (os32) {
    return dec
      ? (c) => {
          const a = c.regs[reg]!;
          const r = (a - 1) | 0;
          c.setArithKeepCF(a, 1, r, 32, 1);
          c.regs[reg] = r;
        }
      : (c) => {
          const a = c.regs[reg]!;
          const r = (a + 1) | 0;
          c.setArithKeepCF(a, 1, r, 32, 0);
          c.regs[reg] = r;
        };
  }
  return (c) => {
    const a = c.r16[reg << 1]!;
    const r = dec ? a - 1 : a + 1;
    c.setArithKeepCF(a, 1, r, 16, dec ? 1 : 0);
    c.r16[reg << 1] = r;
  };
}

/** FE /0 INC Eb, /1 DEC Eb */
export function grp4(c: X86Cpu): void {
  c.modrm();
  const op = c.reg;
  if (op > 1) c.fault(EXC.UD, -1);
  const a = c.readE8W();
  const r = op === 0 ? a + 1 : a - 1;
  c.setArithKeepCF(a, 1, r, 8, op);
  c.writeE8R(r);
}

/** F6 group 3, byte: TEST/NOT/NEG/MUL/IMUL/DIV/IDIV. */
export function grp3Eb(c: X86Cpu): void {
  c.modrm();
  switch (c.reg) {
    case 0:
    case 1:
      c.setLogic(c.readE8() & c.fetch8(), 8);
      return;
    case 2:
      c.writeE8R(~c.readE8W());
      return;
    case 3: {
      const a = c.readE8W();
      const r = -a | 0;
      c.setArith(0, a, r, 8, 1);
      c.writeE8R(r);
      return;
    }
    case 4: {
      const r = c.r8[0]! * c.readE8();
      c.r16[0] = r;
      const hi = r > 0xff ? F_CF | F_OF : 0;
      c.setSZP(r, 8, hi);
      return;
    }
    case 5: {
      const r = ((c.r8[0]! << 24) >> 24) * ((c.readE8() << 24) >> 24);
      c.r16[0] = r;
      const ov = r !== (r << 24) >> 24 ? F_CF | F_OF : 0;
      c.setSZP(r, 8, ov);
      return;
    }
    case 6: {
      const d = c.readE8();
      const n = c.r16[0]!;
      if (d === 0) c.fault(EXC.DE, -1);
      const q = Math.floor(n / d);
      if (q > 0xff) c.fault(EXC.DE, -1);
      c.r8[0] = q;
      c.r8[1] = n % d;
      return;
    }
    default: {
      const d = (c.readE8() << 24) >> 24;
      const n = (c.r16[0]! << 16) >> 16;
      if (d === 0) c.fault(EXC.DE, -1);
      const q = Math.trunc(n / d);
      if (q > 127 || q < -128) c.fault(EXC.DE, -1);
      c.r8[0] = q;
      c.r8[1] = n % d;
      return;
    }
  }
}

/** F7 group 3, word. */
export function grp3Ev16(c: X86Cpu): void {
  c.modrm();
  const r16 = c.r16;
  switch (c.reg) {
    case 0:
    case 1:
      c.setLogic(c.readE16() & c.fetch16(), 16);
      return;
    case 2:
      c.writeE16R(~c.readE16W());
      return;
    case 3: {
      const a = c.readE16W();
      const r = -a | 0;
      c.setArith(0, a, r, 16, 1);
      c.writeE16R(r);
      return;
    }
    case 4: {
      const r = r16[0]! * c.readE16();
      r16[0] = r;
      r16[4] = r >>> 16;
      c.setSZP(r, 16, r > 0xffff ? F_CF | F_OF : 0);
      return;
    }
    case 5: {
      const r = ((r16[0]! << 16) >> 16) * ((c.readE16() << 16) >> 16);
      r16[0] = r;
      r16[4] = r >> 16;
      c.setSZP(r, 16, r !== (r << 16) >> 16 ? F_CF | F_OF : 0);
      return;
    }
    case 6: {
      const d = c.readE16();
      const n = (r16[4]! * 0x10000 + r16[0]!);
      if (d === 0) c.fault(EXC.DE, -1);
      const q = Math.floor(n / d);
      if (q > 0xffff) c.fault(EXC.DE, -1);
      r16[0] = q;
      r16[4] = n % d;
      return;
    }
    default: {
      const d = (c.readE16() << 16) >> 16;
      const n = (r16[4]! << 16) | r16[0]!;
      if (d === 0) c.fault(EXC.DE, -1);
      const q = Math.trunc(n / d);
      if (q > 32767 || q < -32768) c.fault(EXC.DE, -1);
      r16[0] = q;
      r16[4] = n % d;
      return;
    }
  }
}

/** Unsigned 32x32 -> 64 multiply; returns the high half, low half in `mulLo`. */
let mulLo = 0;
function mulU32(a: number, b: number): number {
  a >>>= 0;
  b >>>= 0;
  mulLo = Math.imul(a, b);
  const aL = a & 0xffff;
  const aH = a >>> 16;
  const bL = b & 0xffff;
  const bH = b >>> 16;
  const ll = aL * bL;
  const mid = aH * bL + aL * bH + (ll >>> 16); // < 2^34
  return (aH * bH + Math.floor(mid / 65536)) >>> 0;
}

/** Signed 32x32 -> 64 multiply; returns the high half (signed), low half in `mulLo`. */
function mulS32(a: number, b: number): number {
  let hi = mulU32(a, b);
  if (a < 0) hi -= b;
  if (b < 0) hi -= a;
  return hi | 0;
}

/** F7 group 3, dword. */
export function grp3Ev32(c: X86Cpu): void {
  c.modrm();
  const regs = c.regs;
  switch (c.reg) {
    case 0:
    case 1:
      c.setLogic(c.readE32() & c.fetch32(), 32);
      return;
    case 2:
      c.writeE32R(~c.readE32W());
      return;
    case 3: {
      const a = c.readE32W();
      const r = -a | 0;
      c.setArith(0, a, r, 32, 1);
      c.writeE32R(r);
      return;
    }
    case 4: {
      const hi = mulU32(regs[0]!, c.readE32());
      regs[0] = mulLo;
      regs[2] = hi;
      c.setSZP(mulLo, 32, hi !== 0 ? F_CF | F_OF : 0);
      return;
    }
    case 5: {
      const hi = mulS32(regs[0]!, c.readE32());
      regs[0] = mulLo;
      regs[2] = hi;
      c.setSZP(mulLo, 32, hi !== mulLo >> 31 ? F_CF | F_OF : 0);
      return;
    }
    case 6:
      div32(c, c.readE32() >>> 0);
      return;
    default:
      idiv32(c, c.readE32());
      return;
  }
}

function div32(c: X86Cpu, d: number): void {
  const regs = c.regs;
  if (d === 0) c.fault(EXC.DE, -1);
  const hi = regs[2]! >>> 0;
  const lo = regs[0]! >>> 0;
  if (hi >= d) c.fault(EXC.DE, -1);
  if (hi === 0) {
    regs[0] = Math.floor(lo / d);
    regs[2] = lo % d;
    return;
  }
  const n = (BigInt(hi) << 32n) | BigInt(lo);
  const bd = BigInt(d);
  regs[0] = Number(n / bd);
  regs[2] = Number(n % bd);
}

function idiv32(c: X86Cpu, d: number): void {
  const regs = c.regs;
  if (d === 0) c.fault(EXC.DE, -1);
  const n = (BigInt(regs[2]!) << 32n) | BigInt(regs[0]! >>> 0);
  const bd = BigInt(d);
  const q = n / bd; // BigInt division truncates toward zero, as IDIV does
  if (q > 0x7fffffffn || q < -0x80000000n) c.fault(EXC.DE, -1);
  regs[0] = Number(q);
  regs[2] = Number(n % bd);
}

/** FF group 5 /0 /1 (INC/DEC Ev); the control-transfer members live in control.ts. */
export function incEv(c: X86Cpu, dec: boolean): void {
  if (c.os32 !== 0) {
    const a = c.readE32W();
    const r = dec ? (a - 1) | 0 : (a + 1) | 0;
    c.setArithKeepCF(a, 1, r, 32, dec ? 1 : 0);
    c.writeE32R(r);
  } else {
    const a = c.readE16W();
    const r = dec ? a - 1 : a + 1;
    c.setArithKeepCF(a, 1, r, 16, dec ? 1 : 0);
    c.writeE16R(r);
  }
}

/** 84 TEST Eb,Gb; 85 TEST Ev,Gv; A8/A9 TEST acc,imm */
export function testEbGb(c: X86Cpu): void {
  c.modrm();
  c.setLogic(c.readE8() & c.getReg8(c.reg), 8);
}
export function testEvGv16(c: X86Cpu): void {
  c.modrm();
  c.setLogic(c.readE16() & c.r16[c.reg << 1]!, 16);
}
export function testEvGv32(c: X86Cpu): void {
  c.modrm();
  c.setLogic(c.readE32() & c.regs[c.reg]!, 32);
}
export function testAlIb(c: X86Cpu): void {
  c.setLogic(c.r8[0]! & c.fetch8(), 8);
}
export function testAxIv16(c: X86Cpu): void {
  c.setLogic(c.r16[0]! & c.fetch16(), 16);
}
export function testAxIv32(c: X86Cpu): void {
  c.setLogic(c.regs[0]! & c.fetch32(), 32);
}

/** IMUL r, r/m, imm (69/6B) and IMUL r, r/m (0F AF). */
function imul16(c: X86Cpu, a: number, b: number): number {
  const r = ((a << 16) >> 16) * ((b << 16) >> 16);
  c.setSZP(r, 16, r !== (r << 16) >> 16 ? F_CF | F_OF : 0);
  return r;
}
function imul32(c: X86Cpu, a: number, b: number): number {
  // The double product is exact whenever it fits in 32 bits, and out of range otherwise.
  const lo = Math.imul(a, b);
  c.setSZP(lo, 32, a * b !== lo ? F_CF | F_OF : 0);
  return lo;
}
export function imulGvEvIv16(c: X86Cpu): void {
  c.modrm();
  const reg = c.reg;
  c.r16[reg << 1] = imul16(c, c.readE16(), c.fetch16());
}
export function imulGvEvIv32(c: X86Cpu): void {
  c.modrm();
  const reg = c.reg;
  c.regs[reg] = imul32(c, c.readE32(), c.fetch32());
}
export function imulGvEvIb16(c: X86Cpu): void {
  c.modrm();
  const reg = c.reg;
  c.r16[reg << 1] = imul16(c, c.readE16(), c.fetchS8());
}
export function imulGvEvIb32(c: X86Cpu): void {
  c.modrm();
  const reg = c.reg;
  c.regs[reg] = imul32(c, c.readE32(), c.fetchS8());
}
export function imulGvEv16(c: X86Cpu): void {
  c.modrm();
  const reg = c.reg;
  c.r16[reg << 1] = imul16(c, c.r16[reg << 1]!, c.readE16());
}
export function imulGvEv32(c: X86Cpu): void {
  c.modrm();
  const reg = c.reg;
  c.regs[reg] = imul32(c, c.regs[reg]!, c.readE32());
}

/** 98 CBW/CWDE, 99 CWD/CDQ */
export function cbw16(c: X86Cpu): void {
  c.r16[0] = (c.r8[0]! << 24) >> 24;
}
export function cbw32(c: X86Cpu): void {
  c.regs[0] = (c.r16[0]! << 16) >> 16;
}
export function cwd16(c: X86Cpu): void {
  c.r16[4] = (c.r16[0]! & 0x8000) !== 0 ? 0xffff : 0;
}
export function cwd32(c: X86Cpu): void {
  c.regs[2] = c.regs[0]! >> 31;
}

/** 0F B0 CMPXCHG Eb,Gb; 0F B1 CMPXCHG Ev,Gv */
export function cmpxchgEb(c: X86Cpu): void {
  c.modrm();
  const d = c.readE8W();
  const acc = c.r8[0]!;
  alu(c, ALU.CMP, acc, d, 8);
  if (acc === d) c.writeE8R(c.getReg8(c.reg));
  else {
    c.writeE8R(d); // the destination is always written [SDM Vol.2 CMPXCHG]
    c.r8[0] = d;
  }
}
export function cmpxchgEv16(c: X86Cpu): void {
  c.modrm();
  const d = c.readE16W();
  const acc = c.r16[0]!;
  alu(c, ALU.CMP, acc, d, 16);
  if (acc === d) c.writeE16R(c.r16[c.reg << 1]!);
  else {
    c.writeE16R(d);
    c.r16[0] = d;
  }
}
export function cmpxchgEv32(c: X86Cpu): void {
  c.modrm();
  const d = c.readE32W();
  const acc = c.regs[0]!;
  alu(c, ALU.CMP, acc, d, 32);
  if (acc === d) c.writeE32R(c.regs[c.reg]!);
  else {
    c.writeE32R(d);
    c.regs[0] = d;
  }
}

/** 0F C7 /1 CMPXCHG8B m64 */
export function grp9(c: X86Cpu): void {
  c.modrm();
  if (c.reg !== 1) c.fault(EXC.UD, -1);
  c.requireMem();
  const seg = c.eaSeg;
  const ea = c.ea;
  c.probeWrite(seg, ea, 8);
  const lo = c.read32(seg, ea);
  const hi = c.read32(seg, (ea + 4) | 0);
  const regs = c.regs;
  c.settleFlags();
  if (lo === regs[0] && hi === regs[2]) {
    c.write32(seg, ea, regs[3]!);
    c.write32(seg, (ea + 4) | 0, regs[1]!);
    c.flags |= F_ZF;
  } else {
    c.write32(seg, ea, lo);
    c.write32(seg, (ea + 4) | 0, hi);
    regs[0] = lo;
    regs[2] = hi;
    c.flags &= ~F_ZF;
  }
}

/** 0F C0 XADD Eb,Gb; 0F C1 XADD Ev,Gv */
export function xaddEb(c: X86Cpu): void {
  c.modrm();
  const d = c.readE8W();
  const reg = c.reg;
  const s = c.getReg8(reg);
  const r = alu(c, ALU.ADD, d, s, 8);
  c.setReg8(reg, d);
  c.writeE8R(r);
}
export function xaddEv16(c: X86Cpu): void {
  c.modrm();
  const d = c.readE16W();
  const reg = c.reg;
  const s = c.r16[reg << 1]!;
  const r = alu(c, ALU.ADD, d, s, 16);
  c.r16[reg << 1] = d;
  c.writeE16R(r);
}
export function xaddEv32(c: X86Cpu): void {
  c.modrm();
  const d = c.readE32W();
  const reg = c.reg;
  const s = c.regs[reg]!;
  const r = alu(c, ALU.ADD, d, s, 32);
  c.regs[reg] = d;
  c.writeE32R(r);
}
