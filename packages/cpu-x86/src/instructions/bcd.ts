/**
 * Decimal arithmetic: DAA, DAS, AAA, AAS, AAM, AAD, and the undocumented SALC.
 * [SDM Vol.2 DAA, DAS, AAA, AAS, AAM, AAD]
 */
import type { X86Cpu } from "../cpu.ts";
import { EXC } from "../registers.ts";

// Module-local copies of FLAG/SEG values: literals fold into optimized code, imported
// object properties do not. [SDM Vol.1 3.4.3 EFLAGS; Vol.2 3.1.1.3 Sreg order]
const F_AF = 0x10;
const F_CF = 0x1;
const F_OF = 0x800;

export function daa(c: X86Cpu): void {
  const oldAl = c.r8[0]!;
  const oldCf = c.getCF();
  const af = (c.getFlags() & F_AF) !== 0;
  let al = oldAl;
  let cf = 0;
  let naf = 0;
  if ((al & 0xf) > 9 || af) {
    al += 6;
    cf = oldCf | (al > 0xff ? 1 : 0);
    naf = F_AF;
  }
  if (oldAl > 0x99 || oldCf !== 0) {
    al += 0x60;
    cf = 1;
  } else {
    cf = 0;
  }
  al &= 0xff;
  c.r8[0] = al;
  // OF is undefined; an i386 leaves it as the signed-overflow of the adjustment.
  const of = (~oldAl & al & 0x80) !== 0 ? F_OF : 0;
  c.setSZP(al, 8, cf | naf | of);
}

export function das(c: X86Cpu): void {
  const oldAl = c.r8[0]!;
  const oldCf = c.getCF();
  const af = (c.getFlags() & F_AF) !== 0;
  let al = oldAl;
  let cf = 0;
  let naf = 0;
  if ((al & 0xf) > 9 || af) {
    al -= 6;
    cf = oldCf | (al < 0 ? 1 : 0);
    naf = F_AF;
  }
  if (oldAl > 0x99 || oldCf !== 0) {
    al -= 0x60;
    cf = 1;
  }
  al &= 0xff;
  c.r8[0] = al;
  const of = (oldAl & ~al & 0x80) !== 0 ? F_OF : 0;
  c.setSZP(al, 8, cf | naf | of);
}

export function aaa(c: X86Cpu): void {
  const af = (c.getFlags() & F_AF) !== 0;
  if ((c.r8[0]! & 0xf) > 9 || af) {
    c.r16[0] = c.r16[0]! + 0x106;
    c.r8[0] = c.r8[0]! & 0xf;
    c.setSZP(c.r8[0]!, 8, F_AF | F_CF);
  } else {
    c.r8[0] = c.r8[0]! & 0xf;
    c.setSZP(c.r8[0]!, 8, 0);
  }
}

export function aas(c: X86Cpu): void {
  const af = (c.getFlags() & F_AF) !== 0;
  if ((c.r8[0]! & 0xf) > 9 || af) {
    c.r16[0] = c.r16[0]! - 6;
    c.r8[1] = c.r8[1]! - 1;
    c.r8[0] = c.r8[0]! & 0xf;
    c.setSZP(c.r8[0]!, 8, F_AF | F_CF);
  } else {
    c.r8[0] = c.r8[0]! & 0xf;
    c.setSZP(c.r8[0]!, 8, 0);
  }
}

/** D4 ib AAM */
export function aam(c: X86Cpu): void {
  const base = c.fetch8();
  if (base === 0) c.fault(EXC.DE, -1);
  const al = c.r8[0]!;
  c.r8[1] = Math.floor(al / base);
  c.r8[0] = al % base;
  c.setSZP(c.r8[0]!, 8, 0);
}

/** D5 ib AAD: flags as the byte addition AL + AH*base. */
export function aad(c: X86Cpu): void {
  const base = c.fetch8();
  const a = c.r8[0]!;
  const b = (c.r8[1]! * base) & 0xff;
  const r = a + b;
  c.r16[0] = r & 0xff;
  c.setArith(a, b, r, 8, 0);
}

/** D6 SALC: AL = CF ? FF : 00. */
export function salc(c: X86Cpu): void {
  c.r8[0] = c.getCF() !== 0 ? 0xff : 0;
}
