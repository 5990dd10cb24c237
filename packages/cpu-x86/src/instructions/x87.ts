/**
 * The x87 escape opcodes (D8-DF) and WAIT. The CPU has no floating-point unit (CPUID.1:EDX.FPU=0):
 * with CR0.EM or CR0.TS set the escapes raise #NM so an OS can emulate them; otherwise the
 * control/status-word instructions work (FNINIT, FNCLEX, FNSTSW, FNSTCW, FLDCW) and every other
 * escape is decoded (ModRM and displacement consumed) and has no effect, as on a 286/386 whose
 * coprocessor socket is empty. [SDM Vol.1 8.1.5, 8.1.6; Vol.2 FINIT, FSTSW, FSTCW, FLDCW, WAIT]
 */
import type { X86Cpu } from "../cpu.ts";
import { CR0, EXC } from "../registers.ts";

export function escape(op: number): (c: X86Cpu) => void {
  return (c) => {
    if ((c.cr0 & (CR0.EM | CR0.TS)) !== 0) c.fault(EXC.NM, -1);
    c.modrm();
    const m = c.mrm;
    const reg = (m >> 3) & 7;
    if (m >= 0xc0) {
      if (op === 0xdb && m === 0xe3) {
        c.fpuCw = 0x37f;
        c.fpuSw = 0;
        c.fpuTw = 0xffff;
      } else if (op === 0xdb && m === 0xe2) {
        c.fpuSw &= 0x7f00;
      } else if (op === 0xdf && m === 0xe0) {
        c.r16[0] = c.fpuSw;
      }
      return;
    }
    // The memory operand is still addressed (and limit-checked) with its architectural size.
    c.segAddr(c.eaSeg, c.ea, escSize(op, reg));
    if (op === 0xd9 && reg === 7) c.write16(c.eaSeg, c.ea, c.fpuCw);
    else if (op === 0xd9 && reg === 5) c.fpuCw = c.read16(c.eaSeg, c.ea) | 0x40;
    else if (op === 0xdd && reg === 7) c.write16(c.eaSeg, c.ea, c.fpuSw);
  };
}

/** 9B WAIT/FWAIT: #NM when CR0.MP and CR0.TS are both set. */
export function wait(c: X86Cpu): void {
  if ((c.cr0 & (CR0.MP | CR0.TS)) === (CR0.MP | CR0.TS)) c.fault(EXC.NM, -1);
}

/** Memory-operand size of an escape opcode's /reg form. [SDM Vol.2 Appendix A.5 x87 opcode maps] */
function escSize(op: number, reg: number): number {
  switch (op) {
    case 0xd8:
    case 0xda:
      return 4;
    case 0xd9:
      return reg === 4 || reg === 6 ? 14 : reg >= 5 ? 2 : 4;
    case 0xdb:
      return reg === 5 || reg === 7 ? 10 : 4;
    case 0xdc:
      return 8;
    case 0xdd:
      return reg === 4 || reg === 6 ? 94 : reg === 7 ? 2 : 8;
    case 0xde:
      return 2;
    default:
      return reg === 4 || reg === 6 ? 10 : reg === 5 || reg === 7 ? 8 : 2;
  }
}
