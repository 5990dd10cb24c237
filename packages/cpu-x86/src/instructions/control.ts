/**
 * Control transfer: Jcc, JMP, CALL, RET, LOOPcc, JCXZ, INT n/INT3/INTO, IRET, BOUND and the
 * FF group. [SDM Vol.2 Jcc, JMP, CALL, RET, LOOP, INT n, IRET, BOUND]
 */
import type { X86Cpu } from "../cpu.ts";
import { EXC } from "../registers.ts";
import { incEv } from "./arith.ts";
import { pushEv } from "./stack.ts";

export function jccShort(cc: number): (c: X86Cpu) => void {
  // The common conditions get their own closures so the test inlines.
  switch (cc) {
    case 2:
      return (c) => {
        const d = c.fetchS8();
        if (c.getCF() !== 0) c.jump((c.eip + d) | 0);
      };
    case 3:
      return (c) => {
        const d = c.fetchS8();
        if (c.getCF() === 0) c.jump((c.eip + d) | 0);
      };
    case 4:
      return (c) => {
        const d = c.fetchS8();
        if (c.getZF()) c.jump((c.eip + d) | 0);
      };
    case 5:
      return (c) => {
        const d = c.fetchS8();
        if (!c.getZF()) c.jump((c.eip + d) | 0);
      };
    default:
      return (c) => {
        const d = c.fetchS8();
        if (c.cond(cc)) c.jump((c.eip + d) | 0);
      };
  }
}
export function jccNear(cc: number, os32: boolean): (c: X86Cpu) => void {
  return os32
    ? (c) => {
        const d = c.fetch32();
        if (c.cond(cc)) c.jump((c.eip + d) | 0);
      }
    : (c) => {
        const d = (c.fetch16() << 16) >> 16;
        if (c.cond(cc)) c.jump((c.eip + d) | 0);
      };
}
export function jmpShort(c: X86Cpu): void {
  const d = c.fetchS8();
  c.jump((c.eip + d) | 0);
}
export function jmpNear16(c: X86Cpu): void {
  const d = c.fetch16();
  c.jump((c.eip + d) | 0);
}
export function jmpNear32(c: X86Cpu): void {
  const d = c.fetch32();
  c.jump((c.eip + d) | 0);
}
export function callNear16(c: X86Cpu): void {
  const d = c.fetch16();
  const ret = c.eip;
  const target = (ret + d) & 0xffff;
  if (target > c.segLimit[1]!) c.fault(EXC.GP, 0);
  c.push16(ret);
  c.eip = target;
}
export function callNear32(c: X86Cpu): void {
  const d = c.fetch32();
  const ret = c.eip;
  const target = (ret + d) | 0;
  if ((target >>> 0) > c.segLimit[1]!) c.fault(EXC.GP, 0);
  c.push32(ret);
  c.eip = target;
}
/** C3/C2 RET near [imm16] */
export function retNear(imm: boolean): (c: X86Cpu) => void {
  return (c) => {
    const n = imm ? c.fetch16() : 0;
    const target = c.os32 !== 0 ? c.peek32(0) : c.peek16(0);
    c.jump(target);
    const size = (c.os32 !== 0 ? 4 : 2) + n;
    c.sp = c.ssDb !== 0 ? (c.sp + size) | 0 : (c.sp + size) & 0xffff;
  };
}
/** CB/CA RETF [imm16] */
export function retFar(imm: boolean): (c: X86Cpu) => void {
  return (c) => {
    const n = imm ? c.fetch16() : 0;
    c.farReturn(false, n);
  };
}
export function iret(c: X86Cpu): void {
  c.farReturn(true, 0);
}
/** EA JMP ptr16:16/32, 9A CALL ptr16:16/32 */
export function jmpFarImm(c: X86Cpu): void {
  const off = c.os32 !== 0 ? c.fetch32() : c.fetch16();
  const sel = c.fetch16();
  c.farTransfer(sel, off, false);
}
export function callFarImm(c: X86Cpu): void {
  const off = c.os32 !== 0 ? c.fetch32() : c.fetch16();
  const sel = c.fetch16();
  c.farTransfer(sel, off, true);
}
/** E0 LOOPNE, E1 LOOPE, E2 LOOP, E3 JCXZ */
export function loop(kind: number): (c: X86Cpu) => void {
  return (c) => {
    const d = c.fetchS8();
    let count: number;
    if (kind === 3) {
      count = c.as32 !== 0 ? c.regs[1]! : c.r16[2]!;
      if (count === 0) c.jump((c.eip + d) | 0);
      return;
    }
    if (c.as32 !== 0) count = c.regs[1] = (c.regs[1]! - 1) | 0;
    else count = c.r16[2] = c.r16[2]! - 1;
    let take = count !== 0;
    if (kind === 0) take = take && !c.getZF();
    else if (kind === 1) take = take && c.getZF();
    if (take) c.jump((c.eip + d) | 0);
  };
}
/** CD INT imm8, CC INT3, CE INTO, F1 INT1 */
export function intImm(c: X86Cpu): void {
  const v = c.fetch8();
  if (c.v86 && ((c.flags >> 12) & 3) < 3) c.fault(EXC.GP, 0);
  c.softInt(v);
}
export function int3(c: X86Cpu): void {
  c.softInt(EXC.BP);
}
export function into(c: X86Cpu): void {
  if (c.getOF()) c.softInt(EXC.OF);
}
export function int1(c: X86Cpu): void {
  c.interrupt(EXC.DB, false, -1, false);
}
/** 62 BOUND Gv,Ma */
export function bound(c: X86Cpu): void {
  c.modrm();
  c.requireMem();
  const s = c.eaSeg;
  if (c.os32 !== 0) {
    const idx = c.regs[c.reg]!;
    const lo = c.read32(s, c.ea);
    const hi = c.read32(s, (c.ea + 4) | 0);
    if (idx < lo || idx > hi) c.fault(EXC.BR, -1);
  } else {
    const idx = (c.r16[c.reg << 1]! << 16) >> 16;
    const lo = (c.read16(s, c.ea) << 16) >> 16;
    const hi = (c.read16(s, c.as32 !== 0 ? (c.ea + 2) | 0 : (c.ea + 2) & 0xffff) << 16) >> 16;
    if (idx < lo || idx > hi) c.fault(EXC.BR, -1);
  }
}
/** FF group 5: INC, DEC, CALL Ev, CALLF Mp, JMP Ev, JMPF Mp, PUSH Ev. */
export function grp5(c: X86Cpu): void {
  c.modrm();
  switch (c.reg) {
    case 0:
      incEv(c, false);
      return;
    case 1:
      incEv(c, true);
      return;
    case 2: {
      const target = c.os32 !== 0 ? c.readE32() : c.readE16();
      const ret = c.eip;
      if ((target >>> 0) > c.segLimit[1]!) c.fault(EXC.GP, 0);
      c.pushOs(ret);
      c.eip = target;
      return;
    }
    case 4: {
      const target = c.os32 !== 0 ? c.readE32() : c.readE16();
      c.jump(target);
      return;
    }
    case 3:
    case 5: {
      c.requireMem();
      const s = c.eaSeg;
      const off = c.os32 !== 0 ? c.read32(s, c.ea) : c.read16(s, c.ea);
      const n = c.os32 !== 0 ? 4 : 2;
      const sel = c.read16(s, c.as32 !== 0 ? (c.ea + n) | 0 : (c.ea + n) & 0xffff);
      c.farTransfer(sel, off, c.reg === 3);
      return;
    }
    case 6:
      pushEv(c);
      return;
    default:
      c.fault(EXC.UD, -1);
  }
}

