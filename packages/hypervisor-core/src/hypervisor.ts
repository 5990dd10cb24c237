/**
 * The hypervisor facade: machine memory, domains and their lifecycle, and the subsystems
 * (event channels, grant tables, pirq dispatch, time, scheduler, probing, I/O spaces,
 * consoles) wired together. Host API: misuse by the embedder throws; guest input never does.
 */
import { GRANT_ENTRY_V1, GTF, VIRQ, writeGrantEntryV1 } from "@paravirt/device-channel";
import {
  DOMID,
  IoBus,
  IrqRouter,
  PAGE_SIZE,
  VirtualClock,
  XEN_ERRNO,
  XenError,
  type AccessSize,
  type GuestMemory,
  type DomId,
  type PciAddress,
  type PciDeviceInfo,
} from "@paravirt/vm-interfaces";
import { GNTTAB_RESERVED, SHUTDOWN } from "./abi.ts";
import { drainConsoleOut, writeConsoleIn } from "./console.ts";
import type { HvContext } from "./context.ts";
import { Domain, type DomainKind, type PvVcpu } from "./domain.ts";
import { EventChannelOps } from "./eventChannels.ts";
import { GrantTableOps } from "./grantTable.ts";
import { Hypercalls } from "./hypercalls.ts";
import { PirqDispatch } from "./interrupts.ts";
import { FRAME_TYPE, MachineMemory } from "./machineMemory.ts";
import { NativeDomain } from "./nativeDomain.ts";
import { PseudoPhysicalMemory } from "./p2m.ts";
import { PCI_CONF1, PciConfigMechanism1, decodeConfigAddress, formatBdf, probePci, sameAddress, type ProbeOptions } from "./pciProbe.ts";
import { DEFAULT_WEIGHT, Scheduler, TIMER_VECTOR, type RunResult } from "./scheduler.ts";
import { SharedInfoPage } from "./sharedInfo.ts";
import { LocalApicTimer, TimeKeeper } from "./timer.ts";

/** Which driver domain gets a PCI device: by address or by vendor (and device) id. */
export interface DeviceAssignment {
  readonly device: PciAddress | { readonly vendorId: number; readonly deviceId?: number };
  /** Name of the domain (created before or after probing). */
  readonly domain: string;
}

export interface HypervisorOptions {
  /** Machine memory in 4 KiB frames (default 16384 = 64 MiB). */
  memoryFrames?: number;
  /** The machine's clock (default: a new one). Devices schedule their completions on it. */
  clock?: VirtualClock;
  /** The machine's port bus (0xCF8/0xCFC and device ports). */
  ports?: IoBus;
  /** The machine's MMIO bus. */
  mmio?: IoBus;
  /** Where device IRQ lines arrive (the hypervisor listens to lines 0-23). */
  irqs?: IrqRouter;
  /** TSC frequency published in vcpu_time_info (default 1 GHz). */
  tscHz?: number;
  /** Local APIC bus clock (default 100 MHz). */
  apicBusHz?: number;
  /** Scheduler slice (default 1 ms). */
  sliceNs?: number;
  /** Virtual ns per x86 instruction (default 1). */
  nsPerInstruction?: number;
  /** Wall clock at system time 0 (default 2004-11-05, Xen 2.0's release). */
  wallClock?: { sec: number; nsec: number };
  /** Device → driver domain configuration. */
  assignments?: readonly DeviceAssignment[];
  probe?: ProbeOptions;
  /**
   * The domain that runs xenstored (default 0). Every other domain gets a xenstore page, seeded
   * as grant ref 1 (GNTTAB_RESERVED_XENSTORE) for that domain, and an unbound port it may bind.
   */
  xenstoreDomain?: DomId;
  /** Receives each hypervisor log line as it is written. */
  logSink?: (line: string) => void;
}

export interface NativeDomainOptions {
  name: string;
  /** Pages of RAM (default 256 = 1 MiB). */
  memoryPages?: number;
  /** May use I/O spaces, read other consoles, control domains (dom0, driver domains). */
  privileged?: boolean;
  /** Scheduler weight (default 256). */
  weight?: number;
}

export interface PvDomainOptions {
  name: string;
  memoryPages: number;
  vcpu: PvVcpu;
  privileged?: boolean;
  weight?: number;
  /** Where the builder put the xenstore and console pages (default: the last two pages). */
  layout?: { storePfn: number; consolePfn: number };
}

/** A probed PCI function and the domain it was assigned to. */
export interface ProbedDevice extends PciDeviceInfo {
  owner: DomId | undefined;
}

/** What a domain's builder set up for it (Xen's start_info, in spirit). */
export interface StartInfo {
  domid: DomId;
  nrPages: number;
  sharedInfoMfn: number;
  /** xenstore ring page (io/xs_wire.h layout), -1 for the xenstore domain itself. */
  storePfn: number;
  storeMfn: number;
  /** Unbound port offered to the xenstore domain. */
  storePort: number;
  /** Grant ref of the xenstore page in this domain's table (GNTTAB_RESERVED_XENSTORE). */
  storeGref: number;
  consolePfn: number;
  consoleMfn: number;
  consolePort: number;
}

/** What a domain holds, for accounting. */
export interface DomainResources {
  /** Machine frames it owns (RAM, shared_info, grant table; zombies included). */
  frames: number;
  /** Its grant entries that grant access (GTF_permit_access set). */
  grantEntries: number;
  /** Its grants others have pinned. */
  grantsPinned: number;
  /** Grant mappings it holds of others' pages. */
  mappingsHeld: number;
  /** Open event-channel ports. */
  ports: number;
  devices: number;
}

/** Cost in virtual ns of a native event upcall. */
export const UPCALL_COST_NS = 200;

const E = XEN_ERRNO;

/** Lets the host's event loop run every pending promise continuation (a macrotask turn). */
function yieldToHost(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Options of {@link Hypervisor.runAsync}. */
export interface RunAsyncOptions {
  /** Virtual ns per wall-clock ns (e.g. 1): virtual time does not run ahead of the host's clock. */
  pace?: number;
  /**
   * True while host I/O (a disk image read, a socket) is in flight: the machine then holds still,
   * no task runs, no timer fires and virtual time does not move, so that a device completes at
   * the same virtual time however long the host takes (and a command timeout cannot fire
   * because the host's disk is slow).
   */
  hostBusy?: () => boolean;
  /**
   * Resolves once host I/O in flight has (partly) settled: the run then waits on it instead of
   * checking `hostBusy` at every host turn.
   */
  hostSettled?: () => Promise<void>;
}

export class Hypervisor implements HvContext {
  readonly memory: MachineMemory;
  readonly clock: VirtualClock;
  readonly ports: IoBus;
  readonly mmio: IoBus;
  readonly irqRouter: IrqRouter;
  readonly evtchn: EventChannelOps;
  readonly gnttab: GrantTableOps;
  readonly pirq: PirqDispatch;
  readonly time: TimeKeeper;
  readonly apic: LocalApicTimer;
  readonly scheduler: Scheduler;
  readonly hypercalls: Hypercalls;
  readonly pciConfig: PciConfigMechanism1;
  /** Hypervisor log (refusals, lifecycle). */
  readonly logLines: string[] = [];
  /** Output written with CONSOLEIO_write (the hypervisor's own console). */
  consoleOutput = "";
  /** Typed at the hypervisor's console, waiting for CONSOLEIO_read. */
  serialInputBuffer = "";

  private readonly table = new Map<DomId, Domain>();
  /** Scratch of dmaPermitted: which frames of the range the caller maps. */
  private dmaMarks = new Uint8Array(0);
  /** Per domain, the maptrack slot where dmaPermitted last found each granted frame (a hint, checked at each use). */
  private readonly dmaHints = new WeakMap<Domain, Map<number, number>>();
  private readonly natives = new Map<DomId, NativeDomain>();
  private readonly zombies = new Map<DomId, number>();
  private nextDomid = 0;
  private readonly assignments: readonly DeviceAssignment[];
  private readonly probeOptions: ProbeOptions | undefined;
  private readonly logSink: ((line: string) => void) | undefined;
  private readonly storeDomid: DomId;
  private probed: ProbedDevice[] = [];

  constructor(options: HypervisorOptions = {}) {
    this.memory = new MachineMemory(options.memoryFrames ?? 16384);
    this.memory.onZombieFreed = (owner) => this.zombieFreed(owner);
    this.clock = options.clock ?? new VirtualClock();
    this.ports = options.ports ?? new IoBus(0x10000);
    this.mmio = options.mmio ?? new IoBus(2 ** 32);
    this.irqRouter = options.irqs ?? new IrqRouter();
    this.assignments = options.assignments ?? [];
    this.probeOptions = options.probe;
    this.logSink = options.logSink;
    this.storeDomid = options.xenstoreDomain ?? 0;
    this.evtchn = new EventChannelOps(this);
    this.gnttab = new GrantTableOps(this);
    this.pirq = new PirqDispatch(this, this.evtchn, this.irqRouter);
    this.evtchn.pirq = this.pirq;
    this.time = new TimeKeeper(this.clock, this.evtchn, options.tscHz ?? 1e9, options.wallClock ?? { sec: 1099612800, nsec: 0 });
    this.apic = new LocalApicTimer(this.clock, options.apicBusHz ?? 100e6, (vector) => {
      if (vector === TIMER_VECTOR) this.scheduler.tick();
    });
    this.scheduler = new Scheduler(
      this.clock,
      this.apic,
      {
        onSchedule: (d) => this.time.publish(d),
        onIntercept: (d, vector) => {
          if (vector === 0x82 && d.vcpu !== undefined) this.hypercalls.x86(d, d.vcpu.regs, d.vcpu.memory);
        },
        onCrash: (d, detail) => {
          this.log(`d${d.domid}: crashed (${detail})`);
          this.shutdown(d, SHUTDOWN.crash);
        },
      },
      options.sliceNs ?? 1_000_000,
      options.nsPerInstruction ?? 1,
    );
    this.hypercalls = new Hypercalls(this);
    this.pciConfig = new PciConfigMechanism1(this.ports);
  }

  // ------------------------------------------------------------------ HvContext

  domain(domid: DomId): Domain | undefined {
    return this.table.get(domid);
  }

  resolve(caller: Domain, domid: DomId): Domain | undefined {
    const d = domid === DOMID.SELF ? caller : this.table.get(domid);
    return d !== undefined && d.alive ? d : undefined;
  }

  /** {@link resolve} under its public name. */
  resolveDomain(caller: Domain, domid: DomId): Domain | undefined {
    return this.resolve(caller, domid);
  }

  domains(): Iterable<Domain> {
    return this.table.values();
  }

  kick(d: Domain): void {
    if (!d.alive) return;
    if (d.kind === "native") {
      if (d.sharedInfo.upcallMask(0) === 0) this.queueUpcall(d);
    } else this.scheduler.wake(d);
  }

  log(message: string): void {
    const line = `[${(this.clock.now() / 1e6).toFixed(3)} ms] ${message}`;
    this.logLines.push(line);
    if (this.logLines.length > 10000) this.logLines.splice(0, 5000);
    this.logSink?.(line);
  }

  // ------------------------------------------------------------------ domains

  private newDomain(kind: DomainKind, name: string, pages: number, privileged: boolean, weight: number, layout?: { storePfn: number; consolePfn: number }): Domain {
    if (!Number.isInteger(pages) || pages < 3) throw new RangeError(`a domain needs at least 3 pages, not ${pages}`);
    for (const d of this.table.values()) if (d.name === name && d.alive) throw new Error(`a domain named ${name} exists`);
    while (this.table.has(this.nextDomid)) this.nextDomid++;
    const domid = this.nextDomid++;
    const d = new Domain({ domid, name, kind, privileged, pages, weight });
    // RAM: one contiguous run if possible (DMA likes it), else frame by frame.
    let first = this.memory.allocContiguous(pages, domid, FRAME_TYPE.ram);
    const undo = () => {
      for (let i = 0; i < this.memory.frameCount; i++) if (this.memory.owner[i] === domid) this.memory.freeFrame(i);
    };
    if (first >= 0) for (let pfn = 0; pfn < pages; pfn++) d.p2m[pfn] = first + pfn;
    else {
      for (let pfn = 0; pfn < pages; pfn++) {
        const mfn = this.memory.allocFrame(domid, FRAME_TYPE.ram);
        if (mfn < 0) {
          undo();
          throw new XenError(E.ENOMEM, `no memory for ${pages} pages of ${name}`);
        }
        d.p2m[pfn] = mfn;
      }
    }
    for (let pfn = 0; pfn < pages; pfn++) this.memory.m2p[d.p2m[pfn]!] = pfn;
    first = this.memory.allocFrame(domid, FRAME_TYPE.shared_info);
    if (first < 0 || !this.gnttab.init(d)) {
      undo();
      throw new XenError(E.ENOMEM, `no memory for ${name}'s shared_info / grant table`);
    }
    d.sharedInfoMfn = first;
    d.sharedInfo = new SharedInfoPage(this.memory.page(first));
    d.sharedInfo.dv.setUint32(2316, pages, true); // arch.max_pfn [arch-x86/xen.h arch_shared_info]
    // Console: the last page, drained by the hypervisor when the guest notifies its port.
    d.consolePfn = layout?.consolePfn ?? pages - 1;
    const consolePage = this.memory.page(d.p2m[d.consolePfn]!);
    d.consolePort = this.evtchn.allocXenBound(d, () => {
      d.consoleLog += drainConsoleOut(consolePage);
      if (d.consoleLog.length > 1 << 20) d.consoleLog = d.consoleLog.slice(-(1 << 19));
    });
    // xenstore: the page below the console, granted to the xenstore domain as ref 1, and an
    // unbound port for it (what Xen's toolstack does before XS_INTRODUCE).
    if (domid !== this.storeDomid) {
      d.storePfn = layout?.storePfn ?? pages - 2;
      const at = this.gnttab.entryAddress(d, GNTTAB_RESERVED.XENSTORE);
      const table = new DataView(this.memory.buffer, at - GNTTAB_RESERVED.XENSTORE * GRANT_ENTRY_V1.SIZE);
      const frame = d.translated ? d.storePfn : d.p2m[d.storePfn]!;
      writeGrantEntryV1(table, GNTTAB_RESERVED.XENSTORE, { flags: GTF.permit_access, domid: this.storeDomid, frame });
      d.storePort = this.evtchn.allocUnbound(d, DOMID.SELF, this.storeDomid);
    }
    this.time.initDomain(d);
    this.table.set(domid, d);
    this.scheduler.add(d);
    this.applyAssignments(d);
    this.log(`d${domid} (${name}) created: ${kind}, ${pages} pages${privileged ? ", privileged" : ""}`);
    return d;
  }

  /** Creates a domain running a TypeScript kernel; returns its kernel-side handle. */
  createNativeDomain(options: NativeDomainOptions): NativeDomain {
    const d = this.newDomain("native", options.name, options.memoryPages ?? 256, options.privileged ?? false, options.weight ?? DEFAULT_WEIGHT);
    d.sharedInfo.setUpcallMask(0, 0);
    const nd = new NativeDomain(this, d);
    this.natives.set(d.domid, nd);
    d.blocked = true;
    return nd;
  }

  /**
   * Creates an x86 PV domain around a vCPU the embedder built; `buildPvDomain` calls this, then
   * loads the ELF and writes start_info and the initial page tables. Event upcalls start
   * masked, as the domain builder leaves them [xg_dom_x86.c].
   */
  createPvDomain(options: PvDomainOptions): Domain {
    const d = this.newDomain("x86-pv", options.name, options.memoryPages, options.privileged ?? false, options.weight ?? DEFAULT_WEIGHT, options.layout);
    for (let v = 0; v < 32; v++) d.sharedInfo.setUpcallMask(v, 1);
    d.vcpu = options.vcpu;
    return d;
  }

  /** The pages and ports the builder set up for `domid` (for its kernel and for xenstored's XS_INTRODUCE). */
  startInfo(domid: DomId): StartInfo {
    const d = this.mustGet(domid);
    return {
      domid,
      nrPages: d.nrPages,
      sharedInfoMfn: d.sharedInfoMfn,
      storePfn: d.storePfn,
      storeMfn: d.storePfn >= 0 ? d.p2m[d.storePfn]! : -1,
      storePort: d.storePort,
      storeGref: d.storePfn >= 0 ? GNTTAB_RESERVED.XENSTORE : -1,
      consolePfn: d.consolePfn,
      consoleMfn: d.p2m[d.consolePfn]!,
      consolePort: d.consolePort,
    };
  }

  /** `domid`'s pseudo-physical memory through its P2M (for builders, debuggers, the PV path). */
  pseudoPhysical(domid: DomId): GuestMemory {
    return new PseudoPhysicalMemory(this.memory, this.mustGet(domid));
  }

  /** The native kernel handle of `domid`. */
  native(domid: DomId): NativeDomain | undefined {
    return this.natives.get(domid);
  }

  /** Domain by name (alive). */
  byName(name: string): Domain | undefined {
    for (const d of this.table.values()) if (d.name === name && d.alive) return d;
    return undefined;
  }

  private mustGet(domid: DomId): Domain {
    const d = this.table.get(domid);
    if (d === undefined || !d.alive) throw new XenError(E.ESRCH, `no domain ${domid}`);
    return d;
  }

  pause(domid: DomId): void {
    const d = this.mustGet(domid);
    d.pauseCount++;
    if (d.state === "running") d.state = "paused";
  }

  unpause(domid: DomId): void {
    const d = this.mustGet(domid);
    if (d.pauseCount > 0) d.pauseCount--;
    if (d.pauseCount === 0 && d.state === "paused") {
      d.state = "running";
      this.scheduler.wake(d);
    }
  }

  /** SCHEDOP_shutdown: the domain stops running; the toolstack destroys it later. */
  shutdown(d: Domain, reason: number): void {
    if (!d.alive || d.state === "shutdown") return;
    d.state = "shutdown";
    d.shutdownReason = reason;
    this.drainConsole(d); // text printed just before shutdown may never have been signalled
    this.log(`d${d.domid}: shutdown (reason ${reason})`);
    this.notifyDomExc();
    if (this.scheduler.current === d) this.scheduler.block(d);
  }

  private notifyDomExc(): void {
    const dom0 = this.table.get(0);
    if (dom0 !== undefined && dom0.alive) this.evtchn.sendVirq(dom0, VIRQ.DOM_EXC);
  }

  /**
   * Destroys a domain: stops it, closes its event channels (peers' ends become unbound),
   * unmaps the grants it holds, revokes its devices and I/O space, and frees its frames.
   * Frames another domain still has grant-mapped are freed when that mapping goes.
   */
  destroy(domid: DomId): void {
    const d = this.mustGet(domid);
    d.state = "dying";
    this.scheduler.remove(d);
    this.time.cancel(d);
    d.tasks.length = 0;
    d.taskHead = 0;
    this.evtchn.closeAll(d);
    this.gnttab.releaseMappings(d);
    for (const dev of this.probed) if (dev.owner === domid) dev.owner = undefined;
    d.ioSpace.clear();
    this.gnttab.releaseTable(d);
    // Every frame it owns: RAM, shared_info, grant table, frames exchanged or populated later.
    let zombies = 0;
    const mem = this.memory;
    for (let mfn = 0; mfn < mem.frameCount; mfn++) {
      if (mem.owner[mfn] === domid && mem.zombie[mfn] === 0 && mem.release(mfn)) zombies++;
    }
    d.p2m.fill(-1);
    this.natives.delete(domid);
    this.log(`d${domid} (${d.name}) destroyed${zombies > 0 ? `, ${zombies} frame(s) still mapped by others` : ""}`);
    if (zombies > 0) this.zombies.set(domid, zombies);
    else this.reap(d);
    this.notifyDomExc();
  }

  private zombieFreed(owner: number): void {
    const n = (this.zombies.get(owner) ?? 0) - 1;
    if (n > 0) this.zombies.set(owner, n);
    else {
      this.zombies.delete(owner);
      const d = this.table.get(owner);
      if (d !== undefined) this.reap(d);
    }
  }

  private reap(d: Domain): void {
    d.state = "dead";
    this.table.delete(d.domid);
  }

  /** One line per domain, like `xm list`: for the CLI. */
  list(): { domid: DomId; name: string; kind: DomainKind; state: string; pages: number; cpuTimeNs: number; privileged: boolean; devices: string[] }[] {
    return [...this.table.values()].map((d) => ({
      domid: d.domid,
      name: d.name,
      kind: d.kind,
      state: d.state,
      pages: d.nrPages,
      cpuTimeNs: d.cpuTime,
      privileged: d.privileged,
      devices: this.probed.filter((p) => p.owner === d.domid).map((p) => formatBdf(p.address)),
    }));
  }

  /** Accounting of what `domid` holds (a dead domain holds nothing). */
  resources(domid: DomId): DomainResources {
    const d = this.table.get(domid);
    const frames = this.memory.framesOwnedBy(domid);
    if (d === undefined || !d.alive) return { frames, grantEntries: 0, grantsPinned: 0, mappingsHeld: 0, ports: 0, devices: 0 };
    return {
      frames,
      grantEntries: this.gnttab.activeEntries(d),
      grantsPinned: d.activeGrants.size,
      mappingsHeld: d.mappingsHeld(),
      ports: d.openPorts(),
      devices: this.probed.filter((p) => p.owner === domid).length,
    };
  }

  // ------------------------------------------------------------------ native kernels

  /** Queues a task on a native domain's kernel. */
  post(d: Domain, fn: () => void, cost: number): void {
    if (!d.alive) return;
    d.tasks.push({ fn, cost });
    this.scheduler.wake(d);
  }

  private queueUpcall(d: Domain): void {
    if (d.upcall === undefined || d.upcallQueued) return;
    d.upcallQueued = true;
    const upcall = d.upcall;
    this.post(d, upcall, UPCALL_COST_NS);
  }

  /** Runs the machine (see {@link Scheduler.run}). */
  run(until = Infinity, maxSlices = Infinity): RunResult {
    return this.scheduler.run(until, maxSlices);
  }

  /**
   * Like {@link run}, for kernels written with promises (a xenstore client's `await`): between
   * scheduling steps it yields to the host's event loop so promise continuations run and post
   * their tasks before virtual time moves on. "idle" only when nothing is runnable, no timer is
   * pending, and the host had nothing left to do.
   *
   * `pace` (virtual ns per wall-clock ns, e.g. 1) keeps virtual time from running ahead of
   * wall-clock time, for interactive use: the run loop (host code, not a guest) waits on the
   * host's timers when virtual time gets ahead. `hostBusy` holds the machine still while host
   * I/O is in flight (see {@link RunAsyncOptions}).
   */
  runAsync(until = Infinity, options: RunAsyncOptions = {}): Promise<RunResult> {
    const pace = options.pace;
    const hostBusy = options.hostBusy;
    const hostSettled = options.hostSettled;
    if (pace !== undefined && pace > 0) return this.runPaced(until, pace, hostBusy);
    // Unpaced: each step runs in its own host turn (setImmediate: every promise continuation
    // queued before it has run), with no promise of its own per step.
    return new Promise<RunResult>((resolve, reject) => {
      const later = (): void => void setImmediate(step);
      const step = (): void => {
        try {
          // Host I/O in flight: the machine holds still (no task, no timer, no time) until it settles.
          if (hostBusy?.()) {
            if (hostSettled !== undefined) hostSettled().then(later, reject);
            else setImmediate(step);
            return;
          }
          const s = this.scheduler.step(until);
          if (s === "until") resolve("until");
          else if (s !== "idle") setImmediate(step);
          else setImmediate(idle);
        } catch (e) {
          reject(e);
        }
      };
      // Nothing could run: one more host turn, then idle unless the host gave the machine work.
      const idle = (): void => {
        try {
          if (this.scheduler.hasRunnable() || this.clock.nextDeadline() !== undefined || hostBusy?.()) {
            step();
            return;
          }
          if (until !== Infinity) this.clock.advanceTo(until);
          resolve("idle");
        } catch (e) {
          reject(e);
        }
      };
      setImmediate(step);
    });
  }

  /** {@link runAsync} keeping virtual time from running ahead of wall-clock time by `pace`. */
  private async runPaced(until: number, pace: number, hostBusy: (() => boolean) | undefined): Promise<RunResult> {
    const wall0 = performance.now();
    const virt0 = this.clock.now();
    const catchUp = async (virtualTarget: number) => {
      const aheadMs = (virtualTarget - virt0) / pace / 1e6 - (performance.now() - wall0);
      if (aheadMs > 1) await new Promise((resolve) => setTimeout(resolve, aheadMs));
    };
    for (;;) {
      await yieldToHost();
      if (hostBusy?.()) continue;
      if (!this.scheduler.hasRunnable()) {
        const next = this.clock.nextDeadline();
        if (next !== undefined) await catchUp(Math.min(next, until));
      }
      const s = this.scheduler.step(until);
      await catchUp(this.clock.now());
      if (s === "until") return "until";
      if (s !== "idle") continue;
      await yieldToHost();
      if (this.scheduler.hasRunnable() || this.clock.nextDeadline() !== undefined || hostBusy?.()) continue;
      if (until !== Infinity) {
        await catchUp(until);
        this.clock.advanceTo(until);
      }
      return "idle";
    }
  }

  /** Runs for `ns` of virtual time. */
  runFor(ns: number): RunResult {
    return this.scheduler.run(this.clock.now() + ns);
  }

  /** Moves whatever `d` has put in its console ring into its console log. */
  drainConsole(d: Domain): void {
    if (d.alive && d.consolePfn >= 0) d.consoleLog += drainConsoleOut(this.memory.page(d.p2m[d.consolePfn]!));
  }

  /** Types `text` at the hypervisor's own console, for dom0's CONSOLEIO_read. */
  serialInput(text: string): void {
    this.serialInputBuffer += text;
  }

  /**
   * Types `text` into domain `domid`'s console (its `in` ring) and raises its console port, as
   * xenconsoled does; returns how many bytes fit.
   */
  consoleInput(domid: DomId, text: string): number {
    const d = this.mustGet(domid);
    const n = writeConsoleIn(this.memory.page(d.p2m[d.consolePfn]!), new TextEncoder().encode(text));
    if (n > 0) this.evtchn.raise(d, d.consolePort);
    return n;
  }

  /** What domain `domid` printed on its console (drains its ring first). */
  consoleOf(domid: DomId): string {
    const d = this.table.get(domid);
    if (d === undefined) return "";
    this.drainConsole(d);
    return d.consoleLog;
  }

  // ------------------------------------------------------------------ devices and I/O spaces

  /**
   * Enumerates PCI through ports 0xCF8/0xCFC, assigns BARs where firmware did not, and gives
   * each configured device to its driver domain. Returns the devices found.
   */
  probePci(): readonly ProbedDevice[] {
    this.probed = probePci(this.pciConfig, this.probeOptions).map((p) => ({ ...p, owner: undefined }));
    for (const p of this.probed) this.log(`pci ${formatBdf(p.address)} ${p.vendorId.toString(16)}:${p.deviceId.toString(16)} irq ${p.irq ?? "-"}`);
    for (const d of this.table.values()) if (d.alive) this.applyAssignments(d);
    return this.probed;
  }

  /** Devices found by {@link probePci}. */
  get devices(): readonly ProbedDevice[] {
    return this.probed;
  }

  private applyAssignments(d: Domain): void {
    for (const a of this.assignments) {
      if (a.domain !== d.name) continue;
      for (const p of this.probed) {
        const match = "vendorId" in a.device ? p.vendorId === a.device.vendorId && (a.device.deviceId === undefined || p.deviceId === a.device.deviceId) : sameAddress(p.address, a.device);
        if (match && p.owner === undefined) this.assignDevice(p.address, d.domid);
      }
    }
  }

  /** Gives `domid` a probed device: exactly its I/O BARs' ports, memory BARs' ranges and its IRQ. */
  assignDevice(address: PciAddress, domid: DomId): void {
    const d = this.mustGet(domid);
    const p = this.probed.find((x) => sameAddress(x.address, address));
    if (p === undefined) throw new Error(`no PCI device at ${formatBdf(address)} (probe first)`);
    if (p.owner !== undefined && p.owner !== domid) throw new Error(`${formatBdf(address)} already belongs to d${p.owner}`);
    p.owner = domid;
    for (const bar of p.bars) {
      if (bar === undefined) continue;
      if (bar.kind === "io") d.ioSpace.allowPorts(bar.base, bar.size);
      else d.ioSpace.allowMmio(bar.base, bar.size);
    }
    if (p.irq !== undefined) d.ioSpace.allowIrq(p.irq);
    this.log(`pci ${formatBdf(address)} assigned to d${domid} (${d.name})`);
  }

  /** Grants `domid` raw port access (legacy devices without PCI, e.g. a PC's IDE ports). */
  grantIoPorts(domid: DomId, base: number, length: number): void {
    this.mustGet(domid).ioSpace.allowPorts(base, length);
  }
  grantMmio(domid: DomId, base: number, length: number): void {
    this.mustGet(domid).ioSpace.allowMmio(base, length);
  }
  grantIrq(domid: DomId, irq: number): void {
    this.mustGet(domid).ioSpace.allowIrq(irq);
  }

  private refuse(d: Domain, what: string): void {
    d.violations++;
    this.log(`d${d.domid}: refused ${what}`);
  }

  private isConfigPort(port: number, size: number): boolean {
    return port + size > PCI_CONF1.ADDRESS_PORT && port < PCI_CONF1.DATA_PORT + 4;
  }

  /**
   * Port read on behalf of `d`: performed only inside its I/O space; refused reads return all
   * ones. Ports 0xCF8/0xCFC are emulated per domain and reach only its own devices.
   */
  checkedPortRead(d: Domain, port: number, size: AccessSize): number {
    const ones = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    if (!d.alive) return ones;
    if (this.isConfigPort(port, size)) {
      if (port === PCI_CONF1.ADDRESS_PORT && size === 4) return d.pciConfigAddress;
      if (port >= PCI_CONF1.DATA_PORT) {
        const dec = decodeConfigAddress(d.pciConfigAddress);
        if (dec === undefined) return ones;
        return this.checkedConfigRead(d, dec.address, dec.register + (port - PCI_CONF1.DATA_PORT), size).value;
      }
      return ones;
    }
    if (!d.ioSpace.portsPermitted(port, size)) {
      this.refuse(d, `port read 0x${port.toString(16)}/${size}`);
      return ones;
    }
    return this.ports.read(port, size);
  }

  checkedPortWrite(d: Domain, port: number, size: AccessSize, value: number): void {
    if (!d.alive) return;
    if (this.isConfigPort(port, size)) {
      if (port === PCI_CONF1.ADDRESS_PORT && size === 4) d.pciConfigAddress = value >>> 0;
      else if (port >= PCI_CONF1.DATA_PORT) {
        const dec = decodeConfigAddress(d.pciConfigAddress);
        if (dec !== undefined) this.checkedConfigWrite(d, dec.address, dec.register + (port - PCI_CONF1.DATA_PORT), size, value);
      }
      return;
    }
    if (!d.ioSpace.portsPermitted(port, size)) {
      this.refuse(d, `port write 0x${port.toString(16)}/${size} <- 0x${(value >>> 0).toString(16)}`);
      return;
    }
    this.ports.write(port, size, value);
  }

  checkedMmioRead(d: Domain, address: number, size: AccessSize): number {
    const ones = size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    if (!d.alive) return ones;
    if (!d.ioSpace.mmioPermitted(address, size)) {
      this.refuse(d, `MMIO read 0x${address.toString(16)}/${size}`);
      return ones;
    }
    return this.mmio.read(address, size);
  }

  checkedMmioWrite(d: Domain, address: number, size: AccessSize, value: number): void {
    if (!d.alive) return;
    if (!d.ioSpace.mmioPermitted(address, size)) {
      this.refuse(d, `MMIO write 0x${address.toString(16)}/${size}`);
      return;
    }
    this.mmio.write(address, size, value);
  }

  private configCheck(d: Domain, a: PciAddress, reg: number, size: number, write: boolean): number {
    if (!Number.isInteger(reg) || reg < 0 || reg + size > 256 || (reg & (size - 1)) !== 0) return -E.EINVAL;
    const p = this.probed.find((x) => sameAddress(x.address, a));
    const mine = p !== undefined && p.owner === d.domid;
    // The initial domain may read devices nobody was given.
    const readable = mine || (!write && d.domid === 0 && d.privileged && p !== undefined && p.owner === undefined);
    if (!readable) {
      this.refuse(d, `config ${write ? "write" : "read"} ${formatBdf(a)} +0x${reg.toString(16)}`);
      return -E.EPERM;
    }
    // BARs and the ROM BAR are the hypervisor's: moving them would move the I/O space.
    if (write && ((reg < 0x28 && reg + size > 0x10) || (reg < 0x34 && reg + size > 0x30))) {
      this.refuse(d, `config write to BAR ${formatBdf(a)} +0x${reg.toString(16)}`);
      return -E.EPERM;
    }
    return 0;
  }

  /**
   * The port bus an x86 PV vCPU of `domid` sees for IN/OUT: every access checked against the
   * domain's I/O space (Xen's emulate_privileged_op / guest_io_okay), 0xCF8/0xCFC emulated.
   */
  domainPorts(domid: DomId): { read(port: number, size: AccessSize): number; write(port: number, size: AccessSize, value: number): void } {
    const d = this.mustGet(domid);
    return {
      read: (port, size) => this.checkedPortRead(d, port, size),
      write: (port, size, value) => this.checkedPortWrite(d, port, size, value),
    };
  }

  /** Config-space read on behalf of `d`, only of its own devices. */
  checkedConfigRead(d: Domain, a: PciAddress, reg: number, size: AccessSize): { rc: number; value: number } {
    const rc = this.configCheck(d, a, reg, size, false);
    if (rc < 0) return { rc, value: size === 4 ? 0xffffffff : (1 << (size * 8)) - 1 };
    return { rc: 0, value: this.pciConfig.read(a, reg, size) };
  }

  checkedConfigWrite(d: Domain, a: PciAddress, reg: number, size: AccessSize, value: number): number {
    const rc = this.configCheck(d, a, reg, size, true);
    if (rc < 0) return rc;
    this.pciConfig.write(a, reg, size, value);
    return 0;
  }

  /**
   * Whether `d` may point DMA at machine `[address, address + length)`: every frame must be its
   * own RAM or a grant it has mapped (writable when the device writes).
   */
  dmaPermitted(d: Domain, address: number, length: number, deviceWrites: boolean): boolean {
    if (length <= 0 || address < 0 || address + length > this.memory.bytes.length) return false;
    const first = Math.floor(address / PAGE_SIZE);
    const last = Math.floor((address + length - 1) / PAGE_SIZE);
    const mem = this.memory;
    const hints = this.dmaHints.get(d);
    let unproven = 0;
    for (let mfn = first; mfn <= last; mfn++) {
      if (mem.owner[mfn] === d.domid && mem.type[mfn] === FRAME_TYPE.ram) continue;
      // Nobody maps a frame without a reference on it: no need to look for a mapping.
      if (mem.refs[mfn] === 0) return this.refuseDma(d, mfn);
      // The maptrack slot that held this frame last time, checked again now (a persistent grant stays put).
      const h = hints?.get(mfn);
      const m = h !== undefined ? d.maptrack[h] : undefined;
      if (m !== undefined && m.mfn === mfn && (!deviceWrites || m.writable)) continue;
      unproven++;
    }
    if (unproven === 0) return true;
    // One pass over the maptrack marks the frames of the range `d` maps (writable when the device
    // writes) and remembers their slots, instead of one pass per frame.
    const n = last - first + 1;
    if (this.dmaMarks.length < n) this.dmaMarks = new Uint8Array(Math.max(n, 2 * this.dmaMarks.length));
    const marks = this.dmaMarks;
    marks.fill(0, 0, n);
    let known = hints;
    if (known === undefined) {
      known = new Map();
      this.dmaHints.set(d, known);
    }
    const track = d.maptrack;
    for (let h = 0; h < track.length; h++) {
      const m = track[h];
      if (m === undefined || m.mfn < first || m.mfn > last || (deviceWrites && !m.writable)) continue;
      marks[m.mfn - first] = 1;
      known.set(m.mfn, h);
    }
    for (let mfn = first; mfn <= last; mfn++) {
      if (marks[mfn - first] === 1 || (mem.owner[mfn] === d.domid && mem.type[mfn] === FRAME_TYPE.ram)) continue;
      return this.refuseDma(d, mfn);
    }
    return true;
  }

  private refuseDma(d: Domain, mfn: number): false {
    this.refuse(d, `DMA to mfn 0x${mfn.toString(16)}`);
    return false;
  }

  /** RAM frames `d` holds now (its current reservation). */
  reservation(d: Domain): number {
    let n = 0;
    for (let pfn = 0; pfn < d.p2m.length; pfn++) if (d.p2m[pfn]! >= 0) n++;
    return n;
  }

  /**
   * XENMEM_exchange-like: replaces the frames behind `pfns` of `d` with `pfns.length`
   * machine-contiguous frames. Returns the first new MFN or a negated errno.
   */
  exchangeContiguous(d: Domain, pfns: readonly number[]): number {
    for (const pfn of pfns) {
      const mfn = d.p2m[pfn];
      if (mfn === undefined || mfn < 0 || this.memory.refs[mfn]! > 0) return -E.EBUSY;
    }
    const first = this.memory.allocContiguous(pfns.length, d.domid, FRAME_TYPE.ram);
    if (first < 0) return -E.ENOMEM;
    pfns.forEach((pfn, i) => {
      this.memory.freeFrame(d.p2m[pfn]!);
      d.p2m[pfn] = first + i;
      this.memory.m2p[first + i] = pfn;
    });
    return first;
  }
}
