/**
 * The hypervisor's record of a domain (`struct domain` in xen/include/xen/sched.h, much
 * reduced): its memory (P2M), shared_info, grant table frames and active grants, event-channel
 * ports, I/O space, timer and scheduling state.
 */
import { NR_VIRQS } from "@paravirt/device-channel";
import type { DomId, Vcpu } from "@paravirt/vm-interfaces";
import { IoSpace } from "./ioSpace.ts";
import type { SharedInfoPage } from "./sharedInfo.ts";
import type { PvPaging } from "./pae.ts";

/** Kinds of guest: a TypeScript kernel, or an x86 PV kernel on an emulated CPU. */
export type DomainKind = "native" | "x86-pv";

/** Lifecycle of a domain. */
export type DomainState = "running" | "paused" | "shutdown" | "dying" | "dead";

/** `struct evtchn` reduced. `state` is an EVTCHNSTAT_* value. */
export interface Channel {
  state: number;
  /** unbound: who may bind; interdomain: the peer. */
  remoteDom: DomId;
  /** interdomain: the peer's port. */
  remotePort: number;
  virq: number;
  pirq: number;
  vcpu: number;
  /** A channel whose far end is the hypervisor itself (Xen's `xen_consumer`): called on send. */
  xenConsumer: (() => void) | undefined;
}

/** An active grant: one (granter, ref) that some domain has pinned [grant_table.c active_grant_entry]. */
export interface ActiveGrant {
  /** The domain that pinned it. */
  domid: DomId;
  mfn: number;
  readPins: number;
  writePins: number;
}

/** A mapping held by a domain (maptrack entry) [grant_table.c struct grant_mapping]. */
export interface MaptrackEntry {
  granter: DomId;
  ref: number;
  mfn: number;
  writable: boolean;
}

/** A unit of work of a native kernel, with its cost in virtual nanoseconds. */
export interface NativeTask {
  readonly fn: () => void;
  readonly cost: number;
}

/** Register file of a 32-bit x86 PV vCPU, as far as hypercall decoding needs it. */
export interface X86Registers {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
  esi: number;
  edi: number;
  ebp: number;
}

/**
 * Guest-virtual memory of a PV vCPU, as the hypercall decoder reads arguments. Returns
 * `undefined` (reads) or false (writes) when the address does not translate: the hypercall
 * then fails with -EFAULT.
 */
export interface GuestVirtualMemory {
  readU8(va: number): number | undefined;
  readU16(va: number): number | undefined;
  readU32(va: number): number | undefined;
  writeU8(va: number, value: number): boolean;
  writeU16(va: number, value: number): boolean;
  writeU32(va: number, value: number): boolean;
}

/**
 * An x86 PV vCPU as the hypervisor needs it: the vm-interfaces {@link Vcpu} plus registers
 * and guest-virtual memory for hypercall decoding (examples/src/pvgrub/x86PvVcpu.ts builds one
 * from a cpu-x86 `X86Cpu`).
 */
export interface PvVcpu extends Vcpu {
  readonly regs: X86Registers;
  readonly memory: GuestVirtualMemory;
  /** The paging unit, for update_va_mapping / mmuext_op (absent: those calls answer -ENOSYS). */
  readonly paging?: PvPaging;
}

export class Domain {
  readonly domid: DomId;
  readonly name: string;
  readonly kind: DomainKind;
  readonly privileged: boolean;
  /**
   * Whether the guest names its frames by pseudo-physical number and the hypervisor
   * translates through the P2M (native kernels, like Xen's translated/PVH guests), or by machine
   * frame number (x86 PV guests, which keep their own P2M and see MFNs in grant entries).
   */
  readonly translated: boolean;
  state: DomainState = "running";
  pauseCount = 0;
  shutdownReason: number | undefined;

  /** Pseudo-physical → machine frame, -1 where nothing is mapped. */
  p2m: Int32Array;
  sharedInfoMfn = -1;
  sharedInfo!: SharedInfoPage;

  grantFrames: number[] = [];
  /** VMASST_TYPE_* bits enabled with vm_assist. */
  vmAssist = 0;
  grantVersion = 1;
  /** Active grants of this domain's table, by ref. */
  readonly activeGrants = new Map<number, ActiveGrant>();
  /** Grant mappings this domain holds, by handle. */
  readonly maptrack: (MaptrackEntry | undefined)[] = [];
  readonly freeHandles: number[] = [];

  readonly ports: (Channel | undefined)[] = [];
  readonly virqToPort = new Int32Array(NR_VIRQS);
  readonly pirqToPort = new Map<number, number>();

  readonly ioSpace = new IoSpace();
  /** Latched CONFIG_ADDRESS of this domain's 0xCF8 writes (the hypervisor traps 0xCF8/0xCFC). */
  pciConfigAddress = 0;

  /** Pinned page-table trees (MMUEXT_PIN_*): top frame → every frame of the tree. */
  readonly pinned = new Map<number, number[]>();

  /** set_timer_op timer. */
  timerId: number | undefined;

  /** xenstore page (pfn) and the port offered to the xenstore domain; -1 / 0 when none. */
  storePfn = -1;
  storePort = 0;

  /** Console page (pfn) and port, and what the hypervisor has drained from it. */
  consolePfn = -1;
  consolePort = 0;
  consoleLog = "";

  // ---- scheduling ----
  weight: number;
  /** Weighted virtual time charged so far (BVT's actual virtual time). */
  vtime = 0;
  /** Virtual ns of CPU consumed. */
  cpuTime = 0;
  /** Blocked in SCHEDOP_block / halted / idle kernel, waiting for an event. */
  blocked = false;
  /** SCHEDOP_yield was called: run others first this round. */
  yielded = false;
  readonly tasks: NativeTask[] = [];
  taskHead = 0;
  /** Native kernel's upcall (event dispatch) task, posted when an event arrives. */
  upcall: (() => void) | undefined;
  upcallQueued = false;
  vcpu: PvVcpu | undefined;

  /** Refused accesses, for tests and the log. */
  violations = 0;

  constructor(init: { domid: DomId; name: string; kind: DomainKind; privileged: boolean; pages: number; weight: number }) {
    this.domid = init.domid;
    this.name = init.name;
    this.kind = init.kind;
    this.privileged = init.privileged;
    this.translated = init.kind === "native";
    this.p2m = new Int32Array(init.pages).fill(-1);
    this.weight = init.weight;
    this.virqToPort.fill(0);
  }

  get alive(): boolean {
    return this.state !== "dying" && this.state !== "dead";
  }

  get nrPages(): number {
    return this.p2m.length;
  }

  /** Native kernel: whether a task is waiting. */
  hasTasks(): boolean {
    return this.taskHead < this.tasks.length;
  }

  takeTask(): NativeTask | undefined {
    if (this.taskHead >= this.tasks.length) return undefined;
    const t = this.tasks[this.taskHead++]!;
    if (this.taskHead > 1024 && this.taskHead * 2 > this.tasks.length) {
      this.tasks.splice(0, this.taskHead);
      this.taskHead = 0;
    }
    return t;
  }

  /** Number of open (non-closed) event-channel ports. */
  openPorts(): number {
    let n = 0;
    for (const c of this.ports) if (c !== undefined && c.state !== 0) n++;
    return n;
  }

  /** Whether `mfn` is a frame of one of this domain's pinned page-table trees. */
  isPinnedTable(mfn: number): boolean {
    for (const frames of this.pinned.values()) if (frames.includes(mfn)) return true;
    return false;
  }

  /** Live grant mappings this domain holds. */
  mappingsHeld(): number {
    let n = 0;
    for (const m of this.maptrack) if (m !== undefined) n++;
    return n;
  }
}

/** General-purpose register numbers in x86 encoding order [Intel SDM Vol. 2A, Table 2-2]. */
export const X86_REG = { EAX: 0, ECX: 1, EDX: 2, EBX: 3, ESP: 4, EBP: 5, ESI: 6, EDI: 7 } as const;

/**
 * Named access to a register file indexed in x86 encoding order (e.g. cpu-x86's
 * `Int32Array` of 8 registers); writes go straight to the array.
 */
export function registerFile(regs: { [index: number]: number }): X86Registers {
  const at = (i: number) => ({
    get: () => regs[i]! >>> 0,
    set: (v: number) => {
      regs[i] = v | 0;
    },
    enumerable: true,
  });
  return Object.defineProperties({} as X86Registers, {
    eax: at(X86_REG.EAX),
    ecx: at(X86_REG.ECX),
    edx: at(X86_REG.EDX),
    ebx: at(X86_REG.EBX),
    ebp: at(X86_REG.EBP),
    esi: at(X86_REG.ESI),
    edi: at(X86_REG.EDI),
  });
}
