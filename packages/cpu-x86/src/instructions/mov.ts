/**
 * Data movement: MOV (all forms), LEA, XCHG, MOVZX/MOVSX, CMOVcc, LDS/LES/LFS/LGS/LSS, XLAT,
 * LAHF/SAHF, BSWAP. [SDM Vol.2 MOV, LEA, XCHG, MOVZX, MOVSX, CMOVcc, LDS, XLAT, BSWAP]
 */
import type { X86Cpu } from "../cpu.ts";
import { EXC } from "../registers.ts";

// Module-local copies of FLAG/SEG values: literals fold into optimized code, imported
// object properties do not. [SDM Vol.1 3.4.3 EFLAGS; Vol.2 3.1.1.3 Sreg order]
const F_AF = 0x10;
const F_CF = 0x1;
const F_PF = 0x4;
const F_SF = 0x80;
const F_ZF = 0x40;
const S_CS = 1;
const S_SS = 2;

export function movEbGb(c: X86Cpu): void {
  c.modrm();
  c.writeE8(c.getReg8(c.reg));
}
export function movEvGv16(c: X86Cpu): void {
  c.modrm();
  c.writeE16(c.r16[c.reg << 1]!);
}
export function movEvGv32(c: X86Cpu): void {
  c.modrm();
  c.writeE32(c.regs[c.reg]!);
}
export function movGbEb(c: X86Cpu): void {
  c.modrm();
  c.setReg8(c.reg, c.readE8());
}
export function movGvEv16(c: X86Cpu): void {
  c.modrm();
  c.r16[c.reg << 1] = c.readE16();
}
export function movGvEv32(c: X86Cpu): void {
  c.modrm();
  c.regs[c.reg] = c.readE32();
}
/** 8C MOV Ev,Sreg (register destination gets the zero-extended selector with a 32-bit operand). */
export function movEvSw(c: X86Cpu): void {
  c.modrm();
  const s = c.reg;
  if (s > 5) c.fault(EXC.UD, -1);
  const v = c.segSel[s]!;
  if (c.mrm >= 0xc0 && c.os32 !== 0) c.regs[c.mrm & 7] = v;
  else c.writeE16(v);
}
/** 8E MOV Sreg,Ew */
export function movSwEw(c: X86Cpu): void {
  c.modrm();
  const s = c.reg;
  if (s > 5 || s === S_CS) c.fault(EXC.UD, -1);
  c.loadSeg(s, c.readE16());
  if (s === S_SS) c.inhibitInterrupts();
}
/** 8D LEA Gv,M */
export function lea16(c: X86Cpu): void {
  c.modrm();
  c.requireMem();
  c.r16[c.reg << 1] = c.ea;
}
export function lea32(c: X86Cpu): void {
  c.modrm();
  c.requireMem();
  c.regs[c.reg] = c.as32 !== 0 ? c.ea : c.ea & 0xffff;
}
/** B0+r MOV r8,imm8 */
export function movRbIb(reg: number): (c: X86Cpu) => void {
  return (c) => c.setReg8(reg, c.fetch8());
}
export function movRvIv(reg: number, os32: boolean): (c: X86Cpu) => void {
  return os32 ? (c) => void (c.regs[reg] = c.fetch32()) : (c) => void (c.r16[reg << 1] = c.fetch16());
}
/** C6 /0 MOV Eb,Ib; C7 /0 MOV Ev,Iv */
export function movEbIb(c: X86Cpu): void {
  c.modrm();
  if (c.reg !== 0) c.fault(EXC.UD, -1);
  c.writeE8(c.fetch8());
}
export function movEvIv16(c: X86Cpu): void {
  c.modrm();
  if (c.reg !== 0) c.fault(EXC.UD, -1);
  c.writeE16(c.fetch16());
}
export function movEvIv32(c: X86Cpu): void {
  c.modrm();
  if (c.reg !== 0) c.fault(EXC.UD, -1);
  c.writeE32(c.fetch32());
}
/** A0-A3 MOV with a moffs operand. */
function moffs(c: X86Cpu): number {
  return c.as32 !== 0 ? c.fetch32() : c.fetch16();
}
export function movAlOb(c: X86Cpu): void {
  c.r8[0] = c.read8(c.dataSeg, moffs(c));
}
export function movAxOv16(c: X86Cpu): void {
  c.r16[0] = c.read16(c.dataSeg, moffs(c));
}
export function movAxOv32(c: X86Cpu): void {
  c.regs[0] = c.read32(c.dataSeg, moffs(c));
}
export function movObAl(c: X86Cpu): void {
  c.write8(c.dataSeg, moffs(c), c.r8[0]!);
}
export function movOvAx16(c: X86Cpu): void {
  c.write16(c.dataSeg, moffs(c), c.r16[0]!);
}
export function movOvAx32(c: X86Cpu): void {
  c.write32(c.dataSeg, moffs(c), c.regs[0]!);
}

/** 86 XCHG Eb,Gb; 87 XCHG Ev,Gv; 90+r XCHG eAX,r */
export function xchgEbGb(c: X86Cpu): void {
  c.modrm();
  const a = c.readE8W();
  const reg = c.reg;
  c.writeE8R(c.getReg8(reg));
  c.setReg8(reg, a);
}
export function xchgEvGv16(c: X86Cpu): void {
  c.modrm();
  const a = c.readE16W();
  const reg = c.reg;
  c.writeE16R(c.r16[reg << 1]!);
  c.r16[reg << 1] = a;
}
export function xchgEvGv32(c: X86Cpu): void {
  c.modrm();
  const a = c.readE32W();
  const reg = c.reg;
  c.writeE32R(c.regs[reg]!);
  c.regs[reg] = a;
}
export function xchgAx(reg: number, os32: boolean): (c: X86Cpu) => void {
  return os32
    ? (c) => {
        const t = c.regs[0]!;
        c.regs[0] = c.regs[reg]!;
        c.regs[reg] = t;
      }
    : (c) => {
        const t = c.r16[0]!;
        c.r16[0] = c.r16[reg << 1]!;
        c.r16[reg << 1] = t;
      };
}

/** 0F B6/B7/BE/BF MOVZX/MOVSX */
export function movzxGvEb(c: X86Cpu): void {
  c.modrm();
  const v = c.readE8();
  if (c.os32 !== 0) c.regs[c.reg] = v;
  else c.r16[c.reg << 1] = v;
}
export function movzxGvEw(c: X86Cpu): void {
  c.modrm();
  const v = c.readE16();
  if (c.os32 !== 0) c.regs[c.reg] = v;
  else c.r16[c.reg << 1] = v;
}
export function movsxGvEb(c: X86Cpu): void {
  c.modrm();
  const v = (c.readE8() << 24) >> 24;
  if (c.os32 !== 0) c.regs[c.reg] = v;
  else c.r16[c.reg << 1] = v;
}
export function movsxGvEw(c: X86Cpu): void {
  c.modrm();
  const v = (c.readE16() << 16) >> 16;
  if (c.os32 !== 0) c.regs[c.reg] = v;
  else c.r16[c.reg << 1] = v;
}

/** 0F 40+cc CMOVcc Gv,Ev (the source is read, and may fault, whatever the condition). */
export function cmov(cc: number): (c: X86Cpu) => void {
  return (c) => {
    c.modrm();
    if (c.os32 !== 0) {
      const v = c.readE32();
      if (c.cond(cc)) c.regs[c.reg] = v;
    } else {
      const v = c.readE16();
      if (c.cond(cc)) c.r16[c.reg << 1] = v;
    }
  };
}

/** C4 LES, C5 LDS, 0F B2 LSS, 0F B4 LFS, 0F B5 LGS: Gv,Mp */
export function loadFar(seg: number): (c: X86Cpu) => void {
  return (c) => {
    c.modrm();
    c.requireMem();
    const s = c.eaSeg;
    const ea = c.ea;
    if (c.os32 !== 0) {
      const off = c.read32(s, ea);
      const sel = c.read16(s, (ea + 4) | 0);
      c.loadSeg(seg, sel);
      c.regs[c.reg] = off;
    } else {
      const off = c.read16(s, ea);
      const sel = c.read16(s, c.as32 !== 0 ? (ea + 2) | 0 : (ea + 2) & 0xffff);
      c.loadSeg(seg, sel);
      c.r16[c.reg << 1] = off;
    }
  };
}

/** D7 XLAT */
export function xlat(c: X86Cpu): void {
  const off = c.as32 !== 0 ? (c.regs[3]! + c.r8[0]!) | 0 : (c.r16[6]! + c.r8[0]!) & 0xffff;
  c.r8[0] = c.read8(c.dataSeg, off);
}

/** 9F LAHF, 9E SAHF */
export function lahf(c: X86Cpu): void {
  c.r8[1] = c.getFlags();
}
export function sahf(c: X86Cpu): void {
  c.settleFlags();
  const m = F_CF | F_PF | F_AF | F_ZF | F_SF;
  c.flags = (c.flags & ~m) | (c.r8[1]! & m);
}

/** 0F C8+r BSWAP r32 */
export function bswap(reg: number): (c: X86Cpu) => void {
  return (c) => {
    const v = c.regs[reg]!;
    c.regs[reg] = ((v >>> 24) | ((v >> 8) & 0xff00) | ((v & 0xff00) << 8) | (v << 24)) | 0;
  };
}
