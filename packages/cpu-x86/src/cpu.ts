/**
 * The i686 CPU core: register file, lazy flags, segmentation, paging with a software TLB,
 * exception and interrupt delivery, and the run loop. Instruction semantics live in
 * `instructions/`, dispatched through the table built from `opcodeTable.ts`.
 *
 * References: [SDM] Intel SDM Vol. 1-3A. Design follows v86 and Bochs: typed-array
 * registers, lazily computed arithmetic flags, a TLB indexed by linear page number.
 */
import type { GuestMemory, InterruptController, Snapshottable, Vcpu, VcpuExit } from "@paravirt/vm-interfaces";
import { CR0, CR4, EFER, EXC, MSR, PFEC, PTE, SYS_DESC } from "./registers.ts";
import { buildDispatch, LOCKABLE, type Handler } from "./opcodeTable.ts";
import { descBase, descLimit } from "./descriptor.ts";
import { X86CpuError } from "./errors.ts";
import { BlockCache, compileBlock, type Block } from "./compiler.ts";

// Module-local copies of FLAG/SEG values: literals fold into optimized code, imported
// object properties do not. [SDM Vol.1 3.4.3 EFLAGS; Vol.2 3.1.1.3 Sreg order]
const F_AC = 0x40000;
const F_AF = 0x10;
const F_CF = 0x1;
const F_DF = 0x400;
const F_ID = 0x200000;
const F_IF = 0x200;
const F_IOPL = 0x3000;
const F_NT = 0x4000;
const F_OF = 0x800;
const F_ONE = 0x2;
const F_PF = 0x4;
const F_RF = 0x10000;
const F_SF = 0x80;
const F_TF = 0x100;
const F_VIF = 0x80000;
const F_VIP = 0x100000;
const F_VM = 0x20000;
const F_ZF = 0x40;
const S_CS = 1;
const S_DS = 3;
const S_ES = 0;
const S_FS = 4;
const S_GS = 5;
const S_SS = 2;

/** A port-I/O bus as the CPU sees it (an `IoBus` fits). */
export interface PortBus {
  read(port: number, size: 1 | 2 | 4): number;
  write(port: number, size: 1 | 2 | 4, value: number): void;
}

/** Options for {@link X86Cpu}. */
export interface X86CpuOptions {
  /** Physical memory. Its `view()` is used to find contiguous RAM from address 0 for a fast path. */
  readonly memory: GuestMemory;
  /** Port I/O; without one, reads return all ones and writes are dropped. */
  readonly io?: PortBus;
  /** Polled between instructions while EFLAGS.IF=1. */
  readonly interrupts?: InterruptController;
  /** Bytes of RAM at physical 0 to use through `memory.view()` (default: probed). */
  readonly ramSize?: number;
  /**
   * Compile hot straight-line code in RAM to JavaScript blocks (default {@link X86Cpu.compilerDefaults}).
   * `false` runs the interpreter only.
   */
  readonly compiler?: boolean;
  /**
   * Executions of an instruction address before a block is compiled there (default
   * {@link X86Cpu.compilerDefaults}); 0 compiles on first execution.
   */
  readonly compileThreshold?: number;
}

/** Segment register state: selector plus the descriptor cache. */
export interface SegmentState {
  readonly selector: number;
  readonly base: number;
  readonly limit: number;
  /** Access rights: descriptor bits 40-47 in 0-7 and bits 52-55 (AVL, L, D/B, G) in 12-15. */
  readonly attributes: number;
}

/** Saved CPU state ({@link X86Cpu.saveState}). */
export interface X86CpuState {
  readonly version: 1;
  readonly regs: number[];
  readonly eip: number;
  readonly eflags: number;
  readonly segs: SegmentState[];
  readonly cr: number[];
  readonly dr: number[];
  readonly gdtr: [number, number];
  readonly idtr: [number, number];
  readonly ldtr: SegmentState;
  readonly tr: SegmentState;
  readonly efer: number;
  readonly tsc: number;
  readonly halted: boolean;
  readonly fpu: { cw: number; sw: number; tw: number };
  readonly msrs: [number, number, number][];
  readonly instructionsRetired: number;
}

/** Prefix bytes. [SDM Vol.2 2.1.1] */
const PREFIX = new Uint8Array(256);
for (const p of [0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]) PREFIX[p] = 1;

/** Thrown internally to unwind an instruction that raised an exception. */
const FAULT = { fault: true } as const;

/** Parity flag lookup for the low byte of a result. [SDM Vol.1 3.4.3.1 PF] */
const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i;
  b ^= b >> 4;
  b ^= b >> 2;
  b ^= b >> 1;
  PARITY[i] = (b & 1) === 0 ? F_PF : 0;
}

/** Byte-register number (ModRM order AL,CL,DL,BL,AH,CH,DH,BH) to byte offset in the register file. */
export const R8 = new Uint8Array([0, 4, 8, 12, 1, 5, 9, 13]);

// TLB entry bits (our own encoding, low 12 bits of an entry; the frame is in bits 12-31).
const T_V = 1; // valid
const T_WS = 2; // writable at supervisor level (RW, or CR0.WP=0)
const T_U = 4; // user accessible
const T_WU = 8; // writable at user level
const T_D = 16; // dirty already set
const T_G = 32; // global
const T_X = 64; // executable (not XD)

const ACC_R = 0;
const ACC_W = 1;
const ACC_X = 2;

const LAZY_ALL = F_CF | F_PF | F_AF | F_ZF | F_SF | F_OF;
const LAZY_SZP = F_PF | F_ZF | F_SF;

/** How a task switch was started. [SDM Vol.3A 7.3 Table 7-2] */
const TS_JMP = 0;
const TS_CALL = 1; // CALL, INT n, exceptions and interrupts through task gates
const TS_IRET = 2;

/** Exit codes while running. */
const EXIT_NONE = 0;
const EXIT_HALT = 1;
const EXIT_INTERCEPT = 2;
const EXIT_TRIPLE = 3;
const EXIT_STOP = 4;

/**
 * An i686-class CPU (integer ISA, protected mode, 2-level and PAE paging, rings 0-3).
 *
 * **Guest-visible behaviour:** guest errors become exceptions delivered through the IVT/IDT;
 * a fault while delivering a double fault stops `run` with "triple-fault". Not modelled: task
 * switches through task gates/TSS descriptors (raise #GP), virtual-8086 mode, SSE, the x87
 * beyond control/status words.
 */
export class X86Cpu implements Vcpu, Snapshottable<X86CpuState> {
  // ---- register file
  readonly regs = new Int32Array(8);
  readonly r16 = new Uint16Array(this.regs.buffer);
  readonly r8 = new Uint8Array(this.regs.buffer);
  /** Instruction pointer (held signed; read `eipU`). */
  eip = 0;
  /** EFLAGS bits that are not lazy (see `lazy`). */
  flags = F_ONE;
  /** Mask of arithmetic flags whose value must be computed from lz* fields. */
  lazy = 0;
  lzA = 0;
  lzB = 0;
  lzR = 0;
  lzBits = 8;
  lzSub = 0;

  // ---- segments (ES CS SS DS FS GS)
  readonly segSel = new Uint16Array(6);
  readonly segBase = new Int32Array(6);
  readonly segLimit = new Float64Array(6);
  readonly segAttr = new Uint16Array(6);
  /** 1 when the segment cannot be used (null selector in protected mode). */
  readonly segBad = new Uint8Array(6);
  /** 1 when writes fault (code or read-only data segment in protected mode). */
  readonly segRO = new Uint8Array(6);
  /** 1 for expand-down data segments (slow limit check). */
  readonly segDown = new Uint8Array(6);
  /** segBad | segDown: take the slow address path. */
  readonly segSlow = new Uint8Array(6);
  /** CS.D: default operand/address size (0/1). */
  csDb = 0;
  /** SS.B: 32-bit stack pointer (0/1). */
  ssDb = 0;
  cpl = 0;

  // ---- system registers
  cr0 = CR0.ET | CR0.CD | CR0.NW;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  readonly dr = new Int32Array(8);
  efer = 0;
  gdtrBase = 0;
  gdtrLimit = 0xffff;
  idtrBase = 0;
  idtrLimit = 0x3ff;
  ldtrSel = 0;
  ldtrBase = 0;
  ldtrLimit = 0;
  trSel = 0;
  trBase = 0;
  trLimit = 0;
  trType: number = SYS_DESC.TSS32_BUSY;
  tsc = 0;
  readonly msrs = new Map<number, [number, number]>();
  fpuCw = 0x37f;
  fpuSw = 0;
  fpuTw = 0xffff;

  // ---- decoder state of the current instruction
  os32 = 0;
  as32 = 0;
  segOv = -1;
  rep = 0;
  mrm = 0;
  ea = 0;
  eaSeg: number = S_DS;
  instrStart = 0;
  prefixCount = 0;
  /** Set when prefixes (or a CS.D change) left decoder state to reset before the next instruction. */
  prefixed = 1;

  // ---- memory
  readonly mem: GuestMemory;
  ram: Uint8Array;
  ramSize: number;
  readonly io: PortBus | undefined;
  readonly pic: InterruptController | undefined;
  paging = false;
  pae = false;
  readonly tlb = new Int32Array(1 << 20);
  private readonly tlbList = new Int32Array(8192);
  private tlbCount = 0;
  private readonly need = new Int32Array(3);
  /** Fetch window: EIP values [fetchLo, fetchLo + fetchLen) are at fetchArr[fetchBase + (eip - fetchLo)]. */
  private fetchLo = 0;
  private fetchLen = 0;
  private fetchBase = 0;
  private fetchArr: Uint8Array;
  /** Aligned 32-bit view of RAM (when its byte offset allows). */
  private ram32: Int32Array;
  /** 0 when ram32 is usable (compared with p & 3), else 4, which no address matches. */
  private align = 0;
  private readonly romPage = new Uint8Array(4096);
  private readonly scratch = new Uint8Array(8);

  // ---- run state
  halted = false;
  private exit = EXIT_NONE;
  private exitVector = 0;
  private exitDetail = "";
  private stopRequested = false;
  /** Set while an STI/MOV SS shadow blocks interrupts for one instruction. */
  private intShadow = false;
  /** Instructions retired since creation (also the TSC's clock). */
  count = 0;
  private faultVec = -1;
  private faultErr = -1;
  /** `int n` vectors that stop `run` with "intercept" instead of going through the IDT/IVT. */
  readonly intercepted = new Uint8Array(256);

  private readonly dispatch: Handler[];

  /**
   * Defaults for the `compiler` and `compileThreshold` options of CPUs created afterwards
   * (tests switch them to run whole suites interpreted or compiled on first execution).
   */
  static readonly compilerDefaults = { enabled: true, threshold: 4000 };

  // ---- block compiler (compiler.ts)
  /** Compiled blocks by physical page, and which bytes of each page they were decoded from. */
  readonly blocks: BlockCache;
  /** 1 for RAM pages holding compiled code: stores into them check for invalidation. */
  readonly codePages: Uint8Array;
  /** Set when a store dropped compiled code (a running block stops after its instruction). */
  smc = 0;
  /**
   * Bumped whenever memory may have changed without a CPU store (run() entry, port I/O, MMIO,
   * interrupt acknowledge): a block re-checks its bytes against RAM on first use after a bump.
   */
  codeEpoch = 0;
  /** The mode bits a block is compiled for: CS.D, SS.B, CPL, paging, CR0.PE. */
  blockMode = 0;
  /**
   * With the compiler on, instructions run by the interpreter's main loop (the rest of
   * `instructionsRetired` ran in blocks, or single-stepped); the interpreter-only loop keeps no count.
   */
  interpreted = 0;
  /** Calls of compiled blocks. */
  blockRuns = 0;
  private readonly compileOn: boolean;
  private readonly threshold: number;
  private readonly hot = new Uint16Array(1 << 16);

  constructor(options: X86CpuOptions) {
    this.mem = options.memory;
    this.io = options.io;
    this.pic = options.interrupts;
    this.dispatch = buildDispatch();
    const ram = findRam(options.memory, options.ramSize);
    this.ram = ram;
    this.ramSize = ram.length;
    this.fetchArr = ram;
    const aligned = ram.byteOffset % 4 === 0;
    this.ram32 = aligned ? new Int32Array(ram.buffer, ram.byteOffset, ram.length >> 2) : new Int32Array(0);
    this.align = aligned ? 0 : 4;
    this.codePages = new Uint8Array((ram.length >>> 12) + 1);
    this.blocks = new BlockCache(this.codePages);
    this.compileOn = (options.compiler ?? X86Cpu.compilerDefaults.enabled) && aligned && ram.length > 0;
    this.threshold = Math.min(65535, Math.max(0, options.compileThreshold ?? X86Cpu.compilerDefaults.threshold));
    this.reset();
  }

  /** Internal views the generated code binds at compile time. */
  get jitView(): { ram: Uint8Array; ram32: Int32Array; tlb: Int32Array; parity: Uint8Array } {
    return { ram: this.ram, ram32: this.ram32, tlb: this.tlb, parity: PARITY };
  }

  // ======================================================================== public API

  /** Instructions retired since creation. */
  get instructionsRetired(): number {
    return this.count;
  }

  /** EIP as an unsigned number. */
  get eipU(): number {
    return this.eip >>> 0;
  }

  /** Power-on state: real mode at F000:FFF0 with CS base 0xFFFF0000. [SDM Vol.3A 9.1.1 Table 9-1] */
  reset(): void {
    this.regs.fill(0);
    this.regs[2] = 0x0633; // EDX = family/model/stepping signature [SDM Vol.3A 9.1.4]
    this.eip = 0xfff0;
    this.flags = F_ONE;
    this.lazy = 0;
    for (let s = 0; s < 6; s++) this.setSegRaw(s, 0, 0, 0xffff, 0x93);
    this.setSegRaw(S_CS, 0xf000, 0xffff0000 | 0, 0xffff, 0x9b);
    this.cr0 = CR0.ET | CR0.CD | CR0.NW;
    this.cr2 = this.cr3 = this.cr4 = 0;
    this.efer = 0;
    this.dr.fill(0);
    this.dr[6] = 0xffff0ff0 | 0;
    this.dr[7] = 0x400;
    this.gdtrBase = 0;
    this.gdtrLimit = 0xffff;
    this.idtrBase = 0;
    this.idtrLimit = 0x3ff;
    this.ldtrSel = this.ldtrBase = this.ldtrLimit = 0;
    this.trSel = this.trBase = 0;
    this.trLimit = 0xffff;
    this.cpl = 0;
    this.halted = false;
    this.fpuCw = 0x37f;
    this.fpuSw = 0;
    this.fpuTw = 0xffff;
    this.pagingChanged();
  }

  /** Makes `int vector` stop `run` with reason "intercept" (EIP already past the INT). */
  interceptVector(vector: number, on = true): void {
    this.intercepted[vector & 0xff] = on ? 1 : 0;
  }

  /**
   * Makes exception `vector` (0-31) stop `run` with reason "intercept" instead of going through
   * the IDT: a paravirtual hypervisor handles guest faults itself and bounces them to the
   * guest's trap table. EIP is left at the faulting instruction (at the next one for traps),
   * CR2 is set for #PF; {@link lastIntercept} holds the error code.
   */
  interceptException(vector: number, on = true): void {
    this.interceptedExc[vector & 31] = on ? 1 : 0;
  }

  /** What the last "intercept" exit was: `int n` in the guest, or an intercepted exception. */
  readonly lastIntercept = { kind: "software" as "software" | "exception", vector: 0, errorCode: -1 };
  private readonly interceptedExc = new Uint8Array(32);

  requestStop(): void {
    this.stopRequested = true;
    if (this.exit === EXIT_NONE) this.exit = EXIT_STOP;
  }

  /** Runs at most `budget` instructions. */
  run(budget: number): VcpuExit {
    this.stopRequested = false;
    this.exit = EXIT_NONE;
    this.codeEpoch++; // the embedder may have written code since the last run
    // Progress is counted in this.count (also the TSC), which survives a fault thrown out of loop().
    const start = this.count;
    const limit = start + budget;
    while (this.count < limit) {
      if (this.halted) {
        if ((this.flags & F_IF) !== 0 && this.pic !== undefined && this.pic.hasPending()) {
          this.halted = false;
          this.pollCountdown = 0;
        } else {
          return { reason: "halt", executed: this.count - start };
        }
      }
      try {
        if (this.compileOn) this.loopCompiled(limit);
        else this.loop(limit);
      } catch (e) {
        if (e !== FAULT) throw e;
        this.count++; // the faulting instruction
        this.handleFault();
      }
      if (this.exit !== EXIT_NONE || this.stopRequested) break;
    }
    const n = this.count - start;
    const exit = this.exit;
    this.exit = EXIT_NONE;
    if (exit === EXIT_HALT) return { reason: "halt", executed: n };
    if (exit === EXIT_INTERCEPT) return { reason: "intercept", vector: this.exitVector, executed: n };
    if (exit === EXIT_TRIPLE) return { reason: "triple-fault", executed: n, detail: this.exitDetail };
    if (this.stopRequested) return { reason: "stopped", executed: n };
    return { reason: "budget", executed: n };
  }

  /**
   * Starts an instruction at EIP: records its start, clears the last one's prefixes and makes
   * sure the fetch window holds EIP (wrapping IP to 16 bits in 16-bit code); returns the offset
   * of the opcode byte in the window.
   */
  private boundary(): number {
    const eip = this.eip;
    this.instrStart = eip;
    if (this.prefixed !== 0) this.resetPrefixes();
    // Inline fetch of the opcode byte (see fetch8).
    const off = (eip - this.fetchLo) | 0;
    if (off >>> 0 < this.fetchLen) return off;
    const e = this.csDb === 0 ? (this.instrStart = this.eip = eip & 0xffff) : eip;
    return this.refillFetch(e);
  }

  /**
   * The interpreter's run loop (compiler off): one instruction per iteration, with nothing of
   * the compiler's bookkeeping on its path.
   */
  private loop(limit: number): void {
    const dispatch = this.dispatch;
    const pic = this.pic;
    let count = this.count;
    while (count < limit) {
      // TF set, or IF set with a controller due for a poll: the slow path polls and single-steps.
      const f = this.flags;
      if ((f & F_TF) !== 0 || ((f & F_IF) !== 0 && pic !== undefined && --this.pollCountdown <= 0)) {
        this.stepSlow();
        count = this.count;
      } else {
        const off = this.boundary();
        const db = this.csDb;
        this.eip = (this.eip + 1) | 0;
        dispatch[this.fetchArr[this.fetchBase + off]! | (db << 8)]!(this);
        this.count = ++count;
      }
      if (this.exit !== EXIT_NONE) break;
    }
  }

  /**
   * The run loop. With the compiler on, at each instruction boundary in RAM a block compiled
   * for this physical address and mode runs when it fits in the budget and in the fetch window
   * (which already ends at the page, the CS limit and the 16-bit IP wrap); otherwise one
   * instruction is interpreted and the address counted toward compilation.
   */
  private loopCompiled(limit: number): void {
    const dispatch = this.dispatch;
    const pic = this.pic;
    const ram = this.ram;
    const hot = this.hot;
    const blocks = this.blocks;
    while (this.count < limit) {
      const f = this.flags;
      if ((f & F_TF) !== 0 || ((f & F_IF) !== 0 && pic !== undefined && --this.pollCountdown <= 0)) {
        this.stepSlow();
      } else {
        const off = this.boundary();
        if (this.fetchArr === ram) {
          const phys = this.fetchBase + off;
          let b: Block | undefined = blocks.get(phys, this.blockMode);
          if (b === undefined) {
            const h = Math.imul(phys, 0x9e3779b1) >>> 16;
            if (hot[h]! >= this.threshold) {
              hot[h] = 0;
              b = compileBlock(this, phys, this.fetchLen - off);
            } else {
              hot[h] = hot[h]! + 1;
            }
          } else if (b.epoch !== this.codeEpoch) {
            b = blocks.verify(b, ram, this.codeEpoch);
          }
          if (b !== undefined && b.n !== 0 && b.n <= limit - this.count && b.len <= this.fetchLen - off) {
            this.smc = 0;
            this.blockRuns++;
            b.fn(this, limit);
            if (this.exit !== EXIT_NONE) break;
            continue;
          }
        }
        this.eip = (this.eip + 1) | 0;
        this.interpreted++;
        dispatch[this.fetchArr[this.fetchBase + off]! | (this.csDb << 8)]!(this);
        this.count++;
      }
      if (this.exit !== EXIT_NONE) break;
    }
  }

  /**
   * Writes lazy flags a compiled block kept in locals (`fk` = kind << 6 | width, see
   * compiler.ts) into the lazy-flag fields, as the interpreter's setters would have.
   */
  jitFlags(fk: number, a: number, b: number, r: number, c: number): void {
    const bits = fk & 63;
    switch (fk >> 6) {
      case 1:
      case 3:
        this.setArith(a, b, r, bits, 0);
        return;
      case 2:
      case 4:
        this.setArith(a, b, r, bits, 1);
        return;
      case 5:
        this.setLogic(r, bits);
        return;
      case 6:
      case 7:
        if (c < 0) {
          this.setArithKeepCF(a, b, r, bits, (fk >> 6) - 6);
        } else {
          this.flags = (this.flags & ~F_CF) | c;
          this.lzA = a;
          this.lzB = b;
          this.lzR = r;
          this.lzBits = bits;
          this.lzSub = (fk >> 6) - 6;
          this.lazy = LAZY_ALL & ~F_CF;
        }
        return;
      case 8:
        this.setSZP(r, bits, c);
        return;
      default:
    }
  }

  /** A store hit a RAM page holding compiled code: drops the page's blocks if it overlaps them. */
  codeWritten(p: number, len: number): void {
    if (this.blocks.written(p, len)) this.smc = 1;
  }

  /**
   * Instructions between polls of the interrupt controller while IF=1. Enabling IF (STI, POPF,
   * IRET) polls at the next boundary; a level raised meanwhile is seen within this many.
   */
  static readonly POLL_INTERVAL = 16;
  pollCountdown = 0;

  /** One instruction with interrupt polling and the TF single-step trap. */
  private stepSlow(): void {
    const pic = this.pic;
    // Poll again right after an interrupt shadow ends; otherwise every POLL_INTERVAL instructions.
    this.pollCountdown = this.intShadow ? 0 : X86Cpu.POLL_INTERVAL;
    if ((this.flags & F_IF) !== 0 && pic !== undefined && !this.intShadow && pic.hasPending()) {
      const v = pic.acknowledge();
      this.codeEpoch++;
      this.halted = false;
      this.instrStart = this.eip;
      this.interrupt(v, false, -1, false);
    }
    this.intShadow = false;
    const tf = this.flags & F_TF;
    this.instrStart = this.eip;
    this.resetPrefixes();
    this.dispatch[this.fetch8() | (this.os32 << 8)]!(this);
    this.count++;
    if (tf !== 0) {
      this.dr[6] |= 0x4000;
      this.interrupt(EXC.DB, false, -1, false);
    }
  }

  /** Back to the default decoder state (no prefixes, CS.D sizes). */
  private resetPrefixes(): void {
    this.prefixed = 0;
    this.os32 = this.csDb;
    this.as32 = this.csDb;
    this.segOv = -1;
    this.rep = 0;
    this.prefixCount = 0;
  }

  /** Dispatches the next opcode byte after a prefix. */
  dispatchNext(): void {
    this.prefixed = 1;
    if (++this.prefixCount >= 15) this.fault(EXC.GP, 0); // [SDM Vol.2 2.3.11] 15-byte limit
    this.dispatch[this.fetch8() | (this.os32 << 8)]!(this);
  }

  /** LOCK: #UD unless the instruction accepts LOCK and has a memory destination. [SDM Vol.2 LOCK] */
  lockPrefix(): void {
    const save = this.eip;
    let op = this.fetch8();
    for (let n = 0; n < 14 && PREFIX[op] !== 0; n++) op = this.fetch8();
    const idx = op === 0x0f ? 256 | this.fetch8() : op;
    const m = this.fetch8();
    this.eip = save;
    if (LOCKABLE[idx] === 0 || m >= 0xc0) this.fault(EXC.UD, -1);
    this.dispatchNext();
  }

  /** Blocks interrupts until after the next instruction (STI, MOV/POP SS). */
  inhibitInterrupts(): void {
    this.intShadow = true;
    this.pollCountdown = 0;
  }

  /** Time-stamp counter: one tick per retired instruction plus the WRMSR offset. */
  readTsc(): number {
    return this.tsc + this.count;
  }

  /** Dispatches a two-byte (0F xx) opcode. */
  dispatch0F(): void {
    this.dispatch[512 | this.fetch8() | (this.os32 << 8)]!(this);
  }

  // ======================================================================== exits

  hlt(): void {
    if (this.cpl !== 0) this.fault(EXC.GP, 0);
    this.halted = true;
    this.exit = EXIT_HALT;
  }

  // ======================================================================== flags

  /** The full EFLAGS value. */
  getFlags(): number {
    const lazy = this.lazy;
    if (lazy === 0) return this.flags;
    return (this.flags & ~lazy) | (this.computeFlags() & lazy);
  }

  private computeFlags(): number {
    const bits = this.lzBits;
    const r = this.lzR;
    const sh = bits - 1;
    const mask = bits === 32 ? -1 : (1 << bits) - 1;
    let f = PARITY[r & 0xff]!;
    if ((r & mask) === 0) f |= F_ZF;
    f |= ((r >>> sh) & 1) << 7;
    const lazy = this.lazy;
    if ((lazy & (F_CF | F_OF | F_AF)) !== 0) {
      const a = this.lzA;
      const b = this.lzB;
      f |= (a ^ b ^ r) & F_AF;
      if (this.lzSub !== 0) {
        f |= ((~a & b) | ((~a | b) & r)) >>> sh & 1;
        f |= (((a ^ b) & (a ^ r)) >>> sh & 1) << 11;
      } else {
        f |= ((a & b) | ((a | b) & ~r)) >>> sh & 1;
        f |= (((a ^ r) & (b ^ r)) >>> sh & 1) << 11;
      }
    }
    return f;
  }

  /** Materializes the lazy flags into `flags`. */
  settleFlags(): void {
    if (this.lazy !== 0) {
      this.flags = this.getFlags();
      this.lazy = 0;
    }
  }

  getCF(): number {
    if ((this.lazy & F_CF) === 0) return this.flags & 1;
    const a = this.lzA;
    const b = this.lzB;
    const r = this.lzR;
    const sh = this.lzBits - 1;
    return this.lzSub !== 0 ? ((~a & b) | ((~a | b) & r)) >>> sh & 1 : ((a & b) | ((a | b) & ~r)) >>> sh & 1;
  }

  getZF(): boolean {
    if ((this.lazy & F_ZF) === 0) return (this.flags & F_ZF) !== 0;
    const bits = this.lzBits;
    return (this.lzR & (bits === 32 ? -1 : (1 << bits) - 1)) === 0;
  }

  getSF(): boolean {
    if ((this.lazy & F_SF) === 0) return (this.flags & F_SF) !== 0;
    return ((this.lzR >>> (this.lzBits - 1)) & 1) !== 0;
  }

  getOF(): boolean {
    if ((this.lazy & F_OF) === 0) return (this.flags & F_OF) !== 0;
    return (this.computeFlags() & F_OF) !== 0;
  }

  getPF(): boolean {
    if ((this.lazy & F_PF) === 0) return (this.flags & F_PF) !== 0;
    return PARITY[this.lzR & 0xff] !== 0;
  }

  /** Condition code `cc` (0-15, the low nibble of Jcc/SETcc/CMOVcc). [SDM Vol.2 Appendix B.1.4.7] */
  cond(cc: number): boolean {
    let r: boolean;
    switch (cc >> 1) {
      case 0: r = this.getOF(); break;
      case 1: r = this.getCF() !== 0; break;
      case 2: r = this.getZF(); break;
      case 3: r = this.getCF() !== 0 || this.getZF(); break;
      case 4: r = this.getSF(); break;
      case 5: r = this.getPF(); break;
      case 6: r = this.getSF() !== this.getOF(); break;
      default: r = this.getZF() || this.getSF() !== this.getOF(); break;
    }
    return (cc & 1) !== 0 ? !r : r;
  }

  /** Records an add (`sub`=0) or subtract (`sub`=1) of width `bits` for lazy flags. */
  setArith(a: number, b: number, r: number, bits: number, sub: number): void {
    this.lzA = a;
    this.lzB = b;
    this.lzR = r;
    this.lzBits = bits;
    this.lzSub = sub;
    this.lazy = LAZY_ALL;
  }

  /** Like setArith but CF keeps its value (INC/DEC). */
  setArithKeepCF(a: number, b: number, r: number, bits: number, sub: number): void {
    const cf = this.getCF();
    this.flags = (this.flags & ~F_CF) | cf;
    this.lzA = a;
    this.lzB = b;
    this.lzR = r;
    this.lzBits = bits;
    this.lzSub = sub;
    this.lazy = LAZY_ALL & ~F_CF;
  }

  /** Logic result: CF=OF=AF=0, SF/ZF/PF from `r`. */
  setLogic(r: number, bits: number): void {
    this.flags &= ~(F_CF | F_OF | F_AF | LAZY_SZP);
    this.lzR = r;
    this.lzBits = bits;
    this.lazy = LAZY_SZP;
  }

  /** SF/ZF/PF from `r`, the other arithmetic flags set eagerly to `others` (CF/OF/AF bits). */
  setSZP(r: number, bits: number, others: number): void {
    this.flags = (this.flags & ~LAZY_ALL) | (others & (F_CF | F_OF | F_AF));
    this.lzR = r;
    this.lzBits = bits;
    this.lazy = LAZY_SZP;
  }

  /** Sets or clears one non-lazy flag bit after materializing. */
  setFlagBit(bit: number, on: boolean): void {
    this.settleFlags();
    if (on) this.flags |= bit;
    else this.flags &= ~bit;
  }

  /**
   * Writes EFLAGS as POPF/IRET do, honouring which bits `mask` allows.
   * [SDM Vol.2 POPF: IF only when CPL <= IOPL, IOPL only at CPL 0; VM never]
   */
  writeFlags(value: number, mask: number): void {
    this.settleFlags();
    // Bits that exist on an i686: CF PF AF ZF SF TF IF DF OF IOPL NT RF VM AC VIF VIP ID.
    mask &= 0x3f7fd5;
    this.flags = ((this.flags & ~mask) | (value & mask) | F_ONE) & ~0x8028;
    this.pollCountdown = 0;
  }

  /** The write mask POPF uses at the current privilege. */
  popfMask(os32: number): number {
    let mask = F_CF | F_PF | F_AF | F_ZF | F_SF | F_TF | F_DF | F_OF | F_NT;
    if (os32 !== 0) mask |= F_AC | F_ID;
    if ((this.cr0 & CR0.PE) === 0 || this.cpl === 0) mask |= F_IOPL | F_IF;
    else if (this.cpl <= ((this.flags >> 12) & 3)) mask |= F_IF;
    return os32 !== 0 ? mask : mask & 0xffff;
  }

  // ======================================================================== fetch

  fetch8(): number {
    let e = this.eip;
    let off = (e - this.fetchLo) | 0;
    if (off >>> 0 >= this.fetchLen) {
      if (this.csDb === 0) e = this.eip = e & 0xffff;
      off = this.refillFetch(e);
    }
    this.eip = (e + 1) | 0;
    return this.fetchArr[this.fetchBase + off]!;
  }

  /** Drops the fetch window (CS, paging or code-page changes). */
  flushFetch(): void {
    this.fetchLen = 0;
  }

  fetch16(): number {
    const e = this.eip;
    const off = (e - this.fetchLo) | 0;
    if (off >= 0 && off + 2 <= this.fetchLen) {
      const a = this.fetchArr;
      const b = this.fetchBase + off;
      this.eip = (e + 2) | 0;
      return a[b]! | (a[b + 1]! << 8);
    }
    const lo = this.fetch8();
    return lo | (this.fetch8() << 8);
  }

  fetch32(): number {
    const e = this.eip;
    const off = (e - this.fetchLo) | 0;
    if (off >= 0 && off + 4 <= this.fetchLen) {
      const a = this.fetchArr;
      const b = this.fetchBase + off;
      this.eip = (e + 4) | 0;
      return a[b]! | (a[b + 1]! << 8) | (a[b + 2]! << 16) | (a[b + 3]! << 24);
    }
    const lo = this.fetch16();
    return (lo | (this.fetch16() << 16)) | 0;
  }

  /** Signed 8-bit immediate. */
  fetchS8(): number {
    return (this.fetch8() << 24) >> 24;
  }

  /** Maps the code page holding EIP `e`; returns e's offset in the new window. */
  private refillFetch(e: number): number {
    const csLimit = this.segLimit[1]!;
    if (e >>> 0 > csLimit) this.fault(EXC.GP, 0); // fetch beyond the CS limit [SDM Vol.3A 5.3]
    const lin = (this.segBase[1]! + e) | 0;
    const phys = this.paging ? this.translate(lin, ACC_X) : lin >>> 0;
    const pageOff = lin & 0xfff;
    const page = (phys - pageOff) >>> 0;
    let lo = (e - pageOff) | 0;
    let len = 4096;
    if (this.csDb === 0) {
      // 16-bit IP wraps at 64 KiB: never let the window cross it.
      if (lo < 0) {
        len += lo;
        lo = 0;
      }
      if (lo + len > 0x10000) len = 0x10000 - lo;
    }
    if ((lo >>> 0) + len - 1 > csLimit) len = csLimit - (lo >>> 0) + 1;
    if (page + 4096 <= this.ramSize) {
      this.fetchArr = this.ram;
      this.fetchBase = page + (lo - ((e - pageOff) | 0));
    } else {
      const v = this.mem.view?.(page, 4096, false);
      if (v !== undefined) {
        this.fetchArr = v;
      } else {
        // Copy the page (MMIO or ROM without a view) in 256-byte pieces; unmapped pieces read as
        // all ones (open bus).
        const buf = this.romPage;
        for (let i = 0; i < 4096; i += 256) {
          const piece = buf.subarray(i, i + 256);
          try {
            this.mem.read(page + i, piece);
          } catch {
            piece.fill(0xff);
          }
        }
        this.fetchArr = buf;
      }
      this.fetchBase = lo - ((e - pageOff) | 0);
    }
    this.fetchLo = lo;
    this.fetchLen = len;
    return (e - lo) | 0;
  }

  // ======================================================================== physical memory

  /** Page number that last failed as unmapped (-1: none): repeated misses skip the throw. */
  private unmappedPage = -1;

  physRead8(p: number): number {
    p >>>= 0;
    if (p < this.ramSize) return this.ram[p]!;
    if (p >>> 12 === this.unmappedPage) return 0xff;
    this.codeEpoch++; // a device may write RAM
    try {
      return this.mem.readU8(p);
    } catch (e) {
      if ((e as { kind?: string }).kind === "unmapped") this.unmappedPage = p >>> 12;
      return 0xff; // open bus
    }
  }

  /** Forgets cached knowledge of the physical memory map (after the embedder changes it). */
  memoryMapChanged(): void {
    this.unmappedPage = -1;
    this.fetchLen = 0;
    this.codeEpoch++;
  }

  physWrite8(p: number, v: number): void {
    p >>>= 0;
    if (p < this.ramSize) {
      this.ram[p] = v;
      if (this.codePages[p >>> 12] !== 0) this.codeWritten(p, 1);
      return;
    }
    if (p >>> 12 === this.unmappedPage) return;
    this.codeEpoch++;
    try {
      this.mem.writeU8(p, v & 0xff);
    } catch (e) {
      // Writes to unmapped or read-only physical memory are dropped.
      if ((e as { kind?: string }).kind === "unmapped") this.unmappedPage = p >>> 12;
    }
    if (this.fetchArr === this.romPage) this.fetchLen = 0; // the write may hit the copied code page
  }

  physRead32(p: number): number {
    p >>>= 0;
    if (p + 3 < this.ramSize) {
      const r = this.ram;
      return r[p]! | (r[p + 1]! << 8) | (r[p + 2]! << 16) | (r[p + 3]! << 24);
    }
    return this.physRead8(p) | (this.physRead8(p + 1) << 8) | (this.physRead8(p + 2) << 16) | (this.physRead8(p + 3) << 24);
  }

  physWrite32(p: number, v: number): void {
    this.physWrite8(p, v);
    this.physWrite8(p + 1, v >>> 8);
    this.physWrite8(p + 2, v >>> 16);
    this.physWrite8(p + 3, v >>> 24);
  }

  // ======================================================================== paging

  /** Recomputes paging mode and flushes the TLB after CR0/CR4/EFER changes. */
  pagingChanged(): void {
    this.paging = (this.cr0 & CR0.PG) !== 0 && (this.cr0 & CR0.PE) !== 0;
    this.pae = (this.cr4 & CR4.PAE) !== 0;
    this.flushTlb(true);
    this.updateNeed();
  }

  /** Recomputes TLB permission masks for the current CPL. */
  updateNeed(): void {
    const user = this.cpl === 3;
    this.need[ACC_R] = user ? T_V | T_U : T_V;
    this.need[ACC_W] = user ? T_V | T_U | T_WU | T_D : T_V | T_WS | T_D;
    this.need[ACC_X] = user ? T_V | T_U | T_X : T_V | T_X;
    this.updateMode();
  }

  /** Recomputes {@link blockMode} (after CS/SS, CPL, paging or CR0.PE changes). */
  private updateMode(): void {
    this.blockMode = this.csDb | (this.ssDb << 1) | (this.cpl << 2) | (this.paging ? 16 : 0) | ((this.cr0 & CR0.PE) !== 0 ? 32 : 0);
  }

  /** Drops TLB entries: all, or (all=false) those not global. */
  flushTlb(all: boolean): void {
    const keepGlobal = !all && (this.cr4 & CR4.PGE) !== 0;
    if (this.tlbCount >= this.tlbList.length) {
      if (keepGlobal) {
        const t = this.tlb;
        for (let i = 0; i < t.length; i++) if ((t[i]! & T_G) === 0) t[i] = 0;
      } else {
        this.tlb.fill(0);
      }
      this.tlbCount = 0;
    } else {
      let kept = 0;
      for (let i = 0; i < this.tlbCount; i++) {
        const vpn = this.tlbList[i]!;
        if (keepGlobal && (this.tlb[vpn]! & T_G) !== 0) this.tlbList[kept++] = vpn;
        else this.tlb[vpn] = 0;
      }
      this.tlbCount = kept;
    }
    this.fetchLen = 0;
  }

  /** INVLPG. */
  invlpg(lin: number): void {
    this.tlb[lin >>> 12] = 0;
    this.fetchLen = 0;
  }

  /** Linear to physical for access kind `acc`, through the TLB. Faults #PF. */
  translate(lin: number, acc: number): number {
    const e = this.tlb[lin >>> 12]!;
    const need = this.need[acc]!;
    if ((e & need) === need) return ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
    return this.walk(lin, acc, this.cpl === 3);
  }

  /**
   * The physical address that linear address `lin` maps to under the current CR3/CR4, or
   * undefined when it is not present. Reads the tables without setting A/D bits, touching the
   * TLB or raising #PF: for embedders (a hypervisor copying hypercall arguments).
   */
  peekTranslate(lin: number): number | undefined {
    lin >>>= 0;
    if (!this.paging) return lin;
    if (!this.pae) {
      const pde = this.physRead32(((this.cr3 & ~0xfff) + ((lin >>> 22) << 2)) >>> 0);
      if ((pde & PTE.P) === 0) return undefined;
      if ((pde & PTE.PS) !== 0 && (this.cr4 & CR4.PSE) !== 0) return ((pde & 0xffc00000) | (lin & 0x3fffff)) >>> 0;
      const pte = this.physRead32(((pde & ~0xfff) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0);
      return (pte & PTE.P) === 0 ? undefined : ((pte & ~0xfff) | (lin & 0xfff)) >>> 0;
    }
    const pdpte = this.physRead32(((this.cr3 & ~0x1f) + ((lin >>> 30) << 3)) >>> 0);
    if ((pdpte & PTE.P) === 0) return undefined;
    const pde = this.physRead32(((pdpte & ~0xfff) + (((lin >>> 21) & 0x1ff) << 3)) >>> 0);
    if ((pde & PTE.P) === 0) return undefined;
    if ((pde & PTE.PS) !== 0) return ((pde & 0xffe00000) | (lin & 0x1fffff)) >>> 0;
    const pte = this.physRead32(((pde & ~0xfff) + (((lin >>> 12) & 0x1ff) << 3)) >>> 0);
    return (pte & PTE.P) === 0 ? undefined : ((pte & ~0xfff) | (lin & 0xfff)) >>> 0;
  }

  /** A supervisor-level (implicit, e.g. descriptor table) translation. */
  private translateSys(lin: number, write: boolean): number {
    if (!this.paging) return lin >>> 0;
    const e = this.tlb[lin >>> 12]!;
    const need = write ? T_V | T_WS | T_D : T_V;
    if ((e & need) === need) return ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
    return this.walk(lin, write ? ACC_W : ACC_R, false);
  }

  /** Page walk [SDM Vol.3A 4.3 (32-bit), 4.4 (PAE)]; sets A/D, fills the TLB or raises #PF. */
  private walk(lin: number, acc: number, user: boolean): number {
    const write = acc === ACC_W;
    const wp = (this.cr0 & CR0.WP) !== 0;
    const nxe = (this.efer & EFER.NXE) !== 0;
    let err = (write ? PFEC.W : 0) | (user ? PFEC.U : 0) | (acc === ACC_X && nxe && this.pae ? PFEC.I : 0);
    let frame: number;
    let rw: boolean;
    let us: boolean;
    let xd = false;
    let global: boolean;
    let dirty: boolean;
    let pteAddr: number;
    let pte: number;
    if (!this.pae) {
      const pdeAddr = ((this.cr3 & ~0xfff) + ((lin >>> 22) << 2)) >>> 0;
      const pde = this.physRead32(pdeAddr);
      if ((pde & PTE.P) === 0) return this.pageFault(lin, err);
      if ((pde & PTE.PS) !== 0 && (this.cr4 & CR4.PSE) !== 0) {
        rw = (pde & PTE.RW) !== 0;
        us = (pde & PTE.US) !== 0;
        frame = ((pde & 0xffc00000) | (lin & 0x3ff000)) >>> 0;
        pteAddr = pdeAddr;
        pte = pde;
        global = (pde & PTE.G) !== 0;
      } else {
        if ((pde & PTE.A) === 0) this.physWrite32(pdeAddr, pde | PTE.A);
        pteAddr = ((pde & ~0xfff) + (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
        pte = this.physRead32(pteAddr);
        if ((pte & PTE.P) === 0) return this.pageFault(lin, err);
        rw = (pde & pte & PTE.RW) !== 0;
        us = (pde & pte & PTE.US) !== 0;
        frame = (pte & ~0xfff) >>> 0;
        global = (pte & PTE.G) !== 0;
      }
    } else {
      const pdpteAddr = ((this.cr3 & ~0x1f) + ((lin >>> 30) << 3)) >>> 0;
      const pdpte = this.physRead32(pdpteAddr);
      if ((pdpte & PTE.P) === 0) return this.pageFault(lin, err);
      const pdeAddr = ((pdpte & ~0xfff) + (((lin >>> 21) & 0x1ff) << 3)) >>> 0;
      const pde = this.physRead32(pdeAddr);
      const pdeHi = this.physRead32(pdeAddr + 4);
      if ((pde & PTE.P) === 0) return this.pageFault(lin, err);
      if (nxe && (pdeHi & PTE.XD_HI) !== 0) xd = true;
      if ((pde & PTE.PS) !== 0) {
        rw = (pde & PTE.RW) !== 0;
        us = (pde & PTE.US) !== 0;
        frame = ((pde & 0xffe00000) | (lin & 0x1ff000)) >>> 0;
        pteAddr = pdeAddr;
        pte = pde;
        global = (pde & PTE.G) !== 0;
      } else {
        if ((pde & PTE.A) === 0) this.physWrite32(pdeAddr, pde | PTE.A);
        pteAddr = ((pde & ~0xfff) + (((lin >>> 12) & 0x1ff) << 3)) >>> 0;
        pte = this.physRead32(pteAddr);
        const pteHi = this.physRead32(pteAddr + 4);
        if ((pte & PTE.P) === 0) return this.pageFault(lin, err);
        if (nxe && (pteHi & PTE.XD_HI) !== 0) xd = true;
        rw = (pde & pte & PTE.RW) !== 0;
        us = (pde & pte & PTE.US) !== 0;
        frame = (pte & ~0xfff) >>> 0;
        global = (pte & PTE.G) !== 0;
      }
    }
    err |= PFEC.P;
    if (user && !us) return this.pageFault(lin, err);
    if (write && !rw && (user || wp)) return this.pageFault(lin, err);
    if (acc === ACC_X && xd) return this.pageFault(lin, err);
    let newPte = pte | PTE.A;
    if (write) newPte |= PTE.D;
    if (newPte !== pte) this.physWrite32(pteAddr, newPte);
    dirty = (newPte & PTE.D) !== 0;
    let e = frame | T_V;
    if (rw || !wp) e |= T_WS;
    if (us) e |= T_U;
    if (us && rw) e |= T_WU;
    if (dirty) e |= T_D;
    if (global && (this.cr4 & CR4.PGE) !== 0) e |= T_G;
    if (!xd) e |= T_X;
    const vpn = lin >>> 12;
    if (this.tlb[vpn] === 0 && this.tlbCount < this.tlbList.length) this.tlbList[this.tlbCount++] = vpn;
    else if (this.tlb[vpn] === 0) this.tlbCount = this.tlbList.length;
    this.tlb[vpn] = e;
    return ((frame | (lin & 0xfff)) >>> 0);
  }

  private pageFault(lin: number, err: number): never {
    this.cr2 = lin | 0;
    return this.fault(EXC.PF, err);
  }

  // ======================================================================== linear memory

  readLin8(lin: number): number {
    const p = this.paging ? this.translate(lin, ACC_R) : lin >>> 0;
    if (p < this.ramSize) return this.ram[p]!;
    return this.physRead8(p);
  }

  readLin16(lin: number): number {
    if ((lin & 0xfff) === 0xfff) return this.readLin8(lin) | (this.readLin8(lin + 1) << 8);
    const p = this.paging ? this.translate(lin, ACC_R) : lin >>> 0;
    if (p + 1 < this.ramSize) return this.ram[p]! | (this.ram[p + 1]! << 8);
    return this.physRead8(p) | (this.physRead8(p + 1) << 8);
  }

  readLin32(lin: number): number {
    if ((lin & 0xfff) > 0xffc) return this.readLin16(lin) | (this.readLin16(lin + 2) << 16);
    const p = this.paging ? this.translate(lin, ACC_R) : lin >>> 0;
    if (p + 3 < this.ramSize) {
      if ((p & 3) === this.align) return this.ram32[p >>> 2]!;
      const r = this.ram;
      return r[p]! | (r[p + 1]! << 8) | (r[p + 2]! << 16) | (r[p + 3]! << 24);
    }
    return this.physRead32(p);
  }

  writeLin8(lin: number, v: number): void {
    const p = this.paging ? this.translate(lin, ACC_W) : lin >>> 0;
    if (p < this.ramSize) {
      this.ram[p] = v;
      if (this.codePages[p >>> 12] !== 0) this.codeWritten(p, 1);
      return;
    }
    this.physWrite8(p, v);
  }

  writeLin16(lin: number, v: number): void {
    if ((lin & 0xfff) === 0xfff) {
      if (this.paging) this.translate(lin + 1, ACC_W); // both pages checked before any write
      this.writeLin8(lin, v);
      this.writeLin8(lin + 1, v >>> 8);
      return;
    }
    const p = this.paging ? this.translate(lin, ACC_W) : lin >>> 0;
    if (p + 1 < this.ramSize) {
      this.ram[p] = v;
      this.ram[p + 1] = v >>> 8;
      if (this.codePages[p >>> 12] !== 0) this.codeWritten(p, 2);
      return;
    }
    this.physWrite8(p, v);
    this.physWrite8(p + 1, v >>> 8);
  }

  writeLin32(lin: number, v: number): void {
    if ((lin & 0xfff) > 0xffc) {
      if (this.paging) this.translate(lin + 3, ACC_W);
      this.writeLin16(lin, v);
      this.writeLin16(lin + 2, v >>> 16);
      return;
    }
    const p = this.paging ? this.translate(lin, ACC_W) : lin >>> 0;
    if (p + 3 < this.ramSize) {
      if ((p & 3) === this.align) this.ram32[p >>> 2] = v;
      else {
        const r = this.ram;
        r[p] = v;
        r[p + 1] = v >>> 8;
        r[p + 2] = v >>> 16;
        r[p + 3] = v >>> 24;
      }
      if (this.codePages[p >>> 12] !== 0) this.codeWritten(p, 4);
      return;
    }
    this.physWrite32(p, v);
  }

  /** Supervisor-privileged reads/writes (descriptor tables, TSS, IDT). */
  readSys32(lin: number): number {
    const p = this.translateSys(lin, false);
    if ((lin & 0xfff) > 0xffc) return this.readSys16(lin) | (this.readSys16(lin + 2) << 16);
    return this.physRead32(p);
  }

  readSys16(lin: number): number {
    return this.physRead8(this.translateSys(lin, false)) | (this.physRead8(this.translateSys(lin + 1, false)) << 8);
  }

  writeSys32(lin: number, v: number): void {
    for (let i = 0; i < 4; i++) this.physWrite8(this.translateSys(lin + i, true), v >>> (8 * i));
  }

  writeSys16(lin: number, v: number): void {
    this.physWrite8(this.translateSys(lin, true), v);
    this.physWrite8(this.translateSys(lin + 1, true), v >>> 8);
  }

  // ======================================================================== segmented memory

  /** Raises #GP(0), or #SS(0) for the stack segment. */
  private segFault(seg: number): never {
    return this.fault(seg === S_SS ? EXC.SS : EXC.GP, 0);
  }

  /** Linear address of `off` in `seg` for an access of `size` bytes, with limit checks. */
  segAddr(seg: number, off: number, size: number): number {
    if (this.segSlow[seg] !== 0) return this.segAddrSlow(seg, off, size);
    if ((off >>> 0) + size - 1 > this.segLimit[seg]!) this.segFault(seg);
    return (this.segBase[seg]! + off) | 0;
  }

  private segAddrSlow(seg: number, off: number, size: number): number {
    if (this.segBad[seg] !== 0) this.segFault(seg);
    const o = off >>> 0;
    const upper = (this.segAttr[seg]! & 0x4000) !== 0 ? 0xffffffff : 0xffff;
    if (o <= this.segLimit[seg]! || o + size - 1 > upper) this.segFault(seg);
    return (this.segBase[seg]! + off) | 0;
  }

  /** Linear address without checks (INVLPG). */
  segAddrNoCheck(seg: number, off: number): number {
    return (this.segBase[seg]! + off) | 0;
  }

  segWriteAddr(seg: number, off: number, size: number): number {
    if (this.segRO[seg] !== 0) this.segFault(seg);
    return this.segAddr(seg, off, size);
  }

  read8(seg: number, off: number): number {
    return this.readLin8(this.segAddr(seg, off, 1));
  }
  read16(seg: number, off: number): number {
    return this.readLin16(this.segAddr(seg, off, 2));
  }
  read32(seg: number, off: number): number {
    // Fast path: usable segment within its limit, paging off, aligned RAM.
    if (this.segSlow[seg] === 0 && (off >>> 0) + 3 <= this.segLimit[seg]!) {
      const lin = (this.segBase[seg]! + off) | 0;
      let p = lin >>> 0;
      if (this.paging) {
        // TLB hit inline; misses and page-crossing accesses take readLin32.
        const e = this.tlb[p >>> 12]!;
        const need = this.need[ACC_R]!;
        if ((e & need) !== need) return this.readLin32(lin);
        p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
      }
      if ((p & 3) === this.align && p < this.ramSize) return this.ram32[p >>> 2]!;
      return this.readLin32(lin);
    }
    return this.readLin32(this.segAddr(seg, off, 4));
  }
  write8(seg: number, off: number, v: number): void {
    this.writeLin8(this.segWriteAddr(seg, off, 1), v);
  }
  write16(seg: number, off: number, v: number): void {
    this.writeLin16(this.segWriteAddr(seg, off, 2), v);
  }
  write32(seg: number, off: number, v: number): void {
    if ((this.segSlow[seg]! | this.segRO[seg]!) === 0 && (off >>> 0) + 3 <= this.segLimit[seg]!) {
      const lin = (this.segBase[seg]! + off) | 0;
      let p = lin >>> 0;
      if (this.paging) {
        const e = this.tlb[p >>> 12]!;
        const need = this.need[ACC_W]!;
        if ((e & need) !== need) {
          this.writeLin32(lin, v);
          return;
        }
        p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
      }
      if ((p & 3) === this.align && p < this.ramSize && this.codePages[p >>> 12] === 0) {
        this.ram32[p >>> 2] = v;
        return;
      }
      this.writeLin32(lin, v);
      return;
    }
    this.writeLin32(this.segWriteAddr(seg, off, 4), v);
  }

  /**
   * REP MOVS/STOS fast path (32-bit addressing, DF=0, RAM, no overlap): copies or fills page
   * by page through the TLB, updating ESI/EDI/ECX after each piece so that a fault leaves the
   * registers at the element that faulted. Returns false (nothing done) when the generic loop
   * must run: a slow segment, a limit crossing, MMIO, or overlapping ranges.
   */
  bulkString(movs: boolean, src: number, size: number, count: number): boolean {
    if ((this.segSlow[S_ES]! | this.segRO[S_ES]!) !== 0 || (movs && this.segSlow[src] !== 0)) return false;
    const regs = this.regs;
    const total = count * size;
    if ((regs[7]! >>> 0) + total - 1 > this.segLimit[S_ES]!) return false;
    if (movs) {
      if ((regs[6]! >>> 0) + total - 1 > this.segLimit[src]!) return false;
      const s0 = (this.segBase[src]! + regs[6]!) >>> 0;
      const d0 = (this.segBase[S_ES]! + regs[7]!) >>> 0;
      if (d0 < s0 + total && s0 < d0 + total) return false; // overlapping: element order matters
    }
    const ram = this.ram;
    while (count > 0) {
      const di = regs[7]! >>> 0;
      const dLin = (this.segBase[S_ES]! + di) | 0;
      // Elements that fit before either page boundary (at least one; a straddling element goes
      // through the generic path).
      let n = Math.min(count, Math.floor((4096 - (dLin & 0xfff)) / size));
      let sLin = 0;
      if (movs) {
        sLin = (this.segBase[src]! + regs[6]!) | 0;
        n = Math.min(n, Math.floor((4096 - (sLin & 0xfff)) / size));
      }
      if (n === 0) return count !== regs[1]! >>> 0 ? this.finishGeneric() : false;
      const bytes = n * size;
      const d = this.paging ? this.translate(dLin, ACC_W) : dLin >>> 0;
      if (d + bytes > this.ramSize) return count !== regs[1]! >>> 0 ? this.finishGeneric() : false;
      if (movs) {
        const sp = this.paging ? this.translate(sLin, ACC_R) : sLin >>> 0;
        if (sp + bytes > this.ramSize) return count !== regs[1]! >>> 0 ? this.finishGeneric() : false;
        ram.copyWithin(d, sp, sp + bytes);
        regs[6] = (regs[6]! + bytes) | 0;
      } else if (size === 1) {
        ram.fill(this.r8[0]!, d, d + bytes);
      } else {
        const v = regs[0]!;
        for (let i = 0; i < bytes; i += size) {
          ram[d + i] = v;
          ram[d + i + 1] = v >>> 8;
          if (size === 4) {
            ram[d + i + 2] = v >>> 16;
            ram[d + i + 3] = v >>> 24;
          }
        }
      }
      if (this.codePages[d >>> 12] !== 0) this.codeWritten(d, bytes);
      regs[7] = (di + bytes) | 0;
      count -= n;
      regs[1] = count;
    }
    return true;
  }

  /** Part of a REP was done in bulk; let the instruction run again for the rest. */
  private finishGeneric(): boolean {
    this.eip = this.instrStart;
    return true;
  }

  /** Checks that a write of `size` at seg:off would not fault (for instructions that must be atomic). */
  probeWrite(seg: number, off: number, size: number): void {
    const lin = this.segWriteAddr(seg, off, size);
    if (this.paging) {
      this.translate(lin, ACC_W);
      this.translate(lin + size - 1, ACC_W);
    }
  }

  // ======================================================================== ModRM

  /** Reads a ModRM byte and, for memory forms, computes `ea`/`eaSeg`. [SDM Vol.2 2.1.5] */
  modrm(): void {
    const m = this.fetch8();
    this.mrm = m;
    if (m < 0xc0) {
      if (this.as32 !== 0) this.ea32(m);
      else this.ea16(m);
    }
  }

  private ea16(m: number): void {
    const r = this.r16;
    const mod = m >> 6;
    let seg: number = S_DS;
    let ea: number;
    switch (m & 7) {
      case 0: ea = r[6]! + r[12]!; break; // bx+si
      case 1: ea = r[6]! + r[14]!; break; // bx+di
      case 2: ea = r[10]! + r[12]!; seg = S_SS; break; // bp+si
      case 3: ea = r[10]! + r[14]!; seg = S_SS; break; // bp+di
      case 4: ea = r[12]!; break;
      case 5: ea = r[14]!; break;
      case 6:
        if (mod === 0) {
          ea = this.fetch16();
        } else {
          ea = r[10]!;
          seg = S_SS;
        }
        break;
      default: ea = r[6]!; break;
    }
    if (mod === 1) ea += this.fetchS8();
    else if (mod === 2) ea += this.fetch16();
    this.ea = ea & 0xffff;
    this.eaSeg = this.segOv >= 0 ? this.segOv : seg;
  }

  private ea32(m: number): void {
    const regs = this.regs;
    const mod = m >> 6;
    const rm = m & 7;
    let seg: number = S_DS;
    let ea: number;
    if (rm === 4) {
      const sib = this.fetch8();
      const base = sib & 7;
      const index = (sib >> 3) & 7;
      if (base === 5 && mod === 0) {
        ea = this.fetch32();
      } else {
        ea = regs[base]!;
        if (base === 4 || base === 5) seg = S_SS;
      }
      if (index !== 4) ea = (ea + (regs[index]! << (sib >> 6))) | 0;
    } else if (rm === 5 && mod === 0) {
      ea = this.fetch32();
    } else {
      ea = regs[rm]!;
      if (rm === 5) seg = S_SS;
    }
    if (mod === 1) ea = (ea + this.fetchS8()) | 0;
    else if (mod === 2) ea = (ea + this.fetch32()) | 0;
    this.ea = ea;
    this.eaSeg = this.segOv >= 0 ? this.segOv : seg;
  }

  /** The reg field of the current ModRM. */
  get reg(): number {
    return (this.mrm >> 3) & 7;
  }

  getReg8(n: number): number {
    return this.r8[R8[n]!]!;
  }
  setReg8(n: number, v: number): void {
    this.r8[R8[n]!] = v;
  }

  readE8(): number {
    const m = this.mrm;
    return m >= 0xc0 ? this.r8[R8[m & 7]!]! : this.read8(this.eaSeg, this.ea);
  }
  readE16(): number {
    const m = this.mrm;
    return m >= 0xc0 ? this.r16[(m & 7) << 1]! : this.read16(this.eaSeg, this.ea);
  }
  readE32(): number {
    const m = this.mrm;
    return m >= 0xc0 ? this.regs[m & 7]! : this.read32(this.eaSeg, this.ea);
  }
  writeE8(v: number): void {
    const m = this.mrm;
    if (m >= 0xc0) this.r8[R8[m & 7]!] = v;
    else this.write8(this.eaSeg, this.ea, v);
  }
  writeE16(v: number): void {
    const m = this.mrm;
    if (m >= 0xc0) this.r16[(m & 7) << 1] = v;
    else this.write16(this.eaSeg, this.ea, v);
  }
  writeE32(v: number): void {
    const m = this.mrm;
    if (m >= 0xc0) this.regs[m & 7] = v;
    else this.write32(this.eaSeg, this.ea, v);
  }
  /** For read-modify-write forms: checks writability before the read, remembers the address. */
  rmwLin = 0;
  readE8W(): number {
    const m = this.mrm;
    if (m >= 0xc0) return this.r8[R8[m & 7]!]!;
    return this.readLin8((this.rmwLin = this.segWriteAddr(this.eaSeg, this.ea, 1)));
  }
  readE16W(): number {
    const m = this.mrm;
    if (m >= 0xc0) return this.r16[(m & 7) << 1]!;
    return this.readLin16((this.rmwLin = this.segWriteAddr(this.eaSeg, this.ea, 2)));
  }
  readE32W(): number {
    const m = this.mrm;
    if (m >= 0xc0) return this.regs[m & 7]!;
    return this.readLin32((this.rmwLin = this.segWriteAddr(this.eaSeg, this.ea, 4)));
  }
  /** Writes back after readE*W. */
  writeE8R(v: number): void {
    const m = this.mrm;
    if (m >= 0xc0) this.r8[R8[m & 7]!] = v;
    else this.writeLin8(this.rmwLin, v);
  }
  writeE16R(v: number): void {
    const m = this.mrm;
    if (m >= 0xc0) this.r16[(m & 7) << 1] = v;
    else this.writeLin16(this.rmwLin, v);
  }
  writeE32R(v: number): void {
    const m = this.mrm;
    if (m >= 0xc0) this.regs[m & 7] = v;
    else this.writeLin32(this.rmwLin, v);
  }

  /** Data segment for string-source/moffs/xlat accesses (DS or the override). */
  get dataSeg(): number {
    return this.segOv >= 0 ? this.segOv : S_DS;
  }

  /** Raises #UD unless the ModRM is a memory form. */
  requireMem(): void {
    if (this.mrm >= 0xc0) this.fault(EXC.UD, -1);
  }

  // ======================================================================== stack

  get sp(): number {
    return this.ssDb !== 0 ? this.regs[4]! : this.r16[8]!;
  }
  set sp(v: number) {
    if (this.ssDb !== 0) this.regs[4] = v;
    else this.r16[8] = v;
  }

  push16(v: number): void {
    const sp = (this.sp - 2) | 0;
    const off = this.ssDb !== 0 ? sp : sp & 0xffff;
    this.write16(S_SS, off, v);
    this.sp = off;
  }
  push32(v: number): void {
    const sp = (this.sp - 4) | 0;
    const off = this.ssDb !== 0 ? sp : sp & 0xffff;
    this.write32(S_SS, off, v);
    this.sp = off;
  }
  pushOs(v: number): void {
    if (this.os32 !== 0) this.push32(v);
    else this.push16(v);
  }
  pop16(): number {
    const sp = this.sp;
    const v = this.read16(S_SS, sp);
    this.sp = this.ssDb !== 0 ? (sp + 2) | 0 : (sp + 2) & 0xffff;
    return v;
  }
  pop32(): number {
    const sp = this.sp;
    const v = this.read32(S_SS, sp);
    this.sp = this.ssDb !== 0 ? (sp + 4) | 0 : (sp + 4) & 0xffff;
    return v;
  }
  popOs(): number {
    return this.os32 !== 0 ? this.pop32() : this.pop16();
  }
  /** Reads the stack at sp + `delta` without popping. */
  peek16(delta: number): number {
    const off = this.ssDb !== 0 ? (this.sp + delta) | 0 : (this.sp + delta) & 0xffff;
    return this.read16(S_SS, off);
  }
  peek32(delta: number): number {
    const off = this.ssDb !== 0 ? (this.sp + delta) | 0 : (this.sp + delta) & 0xffff;
    return this.read32(S_SS, off);
  }

  // ======================================================================== control transfer

  /** Near jump within CS, with the CS limit check. */
  jump(target: number): void {
    if (this.os32 === 0) target &= 0xffff;
    if ((target >>> 0) > this.segLimit[S_CS]!) this.fault(EXC.GP, 0);
    this.eip = target | 0;
  }

  get protectedMode(): boolean {
    return (this.cr0 & CR0.PE) !== 0;
  }

  get v86(): boolean {
    return (this.flags & F_VM) !== 0;
  }

  // ======================================================================== exceptions

  /** Raises exception `vec` with error code `err` (-1: none). Never returns. */
  fault(vec: number, err: number): never {
    this.faultVec = vec;
    this.faultErr = err;
    throw FAULT;
  }

  private handleFault(): void {
    this.prefixed = 1;
    const vec = this.faultVec;
    const err = this.faultErr;
    // Instructions leave ESP unchanged when they fault (they update it last).
    this.eip = this.instrStart;
    this.exception(vec, err);
  }

  /** Delivers an exception, escalating to #DF and triple fault. [SDM Vol.3A 6.15 Table 6-5] */
  /** The vector of the last exception delivered (diagnostics). */
  lastException = -1;

  private exception(vec: number, err: number): void {
    if (this.lastException < 0) this.lastException = vec;
    if (vec < 32 && this.interceptedExc[vec] !== 0) {
      this.exit = EXIT_INTERCEPT;
      this.exitVector = vec;
      this.lastIntercept.kind = "exception";
      this.lastIntercept.vector = vec;
      this.lastIntercept.errorCode = err;
      return;
    }
    for (let depth = 0; depth < 8; depth++) {
      try {
        this.interrupt(vec, false, err, true);
        return;
      } catch (e) {
        if (e !== FAULT) throw e;
      }
      const second = this.faultVec;
      const secondErr = this.faultErr;
      this.eip = this.instrStart;
      if (vec === EXC.DF) break;
      const contributory = (v: number) => v === 0 || (v >= 10 && v <= 13);
      if ((contributory(vec) && contributory(second)) || (vec === EXC.PF && (contributory(second) || second === EXC.PF))) {
        vec = EXC.DF;
        err = 0;
      } else {
        vec = second;
        err = secondErr;
      }
    }
    this.exit = EXIT_TRIPLE;
    this.exitDetail = `triple fault: #${this.faultVec} while delivering a double fault`;
  }

  /**
   * Software `int n` (INT3/INTO pass `soft`=true with their vector). Honours the intercept
   * table, then delivers through the IVT/IDT. Faults during delivery propagate.
   */
  softInt(vec: number): void {
    if (this.intercepted[vec] !== 0) {
      this.exit = EXIT_INTERCEPT;
      this.exitVector = vec;
      this.lastIntercept.kind = "software";
      this.lastIntercept.vector = vec;
      this.lastIntercept.errorCode = -1;
      return;
    }
    this.interrupt(vec, true, -1, false);
  }

  /**
   * Delivers vector `vec` through the IVT (real mode) or IDT. `soft`: INT n/INT3/INTO (gate DPL
   * checked). `err` >= 0 is pushed as an error code in protected mode.
   * [SDM Vol.3A 6.12, 20.1.4 (real-mode interrupts)]
   */
  interrupt(vec: number, soft: boolean, err: number, isException: boolean): void {
    const esp = this.regs[4]!;
    try {
      this.deliver(vec, soft, err, isException);
    } catch (e) {
      this.regs[4] = esp; // a fault part-way through the pushes leaves ESP as it was
      throw e;
    }
  }

  private deliver(vec: number, soft: boolean, err: number, _isException: boolean): void {
    const flags = this.getFlags();
    if (!this.protectedMode) {
      if (vec * 4 + 3 > this.idtrLimit) this.fault(EXC.GP, 0);
      const off = this.readLin16(this.idtrBase + vec * 4);
      const sel = this.readLin16(this.idtrBase + vec * 4 + 2);
      this.push16(flags);
      this.push16(this.segSel[S_CS]!);
      this.push16(this.eip);
      this.flags = flags & ~(F_IF | F_TF | F_AC | F_RF);
      this.lazy = 0;
      this.loadSegReal(S_CS, sel);
      this.eip = off;
      this.halted = false;
      return;
    }
    // Protected mode: read the gate. [SDM Vol.3A 6.10-6.12]
    const extErr = soft ? 0 : 1;
    if (vec * 8 + 7 > this.idtrLimit) this.fault(EXC.GP, vec * 8 + 2 + extErr);
    const gLo = this.readSys32(this.idtrBase + vec * 8);
    const gHi = this.readSys32(this.idtrBase + vec * 8 + 4);
    const type = (gHi >> 8) & 0x1f;
    const gdpl = (gHi >> 13) & 3;
    if (type === SYS_DESC.TASK_GATE) {
      if (soft && gdpl < this.cpl) this.fault(EXC.GP, vec * 8 + 2);
      if ((gHi & 0x8000) === 0) this.fault(EXC.NP, vec * 8 + 2 + extErr);
      this.taskSwitch(gLo >>> 16, TS_CALL, err, extErr);
      return;
    }
    if (type !== SYS_DESC.INT_GATE32 && type !== SYS_DESC.TRAP_GATE32 && type !== SYS_DESC.INT_GATE16 && type !== SYS_DESC.TRAP_GATE16) {
      this.fault(EXC.GP, vec * 8 + 2 + extErr);
    }
    if (soft && gdpl < this.cpl) this.fault(EXC.GP, vec * 8 + 2);
    if ((gHi & 0x8000) === 0) this.fault(EXC.NP, vec * 8 + 2 + extErr);
    const gate32 = (type & 8) !== 0;
    const sel = gLo >>> 16;
    const offset = gate32 ? (gLo & 0xffff) | (gHi & 0xffff0000) : gLo & 0xffff;
    if ((sel & ~3) === 0) this.fault(EXC.GP, extErr);
    this.readDescriptor(sel, extErr);
    const dLo = this.dLo;
    const dHi = this.dHi;
    const dType = (dHi >> 8) & 0x1f;
    const ddpl = (dHi >> 13) & 3;
    if ((dType & 0x18) !== 0x18 || ddpl > this.cpl) this.fault(EXC.GP, (sel & ~3) + extErr);
    if ((dHi & 0x8000) === 0) this.fault(EXC.NP, (sel & ~3) + extErr);
    const conforming = (dType & 4) !== 0;
    const oldCs = this.segSel[S_CS]!;
    const oldEip = this.eip;
    const oldSs = this.segSel[S_SS]!;
    const oldEsp = this.regs[4]!;
    const fromV86 = (flags & F_VM) !== 0;
    if (fromV86 && (conforming || ddpl !== 0)) this.fault(EXC.GP, (sel & ~3) + extErr);
    if (!conforming && ddpl < this.cpl) {
      // Inner privilege: stack from the TSS. [SDM Vol.3A 6.12.1]; from virtual-8086 mode the
      // data segment selectors go on the stack too and are then nulled [SDM Vol.3A 20.3.1.1].
      const newCpl = ddpl;
      const { ss, esp } = this.tssStack(newCpl, extErr);
      this.readDescriptor(ss, extErr);
      const sLo = this.dLo;
      const sHi = this.dHi;
      const sType = (sHi >> 8) & 0x1f;
      if ((ss & 3) !== newCpl || ((sHi >> 13) & 3) !== newCpl || (sType & 0x1a) !== 0x12) this.fault(EXC.TS, (ss & ~3) + extErr);
      if ((sHi & 0x8000) === 0) this.fault(EXC.SS, (ss & ~3) + extErr);
      const ssBase = descBase(sLo, sHi);
      const ssB = (sHi >> 22) & 1;
      let sp = esp;
      const mask = ssB !== 0 ? -1 : 0xffff;
      const n = gate32 ? 4 : 2;
      const words = fromV86 ? [this.segSel[S_GS]!, this.segSel[S_FS]!, this.segSel[S_DS]!, this.segSel[S_ES]!, oldSs, oldEsp, flags, oldCs, oldEip] : [oldSs, oldEsp, flags, oldCs, oldEip];
      if (err >= 0) words.push(err);
      for (const w of words) {
        sp = (sp - n) & mask;
        if (gate32) this.writeSys32(ssBase + sp, w);
        else this.writeSys16(ssBase + sp, w);
      }
      if (fromV86) {
        this.flags &= ~F_VM; // leave v86 before the protected-mode segment loads
        for (const sg of [S_GS, S_FS, S_DS, S_ES]) {
          this.segSel[sg] = 0;
          this.segBad[sg] = 1;
          this.segSlow[sg] = 1;
        }
      }
      this.setSegFromDesc(S_SS, (ss & ~3) | newCpl, sLo, sHi);
      this.setCpl(newCpl);
      if (ssB !== 0) this.regs[4] = sp;
      else this.r16[8] = sp;
    } else {
      if (!conforming && ddpl !== this.cpl) this.fault(EXC.GP, (sel & ~3) + extErr);
      if (gate32) {
        this.push32(flags);
        this.push32(oldCs);
        this.push32(oldEip);
        if (err >= 0) this.push32(err);
      } else {
        this.push16(flags);
        this.push16(oldCs);
        this.push16(oldEip);
        if (err >= 0) this.push16(err);
      }
    }
    this.setSegFromDesc(S_CS, (sel & ~3) | this.cpl, dLo, dHi);
    this.eip = gate32 ? offset : offset & 0xffff;
    let nf = flags & ~(F_TF | F_NT | F_VM | F_RF);
    if ((type & 1) === 0) nf &= ~F_IF; // interrupt gate
    this.flags = nf;
    this.lazy = 0;
    this.halted = false;
  }

  /**
   * IRET from CPL 0 with EFLAGS.VM set in the image: pops EIP, CS, EFLAGS, ESP, SS, ES, DS, FS,
   * GS and continues in virtual-8086 mode at CPL 3. [SDM Vol.2 IRET "RETURN-TO-VIRTUAL-8086-MODE"]
   */
  private enterV86(fl: number): void {
    const w: number[] = [];
    for (let i = 0; i < 9; i++) w.push(this.peek32(i * 4));
    this.flags = ((fl & 0x3f7fd5) | F_ONE | F_VM) & ~0x8028;
    this.lazy = 0;
    this.pollCountdown = 0;
    this.setCpl(3);
    const segs = [-1, S_CS, -1, -1, S_SS, S_ES, S_DS, S_FS, S_GS];
    for (let i = 1; i < 9; i++) {
      const sg = segs[i]!;
      if (sg >= 0) this.setSegRaw(sg, w[i]! & 0xffff, (w[i]! & 0xffff) << 4, 0xffff, sg === S_CS ? 0xfb : 0xf3);
    }
    this.regs[4] = w[3]!;
    this.eip = w[0]! & 0xffff;
    this.fetchLen = 0;
  }

  /** SS:ESP for privilege level `pl` from the current TSS. [SDM Vol.3A 7.2.1 Figure 7-2] */
  private tssStack(pl: number, ext: number): { ss: number; esp: number } {
    if ((this.trType & 8) !== 0) {
      const off = 4 + pl * 8;
      if (off + 5 > this.trLimit) this.fault(EXC.TS, (this.trSel & ~3) + ext);
      return { esp: this.readSys32(this.trBase + off), ss: this.readSys16(this.trBase + off + 4) };
    }
    const off = 2 + pl * 4;
    if (off + 3 > this.trLimit) this.fault(EXC.TS, (this.trSel & ~3) + ext);
    return { esp: this.readSys16(this.trBase + off), ss: this.readSys16(this.trBase + off + 2) };
  }

  setCpl(cpl: number): void {
    this.cpl = cpl;
    this.updateNeed();
  }

  // ======================================================================== descriptors & segments

  dLo = 0;
  dHi = 0;

  /** Reads the descriptor for `sel` into dLo/dHi; #GP(sel) when outside the table. */
  readDescriptor(sel: number, ext = 0): void {
    const idx = sel & ~7;
    let base: number;
    let limit: number;
    if ((sel & 4) !== 0) {
      base = this.ldtrBase;
      limit = this.ldtrLimit;
      if ((this.ldtrSel & ~3) === 0) this.fault(EXC.GP, (sel & ~3) + ext);
    } else {
      base = this.gdtrBase;
      limit = this.gdtrLimit;
    }
    if (idx + 7 > limit) this.fault(EXC.GP, (sel & ~3) + ext);
    this.dLo = this.readSys32(base + idx);
    this.dHi = this.readSys32(base + idx + 4);
  }

  /** Sets the accessed bit of the descriptor last read for `sel`. */
  private setAccessed(sel: number): void {
    if ((this.dHi & 0x100) !== 0) return;
    this.dHi |= 0x100;
    const base = (sel & 4) !== 0 ? this.ldtrBase : this.gdtrBase;
    this.writeSys32(base + (sel & ~7) + 4, this.dHi);
  }

  /** Loads a segment register cache directly (for embedders and state restore). */
  setSegRaw(seg: number, sel: number, base: number, limit: number, attr: number): void {
    this.segSel[seg] = sel;
    this.segBase[seg] = base | 0;
    this.segLimit[seg] = limit >>> 0;
    this.segAttr[seg] = attr;
    const present = (attr & 0x80) !== 0;
    const isCode = (attr & 0x18) === 0x18;
    this.segBad[seg] = present ? 0 : 1;
    this.segRO[seg] = this.protectedMode && !this.v86 && (isCode || (attr & 2) === 0) ? 1 : 0;
    this.segDown[seg] = !isCode && (attr & 0x14) === 0x14 ? 1 : 0;
    this.segSlow[seg] = this.segBad[seg]! | this.segDown[seg]!;
    if (seg === S_CS) {
      this.csDb = (attr >> 14) & 1;
      this.fetchLen = 0;
      this.prefixed = 1;
      this.updateMode();
    } else if (seg === S_SS) {
      this.ssDb = (attr >> 14) & 1;
      this.updateMode();
    }
  }

  private setSegFromDesc(seg: number, sel: number, lo: number, hi: number): void {
    this.setSegRaw(seg, sel, descBase(lo, hi), descLimit(lo, hi), ((hi >> 8) & 0xff) | ((hi >> 8) & 0xf000));
  }

  /** Real-mode (and v86) segment load: base = sel << 4, cache attributes kept. */
  loadSegReal(seg: number, sel: number): void {
    this.segSel[seg] = sel;
    this.segBase[seg] = sel << 4;
    this.segBad[seg] = 0;
    this.segSlow[seg] = this.segDown[seg]!;
    if (seg === S_CS) this.fetchLen = 0;
  }

  /**
   * MOV/POP/LDS-style load of a data or stack segment register with protected-mode checks.
   * [SDM Vol.2 MOV "Operation" for segment registers]
   */
  loadSeg(seg: number, sel: number): void {
    sel &= 0xffff;
    if (!this.protectedMode || this.v86) {
      this.loadSegReal(seg, sel);
      return;
    }
    if ((sel & ~3) === 0) {
      if (seg === S_SS) this.fault(EXC.GP, 0);
      this.segSel[seg] = sel;
      this.segBad[seg] = 1;
      this.segSlow[seg] = 1;
      return;
    }
    this.readDescriptor(sel);
    const hi = this.dHi;
    const type = (hi >> 8) & 0x1f;
    const dpl = (hi >> 13) & 3;
    const rpl = sel & 3;
    if (seg === S_SS) {
      if (rpl !== this.cpl || dpl !== this.cpl || (type & 0x1a) !== 0x12) this.fault(EXC.GP, sel & ~3);
      if ((hi & 0x8000) === 0) this.fault(EXC.SS, sel & ~3);
    } else {
      if ((type & 0x10) === 0 || (type & 0x1a) === 0x18) this.fault(EXC.GP, sel & ~3); // system or execute-only
      const conformingCode = (type & 0x1c) === 0x1c;
      if (!conformingCode && (dpl < this.cpl || dpl < rpl)) this.fault(EXC.GP, sel & ~3);
      if ((hi & 0x8000) === 0) this.fault(EXC.NP, sel & ~3);
    }
    this.setAccessed(sel);
    this.setSegFromDesc(seg, sel, this.dLo, this.dHi);
  }

  /**
   * Far JMP/CALL to sel:off. [SDM Vol.2 JMP/CALL far; Vol.3A 5.8 call gates]
   */
  farTransfer(sel: number, off: number, call: boolean): void {
    sel &= 0xffff;
    const os32 = this.os32;
    if (!this.protectedMode || this.v86) {
      if (call) {
        const retCs = this.segSel[S_CS]!;
        const retIp = this.eip;
        if (os32 !== 0) {
          this.probeStack(8);
          this.push32(retCs);
          this.push32(retIp);
        } else {
          this.probeStack(4);
          this.push16(retCs);
          this.push16(retIp);
        }
      }
      this.loadSegReal(S_CS, sel);
      this.eip = os32 !== 0 ? off | 0 : off & 0xffff;
      return;
    }
    if ((sel & ~3) === 0) this.fault(EXC.GP, 0);
    this.readDescriptor(sel);
    let lo = this.dLo;
    let hi = this.dHi;
    const type = (hi >> 8) & 0x1f;
    const dpl = (hi >> 13) & 3;
    const rpl = sel & 3;
    if ((type & 0x18) === 0x18) {
      // Code segment.
      if ((type & 4) !== 0) {
        if (dpl > this.cpl) this.fault(EXC.GP, sel & ~3);
      } else if (rpl > this.cpl || dpl !== this.cpl) {
        this.fault(EXC.GP, sel & ~3);
      }
      if ((hi & 0x8000) === 0) this.fault(EXC.NP, sel & ~3);
      const target = os32 !== 0 ? off | 0 : off & 0xffff;
      if ((target >>> 0) > descLimit(lo, hi)) this.fault(EXC.GP, 0);
      if (call) this.probeStack(os32 !== 0 ? 8 : 4);
      this.setAccessed(sel);
      hi = this.dHi;
      if (call) {
        const retCs = this.segSel[S_CS]!;
        const retIp = this.eip;
        this.pushOs(retCs);
        this.pushOs(retIp);
      }
      this.setSegFromDesc(S_CS, (sel & ~3) | this.cpl, lo, hi);
      this.eip = target;
      this.fetchLen = 0;
      return;
    }
    if (type === SYS_DESC.CALL_GATE16 || type === SYS_DESC.CALL_GATE32) {
      if (dpl < this.cpl || dpl < rpl) this.fault(EXC.GP, sel & ~3);
      if ((hi & 0x8000) === 0) this.fault(EXC.NP, sel & ~3);
      const gate32 = type === SYS_DESC.CALL_GATE32;
      const csSel = lo >>> 16;
      const gOff = gate32 ? (lo & 0xffff) | (hi & 0xffff0000) : lo & 0xffff;
      const params = hi & 0x1f;
      if ((csSel & ~3) === 0) this.fault(EXC.GP, 0);
      this.readDescriptor(csSel);
      lo = this.dLo;
      hi = this.dHi;
      const ctype = (hi >> 8) & 0x1f;
      const cdpl = (hi >> 13) & 3;
      if ((ctype & 0x18) !== 0x18 || cdpl > this.cpl) this.fault(EXC.GP, csSel & ~3);
      if ((hi & 0x8000) === 0) this.fault(EXC.NP, csSel & ~3);
      if ((gOff >>> 0) > descLimit(lo, hi)) this.fault(EXC.GP, 0);
      if (!call) {
        if ((ctype & 4) === 0 && cdpl !== this.cpl) this.fault(EXC.GP, csSel & ~3);
        this.setSegFromDesc(S_CS, (csSel & ~3) | this.cpl, lo, hi);
        this.eip = gOff;
        return;
      }
      const retCs = this.segSel[S_CS]!;
      const retIp = this.eip;
      if ((ctype & 4) === 0 && cdpl < this.cpl) {
        // Call to an inner privilege level: new stack from the TSS, copy parameters. [SDM Vol.3A 5.8.5]
        const { ss, esp } = this.tssStack(cdpl, 0);
        const n = gate32 ? 4 : 2;
        const oldSs = this.segSel[S_SS]!;
        const oldEsp = this.regs[4]!;
        const paramVals: number[] = [];
        for (let i = params - 1; i >= 0; i--) paramVals.push(gate32 ? this.peek32(i * 4) : this.peek16(i * 2));
        const cLo = lo;
        const cHi = hi;
        this.readDescriptor(ss);
        const sLo = this.dLo;
        const sHi = this.dHi;
        if ((ss & 3) !== cdpl || ((sHi >> 13) & 3) !== cdpl || (((sHi >> 8) & 0x1a) !== 0x12)) this.fault(EXC.TS, ss & ~3);
        if ((sHi & 0x8000) === 0) this.fault(EXC.SS, ss & ~3);
        const ssBase = descBase(sLo, sHi);
        const mask = (sHi & (1 << 22)) !== 0 ? -1 : 0xffff;
        let sp = esp;
        const words = [oldSs, oldEsp, ...paramVals, retCs, retIp];
        for (const w of words) {
          sp = (sp - n) & mask;
          if (gate32) this.writeSys32(ssBase + sp, w);
          else this.writeSys16(ssBase + sp, w);
        }
        this.setSegFromDesc(S_SS, ss, sLo, sHi);
        this.setCpl(cdpl);
        if (mask === -1) this.regs[4] = sp;
        else this.r16[8] = sp;
        this.setSegFromDesc(S_CS, (csSel & ~3) | cdpl, cLo, cHi);
      } else {
        this.probeStack(gate32 ? 8 : 4);
        if (gate32) {
          this.push32(retCs);
          this.push32(retIp);
        } else {
          this.push16(retCs);
          this.push16(retIp);
        }
        this.setSegFromDesc(S_CS, (csSel & ~3) | this.cpl, lo, hi);
      }
      this.eip = gOff;
      this.fetchLen = 0;
      return;
    }
    if (type === SYS_DESC.TSS32_AVAIL || type === SYS_DESC.TASK_GATE) {
      // [SDM Vol.3A 7.3]: the TSS descriptor or task gate must be accessible at CPL and RPL.
      if (dpl < this.cpl || dpl < rpl) this.fault(EXC.GP, sel & ~3);
      if ((hi & 0x8000) === 0) this.fault(EXC.NP, sel & ~3);
      this.taskSwitch(type === SYS_DESC.TASK_GATE ? lo >>> 16 : sel, call ? TS_CALL : TS_JMP, -1, 0);
      return;
    }
    // 16-bit TSSes, busy TSSes and other system descriptors.
    this.fault(EXC.GP, sel & ~3);
  }

  /**
   * Hardware task switch to the 32-bit TSS `sel` [SDM Vol.3A 7.3, Table 7-2]: saves the
   * current task in its TSS, updates busy bits, the back link and NT, loads the new task's
   * CR3, LDTR, registers and segments, and sets CR0.TS. `err` >= 0 is pushed on the new
   * task's stack (exceptions through task gates).
   */
  private taskSwitch(sel: number, kind: number, err: number, ext: number): void {
    if ((sel & 4) !== 0 || (sel & ~3) === 0) this.fault(EXC.GP, (sel & ~3) + ext);
    this.readDescriptor(sel, ext);
    const lo = this.dLo;
    const hi = this.dHi;
    const type = (hi >> 8) & 0x1f;
    const wantBusy = kind === TS_IRET;
    if (type !== (wantBusy ? SYS_DESC.TSS32_BUSY : SYS_DESC.TSS32_AVAIL)) this.fault(kind === TS_IRET ? EXC.TS : EXC.GP, (sel & ~3) + ext);
    if ((hi & 0x8000) === 0) this.fault(EXC.NP, (sel & ~3) + ext);
    const base = descBase(lo, hi);
    const limit = descLimit(lo, hi);
    if (limit < 0x67) this.fault(EXC.TS, (sel & ~3) + ext);
    if ((this.trType & 8) === 0 || this.trLimit < 0x67) this.fault(EXC.TS, (this.trSel & ~3) + ext);
    // Read the new task's state first: a fault here leaves the old task untouched.
    const nt = new Int32Array(26);
    for (let i = 0; i < 26; i++) nt[i] = this.readSys32(base + i * 4);
    this.writeSys32(base, this.readSys32(base)); // the new TSS must be writable
    // Save the old task. [SDM Vol.3A 7.2.1 Figure 7-2]
    const old = this.trBase;
    let flags = this.getFlags();
    if (kind === TS_IRET) flags &= ~F_NT;
    this.writeSys32(old + 0x20, this.eip);
    this.writeSys32(old + 0x24, flags);
    for (let r = 0; r < 8; r++) this.writeSys32(old + 0x28 + r * 4, this.regs[r]!);
    for (let sg = 0; sg < 6; sg++) this.writeSys16(old + 0x48 + sg * 4, this.segSel[sg]!);
    // Busy bits and the back link.
    if (kind === TS_JMP || kind === TS_IRET) {
      const oldDescHi = this.gdtrBase + (this.trSel & ~7) + 4;
      this.writeSys32(oldDescHi, this.readSys32(oldDescHi) & ~0x200);
    }
    if (kind !== TS_IRET) this.writeSys32(this.gdtrBase + (sel & ~7) + 4, hi | 0x200);
    if (kind === TS_CALL) this.writeSys16(base, this.trSel);
    this.trSel = sel;
    this.trBase = base;
    this.trLimit = limit;
    this.trType = SYS_DESC.TSS32_BUSY;
    this.cr0 |= CR0.TS;
    // Load the new task.
    if (this.paging) this.setCr3(nt[7]!);
    let nflags = nt[9]!;
    if (kind === TS_CALL) nflags |= F_NT;
    this.flags = (nflags & 0x3f7fd5) | F_ONE;
    this.lazy = 0;
    for (let r = 0; r < 8; r++) this.regs[r] = nt[10 + r]!;
    this.eip = nt[8]!;
    const ldt = nt[24]! & 0xffff;
    this.ldtrSel = ldt;
    if ((ldt & ~3) !== 0) {
      if ((ldt & 4) !== 0) this.fault(EXC.TS, ldt & ~3);
      this.readDescriptor(ldt);
      if (((this.dHi >> 8) & 0x1f) !== SYS_DESC.LDT) this.fault(EXC.TS, ldt & ~3);
      this.ldtrBase = descBase(this.dLo, this.dHi);
      this.ldtrLimit = descLimit(this.dLo, this.dHi);
    } else {
      this.ldtrBase = 0;
      this.ldtrLimit = 0;
    }
    const cs = nt[19]! & 0xffff;
    this.setCpl(cs & 3);
    if ((cs & ~3) === 0) this.fault(EXC.TS, 0);
    this.readDescriptor(cs);
    if ((((this.dHi >> 8) & 0x18) !== 0x18) || (this.dHi & 0x8000) === 0) this.fault(EXC.TS, cs & ~3);
    this.setSegFromDesc(S_CS, cs, this.dLo, this.dHi);
    // Segment-load errors during a task switch are #TS (not-present stays #NP/#SS). [SDM Vol.3A 7.3 step 12]
    try {
      this.loadSeg(S_SS, nt[20]!);
      for (const [sg, idx] of [[S_ES, 18], [S_DS, 21], [S_FS, 22], [S_GS, 23]] as const) this.loadSeg(sg, nt[idx]!);
    } catch (e) {
      if (e === FAULT && this.faultVec === EXC.GP) this.faultVec = EXC.TS;
      throw e;
    }
    this.fetchLen = 0;
    if (err >= 0) {
      if (this.csDb !== 0) this.push32(err);
      else this.push16(err);
    }
  }

  /** Checks that `bytes` can be pushed without faulting. */
  probeStack(bytes: number): void {
    const sp = this.sp;
    if (this.ssDb === 0 && sp < bytes) {
      // A 16-bit stack pointer wraps: the pushes land at [0, sp) and [sp - bytes + 64K, 64K).
      if (sp > 0) this.probeWrite(S_SS, 0, sp);
      this.probeWrite(S_SS, (sp - bytes) & 0xffff, bytes - sp);
      return;
    }
    const low = this.ssDb !== 0 ? (sp - bytes) | 0 : (sp - bytes) & 0xffff;
    this.probeWrite(S_SS, low, bytes);
  }

  /**
   * RETF / IRET. `iret`: pops EFLAGS too. `imm`: bytes to release after CS:EIP.
   * [SDM Vol.2 RET (far), IRET "Operation"]
   */
  farReturn(iret: boolean, imm: number): void {
    const os32 = this.os32;
    const n = os32 !== 0 ? 4 : 2;
    // In virtual-8086 mode IRET is IOPL-sensitive; RETF and IRET then work as in real mode but
    // cannot change IOPL or VM. [SDM Vol.3A 20.2.7, Vol.2 IRET]
    if (this.v86 && iret && ((this.flags >> 12) & 3) < 3) this.fault(EXC.GP, 0);
    if (!this.protectedMode || this.v86) {
      const ip = os32 !== 0 ? this.peek32(0) : this.peek16(0);
      const cs = os32 !== 0 ? this.peek32(4) & 0xffff : this.peek16(2);
      let fl = 0;
      if (iret) fl = os32 !== 0 ? this.peek32(8) : this.peek16(4);
      const sp = this.sp;
      const mask = this.ssDb !== 0 ? -1 : 0xffff;
      this.sp = (sp + n * (iret ? 3 : 2) + imm) & mask;
      this.loadSegReal(S_CS, cs);
      this.eip = os32 !== 0 ? ip : ip & 0xffff;
      if (iret) {
        let mask = os32 !== 0 ? 0x3f7fd5 & ~(F_VM | F_VIF | F_VIP) : 0x7fd5;
        if (this.v86) mask &= ~F_IOPL;
        this.writeFlags(fl, mask);
      }
      return;
    }
    if (iret && (this.flags & F_NT) !== 0) {
      // Return from a nested task through the back link. [SDM Vol.3A 7.4]
      this.taskSwitch(this.readSys16(this.trBase), TS_IRET, -1, 0);
      return;
    }
    const ip = os32 !== 0 ? this.peek32(0) : this.peek16(0);
    const cs = (os32 !== 0 ? this.peek32(n) : this.peek16(n)) & 0xffff;
    let fl = 0;
    if (iret) fl = os32 !== 0 ? this.peek32(8) : this.peek16(4);
    if (iret && (fl & F_VM) !== 0 && this.cpl === 0 && os32 !== 0) {
      this.enterV86(fl);
      return;
    }
    if ((cs & ~3) === 0) this.fault(EXC.GP, 0);
    this.readDescriptor(cs);
    const lo = this.dLo;
    const hi = this.dHi;
    const type = (hi >> 8) & 0x1f;
    const dpl = (hi >> 13) & 3;
    const rpl = cs & 3;
    if ((type & 0x18) !== 0x18 || rpl < this.cpl) this.fault(EXC.GP, cs & ~3);
    if ((type & 4) !== 0 ? dpl > rpl : dpl !== rpl) this.fault(EXC.GP, cs & ~3);
    if ((hi & 0x8000) === 0) this.fault(EXC.NP, cs & ~3);
    const target = os32 !== 0 ? ip : ip & 0xffff;
    const frame = n * (iret ? 3 : 2);
    const oldCpl = this.cpl;
    if (rpl === this.cpl) {
      if ((target >>> 0) > descLimit(lo, hi)) this.fault(EXC.GP, 0);
      const mask = this.ssDb !== 0 ? -1 : 0xffff;
      this.sp = (this.sp + frame + imm) & mask;
      this.setSegFromDesc(S_CS, cs, lo, hi);
      this.eip = target;
    } else {
      // Return to an outer privilege level: pop SS:ESP as well.
      const newEsp = os32 !== 0 ? this.peek32(frame + imm) : this.peek16(frame + imm);
      const newSs = (os32 !== 0 ? this.peek32(frame + imm + n) : this.peek16(frame + imm + n)) & 0xffff;
      if ((newSs & ~3) === 0) this.fault(EXC.GP, 0);
      this.readDescriptor(newSs);
      const sLo = this.dLo;
      const sHi = this.dHi;
      if ((newSs & 3) !== rpl || ((sHi >> 13) & 3) !== rpl || ((sHi >> 8) & 0x1a) !== 0x12) this.fault(EXC.GP, newSs & ~3);
      if ((sHi & 0x8000) === 0) this.fault(EXC.SS, newSs & ~3);
      if ((target >>> 0) > descLimit(lo, hi)) this.fault(EXC.GP, 0);
      this.setSegFromDesc(S_CS, cs, lo, hi);
      this.setSegFromDesc(S_SS, newSs, sLo, sHi);
      if (this.ssDb !== 0) this.regs[4] = (newEsp + imm) | 0;
      else this.r16[8] = newEsp + imm;
      this.eip = target;
      this.setCpl(rpl);
      // Data segments not accessible at the new CPL become null. [SDM Vol.2 RET]
      for (const s of [S_ES, S_DS, S_FS, S_GS]) {
        const a = this.segAttr[s]!;
        const conformingCode = (a & 0x1c) === 0x1c;
        if (!conformingCode && ((a >> 5) & 3) < rpl && this.segBad[s] === 0) {
          this.segSel[s] = 0;
          this.segBad[s] = 1;
          this.segSlow[s] = 1;
        }
      }
    }
    if (iret) {
      let mask = F_CF | F_PF | F_AF | F_ZF | F_SF | F_TF | F_DF | F_OF | F_NT;
      if (os32 !== 0) mask |= F_RF | F_AC | F_ID;
      if (oldCpl === 0) mask |= F_IOPL | (os32 !== 0 ? F_VIF | F_VIP : 0);
      if (oldCpl <= ((this.flags >> 12) & 3)) mask |= F_IF;
      this.writeFlags(fl, mask);
    }
    this.fetchLen = 0;
  }

  // ======================================================================== system registers

  /** MOV to CR0. [SDM Vol.3A 2.5] */
  setCr0(v: number): void {
    v |= CR0.ET;
    if ((v & CR0.PG) !== 0 && (v & CR0.PE) === 0) this.fault(EXC.GP, 0);
    const old = this.cr0;
    this.cr0 = v;
    if (((old ^ v) & (CR0.PG | CR0.PE | CR0.WP)) !== 0) {
      this.pagingChanged();
      // Writability rules of cached segments depend on PE.
      if (((old ^ v) & CR0.PE) !== 0) {
        for (let s = 0; s < 6; s++) this.setSegRaw(s, this.segSel[s]!, this.segBase[s]!, this.segLimit[s]!, this.segAttr[s]!);
      }
    }
  }

  setCr3(v: number): void {
    this.cr3 = v;
    this.flushTlb(false);
  }

  setCr4(v: number): void {
    const old = this.cr4;
    this.cr4 = v & 0x7ff;
    if (((old ^ v) & (CR4.PAE | CR4.PGE | CR4.PSE)) !== 0) this.pagingChanged();
  }

  /** I/O permission check [SDM Vol.1 18.5.2]: CPL <= IOPL, else the TSS I/O bitmap. */
  checkIo(port: number, size: number): void {
    if (!this.protectedMode) return;
    if (!this.v86 && this.cpl <= ((this.flags >> 12) & 3)) return;
    if ((this.trType & 8) === 0 || this.trLimit < 0x67) this.fault(EXC.GP, 0);
    const mapBase = this.readSys16(this.trBase + 0x66);
    const byteOff = mapBase + (port >> 3);
    if (byteOff + 1 > this.trLimit) this.fault(EXC.GP, 0);
    const bits = this.readSys16(this.trBase + byteOff);
    if (((bits >> (port & 7)) & ((1 << size) - 1)) !== 0) this.fault(EXC.GP, 0);
  }

  portIn(port: number, size: 1 | 2 | 4): number {
    this.checkIo(port, size);
    this.codeEpoch++; // the device may write RAM (DMA)
    const io = this.io;
    if (io === undefined) return size === 4 ? -1 : (1 << (size * 8)) - 1;
    return io.read(port & 0xffff, size);
  }

  portOut(port: number, size: 1 | 2 | 4, v: number): void {
    this.checkIo(port, size);
    this.codeEpoch++;
    const mask = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    this.io?.write(port & 0xffff, size, (v & mask) >>> 0);
  }

  /** RDMSR value as [lo, hi]. [SDM Vol.4] Unknown MSRs raise #GP(0). */
  readMsr(index: number): [number, number] {
    index >>>= 0;
    switch (index) {
      case MSR.TSC:
        {
        const t = this.readTsc();
        return [t % 2 ** 32 | 0, Math.floor(t / 2 ** 32) | 0];
      }
      case MSR.EFER:
        return [this.efer, 0];
      case MSR.APIC_BASE:
      case MSR.SYSENTER_CS:
      case MSR.SYSENTER_ESP:
      case MSR.SYSENTER_EIP:
      case MSR.MISC_ENABLE:
      case MSR.PAT: {
        const v = this.msrs.get(index);
        if (v !== undefined) return [v[0], v[1]];
        if (index === MSR.PAT) return [0x00070406, 0x00070406];
        if (index === MSR.APIC_BASE) return [0xfee00900 | 0, 0];
        return [0, 0];
      }
      default:
        return this.fault(EXC.GP, 0);
    }
  }

  writeMsr(index: number, lo: number, hi: number): void {
    index >>>= 0;
    switch (index) {
      case MSR.TSC:
        this.tsc = (hi >>> 0) * 2 ** 32 + (lo >>> 0) - this.count;
        return;
      case MSR.EFER:
        if ((lo & ~(EFER.NXE | EFER.SCE)) !== 0 || hi !== 0) this.fault(EXC.GP, 0);
        this.efer = lo;
        this.flushTlb(true);
        return;
      case MSR.APIC_BASE:
      case MSR.SYSENTER_CS:
      case MSR.SYSENTER_ESP:
      case MSR.SYSENTER_EIP:
      case MSR.MISC_ENABLE:
      case MSR.PAT:
        this.msrs.set(index, [lo | 0, hi | 0]);
        return;
      default:
        this.fault(EXC.GP, 0);
    }
  }

  // ======================================================================== state

  private segState(s: number): SegmentState {
    return { selector: this.segSel[s]!, base: this.segBase[s]! >>> 0, limit: this.segLimit[s]!, attributes: this.segBad[s] ? this.segAttr[s]! & ~0x80 : this.segAttr[s]! };
  }

  /** A segment register's current state. */
  getSegment(seg: number): SegmentState {
    return this.segState(seg);
  }

  /** Loads a segment register cache without checks (embedders building an initial state). */
  setSegment(seg: number, s: SegmentState): void {
    this.setSegRaw(seg, s.selector, s.base, s.limit, s.attributes);
    if (seg === S_CS) {
      this.setCpl(this.protectedMode ? s.selector & 3 : 0);
      this.fetchLen = 0;
    }
  }

  saveState(): X86CpuState {
    return {
      version: 1,
      regs: Array.from(this.regs, (v) => v >>> 0),
      eip: this.eip >>> 0,
      eflags: this.getFlags() >>> 0,
      segs: [0, 1, 2, 3, 4, 5].map((s) => this.segState(s)),
      cr: [this.cr0 >>> 0, 0, this.cr2 >>> 0, this.cr3 >>> 0, this.cr4 >>> 0],
      dr: Array.from(this.dr, (v) => v >>> 0),
      gdtr: [this.gdtrBase >>> 0, this.gdtrLimit],
      idtr: [this.idtrBase >>> 0, this.idtrLimit],
      ldtr: { selector: this.ldtrSel, base: this.ldtrBase >>> 0, limit: this.ldtrLimit, attributes: 0x82 },
      tr: { selector: this.trSel, base: this.trBase >>> 0, limit: this.trLimit, attributes: 0x80 | this.trType },
      efer: this.efer,
      tsc: this.tsc,
      halted: this.halted,
      fpu: { cw: this.fpuCw, sw: this.fpuSw, tw: this.fpuTw },
      msrs: [...this.msrs].map(([k, v]) => [k, v[0] >>> 0, v[1] >>> 0]),
      instructionsRetired: this.count,
    };
  }

  restoreState(s: X86CpuState): void {
    if (s === null || typeof s !== "object" || s.version !== 1 || s.regs?.length !== 8 || s.segs?.length !== 6 || s.cr?.length !== 5) {
      throw new X86CpuError("malformed-state", "X86Cpu.restoreState: malformed state");
    }
    for (let i = 0; i < 8; i++) this.regs[i] = s.regs[i]!;
    this.cr0 = s.cr[0]! | 0;
    this.cr2 = s.cr[2]! | 0;
    this.cr3 = s.cr[3]! | 0;
    this.cr4 = s.cr[4]! | 0;
    this.efer = s.efer;
    this.eip = s.eip | 0;
    this.flags = (s.eflags | F_ONE) | 0;
    this.lazy = 0;
    for (let i = 0; i < 6; i++) this.setSegRaw(i, s.segs[i]!.selector, s.segs[i]!.base, s.segs[i]!.limit, s.segs[i]!.attributes);
    for (let i = 0; i < 8; i++) this.dr[i] = s.dr[i]!;
    this.gdtrBase = s.gdtr[0] | 0;
    this.gdtrLimit = s.gdtr[1];
    this.idtrBase = s.idtr[0] | 0;
    this.idtrLimit = s.idtr[1];
    this.ldtrSel = s.ldtr.selector;
    this.ldtrBase = s.ldtr.base | 0;
    this.ldtrLimit = s.ldtr.limit;
    this.trSel = s.tr.selector;
    this.trBase = s.tr.base | 0;
    this.trLimit = s.tr.limit;
    this.trType = s.tr.attributes & 0xf;
    this.tsc = s.tsc;
    this.halted = s.halted;
    this.fpuCw = s.fpu.cw;
    this.fpuSw = s.fpu.sw;
    this.fpuTw = s.fpu.tw;
    this.msrs.clear();
    for (const [k, lo, hi] of s.msrs) this.msrs.set(k, [lo | 0, hi | 0]);
    this.count = s.instructionsRetired;
    this.cpl = !this.protectedMode ? 0 : this.v86 ? 3 : this.segSel[S_CS]! & 3;
    this.pagingChanged();
  }
}

/** The contiguous RAM from physical 0 through `view()`, found by bisection when not given. */
function findRam(memory: GuestMemory, size: number | undefined): Uint8Array {
  const view = memory.view?.bind(memory);
  if (view === undefined) return new Uint8Array(0);
  if (size !== undefined) return view(0, size, true) ?? new Uint8Array(0);
  if (view(0, 4096, true) === undefined) return new Uint8Array(0);
  let lo = 1; // pages known good
  let hi = 1 << 20; // pages known bad (4 GiB)
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (view(0, mid * 4096, true) !== undefined) lo = mid;
    else hi = mid;
  }
  return view(0, lo * 4096, true)!;
}
