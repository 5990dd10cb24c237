/**
 * String instructions with REP/REPE/REPNE: MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS.
 * [SDM Vol.2 MOVS, CMPS, STOS, LODS, SCAS, INS, OUTS, REP/REPE/REPNE]
 *
 * A long REP runs in slices: after `SLICE` iterations EIP is rewound to the instruction so that
 * interrupts and the run budget are honoured; the registers carry the progress.
 */
import type { X86Cpu } from "../cpu.ts";
import { alu } from "./arith.ts";

// Module-local copies of FLAG/SEG values: literals fold into optimized code, imported
// object properties do not. [SDM Vol.1 3.4.3 EFLAGS; Vol.2 3.1.1.3 Sreg order]
const F_DF = 0x400;
const S_ES = 0;

const SLICE = 4096;

export const STR = { MOVS: 0, CMPS: 1, STOS: 2, LODS: 3, SCAS: 4, INS: 5, OUTS: 6 } as const;

function rd(c: X86Cpu, seg: number, off: number, size: number): number {
  return size === 1 ? c.read8(seg, off) : size === 2 ? c.read16(seg, off) : c.read32(seg, off);
}
function wr(c: X86Cpu, seg: number, off: number, size: number, v: number): void {
  if (size === 1) c.write8(seg, off, v);
  else if (size === 2) c.write16(seg, off, v);
  else c.write32(seg, off, v);
}
function getAcc(c: X86Cpu, size: number): number {
  return size === 1 ? c.r8[0]! : size === 2 ? c.r16[0]! : c.regs[0]!;
}
function setAcc(c: X86Cpu, size: number, v: number): void {
  if (size === 1) c.r8[0] = v;
  else if (size === 2) c.r16[0] = v;
  else c.regs[0] = v;
}

/** A string instruction of `kind`; `size` 1, or 0 for the operand-size word/dword form. */
export function stringOp(kind: number, byteForm: boolean): (c: X86Cpu) => void {
  return (c) => {
    const size = byteForm ? 1 : c.os32 !== 0 ? 4 : 2;
    const as32 = c.as32 !== 0;
    const regs = c.regs;
    const r16 = c.r16;
    const step = (c.flags & F_DF) !== 0 ? -size : size;
    const rep = c.rep;
    let count = rep !== 0 ? (as32 ? regs[1]! >>> 0 : r16[2]!) : 1;
    if (count === 0) return;
    const src = c.dataSeg;
    if (rep !== 0 && as32 && (kind === 0 || kind === 2) && step > 0 && c.bulkString(kind === 0, src, size, count)) return;
    const bits = size * 8;
    let n = 0;
    for (;;) {
      const si = as32 ? regs[6]! : r16[12]!;
      const di = as32 ? regs[7]! : r16[14]!;
      let stop = false;
      switch (kind) {
        case 0:
          wr(c, S_ES, di, size, rd(c, src, si, size));
          break;
        case 1: {
          const a = rd(c, src, si, size);
          const b = rd(c, S_ES, di, size);
          alu(c, 7, a, b, bits);
          stop = rep === 0xf3 ? !c.getZF() : rep === 0xf2 ? c.getZF() : false;
          break;
        }
        case 2:
          wr(c, S_ES, di, size, getAcc(c, size));
          break;
        case 3:
          setAcc(c, size, rd(c, src, si, size));
          break;
        case 4: {
          const b = rd(c, S_ES, di, size);
          alu(c, 7, getAcc(c, size), b, bits);
          stop = rep === 0xf3 ? !c.getZF() : rep === 0xf2 ? c.getZF() : false;
          break;
        }
        case 5: {
          c.probeWrite(S_ES, di, size);
          const v = c.portIn(r16[4]!, size as 1 | 2 | 4);
          wr(c, S_ES, di, size, v);
          break;
        }
        default:
          c.portOut(r16[4]!, size as 1 | 2 | 4, rd(c, src, si, size));
          break;
      }
      // Advance the index registers the instruction uses.
      if (kind !== 2 && kind !== 4 && kind !== 5) {
        if (as32) regs[6] = (si + step) | 0;
        else r16[12] = si + step;
      }
      if (kind !== 3 && kind !== 6) {
        if (as32) regs[7] = (di + step) | 0;
        else r16[14] = di + step;
      }
      if (rep === 0) return;
      count--;
      if (as32) regs[1] = count;
      else r16[2] = count;
      if (count === 0 || stop) return;
      if (++n >= SLICE) {
        c.eip = c.instrStart;
        return;
      }
    }
  };
}
