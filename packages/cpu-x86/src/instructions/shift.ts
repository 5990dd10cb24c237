/**
 * Shifts and rotates: group 2 (C0/C1/D0-D3: ROL ROR RCL RCR SHL SHR SAL SAR) and SHLD/SHRD.
 * [SDM Vol.2 RCL/RCR/ROL/ROR, SAL/SAR/SHL/SHR, SHLD, SHRD]. Counts are masked to 5 bits (i386+).
 */
import type { X86Cpu } from "../cpu.ts";

// Module-local copies of FLAG/SEG values: literals fold into optimized code, imported
// object properties do not. [SDM Vol.1 3.4.3 EFLAGS; Vol.2 3.1.1.3 Sreg order]
const F_AF = 0x10;
const F_CF = 0x1;
const F_OF = 0x800;

/** Shift/rotate `a` (width `bits`) by `count` (already masked to 5 bits, non-zero). */
export function shift(c: X86Cpu, op: number, a: number, count: number, bits: number): number {
  const mask = bits === 32 ? -1 : (1 << bits) - 1;
  const sh = bits - 1;
  a &= mask;
  let r: number;
  let cf: number;
  let of: number;
  switch (op) {
    case 0: { // ROL
      const n = count & sh;
      r = n === 0 ? a : ((a << n) | (a >>> (bits - n))) & mask;
      cf = r & 1;
      of = ((r >>> sh) & 1) ^ cf;
      c.settleFlags();
      c.flags = (c.flags & ~(F_CF | F_OF)) | cf | (of << 11);
      return r;
    }
    case 1: { // ROR
      const n = count & sh;
      r = n === 0 ? a : ((a >>> n) | (a << (bits - n))) & mask;
      cf = (r >>> sh) & 1;
      of = cf ^ ((r >>> (sh - 1)) & 1);
      c.settleFlags();
      c.flags = (c.flags & ~(F_CF | F_OF)) | cf | (of << 11);
      return r;
    }
    case 2: { // RCL
      const n = bits === 32 ? count : count % (bits + 1);
      const oldCf = c.getCF();
      c.settleFlags();
      if (n === 0) {
        c.flags = (c.flags & ~F_OF) | ((((a >>> sh) & 1) ^ oldCf) << 11);
        return a;
      }
      // Rotate the (bits+1)-bit quantity CF:a left by n.
      if (bits === 32) {
        r = n === 1 ? (a << 1) | oldCf : (a << n) | (oldCf << (n - 1)) | (a >>> (33 - n));
        cf = (a >>> (32 - n)) & 1;
      } else {
        const wide = (oldCf << bits) | a; // bits+1 wide
        const rot = ((wide << n) | (wide >>> (bits + 1 - n))) & ((mask << 1) | 1);
        r = rot & mask;
        cf = (rot >>> bits) & 1;
      }
      of = ((r >>> sh) & 1) ^ cf;
      c.flags = (c.flags & ~(F_CF | F_OF)) | cf | (of << 11);
      return r;
    }
    case 3: { // RCR
      const n = bits === 32 ? count : count % (bits + 1);
      const oldCf = c.getCF();
      c.settleFlags();
      if (n === 0) {
        c.flags = (c.flags & ~F_OF) | ((((a >>> sh) ^ (a >>> (sh - 1))) & 1) << 11);
        return a;
      }
      if (bits === 32) {
        r = n === 1 ? (a >>> 1) | (oldCf << 31) : (a >>> n) | (oldCf << (32 - n)) | (a << (33 - n));
        cf = (a >>> (n - 1)) & 1;
      } else {
        const wide = (oldCf << bits) | a;
        const rot = ((wide >>> n) | (wide << (bits + 1 - n))) & ((mask << 1) | 1);
        r = rot & mask;
        cf = (rot >>> bits) & 1;
      }
      of = ((r >>> sh) & 1) ^ ((r >>> (sh - 1)) & 1);
      c.flags = (c.flags & ~(F_CF | F_OF)) | cf | (of << 11);
      return r;
    }
    case 4:
    case 6: { // SHL/SAL
      if (count <= bits) {
        r = (a << count) & mask;
        cf = count === 32 ? a & 1 : ((a << (count - 1)) >>> sh) & 1;
      } else {
        r = 0;
        cf = 0;
      }
      of = ((r >>> sh) & 1) ^ cf;
      c.setSZP(r, bits, cf | (of << 11) | F_AF);
      return r;
    }
    case 5: { // SHR
      r = count >= 32 ? 0 : a >>> count;
      cf = count > bits ? 0 : (a >>> (count - 1)) & 1;
      // OF = MSB(original) for 1-bit shifts; the i286/i386 compute it from the result's top bits.
      of = (((r << 1) ^ r) >>> sh) & 1;
      c.setSZP(r, bits, cf | (of << 11) | F_AF);
      return r;
    }
    default: { // SAR
      const s = bits === 32 ? a | 0 : bits === 16 ? (a << 16) >> 16 : (a << 24) >> 24;
      r = (s >> Math.min(count, 31)) & mask;
      cf = (s >> Math.min(count - 1, 31)) & 1;
      c.setSZP(r, bits, cf | F_AF);
      return r;
    }
  }
}

/** Group 2 on a byte operand; `countOf`: 0 = imm8, 1 = one, 2 = CL. */
export function grp2Eb(countOf: number): (c: X86Cpu) => void {
  return (c) => {
    c.modrm();
    const a = c.readE8W();
    const count = (countOf === 0 ? c.fetch8() : countOf === 1 ? 1 : c.r8[4]!) & 0x1f;
    if (count === 0) return;
    c.writeE8R(shift(c, c.reg, a, count, 8));
  };
}
export function grp2Ev(countOf: number, os32: boolean): (c: X86Cpu) => void {
  return os32
    ? (c) => {
        c.modrm();
        const a = c.readE32W();
        const count = (countOf === 0 ? c.fetch8() : countOf === 1 ? 1 : c.r8[4]!) & 0x1f;
        if (count === 0) return;
        const op = c.reg;
        // Fast paths for SHL/SHR/SAR (count 1-31 on 32 bits).
        if (op === 5) {
          const r = a >>> count;
          c.setSZP(r, 32, ((a >>> (count - 1)) & 1) | (((((r << 1) ^ r) >>> 31) & 1) << 11));
          c.writeE32R(r);
          return;
        }
        if (op === 4 || op === 6) {
          const r = a << count;
          const cf = (a >>> (32 - count)) & 1;
          c.setSZP(r, 32, cf | ((((r >>> 31) ^ cf) & 1) << 11));
          c.writeE32R(r);
          return;
        }
        if (op === 7) {
          const r = a >> count;
          c.setSZP(r, 32, (a >> (count - 1)) & 1);
          c.writeE32R(r);
          return;
        }
        c.writeE32R(shift(c, op, a, count, 32));
      }
    : (c) => {
        c.modrm();
        const a = c.readE16W();
        const count = (countOf === 0 ? c.fetch8() : countOf === 1 ? 1 : c.r8[4]!) & 0x1f;
        if (count === 0) return;
        c.writeE16R(shift(c, c.reg, a, count, 16));
      };
}

/** SHLD/SHRD (0F A4/A5/AC/AD). `right`: SHRD; `cl`: count in CL. */
export function shxd(right: boolean, cl: boolean, os32: boolean): (c: X86Cpu) => void {
  return (c) => {
    c.modrm();
    const bits = os32 ? 32 : 16;
    const a = os32 ? c.readE32W() : c.readE16W();
    const b = os32 ? c.regs[c.reg]! : c.r16[c.reg << 1]!;
    const count = (cl ? c.r8[4]! : c.fetch8()) & 0x1f;
    if (count === 0) return;
    let r: number;
    let cf: number;
    if (os32) {
      if (right) {
        r = (a >>> count) | (b << (32 - count));
        cf = (a >>> (count - 1)) & 1;
      } else {
        r = (a << count) | (b >>> (32 - count));
        cf = (a >>> (32 - count)) & 1;
      }
    } else {
      // 16-bit forms operate on the 32-bit concatenation (counts > 16 give undefined results).
      if (right) {
        const w = (b << 16) | a;
        r = (w >>> count) & 0xffff;
        if (count > 16) r = ((a << (32 - count)) | (w >>> count)) & 0xffff;
        cf = (w >>> (count - 1)) & 1;
      } else {
        const w = ((a << 16) | b) >>> 0;
        r = ((w << count) | (count > 16 ? a << (count - 16) : 0)) >>> 16 & 0xffff;
        cf = ((w >>> (32 - count)) & 1);
      }
    }
    const of = ((r ^ a) >>> (bits - 1)) & 1;
    c.setSZP(r, bits, cf | (of << 11));
    if (os32) c.writeE32R(r);
    else c.writeE16R(r);
  };
}
