/**
 * Stack: PUSH/POP (registers, immediates, memory, segment registers), PUSHA/POPA, PUSHF/POPF,
 * ENTER/LEAVE. [SDM Vol.2 PUSH, POP, PUSHA, POPA, PUSHF, POPF, ENTER, LEAVE]
 */
import type { X86Cpu } from "../cpu.ts";
import { EXC } from "../registers.ts";

// Module-local copies of FLAG/SEG values: literals fold into optimized code, imported
// object properties do not. [SDM Vol.1 3.4.3 EFLAGS; Vol.2 3.1.1.3 Sreg order]
const S_SS = 2;

export function pushReg(reg: number, os32: boolean): (c: X86Cpu) => void {
  // PUSH SP pushes the value before the decrement (i286 and later).
  return os32 ? (c) => c.push32(c.regs[reg]!) : (c) => c.push16(c.r16[reg << 1]!);
}
export function popReg(reg: number, os32: boolean): (c: X86Cpu) => void {
  return os32
    ? (c) => {
        const v = c.pop32();
        c.regs[reg] = v;
      }
    : (c) => {
        const v = c.pop16();
        c.r16[reg << 1] = v;
      };
}
export function pushIv16(c: X86Cpu): void {
  c.push16(c.fetch16());
}
export function pushIv32(c: X86Cpu): void {
  c.push32(c.fetch32());
}
export function pushIb16(c: X86Cpu): void {
  c.push16(c.fetchS8());
}
export function pushIb32(c: X86Cpu): void {
  c.push32(c.fetchS8());
}
/** PUSH Sreg: a 32-bit push writes the selector in the low word. */
export function pushSeg(seg: number): (c: X86Cpu) => void {
  return (c) => {
    if (c.os32 !== 0) {
      const sp = (c.sp - 4) | 0;
      const off = c.ssDb !== 0 ? sp : sp & 0xffff;
      c.probeWrite(S_SS, off, 4);
      c.write16(S_SS, off, c.segSel[seg]!);
      c.sp = off;
    } else {
      c.push16(c.segSel[seg]!);
    }
  };
}
export function popSeg(seg: number): (c: X86Cpu) => void {
  return (c) => {
    const v = c.os32 !== 0 ? c.peek32(0) : c.peek16(0);
    c.loadSeg(seg, v & 0xffff);
    c.sp = c.ssDb !== 0 ? (c.sp + (c.os32 !== 0 ? 4 : 2)) | 0 : (c.sp + (c.os32 !== 0 ? 4 : 2)) & 0xffff;
    if (seg === S_SS) c.inhibitInterrupts();
  };
}
/** 8F /0 POP Ev: ESP is incremented before the destination address is used. */
export function popEv(c: X86Cpu): void {
  const n = c.os32 !== 0 ? 4 : 2;
  const v = c.os32 !== 0 ? c.peek32(0) : c.peek16(0);
  const oldSp = c.sp;
  c.sp = c.ssDb !== 0 ? (oldSp + n) | 0 : (oldSp + n) & 0xffff;
  try {
    c.modrm();
    if (c.reg !== 0) c.fault(EXC.UD, -1);
    if (n === 4) c.writeE32(v);
    else c.writeE16(v);
  } catch (e) {
    c.sp = oldSp; // faults leave ESP unchanged
    throw e;
  }
}
/** FF /6 PUSH Ev */
export function pushEv(c: X86Cpu): void {
  if (c.os32 !== 0) c.push32(c.readE32());
  else c.push16(c.readE16());
}

/** 60 PUSHA/PUSHAD */
export function pusha(c: X86Cpu): void {
  const os32 = c.os32 !== 0;
  c.probeStack(os32 ? 32 : 16);
  const sp = c.regs[4]!;
  for (let r = 0; r < 8; r++) {
    const v = r === 4 ? sp : c.regs[r]!;
    if (os32) c.push32(v);
    else c.push16(v);
  }
}
/** 61 POPA/POPAD (the saved SP is discarded) */
export function popa(c: X86Cpu): void {
  const os32 = c.os32 !== 0;
  const n = os32 ? 4 : 2;
  const vals = new Int32Array(8);
  for (let i = 0; i < 8; i++) vals[7 - i] = os32 ? c.peek32(i * n) : c.peek16(i * n);
  for (let r = 0; r < 8; r++) {
    if (r === 4) continue;
    if (os32) c.regs[r] = vals[r]!;
    else c.r16[r << 1] = vals[r]!;
  }
  c.sp = c.ssDb !== 0 ? (c.sp + 8 * n) | 0 : (c.sp + 8 * n) & 0xffff;
}

/** 9C PUSHF/PUSHFD (VM and RF are pushed as 0). */
export function pushf(c: X86Cpu): void {
  if (c.v86 && ((c.flags >> 12) & 3) < 3) c.fault(EXC.GP, 0);
  const f = c.getFlags();
  if (c.os32 !== 0) c.push32(f & 0x00fcffff);
  else c.push16(f);
}
/** 9D POPF/POPFD */
export function popf(c: X86Cpu): void {
  if (c.v86 && ((c.flags >> 12) & 3) < 3) c.fault(EXC.GP, 0);
  const v = c.os32 !== 0 ? c.pop32() : c.pop16();
  c.writeFlags(v, c.popfMask(c.os32));
}

/** C8 ENTER imm16, imm8 */
export function enter(c: X86Cpu): void {
  const size = c.fetch16();
  const level = c.fetch8() & 31;
  const os32 = c.os32 !== 0;
  const n = os32 ? 4 : 2;
  const big = c.ssDb !== 0;
  const mask = big ? -1 : 0xffff;
  const bp = big ? c.regs[5]! : c.r16[10]!;
  let sp = c.sp;
  // Compute every write first so that a fault leaves registers untouched.
  sp = (sp - n) & mask;
  c.probeWrite(S_SS, sp, n);
  if (os32) c.write32(S_SS, sp, c.regs[5]!);
  else c.write16(S_SS, sp, c.r16[10]!);
  const frame = sp;
  if (level > 0) {
    let tbp = bp;
    for (let i = 1; i < level; i++) {
      tbp = (tbp - n) & mask;
      const v = os32 ? c.read32(S_SS, tbp) : c.read16(S_SS, tbp);
      sp = (sp - n) & mask;
      if (os32) c.write32(S_SS, sp, v);
      else c.write16(S_SS, sp, v);
    }
    sp = (sp - n) & mask;
    if (os32) c.write32(S_SS, sp, frame);
    else c.write16(S_SS, sp, frame);
  }
  sp = (sp - size) & mask;
  if (os32) c.regs[5] = frame;
  else c.r16[10] = frame;
  c.sp = sp;
}
/** C9 LEAVE */
export function leave(c: X86Cpu): void {
  const bp = c.ssDb !== 0 ? c.regs[5]! : c.r16[10]!;
  const v = c.os32 !== 0 ? c.read32(S_SS, bp) : c.read16(S_SS, bp);
  const n = c.os32 !== 0 ? 4 : 2;
  c.sp = c.ssDb !== 0 ? (bp + n) | 0 : (bp + n) & 0xffff;
  if (c.os32 !== 0) c.regs[5] = v;
  else c.r16[10] = v;
}

