/**
 * The opcode table: one row per opcode (one-byte 00-FF, two-byte 0F xx), naming the
 * instruction and its 16- and 32-bit operand-size handlers. The decoder's dispatch array is
 * built from it, and tests enumerate it. [SDM Vol.2 Appendix A, opcode maps]
 */
import type { X86Cpu } from "./cpu.ts";
import { EXC, SEG } from "./registers.ts";
import * as A from "./instructions/arith.ts";
import * as B from "./instructions/bcd.ts";
import * as BIT from "./instructions/bit.ts";
import * as C from "./instructions/control.ts";
import * as M from "./instructions/mov.ts";
import * as SH from "./instructions/shift.ts";
import * as ST from "./instructions/stack.ts";
import * as STR from "./instructions/string.ts";
import * as SYS from "./instructions/system.ts";
import * as X87 from "./instructions/x87.ts";

export type Handler = (c: X86Cpu) => void;

/** One row of the table. `op` is 0x00-0xFF or 0x0F00-0x0FFF. */
export interface OpcodeEntry {
  readonly op: number;
  readonly mnemonic: string;
  /** Handler for 16-bit operand size. */
  readonly h16: Handler;
  /** Handler for 32-bit operand size (default: h16). */
  readonly h32: Handler;
  /** True when a LOCK prefix is allowed (with a memory destination). [SDM Vol.2 LOCK] */
  readonly lockable: boolean;
}

const rows: OpcodeEntry[] = [];
function def(op: number, mnemonic: string, h16: Handler, h32: Handler = h16, lockable = false): void {
  rows.push({ op, mnemonic, h16, h32, lockable });
}

// ---- prefixes [SDM Vol.2 2.1.1]
const segPrefix = (seg: number): Handler => (c) => {
  c.segOv = seg;
  c.dispatchNext();
};
def(0x26, "es:", segPrefix(SEG.ES));
def(0x2e, "cs:", segPrefix(SEG.CS));
def(0x36, "ss:", segPrefix(SEG.SS));
def(0x3e, "ds:", segPrefix(SEG.DS));
def(0x64, "fs:", segPrefix(SEG.FS));
def(0x65, "gs:", segPrefix(SEG.GS));
def(0x66, "o16/o32", (c) => {
  c.os32 = c.csDb ^ 1;
  c.dispatchNext();
});
def(0x67, "a16/a32", (c) => {
  c.as32 = c.csDb ^ 1;
  c.dispatchNext();
});
def(0xf0, "lock", (c) => c.lockPrefix());
def(0xf2, "repne", (c) => {
  c.rep = 0xf2;
  c.dispatchNext();
});
def(0xf3, "rep", (c) => {
  c.rep = 0xf3;
  c.dispatchNext();
});
def(0x0f, "two-byte escape", (c) => c.dispatch0F());

// ---- 00-3F: ALU, segment push/pop, BCD
const aluNames = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];
const forms = ["Eb,Gb", "Ev,Gv", "Gb,Eb", "Gv,Ev", "AL,Ib", "eAX,Iv"];
for (let k = 0; k < 8; k++) {
  for (let f = 0; f < 6; f++) {
    def(k * 8 + f, `${aluNames[k]} ${forms[f]}`, A.aluHandler(k, f, false), A.aluHandler(k, f, true), f < 2 && k !== 7);
  }
}
def(0x06, "push es", ST.pushSeg(SEG.ES));
def(0x07, "pop es", ST.popSeg(SEG.ES));
def(0x0e, "push cs", ST.pushSeg(SEG.CS));
def(0x16, "push ss", ST.pushSeg(SEG.SS));
def(0x17, "pop ss", ST.popSeg(SEG.SS));
def(0x1e, "push ds", ST.pushSeg(SEG.DS));
def(0x1f, "pop ds", ST.popSeg(SEG.DS));
def(0x27, "daa", B.daa);
def(0x2f, "das", B.das);
def(0x37, "aaa", B.aaa);
def(0x3f, "aas", B.aas);

// ---- 40-6F
for (let r = 0; r < 8; r++) {
  def(0x40 + r, "inc r", A.incDecReg(false, r, false), A.incDecReg(false, r, true));
  def(0x48 + r, "dec r", A.incDecReg(true, r, false), A.incDecReg(true, r, true));
  def(0x50 + r, "push r", ST.pushReg(r, false), ST.pushReg(r, true));
  def(0x58 + r, "pop r", ST.popReg(r, false), ST.popReg(r, true));
}
def(0x60, "pusha", ST.pusha);
def(0x61, "popa", ST.popa);
def(0x62, "bound Gv,Ma", C.bound);
def(0x63, "arpl Ew,Gw", SYS.arpl);
def(0x68, "push Iv", ST.pushIv16, ST.pushIv32);
def(0x69, "imul Gv,Ev,Iv", A.imulGvEvIv16, A.imulGvEvIv32);
def(0x6a, "push Ib", ST.pushIb16, ST.pushIb32);
def(0x6b, "imul Gv,Ev,Ib", A.imulGvEvIb16, A.imulGvEvIb32);
def(0x6c, "insb", STR.stringOp(STR.STR.INS, true));
def(0x6d, "insw/d", STR.stringOp(STR.STR.INS, false));
def(0x6e, "outsb", STR.stringOp(STR.STR.OUTS, true));
def(0x6f, "outsw/d", STR.stringOp(STR.STR.OUTS, false));

// ---- 70-7F Jcc short
for (let cc = 0; cc < 16; cc++) def(0x70 + cc, "jcc Jb", C.jccShort(cc));

// ---- 80-8F
def(0x80, "grp1 Eb,Ib", A.grp1Eb, A.grp1Eb, true);
def(0x81, "grp1 Ev,Iv", A.grp1EvIv16, A.grp1EvIv32, true);
def(0x82, "grp1 Eb,Ib (alias)", A.grp1Eb, A.grp1Eb, true);
def(0x83, "grp1 Ev,Ib", A.grp1EvIb16, A.grp1EvIb32, true);
def(0x84, "test Eb,Gb", A.testEbGb);
def(0x85, "test Ev,Gv", A.testEvGv16, A.testEvGv32);
def(0x86, "xchg Eb,Gb", M.xchgEbGb, M.xchgEbGb, true);
def(0x87, "xchg Ev,Gv", M.xchgEvGv16, M.xchgEvGv32, true);
def(0x88, "mov Eb,Gb", M.movEbGb);
def(0x89, "mov Ev,Gv", M.movEvGv16, M.movEvGv32);
def(0x8a, "mov Gb,Eb", M.movGbEb);
def(0x8b, "mov Gv,Ev", M.movGvEv16, M.movGvEv32);
def(0x8c, "mov Ev,Sw", M.movEvSw);
def(0x8d, "lea Gv,M", M.lea16, M.lea32);
def(0x8e, "mov Sw,Ew", M.movSwEw);
def(0x8f, "pop Ev", ST.popEv);

// ---- 90-9F
def(0x90, "nop", SYS.nop);
for (let r = 1; r < 8; r++) def(0x90 + r, "xchg eAX,r", M.xchgAx(r, false), M.xchgAx(r, true));
def(0x98, "cbw/cwde", A.cbw16, A.cbw32);
def(0x99, "cwd/cdq", A.cwd16, A.cwd32);
def(0x9a, "call Ap", C.callFarImm);
def(0x9b, "wait", X87.wait);
def(0x9c, "pushf", ST.pushf);
def(0x9d, "popf", ST.popf);
def(0x9e, "sahf", M.sahf);
def(0x9f, "lahf", M.lahf);

// ---- A0-AF
def(0xa0, "mov AL,Ob", M.movAlOb);
def(0xa1, "mov eAX,Ov", M.movAxOv16, M.movAxOv32);
def(0xa2, "mov Ob,AL", M.movObAl);
def(0xa3, "mov Ov,eAX", M.movOvAx16, M.movOvAx32);
def(0xa4, "movsb", STR.stringOp(STR.STR.MOVS, true));
def(0xa5, "movsw/d", STR.stringOp(STR.STR.MOVS, false));
def(0xa6, "cmpsb", STR.stringOp(STR.STR.CMPS, true));
def(0xa7, "cmpsw/d", STR.stringOp(STR.STR.CMPS, false));
def(0xa8, "test AL,Ib", A.testAlIb);
def(0xa9, "test eAX,Iv", A.testAxIv16, A.testAxIv32);
def(0xaa, "stosb", STR.stringOp(STR.STR.STOS, true));
def(0xab, "stosw/d", STR.stringOp(STR.STR.STOS, false));
def(0xac, "lodsb", STR.stringOp(STR.STR.LODS, true));
def(0xad, "lodsw/d", STR.stringOp(STR.STR.LODS, false));
def(0xae, "scasb", STR.stringOp(STR.STR.SCAS, true));
def(0xaf, "scasw/d", STR.stringOp(STR.STR.SCAS, false));

// ---- B0-BF
for (let r = 0; r < 8; r++) {
  def(0xb0 + r, "mov r8,Ib", M.movRbIb(r));
  def(0xb8 + r, "mov r,Iv", M.movRvIv(r, false), M.movRvIv(r, true));
}

// ---- C0-CF
def(0xc0, "grp2 Eb,Ib", SH.grp2Eb(0));
def(0xc1, "grp2 Ev,Ib", SH.grp2Ev(0, false), SH.grp2Ev(0, true));
def(0xc2, "ret Iw", C.retNear(true));
def(0xc3, "ret", C.retNear(false));
def(0xc4, "les Gv,Mp", M.loadFar(SEG.ES));
def(0xc5, "lds Gv,Mp", M.loadFar(SEG.DS));
def(0xc6, "mov Eb,Ib", M.movEbIb);
def(0xc7, "mov Ev,Iv", M.movEvIv16, M.movEvIv32);
def(0xc8, "enter Iw,Ib", ST.enter);
def(0xc9, "leave", ST.leave);
def(0xca, "retf Iw", C.retFar(true));
def(0xcb, "retf", C.retFar(false));
def(0xcc, "int3", C.int3);
def(0xcd, "int Ib", C.intImm);
def(0xce, "into", C.into);
def(0xcf, "iret", C.iret);

// ---- D0-DF
def(0xd0, "grp2 Eb,1", SH.grp2Eb(1));
def(0xd1, "grp2 Ev,1", SH.grp2Ev(1, false), SH.grp2Ev(1, true));
def(0xd2, "grp2 Eb,CL", SH.grp2Eb(2));
def(0xd3, "grp2 Ev,CL", SH.grp2Ev(2, false), SH.grp2Ev(2, true));
def(0xd4, "aam Ib", B.aam);
def(0xd5, "aad Ib", B.aad);
def(0xd6, "salc", B.salc);
def(0xd7, "xlat", M.xlat);
for (let e = 0xd8; e <= 0xdf; e++) def(e, "x87 escape", X87.escape(e));

// ---- E0-EF
def(0xe0, "loopne Jb", C.loop(0));
def(0xe1, "loope Jb", C.loop(1));
def(0xe2, "loop Jb", C.loop(2));
def(0xe3, "jcxz Jb", C.loop(3));
def(0xe4, "in AL,Ib", SYS.inAlIb);
def(0xe5, "in eAX,Ib", SYS.inAxIb);
def(0xe6, "out Ib,AL", SYS.outIbAl);
def(0xe7, "out Ib,eAX", SYS.outIbAx);
def(0xe8, "call Jv", C.callNear16, C.callNear32);
def(0xe9, "jmp Jv", C.jmpNear16, C.jmpNear32);
def(0xea, "jmp Ap", C.jmpFarImm);
def(0xeb, "jmp Jb", C.jmpShort);
def(0xec, "in AL,DX", SYS.inAlDx);
def(0xed, "in eAX,DX", SYS.inAxDx);
def(0xee, "out DX,AL", SYS.outDxAl);
def(0xef, "out DX,eAX", SYS.outDxAx);

// ---- F0-FF
def(0xf1, "int1", C.int1);
def(0xf4, "hlt", SYS.hlt);
def(0xf5, "cmc", SYS.cmc);
def(0xf6, "grp3 Eb", A.grp3Eb, A.grp3Eb, true);
def(0xf7, "grp3 Ev", A.grp3Ev16, A.grp3Ev32, true);
def(0xf8, "clc", SYS.clc);
def(0xf9, "stc", SYS.stc);
def(0xfa, "cli", SYS.cli);
def(0xfb, "sti", SYS.sti);
def(0xfc, "cld", SYS.cld);
def(0xfd, "std", SYS.std);
def(0xfe, "grp4 Eb", A.grp4, A.grp4, true);
def(0xff, "grp5 Ev", C.grp5, C.grp5, true);

// ---- two-byte opcodes 0F xx
def(0x0f00, "grp6", SYS.grp6);
def(0x0f01, "grp7", SYS.grp7);
def(0x0f02, "lar Gv,Ew", SYS.lar);
def(0x0f03, "lsl Gv,Ew", SYS.lsl);
def(0x0f06, "clts", SYS.clts);
def(0x0f08, "invd", SYS.invd);
def(0x0f09, "wbinvd", SYS.invd);
def(0x0f0b, "ud2", SYS.ud);
def(0x0f0d, "nop Ev (prefetch)", SYS.nopEv);
for (let h = 0x18; h <= 0x1f; h++) def(0x0f00 + h, "nop Ev (hint)", SYS.nopEv);
def(0x0f20, "mov Rd,Cd", SYS.movRCr);
def(0x0f21, "mov Rd,Dd", SYS.movRDr);
def(0x0f22, "mov Cd,Rd", SYS.movCrR);
def(0x0f23, "mov Dd,Rd", SYS.movDrR);
def(0x0f30, "wrmsr", SYS.wrmsr);
def(0x0f31, "rdtsc", SYS.rdtsc);
def(0x0f32, "rdmsr", SYS.rdmsr);
for (let cc = 0; cc < 16; cc++) {
  def(0x0f40 + cc, "cmovcc Gv,Ev", M.cmov(cc));
  def(0x0f80 + cc, "jcc Jv", C.jccNear(cc, false), C.jccNear(cc, true));
  def(0x0f90 + cc, "setcc Eb", BIT.setcc(cc));
}
def(0x0fa0, "push fs", ST.pushSeg(SEG.FS));
def(0x0fa1, "pop fs", ST.popSeg(SEG.FS));
def(0x0fa2, "cpuid", SYS.cpuid);
def(0x0fa3, "bt Ev,Gv", BIT.btEvGv(0));
def(0x0fa4, "shld Ev,Gv,Ib", SH.shxd(false, false, false), SH.shxd(false, false, true));
def(0x0fa5, "shld Ev,Gv,CL", SH.shxd(false, true, false), SH.shxd(false, true, true));
def(0x0fa8, "push gs", ST.pushSeg(SEG.GS));
def(0x0fa9, "pop gs", ST.popSeg(SEG.GS));
def(0x0fab, "bts Ev,Gv", BIT.btEvGv(1), BIT.btEvGv(1), true);
def(0x0fac, "shrd Ev,Gv,Ib", SH.shxd(true, false, false), SH.shxd(true, false, true));
def(0x0fad, "shrd Ev,Gv,CL", SH.shxd(true, true, false), SH.shxd(true, true, true));
def(0x0fae, "grp15 (fences)", SYS.grp15);
def(0x0faf, "imul Gv,Ev", A.imulGvEv16, A.imulGvEv32);
def(0x0fb0, "cmpxchg Eb,Gb", A.cmpxchgEb, A.cmpxchgEb, true);
def(0x0fb1, "cmpxchg Ev,Gv", A.cmpxchgEv16, A.cmpxchgEv32, true);
def(0x0fb2, "lss Gv,Mp", M.loadFar(SEG.SS));
def(0x0fb3, "btr Ev,Gv", BIT.btEvGv(2), BIT.btEvGv(2), true);
def(0x0fb4, "lfs Gv,Mp", M.loadFar(SEG.FS));
def(0x0fb5, "lgs Gv,Mp", M.loadFar(SEG.GS));
def(0x0fb6, "movzx Gv,Eb", M.movzxGvEb);
def(0x0fb7, "movzx Gv,Ew", M.movzxGvEw);
def(0x0fb9, "ud1", SYS.ud);
def(0x0fba, "grp8 Ev,Ib", BIT.grp8, BIT.grp8, true);
def(0x0fbb, "btc Ev,Gv", BIT.btEvGv(3), BIT.btEvGv(3), true);
def(0x0fbc, "bsf Gv,Ev", BIT.bsf);
def(0x0fbd, "bsr Gv,Ev", BIT.bsr);
def(0x0fbe, "movsx Gv,Eb", M.movsxGvEb);
def(0x0fbf, "movsx Gv,Ew", M.movsxGvEw);
def(0x0fc0, "xadd Eb,Gb", A.xaddEb, A.xaddEb, true);
def(0x0fc1, "xadd Ev,Gv", A.xaddEv16, A.xaddEv32, true);
def(0x0fc7, "grp9 (cmpxchg8b)", A.grp9, A.grp9, true);
for (let r = 0; r < 8; r++) def(0x0fc8 + r, "bswap r32", M.bswap(r));

/** Every defined opcode. */
export const OPCODE_TABLE: readonly OpcodeEntry[] = rows;

const undefinedOpcode: Handler = (c) => c.fault(EXC.UD, -1);

/**
 * The dispatch array: index `op | os32 << 8` for one-byte opcodes and `512 | op | os32 << 8`
 * for 0F xx. Undefined entries raise #UD.
 */
export function buildDispatch(): Handler[] {
  const d: Handler[] = new Array<Handler>(1024).fill(undefinedOpcode);
  for (const r of rows) {
    const base = r.op > 0xff ? 512 : 0;
    const op = r.op & 0xff;
    d[base | op] = r.h16;
    d[base | 256 | op] = r.h32;
  }
  return d;
}

/** Lockable opcodes: bit per index (`op` or 256 + 0F op). */
export const LOCKABLE: Uint8Array = (() => {
  const l = new Uint8Array(512);
  for (const r of rows) if (r.lockable) l[(r.op > 0xff ? 256 : 0) | (r.op & 0xff)] = 1;
  return l;
})();
