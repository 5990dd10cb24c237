/**
 * The block compiler: straight-line runs of 32-bit code in RAM become one JavaScript function
 * each (`new Function`), with everything known at decode time written in as constants —
 * register indices, immediates, displacements, operand size, the ModRM address expression, the
 * condition of a Jcc and how the flags of the instruction before it are computed. Memory
 * accesses inline the segment-limit check and the TLB hit of the interpreter's fast paths and
 * call the CPU for everything else (misses, faults, MMIO, page-crossing accesses).
 *
 * Blocks are keyed by the physical address of their first byte and the CPU's mode bits
 * ({@link X86Cpu.blockMode}), kept per 4 KiB physical page with a map of the bytes they were
 * decoded from. A CPU store into those bytes drops the page's blocks; writes the CPU cannot see
 * (the embedder, device DMA) are caught by comparing a block's bytes with RAM on its first use
 * after {@link X86Cpu.codeEpoch} moves.
 *
 * Lazy flags: the generated code keeps the last flag-setting instruction's operands in locals
 * (`la`, `lb`, `lr`, `lc`, kind in `fk`), evaluates a following Jcc/SETcc/CMOVcc straight from
 * them (`cmp a, b; jl` becomes `a < b`), and writes them into the CPU's lazy-flag fields only
 * when the block exits, faults, or calls something that reads EFLAGS.
 *
 * References: [SDM] Intel SDM Vol.2 (instruction semantics, Appendix A opcode map, 2.1.5 ModRM/SIB),
 * Vol.3A 8.1.3 (self- and cross-modifying code).
 */
import type { X86Cpu } from "./cpu.ts";
import { shift } from "./instructions/shift.ts";

/** A compiled block. `n` = 0 marks an address the compiler cannot start a block at. */
export interface Block {
  readonly fn: (cpu: X86Cpu, limit: number) => void;
  readonly phys: number;
  readonly mode: number;
  /** Bytes of code, from `phys`. */
  readonly len: number;
  /** Instructions in one pass. */
  readonly n: number;
  /** The code bytes it was compiled from (checked against RAM after an epoch change). */
  readonly bytes: Uint8Array;
  epoch: number;
}

/** Blocks per physical page, and which bytes of the page they cover. */
export class BlockCache {
  /** Most blocks kept; past it the whole cache is dropped (as QEMU flushes its TB cache). */
  static readonly MAX_BLOCKS = 16384;
  /** Per RAM page: blocks by page offset (dense arrays: sparse ones fall back to dictionaries). */
  private readonly pages: ((Block | undefined)[] | undefined)[];
  private readonly cover: (Uint8Array | undefined)[];
  private count = 0;
  /** Blocks compiled since creation (tests and diagnostics). */
  compiled = 0;
  /** Pages dropped because code in them was written. */
  invalidations = 0;
  /** Blocks whose generated source did not compile (left to the interpreter; a defect). */
  failed = 0;

  private readonly codePages: Uint8Array;

  constructor(codePages: Uint8Array) {
    this.codePages = codePages;
    this.pages = new Array<(Block | undefined)[] | undefined>(codePages.length).fill(undefined);
    this.cover = new Array<Uint8Array | undefined>(codePages.length).fill(undefined);
  }

  get(phys: number, mode: number): Block | undefined {
    const pg = this.pages[phys >>> 12];
    if (pg === undefined) return undefined;
    const b = pg[phys & 0xfff];
    return b !== undefined && b.mode === mode ? b : undefined;
  }

  /** Number of blocks held. */
  get size(): number {
    return this.count;
  }

  add(b: Block): void {
    if (this.count >= BlockCache.MAX_BLOCKS) this.clear();
    const pn = b.phys >>> 12;
    let pg = this.pages[pn];
    let cov = this.cover[pn];
    if (pg === undefined || cov === undefined) {
      pg = this.pages[pn] = new Array<Block | undefined>(4096).fill(undefined);
      cov = this.cover[pn] = new Uint8Array(4096);
    }
    if (pg[b.phys & 0xfff] === undefined) this.count++;
    pg[b.phys & 0xfff] = b;
    cov.fill(1, b.phys & 0xfff, (b.phys & 0xfff) + Math.max(1, b.len));
    this.codePages[pn] = 1;
    this.compiled++;
  }

  /** Re-checks a block's bytes after writes the CPU did not see; undefined when they changed. */
  verify(b: Block, ram: Uint8Array, epoch: number): Block | undefined {
    const bytes = b.bytes;
    const p = b.phys;
    for (let i = 0; i < bytes.length; i++) {
      if (ram[p + i] !== bytes[i]) {
        this.dropPage(p >>> 12);
        return undefined;
      }
    }
    b.epoch = epoch;
    return b;
  }

  /** A CPU store of `len` bytes at physical `p`: true when it hit compiled code (page dropped). */
  written(p: number, len: number): boolean {
    let hit = false;
    while (len > 0) {
      const pn = p >>> 12;
      const off = p & 0xfff;
      const n = Math.min(len, 4096 - off);
      const cov = this.cover[pn];
      if (cov !== undefined) {
        for (let i = off; i < off + n; i++) {
          if (cov[i] !== 0) {
            this.dropPage(pn);
            hit = true;
            break;
          }
        }
      }
      p += n;
      len -= n;
    }
    return hit;
  }

  private dropPage(pn: number): void {
    const pg = this.pages[pn];
    if (pg !== undefined) for (const b of pg) if (b !== undefined) this.count--;
    this.pages[pn] = undefined;
    this.cover[pn] = undefined;
    this.codePages[pn] = 0;
    this.invalidations++;
  }

  clear(): void {
    this.pages.fill(undefined);
    this.cover.fill(undefined);
    this.codePages.fill(0);
    this.count = 0;
  }
}

// ---- flag kinds held in the generated code's locals (`fk` = kind << 6 | width)
const K_DYN = -1; // unknown at compile time: fk says (0 = the CPU's fields hold the flags)
const K_CPU = 0;
const K_ADD = 1;
const K_SUB = 2;
const K_ADC = 3;
const K_SBB = 4;
const K_LOGIC = 5;
const K_INC = 6;
const K_DEC = 7;
const K_SZP = 8;

const F_CF = 0x1;
const F_DF = 0x400;
const S_ES = 0;
const S_DS = 3;
const S_SS = 2;

/** Segment-override prefix to segment register (ES CS SS DS FS GS). [SDM Vol.2 2.1.1] */
const SEG_PREFIX = new Map([[0x26, 0], [0x2e, 1], [0x36, 2], [0x3e, 3], [0x64, 4], [0x65, 5]]);

/** Most instructions in one block. */
const MAX_INSTRUCTIONS = 32;

/** Thrown by the decoder when an instruction runs past the bytes available. */
const END = { end: true } as const;

/** Stops the block before the current instruction (not compiled: the interpreter runs it). */
const UNSUPPORTED = { unsupported: true } as const;

interface FlagState {
  kind: number;
  bits: number;
  /** INC/DEC: CF still lives in the CPU's fields (lc = -1). */
  cfCpu: boolean;
}

interface ModRM {
  mod: number;
  reg: number;
  rm: number;
  /** Offset expression (memory forms). */
  ea: string;
  seg: number;
}

const NO_BLOCK_FN = (): void => {};

/** Stands for the block's instruction count in code generated before the count is known. */
const PASS = "@PASS@";

/**
 * Compiles the block at physical `phys` (`avail` bytes of the fetch window from there) for the
 * CPU's current mode and adds it to the cache. Returns undefined when nothing could be
 * compiled there (a marker with n = 0 is cached so the address is not retried).
 */
export function compileBlock(cpu: X86Cpu, phys: number, avail: number): Block | undefined {
  const mode = cpu.blockMode;
  const g = new Gen(cpu, phys, Math.min(avail, 4096 - (phys & 0xfff)));
  let n = 0;
  // 32-bit code and stack only; other modes stay interpreted.
  if ((mode & 3) === 3) n = g.run();
  const bytes = cpu.ram.slice(phys, phys + Math.max(1, g.len));
  if (n === 0) {
    const none: Block = { fn: NO_BLOCK_FN, phys, mode, len: 1, n: 0, bytes, epoch: cpu.codeEpoch };
    cpu.blocks.add(none);
    return undefined;
  }
  const src = g.source();
  const { ram, ram32, tlb, parity } = cpu.jitView;
  let fn: Block["fn"];
  try {
    const factory = new Function("regs", "sb", "sl", "sw", "sro", "tlb", "ram", "ram32", "cp", "PAR", "SH", "S", src) as (...args: unknown[]) => Block["fn"];
    fn = factory(cpu.regs, cpu.segBase, cpu.segLimit, cpu.segSlow, cpu.segRO, tlb, ram, ram32, cpu.codePages, parity, shift, Int32Array.from(g.starts));
  } catch {
    // A generator defect must not stop the guest: the interpreter runs this code instead.
    cpu.blocks.failed++;
    cpu.blocks.add({ fn: NO_BLOCK_FN, phys, mode, len: 1, n: 0, bytes, epoch: cpu.codeEpoch });
    return undefined;
  }
  const b: Block = { fn, phys, mode, len: g.len, n, bytes, epoch: cpu.codeEpoch };
  cpu.blocks.add(b);
  return b;
}

/** The generated source of the block at `phys` (tests and debugging). */
export function blockSource(cpu: X86Cpu, phys: number, avail: number): string {
  const g = new Gen(cpu, phys, Math.min(avail, 4096 - (phys & 0xfff)));
  g.run();
  return g.source();
}

class Gen {
  private readonly ram: Uint8Array;
  private pos: number;
  private readonly end: number;
  private readonly phys: number;
  private readonly paging: boolean;
  /** TLB permission masks for reads and writes at this CPL (cpu.ts T_* bits). */
  private readonly needR: number;
  private readonly needW: number;
  private readonly ramLimit: number;
  /** Per-instruction code, and the start offset of each instruction. */
  private readonly parts: string[] = [];
  readonly starts: number[] = [];
  len = 0;
  private st: FlagState = { kind: K_DYN, bits: 32, cfCpu: false };
  /** Current instruction: operand size (bits), segment override, index, start/next offset. */
  private os = 32;
  private segOv = -1;
  private idx = 0;
  private next = 0;
  private code = "";
  private stores = false;
  private loops = false;
  /** Segments the block addresses memory through. */
  private readonly segs = new Set<number>();
  private ended = false;

  constructor(cpu: X86Cpu, phys: number, avail: number) {
    this.ram = cpu.ram;
    this.phys = phys;
    this.pos = phys;
    this.end = phys + avail;
    this.paging = (cpu.blockMode & 16) !== 0;
    const user = ((cpu.blockMode >> 2) & 3) === 3;
    // T_V=1, T_WS=2, T_U=4, T_WU=8, T_D=16 (cpu.ts TLB entry bits)
    this.needR = user ? 1 | 4 : 1;
    this.needW = user ? 1 | 4 | 8 | 16 : 1 | 2 | 16;
    this.ramLimit = cpu.ramSize & ~4095;
  }

  /** Decodes and generates up to MAX_INSTRUCTIONS; returns how many. */
  run(): number {
    while (this.idx < MAX_INSTRUCTIONS && !this.ended) {
      const start = this.pos;
      const saved = { ...this.st };
      this.code = "";
      this.stores = false;
      try {
        this.instruction();
      } catch (e) {
        if (e !== END && e !== UNSUPPORTED) throw e;
        this.pos = start;
        this.st = saved;
        break;
      }
      this.starts.push(start - this.phys);
      let c = this.code;
      if (this.stores && !this.ended) c += `if(sm!==0){ne=(e0+${this.pos - this.phys})|0;nk=${this.idx + 1};break out;}`;
      this.parts.push(`k=${this.idx};${c}`);
      this.idx++;
      this.len = this.pos - this.phys;
    }
    if (this.idx > 0 && !this.ended) {
      // Fell off the end (length bound, page end, or an instruction left to the interpreter).
      this.parts.push(`ne=(e0+${this.len})|0;nk=${this.idx};break out;`);
    }
    return this.idx;
  }

  source(): string {
    const body = this.parts.join("\n").replaceAll(PASS, String(this.idx));
    const head = this.loops ? "out:for(;;){" : "out:{";
    const segs = [...this.segs].map((n) => `const sB${n}=sb[${n}],sL${n}=sl[${n}],sR${n}=sw[${n}]===0,sW${n}=(sw[${n}]|sro[${n}])===0;`).join("");
    const gs = [0, 1, 2, 3, 4, 5, 6, 7];
    const used = gs.filter((n) => body.includes(`g${n}`));
    const load = used.length === 0 ? "" : `let ${used.map((n) => `g${n}=regs[${n}]`).join(",")};`;
    const store = used.filter((n) => body.includes(`g${n}=`)).map((n) => `regs[${n}]=g${n};`).join("");
    return `"use strict";return function(cpu,limit){
const e0=cpu.eip;const lim=limit-cpu.count;const poll=(cpu.flags&512)!==0&&cpu.pic!==undefined;const csl=sl[1];${segs}
${load}
let o=0,l=0,e=0,p=0,v=0,a=0,b=0,r=0,t=0,la=0,lb=0,lr=0,lc=0,fk=0,k=0,ne=0,nk=0,nb=0,sm=0;
try{${head}
${body}
}}catch(x){${store}cpu.count+=nb+k;cpu.instrStart=(e0+S[k])|0;if(fk!==0)cpu.jitFlags(fk,la,lb,lr,lc);throw x;}
${store}cpu.eip=ne;cpu.count+=nb+nk;if(fk!==0)cpu.jitFlags(fk,la,lb,lr,lc);};`;
  }

  // ------------------------------------------------------------------ bytes

  private u8(): number {
    if (this.pos >= this.end) throw END;
    return this.ram[this.pos++]!;
  }
  private s8(): number {
    return (this.u8() << 24) >> 24;
  }
  private u16(): number {
    const lo = this.u8();
    return lo | (this.u8() << 8);
  }
  private s32(): number {
    const lo = this.u16();
    return (lo | (this.u16() << 16)) | 0;
  }
  /** An immediate of the operand size: 8/16 zero-extended, 32 signed. */
  private imm(bits: number): number {
    return bits === 8 ? this.u8() : bits === 16 ? this.u16() : this.s32();
  }

  private modrm(): ModRM {
    const m = this.u8();
    const mod = m >> 6;
    const reg = (m >> 3) & 7;
    const rm = m & 7;
    if (mod === 3) return { mod, reg, rm, ea: "", seg: -1 };
    let seg = S_DS;
    const terms: string[] = [];
    let disp = 0;
    if (rm === 4) {
      const sib = this.u8();
      const base = sib & 7;
      const index = (sib >> 3) & 7;
      const scale = sib >> 6;
      if (base === 5 && mod === 0) disp = this.s32();
      else {
        terms.push(`g${base}`);
        if (base === 4 || base === 5) seg = S_SS;
      }
      if (index !== 4) terms.push(scale === 0 ? `g${index}` : `(g${index}<<${scale})`);
    } else if (rm === 5 && mod === 0) {
      disp = this.s32();
    } else {
      terms.push(`g${rm}`);
      if (rm === 5) seg = S_SS;
    }
    if (mod === 1) disp = (disp + this.s8()) | 0;
    else if (mod === 2) disp = (disp + this.s32()) | 0;
    if (disp !== 0 || terms.length === 0) terms.push(String(disp));
    const ea = terms.length === 1 && terms[0] === `g${rm}` ? terms[0] : `(${terms.join("+")})|0`;
    return { mod, reg, rm, ea, seg: this.segOv >= 0 ? this.segOv : seg };
  }

  // ------------------------------------------------------------------ registers and memory

  /**
   * Register `n` of width `bits` as an expression. The block keeps the eight registers in
   * locals g0-g7 (loaded on entry, written back on every exit and fault).
   */
  private R(bits: number, n: number): string {
    if (bits === 32) return `g${n}`;
    if (bits === 16) return `(g${n}&65535)`;
    return n < 4 ? `(g${n}&255)` : `((g${n - 4}>>8)&255)`;
  }
  /** Statement writing `val` into register `n` of width `bits` (the other bits kept). */
  private W(bits: number, n: number, val: string): string {
    if (bits === 32) return `g${n}=(${val})|0;`;
    if (bits === 16) return `g${n}=(g${n}&-65536)|((${val})&65535);`;
    return n < 4 ? `g${n}=(g${n}&-256)|((${val})&255);` : `g${n - 4}=(g${n - 4}&-65281)|(((${val})&255)<<8);`;
  }

  /** Linear address of seg:`off` for `size` bytes into `l` (segAddr / segWriteAddr). */
  private lin(seg: number, off: string, size: number, write: boolean): void {
    // Segment state cannot change inside a block: base, limit and usability are read on entry.
    this.segs.add(seg);
    const ok = write ? `sW${seg}` : `sR${seg}`;
    this.code += `o=${off};if(${ok}&&(o>>>0)+${size - 1}<=sL${seg})l=(sB${seg}+o)|0;else l=cpu.${write ? "segWriteAddr" : "segAddr"}(${seg},o,${size});`;
  }

  /** Physical address test for `l` into `p` (a boolean expression): TLB hit and RAM. */
  private hit(size: number, write: boolean): string {
    const align = size === 4 ? "(l&3)===0&&" : size === 2 ? "(l&1)===0&&" : "";
    if (!this.paging) return `${align}(p=l>>>0)<${this.ramLimit}${write ? "&&cp[p>>>12]===0" : ""}`;
    const need = write ? this.needW : this.needR;
    return `${align}((e=tlb[l>>>12])&${need})===${need}&&(p=((e&-4096)|(l&4095))>>>0)<${this.ramLimit}${write ? "&&cp[p>>>12]===0" : ""}`;
  }

  /** Reads `size` bytes at `l` into `dst`. */
  private readL(size: number, dst = "v"): void {
    const load = size === 4 ? "ram32[p>>>2]" : size === 2 ? "(ram[p]|(ram[p+1]<<8))" : "ram[p]";
    this.code += `if(${this.hit(size, false)})${dst}=${load};else ${dst}=cpu.readLin${size * 8}(l);`;
  }

  /** Writes `val` (a local) of `size` bytes at `l`. */
  private writeL(size: number, val: string): void {
    const store = size === 4 ? `ram32[p>>>2]=${val};` : size === 2 ? `ram[p]=${val};ram[p+1]=${val}>>>8;` : `ram[p]=${val};`;
    this.code += `if(${this.hit(size, true)}){${store}}else{cpu.writeLin${size * 8}(l,${val});sm=cpu.smc;}`;
    this.stores = true;
  }

  /** Reads the r/m operand into `dst`; `rmw` keeps `l` for writeBack (readE*W). */
  private readE(m: ModRM, bits: number, rmw: boolean, dst = "v"): void {
    if (m.mod === 3) {
      this.code += `${dst}=${this.R(bits, m.rm)};`;
      return;
    }
    this.lin(m.seg, m.ea, bits >> 3, rmw);
    this.readL(bits >> 3, dst);
  }
  /** Writes after readE(rmw) (writeE*R). */
  private writeBack(m: ModRM, bits: number, val: string): void {
    if (m.mod === 3) this.code += this.W(bits, m.rm, val);
    else this.writeL(bits >> 3, val);
  }
  /** Writes the r/m operand (writeE*). */
  private writeE(m: ModRM, bits: number, val: string): void {
    if (m.mod === 3) {
      this.code += this.W(bits, m.rm, val);
      return;
    }
    this.lin(m.seg, m.ea, bits >> 3, true);
    this.writeL(bits >> 3, val);
  }

  private push(bits: number, val: string): void {
    const n = bits >> 3;
    this.code += `t=(g4-${n})|0;`;
    this.lin(S_SS, "t", n, true);
    this.writeL(n, val);
    this.code += "g4=t;";
  }

  // ------------------------------------------------------------------ flags

  /** Expression for CF (0/1) of the current state, or null when it lives in the CPU. */
  private cf(): string | null {
    const { kind, bits } = this.st;
    const sh = bits - 1;
    switch (kind) {
      case K_ADD:
        return bits === 32 ? "((lr>>>0)<(la>>>0)?1:0)" : `((lr>>>${bits})&1)`;
      case K_SUB:
        return bits === 32 ? "((la>>>0)<(lb>>>0)?1:0)" : "(la<lb?1:0)";
      case K_ADC:
        return `((((la&lb)|((la|lb)&~lr))>>>${sh})&1)`;
      case K_SBB:
        return `((((~la&lb)|((~la|lb)&lr))>>>${sh})&1)`;
      case K_LOGIC:
        return "0";
      case K_INC:
      case K_DEC:
        return this.st.cfCpu ? null : "lc";
      case K_SZP:
        return "(lc&1)";
      default:
        return null;
    }
  }
  private of(): string | null {
    const { kind, bits } = this.st;
    const sh = bits - 1;
    switch (kind) {
      case K_ADD:
      case K_ADC:
      case K_INC:
        return `((((la^lr)&(lb^lr))>>>${sh})&1)`;
      case K_SUB:
      case K_SBB:
      case K_DEC:
        return `((((la^lb)&(la^lr))>>>${sh})&1)`;
      case K_LOGIC:
        return "0";
      case K_SZP:
        return "((lc>>11)&1)";
      default:
        return null;
    }
  }
  private known(): boolean {
    return this.st.kind > 0;
  }
  private zf(): string {
    const bits = this.st.bits;
    return bits === 32 ? "(lr===0)" : `((lr&${bits === 16 ? 0xffff : 0xff})===0)`;
  }
  private sf(): string {
    return `((lr>>>${this.st.bits - 1})&1)`;
  }

  /** A JS boolean for condition `cc` from the pending flags, or null. [SDM Vol.2 B.1.4.7] */
  private condFromLocals(cc: number): string | null {
    if (!this.known()) return null;
    const { kind, bits } = this.st;
    let e: string | null = null;
    const sx = (x: string): string => (bits === 32 ? x : `(${x}<<${32 - bits}>>${32 - bits})`);
    const zf = this.zf();
    if (kind === K_SUB) {
      switch (cc >> 1) {
        case 1: e = bits === 32 ? "(la>>>0)<(lb>>>0)" : "la<lb"; break;
        case 2: e = zf; break;
        case 3: e = bits === 32 ? "(la>>>0)<=(lb>>>0)" : "la<=lb"; break;
        case 6: e = `${sx("la")}<${sx("lb")}`; break;
        case 7: e = `${sx("la")}<=${sx("lb")}`; break;
        default:
      }
    } else if (kind === K_LOGIC) {
      switch (cc >> 1) {
        case 0:
        case 1: e = "false"; break;
        case 2:
        case 3: e = zf; break;
        case 4:
        case 6: e = `${this.sf()}!==0`; break;
        case 7: e = `(${zf}||${this.sf()}!==0)`; break;
        default:
      }
    }
    if (e === null) {
      const cf = this.cf();
      const of = this.of();
      const sf = this.sf();
      switch (cc >> 1) {
        case 0: e = of === null ? null : `${of}!==0`; break;
        case 1: e = cf === null ? null : `${cf}!==0`; break;
        case 2: e = zf; break;
        case 3: e = cf === null ? null : `(${cf}!==0||${zf})`; break;
        case 4: e = `${sf}!==0`; break;
        case 5: e = "PAR[lr&255]!==0"; break;
        case 6: e = of === null ? null : `${sf}!==${of}`; break;
        default: e = of === null ? null : `(${zf}||${sf}!==${of})`; break;
      }
    }
    if (e === null) return null;
    return (cc & 1) !== 0 ? `!(${e})` : `(${e})`;
  }

  /** A JS boolean for condition `cc`, flushing the flags to the CPU when needed. */
  private cond(cc: number): string {
    const e = this.condFromLocals(cc);
    if (e !== null) return e;
    this.flush();
    return `cpu.cond(${cc})`;
  }

  /** Writes pending flags into the CPU's lazy-flag fields (static or, when unknown, dynamic). */
  private flush(): void {
    const { kind, bits } = this.st;
    if (kind === K_DYN) this.code += "if(fk!==0){cpu.jitFlags(fk,la,lb,lr,lc);fk=0;}";
    else if (kind !== K_CPU) this.code += `cpu.jitFlags(${(kind << 6) | bits},la,lb,lr,lc);fk=0;`;
    this.st = { kind: K_CPU, bits: 32, cfCpu: false };
  }

  /** Records a flag-setting result (operands already in locals a, b; result expression r). */
  private setFlags(kind: number, bits: number, a: string, b: string, r: string): void {
    let cfCpu = false;
    if (kind === K_INC || kind === K_DEC) {
      const prev = this.st.kind;
      if (prev === K_INC || prev === K_DEC) {
        cfCpu = this.st.cfCpu;
      } else if (prev === K_CPU) {
        this.code += "lc=-1;";
        cfCpu = true;
      } else if (prev === K_DYN) {
        this.flush();
        this.code += "lc=-1;";
        cfCpu = true;
      } else {
        this.code += `lc=${this.cf()!};`;
      }
    }
    this.code += `la=${a};lb=${b};lr=${r};fk=${(kind << 6) | bits};`;
    this.st = { kind, bits, cfCpu };
  }
  /** setLogic: CF=OF=AF=0, SF/ZF/PF from `r`. */
  private logic(bits: number, r: string): void {
    this.code += `lr=${r};fk=${(K_LOGIC << 6) | bits};`;
    this.st = { kind: K_LOGIC, bits, cfCpu: false };
  }
  /** INC/DEC of `a` into `r` (CF kept). */
  private incDec(dec: boolean, bits: number): void {
    this.code += bits === 32 ? `r=(a${dec ? "-" : "+"}1)|0;` : `r=a${dec ? "-" : "+"}1;`;
    this.setFlags(dec ? K_DEC : K_INC, bits, "a", "1", "r");
  }
  /** setSZP: SF/ZF/PF from r, CF/OF (AF) eager in `others`. */
  private setSZP(bits: number, r: string, others: string): void {
    this.code += `lc=${others};lr=${r};fk=${(K_SZP << 6) | bits};`;
    this.st = { kind: K_SZP, bits, cfCpu: false };
  }

  // ------------------------------------------------------------------ control flow

  /** A near transfer to constant offset `target` from the block start (CS limit checked). */
  private jumpTo(target: number, into = "t"): string {
    return `${into}=(e0+${target})|0;if((${into}>>>0)>csl)cpu.fault(13,0);`;
  }

  /** Ends the block after this instruction: the transfer code must leave the target in `ne`. */
  private endWith(code: string): void {
    this.code += `${code}nk=${this.idx + 1};break out;`;
    this.ended = true;
  }

  /** Jcc/JMP/LOOP to `target` (offset from block start) when `cond` holds; `cond` null = always. */
  /**
   * Continues decoding at `target` (offset from the block start) after an unconditional JMP or
   * CALL when it lies ahead in the bytes available: the block still covers one contiguous range
   * of its page and window (so the entry and epoch checks hold), and the target needs no CS
   * limit check (the fetch window ends at the limit).
   */
  private follow(target: number): boolean {
    if (target <= this.pos - this.phys || this.phys + target >= this.end) return false;
    this.pos = this.phys + target;
    return true;
  }

  /**
   * Jcc/JMP/LOOP to `target` (offset from the block start) when `cond` holds (`cond` null:
   * always). A conditional branch is a side exit: the block goes on with the fall-through
   * instruction. A branch back to the block's own start loops inside the function while the
   * budget allows another full pass and the interrupt poll is not due; the loop head's flag
   * state is the dynamic one (`fk` says what the locals hold), which holds on every path.
   */
  private branch(cond: string | null, target: number): void {
    const n = this.idx + 1;
    let taken: string;
    if (target === 0) {
      this.loops = true;
      taken = `${this.jumpTo(0)}nb+=${n};if(nb+${PASS}>lim||(poll&&--cpu.pollCountdown<=0)){ne=t;nk=0;break out;}continue;`;
    } else {
      taken = `${this.jumpTo(target)}ne=t;nk=${n};break out;`;
    }
    if (cond === null) {
      if (this.follow(target)) return;
      this.code += taken;
      this.ended = true;
    } else {
      this.code += `if(${cond}){${taken}}`;
    }
  }

  // ------------------------------------------------------------------ instructions

  private instruction(): void {
    this.os = 32;
    this.segOv = -1;
    let op = this.u8();
    for (let n = 0; ; n++) {
      if (n > 4) throw UNSUPPORTED;
      if (op === 0x66) this.os = 16;
      else if (SEG_PREFIX.has(op)) this.segOv = SEG_PREFIX.get(op)!;
      else break;
      op = this.u8();
    }
    if (op === 0x0f) this.twoByte(this.u8());
    else this.oneByte(op);
  }

  /**
   * MOVS, STOS, LODS without a REP prefix (REP forms and address-size 16 stay interpreted):
   * the source at seg:ESI (DS unless overridden), the destination at ES:EDI, then the index
   * registers step by the size, down when DF is set. [SDM Vol.2 MOVS, STOS, LODS]
   */
  private stringOp(op: number, bits: number): void {
    const n = bits >> 3;
    const src = this.segOv >= 0 ? this.segOv : S_DS;
    if (op !== 0xaa && op !== 0xab) {
      this.lin(src, "g6", n, false);
      this.readL(n);
    } else {
      this.code += `v=${this.R(bits, 0)};`;
    }
    if (op === 0xac || op === 0xad) {
      this.code += this.W(bits, 0, "v");
    } else {
      this.lin(S_ES, "g7", n, true);
      this.writeL(n, "v");
    }
    this.code += `t=(cpu.flags&${F_DF})!==0?${-n}:${n};`;
    if (op !== 0xaa && op !== 0xab) this.code += "g6=(g6+t)|0;";
    if (op !== 0xac && op !== 0xad) this.code += "g7=(g7+t)|0;";
  }

  private alu(op: number, bits: number, m: ModRM | null, toE: boolean): void {
    // a = destination value (already in `a`), b = source (in `b`); mirrors arith.ts alu().
    let r: string;
    let kind: number;
    switch (op) {
      case 0: r = "(a+b)|0"; kind = K_ADD; break;
      case 1: r = "a|b"; kind = K_LOGIC; break;
      case 2:
      case 3: {
        const cf = this.cf();
        if (cf === null) {
          this.flush();
          this.code += "t=cpu.getCF();";
        } else {
          this.code += `t=${cf};`;
        }
        r = op === 2 ? "(a+b+t)|0" : "(a-b-t)|0";
        kind = op === 2 ? K_ADC : K_SBB;
        break;
      }
      case 4: r = "a&b"; kind = K_LOGIC; break;
      case 6: r = "a^b"; kind = K_LOGIC; break;
      default: r = "(a-b)|0"; kind = K_SUB; break;
    }
    if (kind === K_LOGIC) {
      this.code += `r=${r};`;
      this.logic(bits, "r");
    } else {
      this.code += `r=${r};`;
      this.setFlags(kind, bits, "a", "b", "r");
    }
    if (op === 7) return;
    if (m === null) this.code += this.W(bits, 0, "r");
    else if (toE) this.writeBack(m, bits, "r");
    else this.code += this.W(bits, m.reg, "r");
  }

  private oneByte(op: number): void {
    const os = this.os;
    if (op < 0x40 && (op & 7) < 6) {
      const k = op >> 3;
      const form = op & 7;
      const bits = (form & 1) === 0 ? 8 : os;
      if (form < 4) {
        const m = this.modrm();
        const toE = form < 2;
        if (toE) {
          this.readE(m, bits, k !== 7, "a");
          this.code += `b=${this.R(bits, m.reg)};`;
        } else {
          this.code += `a=${this.R(bits, m.reg)};`;
          this.readE(m, bits, false, "b");
        }
        this.alu(k, bits, m, toE);
      } else {
        const imm = this.imm(bits);
        this.code += `a=${this.R(bits, 0)};b=${imm};`;
        this.alu(k, bits, null, false);
      }
      return;
    }
    if (op >= 0x40 && op < 0x50) {
      const r = op & 7;
      const dec = op >= 0x48;
      this.code += `a=${this.R(os, r)};`;
      this.incDec(dec, os);
      this.code += this.W(os, r, "r");
      return;
    }
    if (op >= 0x50 && op < 0x58) {
      this.code += `v=${this.R(os, op & 7)};`;
      this.push(os, "v");
      return;
    }
    if (op >= 0x58 && op < 0x60) {
      const n = os >> 3;
      this.code += "t=g4;";
      this.lin(S_SS, "t", n, false);
      this.readL(n);
      this.code += `g4=(t+${n})|0;${this.W(os, op & 7, "v")}`;
      return;
    }
    if (op >= 0x70 && op < 0x80) {
      if (os !== 32) throw UNSUPPORTED;
      const d = this.s8();
      const target = this.pos - this.phys + d;
      this.branch(this.cond(op & 15), target);
      return;
    }
    if (op >= 0x91 && op < 0x98) {
      this.code += `a=${this.R(os, 0)};b=${this.R(os, op & 7)};${this.W(os, 0, "b")}${this.W(os, op & 7, "a")}`;
      return;
    }
    if (op >= 0xb0 && op < 0xb8) {
      this.code += this.W(8, op & 7, String(this.u8()));
      return;
    }
    if (op >= 0xb8 && op < 0xc0) {
      this.code += this.W(os, op & 7, String(this.imm(os)));
      return;
    }
    switch (op) {
      case 0x68:
        this.code += `v=${this.imm(os)};`;
        this.push(os, "v");
        return;
      case 0x6a:
        this.code += `v=${os === 32 ? this.s8() : this.s8() & 0xffff};`;
        this.push(os, "v");
        return;
      case 0x69:
      case 0x6b: {
        const m = this.modrm();
        this.readE(m, os, false, "a");
        const imm = op === 0x69 ? (os === 32 ? this.s32() : this.u16()) : this.s8();
        this.code += `b=${imm};`;
        this.imul(os, m.reg);
        return;
      }
      case 0x80:
      case 0x82:
      case 0x81:
      case 0x83: {
        const bits = op === 0x81 || op === 0x83 ? os : 8;
        const m = this.modrm();
        const k = m.reg;
        this.readE(m, bits, k !== 7, "a");
        const imm = op === 0x83 ? (os === 32 ? this.s8() : this.s8() & 0xffff) : this.imm(bits);
        this.code += `b=${imm};`;
        this.alu(k, bits, m, true);
        return;
      }
      case 0x84:
      case 0x85: {
        const bits = op === 0x84 ? 8 : os;
        const m = this.modrm();
        this.readE(m, bits, false, "a");
        this.logic(bits, `a&${this.R(bits, m.reg)}`);
        return;
      }
      case 0x86:
      case 0x87: {
        const bits = op === 0x86 ? 8 : os;
        const m = this.modrm();
        this.readE(m, bits, true, "a");
        this.code += `b=${this.R(bits, m.reg)};`;
        this.writeBack(m, bits, "b");
        this.code += this.W(bits, m.reg, "a");
        return;
      }
      case 0x88:
      case 0x89: {
        const bits = op === 0x88 ? 8 : os;
        const m = this.modrm();
        this.code += `v=${this.R(bits, m.reg)};`;
        this.writeE(m, bits, "v");
        return;
      }
      case 0x8a:
      case 0x8b: {
        const bits = op === 0x8a ? 8 : os;
        const m = this.modrm();
        this.readE(m, bits, false);
        this.code += this.W(bits, m.reg, "v");
        return;
      }
      case 0x8d: {
        const m = this.modrm();
        if (m.mod === 3) throw UNSUPPORTED;
        this.code += this.W(os, m.reg, m.ea);
        return;
      }
      case 0x90:
        return;
      case 0x98:
        this.code += os === 32 ? "g0=(g0<<16)>>16;" : this.W(16, 0, "(g0<<24)>>24");
        return;
      case 0x99:
        this.code += os === 32 ? "g2=g0>>31;" : this.W(16, 2, "(g0&32768)!==0?65535:0");
        return;
      case 0xa0:
      case 0xa1:
      case 0xa2:
      case 0xa3: {
        const bits = (op & 1) === 0 ? 8 : os;
        const off = this.s32();
        const seg = this.segOv >= 0 ? this.segOv : S_DS;
        if (op < 0xa2) {
          this.lin(seg, String(off), bits >> 3, false);
          this.readL(bits >> 3);
          this.code += this.W(bits, 0, "v");
        } else {
          this.code += `v=${this.R(bits, 0)};`;
          this.lin(seg, String(off), bits >> 3, true);
          this.writeL(bits >> 3, "v");
        }
        return;
      }
      case 0xa8:
      case 0xa9: {
        const bits = op === 0xa8 ? 8 : os;
        this.logic(bits, `${this.R(bits, 0)}&${this.imm(bits)}`);
        return;
      }
      case 0xc0:
      case 0xc1:
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3:
        this.shiftOp(op);
        return;
      case 0xc2:
      case 0xc3: {
        if (os !== 32) throw UNSUPPORTED;
        const n = op === 0xc2 ? this.u16() : 0;
        this.code += "t=g4;";
        this.lin(S_SS, "t", 4, false);
        this.readL(4);
        this.endWith(`if((v>>>0)>csl)cpu.fault(13,0);g4=(g4+${4 + n})|0;ne=v;`);
        return;
      }
      case 0xc6:
      case 0xc7: {
        const bits = op === 0xc6 ? 8 : os;
        const m = this.modrm();
        if (m.reg !== 0) throw UNSUPPORTED;
        const imm = this.imm(bits);
        this.code += `v=${imm};`;
        this.writeE(m, bits, "v");
        return;
      }
      case 0xc9: {
        const n = os >> 3;
        this.code += "t=g5;";
        this.lin(S_SS, "t", n, false);
        this.readL(n);
        this.code += `g4=(t+${n})|0;${this.W(os, 5, "v")}`;
        return;
      }
      case 0xe0:
      case 0xe1:
      case 0xe2:
      case 0xe3: {
        if (os !== 32) throw UNSUPPORTED;
        const d = this.s8();
        const target = this.pos - this.phys + d;
        if (op === 0xe3) {
          this.branch("g1===0", target);
          return;
        }
        let extra = "";
        if (op !== 0xe2) {
          const zf = this.cond(4); // ZF
          extra = op === 0xe1 ? `&&${zf}` : `&&!${zf}`;
        }
        this.code += "g1=(g1-1)|0;";
        this.branch(`g1!==0${extra}`, target);
        return;
      }
      case 0xe8: {
        if (os !== 32) throw UNSUPPORTED;
        const d = this.s32();
        const next = this.pos - this.phys;
        this.code += this.jumpTo(next + d, "b");
        this.code += `v=(e0+${next})|0;`;
        this.push(32, "v");
        if (this.follow(next + d)) return;
        this.endWith("ne=b;");
        return;
      }
      case 0xe9:
      case 0xeb: {
        if (os !== 32) throw UNSUPPORTED;
        const d = op === 0xe9 ? this.s32() : this.s8();
        this.branch(null, this.pos - this.phys + d);
        return;
      }
      case 0xf6:
      case 0xf7: {
        const bits = op === 0xf6 ? 8 : os;
        const m = this.modrm();
        switch (m.reg) {
          case 0:
          case 1:
            this.readE(m, bits, false, "a");
            this.logic(bits, `a&${this.imm(bits)}`);
            return;
          case 2:
            this.readE(m, bits, true, "a");
            this.code += "r=~a;";
            this.writeBack(m, bits, "r");
            return;
          case 3:
            this.readE(m, bits, true, "a");
            this.code += "r=-a|0;";
            this.setFlags(K_SUB, bits, "0", "a", "r");
            this.writeBack(m, bits, "r");
            return;
          default:
            throw UNSUPPORTED;
        }
      }
      case 0xf8:
      case 0xf9:
        this.flush();
        this.code += `cpu.setFlagBit(${F_CF},${op === 0xf9});`;
        return;
      case 0xa4:
      case 0xa5:
      case 0xaa:
      case 0xab:
      case 0xac:
      case 0xad:
        this.stringOp(op, (op & 1) === 0 ? 8 : os);
        return;
      case 0xfc:
        this.code += `cpu.flags&=${~F_DF};`;
        return;
      case 0xfd:
        this.code += `cpu.flags|=${F_DF};`;
        return;
      case 0xfe:
      case 0xff: {
        const bits = op === 0xfe ? 8 : os;
        const m = this.modrm();
        switch (m.reg) {
          case 0:
          case 1: {
            this.readE(m, bits, true, "a");
            this.incDec(m.reg === 1, bits);
            this.writeBack(m, bits, "r");
            return;
          }
          case 2:
            if (op !== 0xff || os !== 32) throw UNSUPPORTED;
            this.readE(m, 32, false, "a");
            this.code += "if((a>>>0)>csl)cpu.fault(13,0);";
            this.code += `v=(e0+${this.pos - this.phys})|0;`;
            this.push(32, "v");
            this.endWith("ne=a;");
            return;
          case 4:
            if (op !== 0xff || os !== 32) throw UNSUPPORTED;
            this.readE(m, 32, false, "a");
            this.endWith("if((a>>>0)>csl)cpu.fault(13,0);ne=a;");
            return;
          case 6:
            if (op !== 0xff) throw UNSUPPORTED;
            this.readE(m, os, false, "a");
            this.push(os, "a");
            return;
          default:
            throw UNSUPPORTED;
        }
      }
      default:
        throw UNSUPPORTED;
    }
  }

  /** IMUL reg, a, b (a and b in locals); arith.ts imul16/imul32. */
  private imul(bits: number, reg: number): void {
    if (bits === 32) {
      this.code += "r=Math.imul(a,b);t=a*b!==r?2049:0;";
    } else {
      this.code += "r=((a<<16)>>16)*((b<<16)>>16);t=r!==(r<<16)>>16?2049:0;";
    }
    this.setSZP(bits, "r", "t");
    this.code += this.W(bits, reg, "r");
  }

  /** Group 2 shifts and rotates; shift.ts grp2Eb/grp2Ev. */
  private shiftOp(op: number): void {
    const bits = (op & 1) === 0 ? 8 : this.os;
    const m = this.modrm();
    const k = m.reg;
    this.readE(m, bits, true, "a");
    if (op === 0xd2 || op === 0xd3) {
      this.flush();
      this.code += "t=g1&31;if(t!==0){";
      if (bits === 32 && k >= 4 && k !== 6) {
        if (k === 4) this.code += "r=a<<t;v=(a>>>(32-t))&1;cpu.setSZP(r,32,v|((((r>>>31)^v)&1)<<11));";
        else if (k === 5) this.code += "r=a>>>t;cpu.setSZP(r,32,((a>>>(t-1))&1)|(((((r<<1)^r)>>>31)&1)<<11));";
        else this.code += "r=a>>t;cpu.setSZP(r,32,(a>>(t-1))&1);";
      } else if (bits === 32 && k === 6) {
        this.code += "r=a<<t;v=(a>>>(32-t))&1;cpu.setSZP(r,32,v|((((r>>>31)^v)&1)<<11));";
      } else {
        this.code += `r=SH(cpu,${k},a,t,${bits});`;
      }
      this.writeBack(m, bits, "r");
      this.code += "}";
      return;
    }
    const count = (op === 0xd0 || op === 0xd1 ? 1 : this.u8()) & 31;
    if (count === 0) return;
    if (bits === 32 && (k === 4 || k === 6)) {
      this.code += `r=a<<${count};t=(a>>>${32 - count})&1;`;
      this.setSZP(32, "r", "t|((((r>>>31)^t)&1)<<11)");
    } else if (bits === 32 && k === 5) {
      this.code += `r=a>>>${count};`;
      this.setSZP(32, "r", `((a>>>${count - 1})&1)|(((((r<<1)^r)>>>31)&1)<<11)`);
    } else if (bits === 32 && k === 7) {
      this.code += `r=a>>${count};`;
      this.setSZP(32, "r", `(a>>${count - 1})&1`);
    } else {
      this.flush();
      this.code += `r=SH(cpu,${k},a,${count},${bits});`;
    }
    this.writeBack(m, bits, "r");
  }

  private twoByte(op: number): void {
    const os = this.os;
    if (op >= 0x80 && op < 0x90) {
      if (os !== 32) throw UNSUPPORTED;
      const d = this.s32();
      this.branch(this.cond(op & 15), this.pos - this.phys + d);
      return;
    }
    if (op >= 0x90 && op < 0xa0) {
      const m = this.modrm();
      const c = this.cond(op & 15);
      this.code += `v=${c}?1:0;`;
      this.writeE(m, 8, "v");
      return;
    }
    if (op >= 0x40 && op < 0x50) {
      const m = this.modrm();
      this.readE(m, os, false);
      const c = this.cond(op & 15); // may append a flush to this.code: evaluate first
      this.code += `if(${c}){${this.W(os, m.reg, "v")}}`;
      return;
    }
    if (op >= 0xc8) {
      const r = op & 7;
      this.code += `v=g${r};g${r}=((v>>>24)|((v>>8)&65280)|((v&65280)<<8)|(v<<24))|0;`;
      return;
    }
    switch (op) {
      case 0xaf: {
        const m = this.modrm();
        this.code += `a=${this.R(os, m.reg)};`;
        this.readE(m, os, false, "b");
        this.imul(os, m.reg);
        return;
      }
      case 0xb6:
      case 0xb7:
      case 0xbe:
      case 0xbf: {
        const m = this.modrm();
        const src = (op & 1) === 0 ? 8 : 16;
        this.readE(m, src, false);
        const val = op < 0xb8 ? "v" : src === 8 ? "(v<<24)>>24" : "(v<<16)>>16";
        this.code += this.W(os, m.reg, val);
        return;
      }
      default:
        throw UNSUPPORTED;
    }
  }
}

