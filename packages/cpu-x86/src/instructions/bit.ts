/**
 * Bit operations: BT/BTS/BTR/BTC, BSF/BSR, SETcc. [SDM Vol.2 BT, BTS, BTR, BTC, BSF, BSR, SETcc]
 */
import type { X86Cpu } from "../cpu.ts";
import { EXC } from "../registers.ts";

// Module-local copies of FLAG/SEG values: literals fold into optimized code, imported
// object properties do not. [SDM Vol.1 3.4.3 EFLAGS; Vol.2 3.1.1.3 Sreg order]
const F_CF = 0x1;
const F_ZF = 0x40;

/** op: 0 BT, 1 BTS, 2 BTR, 3 BTC. Memory forms with a register offset address beyond the operand. */
function bitOp(c: X86Cpu, op: number, offset: number, fromReg: boolean): void {
  const os32 = c.os32 !== 0;
  const bits = os32 ? 32 : 16;
  if (c.mrm >= 0xc0) {
    const n = offset & (bits - 1);
    const v = os32 ? c.regs[c.mrm & 7]! : c.r16[(c.mrm & 7) << 1]!;
    c.setFlagBit(F_CF, ((v >>> n) & 1) !== 0);
    if (op === 0) return;
    const r = op === 1 ? v | (1 << n) : op === 2 ? v & ~(1 << n) : v ^ (1 << n);
    if (os32) c.regs[c.mrm & 7] = r;
    else c.r16[(c.mrm & 7) << 1] = r;
    return;
  }
  let ea = c.ea;
  let n = offset & (bits - 1);
  if (fromReg) {
    const o = os32 ? offset | 0 : (offset << 16) >> 16;
    const disp = os32 ? (o >> 5) * 4 : (o >> 4) * 2;
    ea = (ea + disp) | 0;
    if (c.as32 === 0) ea &= 0xffff;
    n = o & (bits - 1);
  }
  const seg = c.eaSeg;
  const v = os32 ? (op === 0 ? c.read32(seg, ea) : c.readLin32((c.rmwLin = c.segWriteAddr(seg, ea, 4)))) : op === 0 ? c.read16(seg, ea) : c.readLin16((c.rmwLin = c.segWriteAddr(seg, ea, 2)));
  c.setFlagBit(F_CF, ((v >>> n) & 1) !== 0);
  if (op === 0) return;
  const r = op === 1 ? v | (1 << n) : op === 2 ? v & ~(1 << n) : v ^ (1 << n);
  if (os32) c.writeLin32(c.rmwLin, r);
  else c.writeLin16(c.rmwLin, r);
}

/** 0F A3 BT, AB BTS, B3 BTR, BB BTC: Ev,Gv */
export function btEvGv(op: number): (c: X86Cpu) => void {
  return (c) => {
    c.modrm();
    const off = c.os32 !== 0 ? c.regs[c.reg]! : c.r16[c.reg << 1]!;
    bitOp(c, op, off, true);
  };
}
/** 0F BA /4-/7 Ev,Ib */
export function grp8(c: X86Cpu): void {
  c.modrm();
  const r = c.reg;
  if (r < 4) c.fault(EXC.UD, -1);
  bitOp(c, r - 4, c.fetch8(), false);
}

/** 0F BC BSF, 0F BD BSR: ZF=1 and the destination unchanged for a zero source. */
export function bsf(c: X86Cpu): void {
  c.modrm();
  const v = c.os32 !== 0 ? c.readE32() : c.readE16();
  if (v === 0) {
    c.setFlagBit(F_ZF, true);
    return;
  }
  const n = 31 - Math.clz32(v & -v);
  if (c.os32 !== 0) c.regs[c.reg] = n;
  else c.r16[c.reg << 1] = n;
  c.setSZP(n, 16, 0);
  c.setFlagBit(F_ZF, false);
}
export function bsr(c: X86Cpu): void {
  c.modrm();
  const v = c.os32 !== 0 ? c.readE32() : c.readE16();
  if (v === 0) {
    c.setFlagBit(F_ZF, true);
    return;
  }
  const n = 31 - Math.clz32(v);
  if (c.os32 !== 0) c.regs[c.reg] = n;
  else c.r16[c.reg << 1] = n;
  c.setSZP(n, 16, 0);
  c.setFlagBit(F_ZF, false);
}

/** 0F 90+cc SETcc Eb */
export function setcc(cc: number): (c: X86Cpu) => void {
  return (c) => {
    c.modrm();
    c.writeE8(c.cond(cc) ? 1 : 0);
  };
}
