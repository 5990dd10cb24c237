/**
 * System and flag-control instructions: CLC/STC/CMC/CLD/STD/CLI/STI, HLT, IN/OUT, the 0F 00 and
 * 0F 01 groups (descriptor tables, LDTR/TR, MSW, INVLPG), LAR/LSL/VERR/VERW/ARPL, CLTS,
 * MOV to/from CR/DR, RDTSC, RDMSR/WRMSR, CPUID, fences, INVD/WBINVD, UD2 and hint NOPs.
 * [SDM Vol.2 for each instruction; Vol.3A 2.5-2.7]
 */
import type { X86Cpu } from "../cpu.ts";
import { descBase, descLimit } from "../descriptor.ts";
import { CR0, EXC, SEG, SYS_DESC } from "../registers.ts";

// Module-local copies of FLAG/SEG values: literals fold into optimized code, imported
// object properties do not. [SDM Vol.1 3.4.3 EFLAGS; Vol.2 3.1.1.3 Sreg order]
const F_CF = 0x1;
const F_DF = 0x400;
const F_IF = 0x200;
const F_ZF = 0x40;

export function clc(c: X86Cpu): void {
  c.setFlagBit(F_CF, false);
}
export function stc(c: X86Cpu): void {
  c.setFlagBit(F_CF, true);
}
export function cmc(c: X86Cpu): void {
  c.setFlagBit(F_CF, c.getCF() === 0);
}
export function cld(c: X86Cpu): void {
  c.flags &= ~F_DF;
}
export function std(c: X86Cpu): void {
  c.flags |= F_DF;
}
function iopl(c: X86Cpu): number {
  return (c.flags >> 12) & 3;
}
/** CLI/STI: #GP(0) when CPL > IOPL in protected mode (no VME/PVI). */
export function cli(c: X86Cpu): void {
  if (c.protectedMode && c.cpl > iopl(c)) c.fault(EXC.GP, 0);
  c.flags &= ~F_IF;
}
export function sti(c: X86Cpu): void {
  if (c.protectedMode && c.cpl > iopl(c)) c.fault(EXC.GP, 0);
  if ((c.flags & F_IF) === 0) c.inhibitInterrupts();
  c.flags |= F_IF;
}
export function hlt(c: X86Cpu): void {
  c.hlt();
}

/** E4/E5/EC/ED IN, E6/E7/EE/EF OUT */
export function inAlIb(c: X86Cpu): void {
  c.r8[0] = c.portIn(c.fetch8(), 1);
}
export function inAxIb(c: X86Cpu): void {
  const p = c.fetch8();
  if (c.os32 !== 0) c.regs[0] = c.portIn(p, 4);
  else c.r16[0] = c.portIn(p, 2);
}
export function inAlDx(c: X86Cpu): void {
  c.r8[0] = c.portIn(c.r16[4]!, 1);
}
export function inAxDx(c: X86Cpu): void {
  if (c.os32 !== 0) c.regs[0] = c.portIn(c.r16[4]!, 4);
  else c.r16[0] = c.portIn(c.r16[4]!, 2);
}
export function outIbAl(c: X86Cpu): void {
  c.portOut(c.fetch8(), 1, c.r8[0]!);
}
export function outIbAx(c: X86Cpu): void {
  const p = c.fetch8();
  if (c.os32 !== 0) c.portOut(p, 4, c.regs[0]!);
  else c.portOut(p, 2, c.r16[0]!);
}
export function outDxAl(c: X86Cpu): void {
  c.portOut(c.r16[4]!, 1, c.r8[0]!);
}
export function outDxAx(c: X86Cpu): void {
  if (c.os32 !== 0) c.portOut(c.r16[4]!, 4, c.regs[0]!);
  else c.portOut(c.r16[4]!, 2, c.r16[0]!);
}

function requirePm(c: X86Cpu): void {
  if (!c.protectedMode || c.v86) c.fault(EXC.UD, -1);
}
function requireCpl0(c: X86Cpu): void {
  if (c.protectedMode && c.cpl !== 0) c.fault(EXC.GP, 0);
}

/** 0F 00: SLDT, STR, LLDT, LTR, VERR, VERW */
export function grp6(c: X86Cpu): void {
  requirePm(c);
  c.modrm();
  switch (c.reg) {
    case 0:
      storeSel(c, c.ldtrSel);
      return;
    case 1:
      storeSel(c, c.trSel);
      return;
    case 2: {
      requireCpl0(c);
      const sel = c.readE16();
      if ((sel & ~3) === 0) {
        c.ldtrSel = sel;
        c.ldtrBase = 0;
        c.ldtrLimit = 0;
        return;
      }
      if ((sel & 4) !== 0) c.fault(EXC.GP, sel & ~3);
      c.readDescriptor(sel);
      if (((c.dHi >> 8) & 0x1f) !== SYS_DESC.LDT) c.fault(EXC.GP, sel & ~3);
      if ((c.dHi & 0x8000) === 0) c.fault(EXC.NP, sel & ~3);
      c.ldtrSel = sel;
      c.ldtrBase = descBase(c.dLo, c.dHi);
      c.ldtrLimit = descLimit(c.dLo, c.dHi);
      return;
    }
    case 3: {
      requireCpl0(c);
      const sel = c.readE16();
      if ((sel & ~3) === 0 || (sel & 4) !== 0) c.fault(EXC.GP, sel & ~3);
      c.readDescriptor(sel);
      const type = (c.dHi >> 8) & 0x1f;
      if (type !== SYS_DESC.TSS16_AVAIL && type !== SYS_DESC.TSS32_AVAIL) c.fault(EXC.GP, sel & ~3);
      if ((c.dHi & 0x8000) === 0) c.fault(EXC.NP, sel & ~3);
      c.trSel = sel;
      c.trBase = descBase(c.dLo, c.dHi);
      c.trLimit = descLimit(c.dLo, c.dHi);
      c.trType = type | 2;
      c.writeSys32(c.gdtrBase + (sel & ~7) + 4, c.dHi | 0x200); // mark busy
      return;
    }
    case 4:
    case 5: {
      const sel = c.readE16();
      c.setFlagBit(F_ZF, verify(c, sel, c.reg === 5));
      return;
    }
    default:
      c.fault(EXC.UD, -1);
  }
}

function storeSel(c: X86Cpu, sel: number): void {
  if (c.mrm >= 0xc0 && c.os32 !== 0) c.regs[c.mrm & 7] = sel;
  else c.writeE16(sel);
}

/** Reads a descriptor for LAR/LSL/VERR/VERW without faulting; false when unusable. */
function probeDescriptor(c: X86Cpu, sel: number): boolean {
  if ((sel & ~3) === 0) return false;
  const limit = (sel & 4) !== 0 ? c.ldtrLimit : c.gdtrLimit;
  if ((sel | 7) > limit) return false;
  c.readDescriptor(sel);
  return true;
}

function verify(c: X86Cpu, sel: number, write: boolean): boolean {
  if (!probeDescriptor(c, sel)) return false;
  const type = (c.dHi >> 8) & 0x1f;
  const dpl = (c.dHi >> 13) & 3;
  if ((type & 0x10) === 0) return false;
  const conformingCode = (type & 0x1c) === 0x1c;
  if (!conformingCode && (dpl < c.cpl || dpl < (sel & 3))) return false;
  if (write) return (type & 0x1a) === 0x12;
  return (type & 0x18) !== 0x18 || (type & 2) !== 0;
}

/** 0F 02 LAR, 0F 03 LSL */
function larLslOk(c: X86Cpu, sel: number, lsl: boolean): boolean {
  if (!probeDescriptor(c, sel)) return false;
  const type = (c.dHi >> 8) & 0x1f;
  const dpl = (c.dHi >> 13) & 3;
  if ((type & 0x10) === 0) {
    const okLar = [1, 2, 3, 4, 5, 9, 11, 12];
    const okLsl = [1, 2, 3, 9, 11];
    if (!(lsl ? okLsl : okLar).includes(type)) return false;
  } else if ((type & 0x1c) === 0x1c) {
    return true;
  }
  return !(dpl < c.cpl || dpl < (sel & 3));
}
export function lar(c: X86Cpu): void {
  requirePm(c);
  c.modrm();
  const sel = c.readE16();
  const ok = larLslOk(c, sel, false);
  c.setFlagBit(F_ZF, ok);
  if (!ok) return;
  const v = c.dHi & 0x00f0ff00;
  if (c.os32 !== 0) c.regs[c.reg] = v;
  else c.r16[c.reg << 1] = v;
}
export function lsl(c: X86Cpu): void {
  requirePm(c);
  c.modrm();
  const sel = c.readE16();
  const ok = larLslOk(c, sel, true);
  c.setFlagBit(F_ZF, ok);
  if (!ok) return;
  const v = descLimit(c.dLo, c.dHi);
  if (c.os32 !== 0) c.regs[c.reg] = v;
  else c.r16[c.reg << 1] = v;
}

/** 63 ARPL Ew,Gw (protected mode only) */
export function arpl(c: X86Cpu): void {
  requirePm(c);
  c.modrm();
  const d = c.readE16W();
  const s = c.r16[c.reg << 1]!;
  if ((d & 3) < (s & 3)) {
    c.writeE16R((d & ~3) | (s & 3));
    c.setFlagBit(F_ZF, true);
  } else {
    c.setFlagBit(F_ZF, false);
  }
}

/** 0F 01: SGDT, SIDT, LGDT, LIDT, SMSW, LMSW, INVLPG */
export function grp7(c: X86Cpu): void {
  c.modrm();
  const reg = c.reg;
  switch (reg) {
    case 0:
    case 1: {
      c.requireMem();
      const base = reg === 0 ? c.gdtrBase : c.idtrBase;
      const limit = reg === 0 ? c.gdtrLimit : c.idtrLimit;
      c.probeWrite(c.eaSeg, c.ea, 6);
      c.write16(c.eaSeg, c.ea, limit);
      // A 16-bit operand stores the high base byte as 0 on i386+ [SDM Vol.2 SGDT].
      c.write32(c.eaSeg, (c.ea + 2) | 0, c.os32 !== 0 ? base : base & 0xffffff);
      return;
    }
    case 2:
    case 3: {
      c.requireMem();
      requireCpl0(c);
      const limit = c.read16(c.eaSeg, c.ea);
      let base = c.read32(c.eaSeg, (c.ea + 2) | 0);
      if (c.os32 === 0) base &= 0xffffff;
      if (reg === 2) {
        c.gdtrBase = base;
        c.gdtrLimit = limit;
      } else {
        c.idtrBase = base;
        c.idtrLimit = limit;
      }
      return;
    }
    case 4: {
      const v = c.cr0;
      if (c.mrm >= 0xc0 && c.os32 !== 0) c.regs[c.mrm & 7] = v;
      else c.writeE16(v);
      return;
    }
    case 6: {
      requireCpl0(c);
      const v = c.readE16();
      // LMSW loads PE MP EM TS; it can set PE but not clear it.
      c.setCr0((c.cr0 & ~0xe) | (v & 0xf) | (c.cr0 & 1));
      return;
    }
    case 7:
      c.requireMem();
      requireCpl0(c);
      c.invlpg(c.segAddrNoCheck(c.eaSeg, c.ea));
      return;
    default:
      c.fault(EXC.UD, -1);
  }
}

/** 0F 06 CLTS */
export function clts(c: X86Cpu): void {
  requireCpl0(c);
  c.cr0 &= ~CR0.TS;
}

/** 0F 20 MOV r32,CRn; 0F 22 MOV CRn,r32 (the ModRM is always a register form). */
export function movRCr(c: X86Cpu): void {
  const m = c.fetch8();
  requireCpl0(c);
  const cr = (m >> 3) & 7;
  let v: number;
  switch (cr) {
    case 0: v = c.cr0; break;
    case 2: v = c.cr2; break;
    case 3: v = c.cr3; break;
    case 4: v = c.cr4; break;
    default: return c.fault(EXC.UD, -1);
  }
  c.regs[m & 7] = v;
}
export function movCrR(c: X86Cpu): void {
  const m = c.fetch8();
  requireCpl0(c);
  const v = c.regs[m & 7]!;
  switch ((m >> 3) & 7) {
    case 0: c.setCr0(v); break;
    case 2: c.cr2 = v; break;
    case 3: c.setCr3(v); break;
    case 4:
      if ((v & ~0x7ff) !== 0) c.fault(EXC.GP, 0);
      c.setCr4(v);
      break;
    default: c.fault(EXC.UD, -1);
  }
}
/** 0F 21 MOV r32,DRn; 0F 23 MOV DRn,r32 (DR4/DR5 alias DR6/DR7). Breakpoints are not armed. */
export function movRDr(c: X86Cpu): void {
  const m = c.fetch8();
  requireCpl0(c);
  let n = (m >> 3) & 7;
  if (n === 4 || n === 5) n += 2;
  c.regs[m & 7] = c.dr[n]!;
}
export function movDrR(c: X86Cpu): void {
  const m = c.fetch8();
  requireCpl0(c);
  let n = (m >> 3) & 7;
  if (n === 4 || n === 5) n += 2;
  c.dr[n] = c.regs[m & 7]!;
}

/** 0F 31 RDTSC: the TSC counts retired instructions (plus WRMSR offsets). */
export function rdtsc(c: X86Cpu): void {
  if ((c.cr4 & 4) !== 0 && c.protectedMode && c.cpl !== 0) c.fault(EXC.GP, 0); // CR4.TSD
  const t = c.readTsc();
  c.regs[0] = t % 2 ** 32;
  c.regs[2] = Math.floor(t / 2 ** 32);
}
export function rdmsr(c: X86Cpu): void {
  requireCpl0(c);
  const [lo, hi] = c.readMsr(c.regs[1]!);
  c.regs[0] = lo;
  c.regs[2] = hi;
}
export function wrmsr(c: X86Cpu): void {
  requireCpl0(c);
  c.writeMsr(c.regs[1]!, c.regs[0]!, c.regs[2]!);
}

/** CPUID leaf values. [SDM Vol.2 CPUID Table 3-8, 3-10] */
const VENDOR = [0x756e6547, 0x49656e69, 0x6c65746e]; // "GenuineIntel" in EBX, EDX, ECX order
/** EDX features: DE(2) PSE(3) TSC(4) MSR(5) PAE(6) CX8(8) PGE(13) CMOV(15). */
const FEATURES_EDX = (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 13) | (1 << 15);
/** Extended EDX: NX (20). */
const EXT_FEATURES_EDX = 1 << 20;

export function cpuid(c: X86Cpu): void {
  const leaf = c.regs[0]! >>> 0;
  const r = c.regs;
  let a = 0;
  let b = 0;
  let cc = 0;
  let d = 0;
  switch (leaf) {
    case 0:
      a = 1;
      b = VENDOR[0]!;
      d = VENDOR[1]!;
      cc = VENDOR[2]!;
      break;
    case 1:
      a = 0x0633; // family 6, model 3, stepping 3
      d = FEATURES_EDX;
      break;
    case 0x80000000:
      a = 0x80000001;
      break;
    case 0x80000001:
      d = EXT_FEATURES_EDX;
      break;
    default:
      break;
  }
  r[0] = a;
  r[3] = b;
  r[1] = cc;
  r[2] = d;
}

/** 0F AE: LFENCE/MFENCE/SFENCE (register forms) are no-ops on one in-order CPU; others #UD. */
export function grp15(c: X86Cpu): void {
  c.modrm();
  if (c.mrm >= 0xc0 && c.reg >= 5) return;
  c.fault(EXC.UD, -1);
}

/** 0F 08 INVD, 0F 09 WBINVD */
export function invd(c: X86Cpu): void {
  requireCpl0(c);
}
/** 0F 0B UD2 and undefined opcodes. */
export function ud(c: X86Cpu): void {
  c.fault(EXC.UD, -1);
}
/** 0F 1F /0 (and 0F 18-1E hints): NOP Ev. */
export function nopEv(c: X86Cpu): void {
  c.modrm();
}
export function nop(_c: X86Cpu): void {}

/** 0F A0/A8 PUSH FS/GS etc. come from stack.ts; SEG re-exported for the table. */
export { SEG };
