/**
 * The hypercall table. One set of implementations serves both kinds of guest:
 * - native (TypeScript) kernels call the typed methods directly (`evtchnSend(d, port)`);
 * - x86 PV guests trap with `int 0x82`; {@link Hypercalls.x86} decodes EAX (the hypercall
 *   number) and EBX, ECX, EDX, ESI, EDI (arguments) and the argument structures in guest
 *   memory [x86_32 ABI, xen/include/public/arch-x86/xen-x86_32.h], calls the same typed method,
 *   and writes the result (negated errno on failure) back to EAX.
 *
 * Struct offsets are the x86_32 layouts in {@link ARGS_X86_32} (abi.ts).
 */
import { EVTCHNOP, EVTCHNSTAT, GNTMAP, GNTTABOP, GNTCOPY } from "@paravirt/device-channel";
import { DOMID, GNTST, XEN_ERRNO, type DomId } from "@paravirt/vm-interfaces";
import { ARGS_X86_32 as A, CONSOLEIO, DOMCTL, MMU, XENMEM, HYPERVISOR, PHYSDEVOP, SCHEDOP, VMASST, XENVER, XEN_VERSION } from "./abi.ts";
import type { Domain, GuestVirtualMemory, X86Registers } from "./domain.ts";
import type { EvtchnStatus } from "./eventChannels.ts";
import type { CopyOp, MapResult } from "./grantTable.ts";
import type { Hypervisor } from "./hypervisor.ts";
import { FRAME_TYPE } from "./machineMemory.ts";
import { MMUEXT, PTE, UVMF, cr3ToMfn, entryMfn, l1EntryAddress, mfnToCr3, tableFrames } from "./pae.ts";

const E = XEN_ERRNO;

/** One row of the coverage table. */
export interface HypercallInfo {
  readonly nr: number;
  readonly name: string;
  /** Sub-operations implemented (empty when the call has none). */
  readonly subops: readonly string[];
}

type X86Handler = (d: Domain, regs: X86Registers, mem: GuestVirtualMemory) => number;

/** The hypercalls with an implementation, and the sub-operations each one covers. */
export const HYPERCALL_COVERAGE: readonly HypercallInfo[] = [
  { nr: HYPERVISOR.mmu_update, name: "mmu_update", subops: ["MMU_MACHPHYS_UPDATE"] },
  { nr: HYPERVISOR.update_va_mapping, name: "update_va_mapping", subops: ["UVMF_NONE", "UVMF_TLB_FLUSH", "UVMF_INVLPG"] },
  { nr: HYPERVISOR.mmuext_op, name: "mmuext_op", subops: ["PIN_L1/L2/L3_TABLE", "UNPIN_TABLE", "NEW_BASEPTR", "TLB_FLUSH_LOCAL/ALL", "INVLPG_LOCAL/ALL"] },
  { nr: HYPERVISOR.sched_op, name: "sched_op", subops: ["yield", "block", "shutdown"] },
  { nr: HYPERVISOR.sched_op_compat, name: "sched_op_compat", subops: ["yield", "block", "shutdown"] },
  { nr: HYPERVISOR.event_channel_op_compat, name: "event_channel_op_compat", subops: ["as event_channel_op"] },
  { nr: HYPERVISOR.physdev_op_compat, name: "physdev_op_compat", subops: ["as physdev_op"] },
  { nr: HYPERVISOR.memory_op, name: "memory_op", subops: ["increase_reservation", "decrease_reservation", "populate_physmap", "maximum_ram_page", "current_reservation", "maximum_reservation"] },
  { nr: HYPERVISOR.set_timer_op, name: "set_timer_op", subops: [] },
  { nr: HYPERVISOR.xen_version, name: "xen_version", subops: ["version", "extraversion", "pagesize"] },
  { nr: HYPERVISOR.console_io, name: "console_io", subops: ["write", "read"] },
  { nr: HYPERVISOR.grant_table_op, name: "grant_table_op", subops: ["map_grant_ref", "unmap_grant_ref", "setup_table", "dump_table", "transfer", "copy", "query_size", "set_version", "get_version"] },
  { nr: HYPERVISOR.vm_assist, name: "vm_assist", subops: ["enable", "disable"] },
  { nr: HYPERVISOR.event_channel_op, name: "event_channel_op", subops: ["bind_interdomain", "bind_virq", "bind_pirq", "close", "send", "status", "alloc_unbound", "bind_ipi", "unmask"] },
  { nr: HYPERVISOR.physdev_op, name: "physdev_op", subops: ["eoi", "irq_status_query", "pci_cfgreg_read (Xen 2.0)", "pci_cfgreg_write (Xen 2.0)"] },
  { nr: HYPERVISOR.domctl, name: "domctl", subops: ["destroydomain", "pausedomain", "unpausedomain"] },
];

export class Hypercalls {
  private readonly hv: Hypervisor;
  private readonly x86Table = new Map<number, X86Handler>();
  /** Calls handled, by hypercall number (both paths). */
  readonly counts = new Map<number, number>();

  constructor(hv: Hypervisor) {
    this.hv = hv;
    this.x86Table.set(HYPERVISOR.event_channel_op, (d, r, m) => this.x86EventChannelOp(d, r.ebx, r.ecx, m));
    this.x86Table.set(HYPERVISOR.grant_table_op, (d, r, m) => this.x86GrantTableOp(d, r.ebx, r.ecx, r.edx, m));
    this.x86Table.set(HYPERVISOR.sched_op, (d, r, m) => this.x86SchedOp(d, r.ebx, r.ecx, m));
    this.x86Table.set(HYPERVISOR.set_timer_op, (d, r) => this.setTimerOp(d, (r.ebx >>> 0) + (r.ecx >>> 0) * 2 ** 32));
    this.x86Table.set(HYPERVISOR.xen_version, (d, r) => this.xenVersion(d, r.ebx));
    this.x86Table.set(HYPERVISOR.vm_assist, (d, r) => this.vmAssist(d, r.ebx, r.ecx));
    this.x86Table.set(HYPERVISOR.console_io, (d, r, m) => this.x86ConsoleIo(d, r.ebx, r.ecx, r.edx, m));
    this.x86Table.set(HYPERVISOR.mmu_update, (d, r, m) => this.x86MmuUpdate(d, r.ebx, r.ecx, r.edx, r.esi, m));
    this.x86Table.set(HYPERVISOR.update_va_mapping, (d, r) => this.updateVaMapping(d, r.ebx, r.ecx, r.edx, r.esi));
    this.x86Table.set(HYPERVISOR.mmuext_op, (d, r, m) => this.x86MmuextOp(d, r.ebx, r.ecx, r.edx, r.esi, m));
    this.x86Table.set(HYPERVISOR.memory_op, (d, r, m) => this.x86MemoryOp(d, r.ebx, r.ecx, m));
    this.x86Table.set(HYPERVISOR.physdev_op, (d, r, m) => this.x86PhysdevOp(d, r.ebx, r.ecx, m));
    // The pre-3.0.2 ABI Xen 2.0-era kernels use: the sub-op number inside the argument struct,
    // and sched_op's argument by value [xen.h __HYPERVISOR_*_compat].
    this.x86Table.set(HYPERVISOR.event_channel_op_compat, (d, r, m) => {
      const cmd = m.readU32(r.ebx + A.evtchn_op.CMD);
      return cmd === undefined ? -E.EFAULT : this.x86EventChannelOp(d, cmd, r.ebx + A.evtchn_op.U, m);
    });
    this.x86Table.set(HYPERVISOR.physdev_op_compat, (d, r, m) => {
      const cmd = m.readU32(r.ebx + A.physdev_op.CMD);
      return cmd === undefined ? -E.EFAULT : this.x86PhysdevOp(d, cmd, r.ebx + A.physdev_op.U, m);
    });
    this.x86Table.set(HYPERVISOR.sched_op_compat, (d, r) => {
      if (r.ebx === SCHEDOP.shutdown) return this.schedShutdown(d, r.ecx);
      if (r.ebx === SCHEDOP.yield) return this.schedYield(d);
      if (r.ebx === SCHEDOP.block) return this.schedBlock(d);
      return -E.ENOSYS;
    });
  }

  private count(nr: number): void {
    this.counts.set(nr, (this.counts.get(nr) ?? 0) + 1);
  }

  // ---------------------------------------------------------------- event_channel_op (32)

  evtchnAllocUnbound(d: Domain, dom: DomId, remoteDom: DomId): number {
    this.count(HYPERVISOR.event_channel_op);
    return this.hv.evtchn.allocUnbound(d, dom, remoteDom);
  }
  evtchnBindInterdomain(d: Domain, remoteDom: DomId, remotePort: number): number {
    this.count(HYPERVISOR.event_channel_op);
    return this.hv.evtchn.bindInterdomain(d, remoteDom, remotePort);
  }
  evtchnBindVirq(d: Domain, virq: number, vcpu = 0): number {
    this.count(HYPERVISOR.event_channel_op);
    return this.hv.evtchn.bindVirq(d, virq, vcpu);
  }
  evtchnBindPirq(d: Domain, pirq: number): number {
    this.count(HYPERVISOR.event_channel_op);
    return this.hv.evtchn.bindPirq(d, pirq);
  }
  evtchnBindIpi(d: Domain, vcpu = 0): number {
    this.count(HYPERVISOR.event_channel_op);
    return this.hv.evtchn.bindIpi(d, vcpu);
  }
  evtchnClose(d: Domain, port: number): number {
    this.count(HYPERVISOR.event_channel_op);
    return this.hv.evtchn.close(d, port);
  }
  evtchnSend(d: Domain, port: number): number {
    this.count(HYPERVISOR.event_channel_op);
    return this.hv.evtchn.send(d, port);
  }
  evtchnStatus(d: Domain, dom: DomId, port: number): EvtchnStatus | number {
    this.count(HYPERVISOR.event_channel_op);
    return this.hv.evtchn.status(d, dom, port);
  }
  evtchnUnmask(d: Domain, port: number): number {
    this.count(HYPERVISOR.event_channel_op);
    return this.hv.evtchn.unmask(d, port);
  }

  // ---------------------------------------------------------------- grant_table_op (20)

  gnttabMapGrantRef(d: Domain, dom: DomId, ref: number, flags: number): MapResult {
    this.count(HYPERVISOR.grant_table_op);
    if ((flags & (GNTMAP.host_map | GNTMAP.device_map)) === 0) return { status: GNTST.general_error, handle: -1, mfn: -1 };
    return this.hv.gnttab.map(d, dom, ref, (flags & GNTMAP.readonly) !== 0);
  }
  gnttabUnmapGrantRef(d: Domain, handle: number): number {
    this.count(HYPERVISOR.grant_table_op);
    return this.hv.gnttab.unmap(d, handle);
  }
  gnttabSetupTable(d: Domain, dom: DomId, nrFrames: number): { status: number; frames: number[] } {
    this.count(HYPERVISOR.grant_table_op);
    return this.hv.gnttab.setupTable(d, dom, nrFrames);
  }
  gnttabQuerySize(d: Domain, dom: DomId): { status: number; nrFrames: number; maxFrames: number } {
    this.count(HYPERVISOR.grant_table_op);
    return this.hv.gnttab.querySize(d, dom);
  }
  gnttabCopy(d: Domain, ops: readonly CopyOp[]): number[] {
    this.count(HYPERVISOR.grant_table_op);
    return this.hv.gnttab.copy(d, ops);
  }
  /** GNTTABOP_transfer of the caller's page `frame` into `domid`'s accept-transfer entry `ref`. */
  gnttabTransfer(d: Domain, frame: number, domid: DomId, ref: number): number {
    this.count(HYPERVISOR.grant_table_op);
    return this.hv.gnttab.transfer(d, frame, domid, ref);
  }

  /** GNTTABOP_set_version: only v1 is implemented. */
  gnttabSetVersion(d: Domain, version: number): number {
    this.count(HYPERVISOR.grant_table_op);
    if (version !== 1) return -E.EINVAL;
    d.grantVersion = 1;
    return 0;
  }
  /** GNTTABOP_dump_table: logs the table; a debugging aid. */
  gnttabDumpTable(d: Domain, dom: DomId): number {
    this.count(HYPERVISOR.grant_table_op);
    const t = this.hv.resolveDomain(d, dom);
    if (t === undefined) return GNTST.bad_domain;
    if (t !== d && !d.privileged) return GNTST.permission_denied;
    this.hv.log(`d${t.domid}: grant table ${t.grantFrames.length} frame(s), ${this.hv.gnttab.activeEntries(t)} entries in use, ${t.activeGrants.size} pinned`);
    return GNTST.okay;
  }

  // ---------------------------------------------------------------- sched_op (29)

  schedYield(d: Domain): number {
    this.count(HYPERVISOR.sched_op);
    // Guests that wait by yielding (PV GRUB) expect the console to drain meanwhile.
    this.hv.drainConsole(d);
    this.hv.scheduler.yield(d);
    return 0;
  }
  /** SCHEDOP_block: enables event delivery and blocks unless an event is pending. */
  schedBlock(d: Domain): number {
    this.count(HYPERVISOR.sched_op);
    d.sharedInfo.setUpcallMask(0, 0);
    if (d.sharedInfo.upcallPending(0) === 0) this.hv.scheduler.block(d);
    return 0;
  }
  schedShutdown(d: Domain, reason: number): number {
    this.count(HYPERVISOR.sched_op);
    this.hv.shutdown(d, reason);
    return 0;
  }

  // ---------------------------------------------------------------- memory_op (12)

  private reservationTarget(d: Domain, dom: DomId): Domain | number {
    const t = this.hv.resolveDomain(d, dom);
    if (t === undefined) return -E.ESRCH;
    if (t !== d && !d.privileged) return -E.EPERM;
    return t;
  }

  /**
   * XENMEM_decrease_reservation: gives frames back to the hypervisor (ballooning out). `frames`
   * are as the domain names them (pfns when translated, MFNs for PV). Returns how many were
   * released before the first that could not be (not its RAM, or still mapped by a grantee).
   */
  memoryDecreaseReservation(d: Domain, frames: readonly number[], dom: DomId = DOMID.SELF): number {
    this.count(HYPERVISOR.memory_op);
    const t = this.reservationTarget(d, dom);
    if (typeof t === "number") return t;
    const mem = this.hv.memory;
    let done = 0;
    for (const frame of frames) {
      const mfn = this.hv.gnttab.frameToMfn(t, frame);
      if (mfn < 0 || mem.refs[mfn]! > 0 || t.isPinnedTable(mfn)) break;
      const pfn = mem.m2p[mfn]!;
      if (pfn >= 0 && t.p2m[pfn] === mfn) t.p2m[pfn] = -1;
      mem.freeFrame(mfn);
      done++;
    }
    return done;
  }

  /**
   * XENMEM_populate_physmap: backs the holes `pfns` of the domain's pseudo-physical space with
   * fresh frames, within its maximum reservation. Returns the new MFNs (as many as were done).
   */
  memoryPopulatePhysmap(d: Domain, pfns: readonly number[], dom: DomId = DOMID.SELF): number[] | number {
    this.count(HYPERVISOR.memory_op);
    const t = this.reservationTarget(d, dom);
    if (typeof t === "number") return t;
    const mfns: number[] = [];
    for (const pfn of pfns) {
      if (!Number.isInteger(pfn) || pfn < 0 || pfn >= t.nrPages || t.p2m[pfn] !== -1) break;
      const mfn = this.hv.memory.allocFrame(t.domid, FRAME_TYPE.ram);
      if (mfn < 0) break;
      t.p2m[pfn] = mfn;
      this.hv.memory.m2p[mfn] = pfn;
      mfns.push(mfn);
    }
    return mfns;
  }

  /** XENMEM_increase_reservation: `count` fresh frames into the domain's holes (lowest first); their MFNs. */
  memoryIncreaseReservation(d: Domain, count: number, dom: DomId = DOMID.SELF): number[] | number {
    const t = this.reservationTarget(d, dom);
    if (typeof t === "number") {
      this.count(HYPERVISOR.memory_op);
      return t;
    }
    const holes: number[] = [];
    for (let pfn = 0; pfn < t.p2m.length && holes.length < count; pfn++) if (t.p2m[pfn] === -1) holes.push(pfn);
    return this.memoryPopulatePhysmap(d, holes, dom);
  }

  /** XENMEM_current_reservation / maximum_reservation / maximum_ram_page. */
  memoryQuery(d: Domain, cmd: number, dom: DomId = DOMID.SELF): number {
    this.count(HYPERVISOR.memory_op);
    if (cmd === XENMEM.maximum_ram_page) return this.hv.memory.frameCount - 1;
    const t = this.reservationTarget(d, dom);
    if (typeof t === "number") return t;
    if (cmd === XENMEM.current_reservation) return this.hv.reservation(t);
    if (cmd === XENMEM.maximum_reservation) return t.nrPages;
    return -E.ENOSYS;
  }

  // ---------------------------------------------------------------- mmu_update (1)

  /**
   * mmu_update: applies `reqs` in order, stopping at the first failure; returns 0 or a negated
   * errno and how many were done. Only MMU_MACHPHYS_UPDATE (an M2P entry for a frame the PV
   * domain owns) is implemented: page-table updates need cpu-x86's validated page tables.
   */
  mmuUpdate(d: Domain, reqs: readonly { ptr: number; val: number }[], foreignDom: DomId = DOMID.SELF): { rc: number; done: number } {
    this.count(HYPERVISOR.mmu_update);
    const owner = this.hv.resolveDomain(d, foreignDom);
    if (owner === undefined) return { rc: -E.ESRCH, done: 0 };
    if (owner !== d && !d.privileged) return { rc: -E.EPERM, done: 0 };
    let done = 0;
    for (const req of reqs) {
      const type = req.ptr % 4;
      if (type !== MMU.MACHPHYS_UPDATE) return { rc: -E.ENOSYS, done };
      const mfn = Math.floor(req.ptr / 4096);
      const mem = this.hv.memory;
      if (owner.translated || !mem.valid(mfn) || mem.owner[mfn] !== owner.domid || req.val < 0 || req.val >= owner.nrPages) return { rc: -E.EINVAL, done };
      mem.m2p[mfn] = req.val;
      done++;
    }
    return { rc: 0, done };
  }

  /**
   * update_va_mapping: writes the L1 entry that maps `va` in the vCPU's current tables
   * (`pteHi:pteLo`), after checking the new entry maps a frame the domain owns and is not a
   * writable mapping of one of its pinned page tables; then flushes as `flags` asks.
   */
  updateVaMapping(d: Domain, va: number, pteLo: number, pteHi: number, flags: number): number {
    this.count(HYPERVISOR.update_va_mapping);
    const paging = d.vcpu?.paging;
    if (paging === undefined) return -E.ENOSYS;
    const mem = this.hv.memory;
    const at = l1EntryAddress(mem, cr3ToMfn(paging.cr3), va >>> 0);
    if (at === undefined) return -E.EINVAL;
    if ((pteLo & PTE.P) !== 0) {
      const mfn = entryMfn(pteLo >>> 0, pteHi >>> 0);
      if (!this.mayMap(d, mfn, (pteLo & PTE.RW) !== 0)) return -E.EINVAL;
    }
    mem.dv.setUint32(at, pteLo >>> 0, true);
    mem.dv.setUint32(at + 4, pteHi >>> 0, true);
    const kind = flags & UVMF.FLUSHTYPE_MASK;
    if (kind === UVMF.TLB_FLUSH) paging.flushTlb(true);
    else if (kind === UVMF.INVLPG) {
      if (paging.invlpg !== undefined) paging.invlpg(va >>> 0);
      else paging.flushTlb(false);
    }
    return 0;
  }

  /** A PV domain may map its own frames (RAM, shared_info, grant table); page tables read-only. */
  private mayMap(d: Domain, mfn: number, writable: boolean): boolean {
    const mem = this.hv.memory;
    if (!mem.valid(mfn)) return false;
    const own = mem.owner[mfn] === d.domid || this.hv.gnttab.holdsMapping(d, mfn, writable);
    if (!own) {
      d.violations++;
      this.hv.log(`d${d.domid}: refused mapping of mfn 0x${mfn.toString(16)}`);
      return false;
    }
    return !(writable && d.isPinnedTable(mfn));
  }

  /** mmuext_op: pin / unpin page-table trees, switch base pointer, flush. Stops at the first failure. */
  mmuextOp(d: Domain, ops: readonly { cmd: number; arg1: number }[]): { rc: number; done: number } {
    this.count(HYPERVISOR.mmuext_op);
    const paging = d.vcpu?.paging;
    const mem = this.hv.memory;
    let done = 0;
    for (const op of ops) {
      switch (op.cmd) {
        case MMUEXT.PIN_L1_TABLE:
        case MMUEXT.PIN_L2_TABLE:
        case MMUEXT.PIN_L3_TABLE: {
          const mfn = op.arg1;
          if (!mem.valid(mfn) || mem.owner[mfn] !== d.domid || d.pinned.has(mfn)) return { rc: -E.EINVAL, done };
          const frames = op.cmd === MMUEXT.PIN_L3_TABLE ? tableFrames(mem, mfn) : [mfn];
          if (frames === undefined || frames.some((f) => mem.owner[f] !== d.domid)) return { rc: -E.EINVAL, done };
          d.pinned.set(mfn, frames);
          break;
        }
        case MMUEXT.UNPIN_TABLE:
          if (!d.pinned.delete(op.arg1)) return { rc: -E.EINVAL, done };
          break;
        case MMUEXT.NEW_BASEPTR:
          if (paging === undefined) return { rc: -E.ENOSYS, done };
          if (!d.pinned.has(op.arg1)) return { rc: -E.EINVAL, done };
          paging.loadCr3(mfnToCr3(op.arg1));
          paging.flushTlb(true);
          break;
        case MMUEXT.TLB_FLUSH_LOCAL:
        case MMUEXT.TLB_FLUSH_ALL:
          if (paging === undefined) return { rc: -E.ENOSYS, done };
          paging.flushTlb(true);
          break;
        case MMUEXT.INVLPG_LOCAL:
        case MMUEXT.INVLPG_ALL:
          if (paging === undefined) return { rc: -E.ENOSYS, done };
          if (paging.invlpg !== undefined) paging.invlpg(op.arg1 >>> 0);
          else paging.flushTlb(false);
          break;
        default:
          return { rc: -E.ENOSYS, done };
      }
      done++;
    }
    return { rc: 0, done };
  }

  // ---------------------------------------------------------------- others

  /** set_timer_op: absolute system time in ns; 0 cancels. */
  setTimerOp(d: Domain, deadline: number): number {
    this.count(HYPERVISOR.set_timer_op);
    return this.hv.time.setTimer(d, deadline);
  }

  xenVersion(d: Domain, cmd: number): number {
    this.count(HYPERVISOR.xen_version);
    void d;
    if (cmd === XENVER.version) return (XEN_VERSION.major << 16) | XEN_VERSION.minor;
    if (cmd === XENVER.pagesize) return 4096;
    if (cmd === XENVER.extraversion) return 0;
    return -E.ENOSYS;
  }

  /**
   * vm_assist: records the assist in the domain (`vmAssist` bits). pae_extended_cr3 is how CR3
   * is always read here; the others change nothing yet.
   */
  vmAssist(d: Domain, cmd: number, type: number): number {
    this.count(HYPERVISOR.vm_assist);
    if (cmd !== VMASST.CMD_enable && cmd !== VMASST.CMD_disable) return -E.ENOSYS;
    if (!Number.isInteger(type) || type < 0 || type > VMASST.TYPE_pae_extended_cr3) return -E.EINVAL;
    if (cmd === VMASST.CMD_enable) d.vmAssist |= 1 << type;
    else d.vmAssist &= ~(1 << type);
    return 0;
  }

  /** CONSOLEIO_write to the hypervisor console: privileged domains only (xsm_console_io). */
  consoleWrite(d: Domain, text: string): number {
    this.count(HYPERVISOR.console_io);
    if (!d.privileged) return -E.EPERM;
    this.hv.consoleOutput += text;
    return 0;
  }

  /** CONSOLEIO_read: takes up to `max` characters typed at the hypervisor console (`Hypervisor.serialInput`). */
  consoleRead(d: Domain, max: number): string | number {
    this.count(HYPERVISOR.console_io);
    if (!d.privileged) return -E.EPERM;
    if (!Number.isInteger(max) || max < 0) return -E.EINVAL;
    const text = this.hv.serialInputBuffer.slice(0, max);
    this.hv.serialInputBuffer = this.hv.serialInputBuffer.slice(text.length);
    return text;
  }

  physdevEoi(d: Domain, irq: number): number {
    this.count(HYPERVISOR.physdev_op);
    return this.hv.pirq.eoi(d, irq);
  }
  physdevIrqStatusQuery(d: Domain, irq: number): { rc: number; flags: number } {
    this.count(HYPERVISOR.physdev_op);
    return this.hv.pirq.statusQuery(d, irq);
  }
  /** Xen 2.0 PHYSDEVOP_PCI_CFGREG_READ, checked against the caller's devices. */
  physdevPciCfgRead(d: Domain, bus: number, devfn: number, reg: number, len: 1 | 2 | 4): { rc: number; value: number } {
    this.count(HYPERVISOR.physdev_op);
    return this.hv.checkedConfigRead(d, { bus, device: devfn >> 3, function: devfn & 7 }, reg, len);
  }
  /** Xen 2.0 PHYSDEVOP_PCI_CFGREG_WRITE. */
  physdevPciCfgWrite(d: Domain, bus: number, devfn: number, reg: number, len: 1 | 2 | 4, value: number): number {
    this.count(HYPERVISOR.physdev_op);
    return this.hv.checkedConfigWrite(d, { bus, device: devfn >> 3, function: devfn & 7 }, reg, len, value);
  }

  /** The domctl operations a privileged (control) domain uses on others. */
  domctl(d: Domain, cmd: number, domid: DomId): number {
    this.count(HYPERVISOR.domctl);
    if (!d.privileged) return -E.EPERM;
    const t = this.hv.resolveDomain(d, domid);
    if (t === undefined) return -E.ESRCH;
    switch (cmd) {
      case DOMCTL.pausedomain:
        if (t === d) return -E.EINVAL;
        this.hv.pause(t.domid);
        return 0;
      case DOMCTL.unpausedomain:
        this.hv.unpause(t.domid);
        return 0;
      case DOMCTL.destroydomain:
        if (t === d) return -E.EINVAL;
        this.hv.destroy(t.domid);
        return 0;
      default:
        return -E.ENOSYS;
    }
  }

  // ---------------------------------------------------------------- x86 PV register path

  /**
   * Handles one hypercall trap of an x86 PV vCPU: EAX = number, EBX.. = arguments; the
   * result goes to EAX. Unknown numbers answer -ENOSYS.
   */
  x86(d: Domain, regs: X86Registers, mem: GuestVirtualMemory): number {
    const h = this.x86Table.get(regs.eax >>> 0);
    const rc = h === undefined ? -E.ENOSYS : h(d, regs, mem);
    regs.eax = rc >>> 0;
    return rc;
  }

  private x86EventChannelOp(d: Domain, cmd: number, arg: number, m: GuestVirtualMemory): number {
    const u16 = (o: number) => m.readU16(arg + o);
    const u32 = (o: number) => m.readU32(arg + o);
    const out = (o: number, rc: number) => (rc < 0 ? rc : m.writeU32(arg + o, rc) ? 0 : -E.EFAULT);
    switch (cmd) {
      case EVTCHNOP.alloc_unbound: {
        const L = A.evtchn_alloc_unbound;
        const dom = u16(L.DOM);
        const remote = u16(L.REMOTE_DOM);
        if (dom === undefined || remote === undefined) return -E.EFAULT;
        return out(L.PORT, this.evtchnAllocUnbound(d, dom, remote));
      }
      case EVTCHNOP.bind_interdomain: {
        const L = A.evtchn_bind_interdomain;
        const dom = u16(L.REMOTE_DOM);
        const port = u32(L.REMOTE_PORT);
        if (dom === undefined || port === undefined) return -E.EFAULT;
        return out(L.LOCAL_PORT, this.evtchnBindInterdomain(d, dom, port));
      }
      case EVTCHNOP.bind_virq: {
        const L = A.evtchn_bind_virq;
        const virq = u32(L.VIRQ);
        const vcpu = u32(L.VCPU);
        if (virq === undefined || vcpu === undefined) return -E.EFAULT;
        return out(L.PORT, this.evtchnBindVirq(d, virq, vcpu));
      }
      case EVTCHNOP.bind_pirq: {
        const L = A.evtchn_bind_pirq;
        const pirq = u32(L.PIRQ);
        if (pirq === undefined) return -E.EFAULT;
        return out(L.PORT, this.evtchnBindPirq(d, pirq));
      }
      case EVTCHNOP.bind_ipi: {
        const L = A.evtchn_bind_ipi;
        const vcpu = u32(L.VCPU);
        if (vcpu === undefined) return -E.EFAULT;
        return out(L.PORT, this.evtchnBindIpi(d, vcpu));
      }
      case EVTCHNOP.close:
      case EVTCHNOP.send:
      case EVTCHNOP.unmask: {
        const port = u32(A.evtchn_port.PORT);
        if (port === undefined) return -E.EFAULT;
        if (cmd === EVTCHNOP.close) return this.evtchnClose(d, port);
        if (cmd === EVTCHNOP.send) return this.evtchnSend(d, port);
        return this.evtchnUnmask(d, port);
      }
      case EVTCHNOP.status: {
        const L = A.evtchn_status;
        const dom = u16(L.DOM);
        const port = u32(L.PORT);
        if (dom === undefined || port === undefined) return -E.EFAULT;
        const st = this.evtchnStatus(d, dom, port);
        if (typeof st === "number") return st;
        let ok = m.writeU32(arg + L.STATUS, st.status) && m.writeU32(arg + L.VCPU, st.vcpu);
        if (st.status === EVTCHNSTAT.unbound || st.status === EVTCHNSTAT.interdomain) ok &&= m.writeU16(arg + L.U_DOM, st.dom!);
        if (st.status === EVTCHNSTAT.interdomain) ok &&= m.writeU32(arg + L.U_PORT, st.port!);
        if (st.status === EVTCHNSTAT.pirq) ok &&= m.writeU32(arg + L.U_PIRQ, st.pirq!);
        if (st.status === EVTCHNSTAT.virq) ok &&= m.writeU32(arg + L.U_VIRQ, st.virq!);
        return ok ? 0 : -E.EFAULT;
      }
      default:
        return -E.ENOSYS;
    }
  }

  private x86GrantTableOp(d: Domain, cmd: number, arg: number, count: number, m: GuestVirtualMemory): number {
    if (count >>> 0 > 512) return -E.EINVAL;
    switch (cmd) {
      case GNTTABOP.map_grant_ref: {
        const L = A.gnttab_map_grant_ref;
        for (let i = 0; i < count; i++) {
          const a = arg + i * L.SIZE;
          const flags = m.readU32(a + L.FLAGS);
          const ref = m.readU32(a + L.REF);
          const dom = m.readU16(a + L.DOM);
          if (flags === undefined || ref === undefined || dom === undefined) return -E.EFAULT;
          const r = this.gnttabMapGrantRef(d, dom, ref, flags);
          const bus = r.mfn < 0 ? 0 : r.mfn * 4096;
          const ok =
            m.writeU16(a + L.STATUS, r.status & 0xffff) &&
            m.writeU32(a + L.HANDLE, r.handle >>> 0) &&
            m.writeU32(a + L.DEV_BUS_ADDR, bus >>> 0) &&
            m.writeU32(a + L.DEV_BUS_ADDR + 4, Math.floor(bus / 2 ** 32));
          if (!ok) return -E.EFAULT;
        }
        return 0;
      }
      case GNTTABOP.unmap_grant_ref: {
        const L = A.gnttab_unmap_grant_ref;
        for (let i = 0; i < count; i++) {
          const a = arg + i * L.SIZE;
          const handle = m.readU32(a + L.HANDLE);
          if (handle === undefined) return -E.EFAULT;
          if (!m.writeU16(a + L.STATUS, this.gnttabUnmapGrantRef(d, handle) & 0xffff)) return -E.EFAULT;
        }
        return 0;
      }
      case GNTTABOP.setup_table: {
        const L = A.gnttab_setup_table;
        if (count !== 1) return -E.EINVAL;
        const dom = m.readU16(arg + L.DOM);
        const nr = m.readU32(arg + L.NR_FRAMES);
        const list = m.readU32(arg + L.FRAME_LIST);
        if (dom === undefined || nr === undefined || list === undefined) return -E.EFAULT;
        const r = this.gnttabSetupTable(d, dom, nr);
        for (let i = 0; i < r.frames.length; i++) if (!m.writeU32(list + i * 4, r.frames[i]!)) return -E.EFAULT;
        return m.writeU16(arg + L.STATUS, r.status & 0xffff) ? 0 : -E.EFAULT;
      }
      case GNTTABOP.query_size: {
        const L = A.gnttab_query_size;
        const dom = m.readU16(arg + L.DOM);
        if (dom === undefined) return -E.EFAULT;
        const r = this.gnttabQuerySize(d, dom);
        const ok = m.writeU32(arg + L.NR_FRAMES, r.nrFrames) && m.writeU32(arg + L.MAX_NR_FRAMES, r.maxFrames) && m.writeU16(arg + L.STATUS, r.status & 0xffff);
        return ok ? 0 : -E.EFAULT;
      }
      case GNTTABOP.dump_table: {
        const L = A.gnttab_dump_table;
        const dom = m.readU16(arg + L.DOM);
        if (dom === undefined) return -E.EFAULT;
        return m.writeU16(arg + L.STATUS, this.gnttabDumpTable(d, dom) & 0xffff) ? 0 : -E.EFAULT;
      }
      case GNTTABOP.set_version: {
        const v = m.readU32(arg + A.gnttab_set_version.VERSION);
        if (v === undefined) return -E.EFAULT;
        const rc = this.gnttabSetVersion(d, v);
        if (rc < 0) return rc;
        return m.writeU32(arg + A.gnttab_set_version.VERSION, d.grantVersion) ? 0 : -E.EFAULT;
      }
      case GNTTABOP.transfer: {
        const L = A.gnttab_transfer;
        for (let i = 0; i < count; i++) {
          const a = arg + i * L.SIZE;
          const mfn = m.readU32(a + L.MFN);
          const dom = m.readU16(a + L.DOMID);
          const ref = m.readU32(a + L.REF);
          if (mfn === undefined || dom === undefined || ref === undefined) return -E.EFAULT;
          if (!m.writeU16(a + L.STATUS, this.gnttabTransfer(d, mfn, dom, ref) & 0xffff)) return -E.EFAULT;
        }
        return 0;
      }
      case GNTTABOP.get_version:
        return m.writeU32(arg + A.gnttab_get_version.VERSION, d.grantVersion) ? 0 : -E.EFAULT;
      case GNTTABOP.copy: {
        const L = A.gnttab_copy;
        for (let i = 0; i < count; i++) {
          const a = arg + i * L.SIZE;
          const s = m.readU32(a + L.SOURCE_REF);
          const sd = m.readU16(a + L.SOURCE_DOMID);
          const so = m.readU16(a + L.SOURCE_OFFSET);
          const t = m.readU32(a + L.DEST_REF);
          const td = m.readU16(a + L.DEST_DOMID);
          const to = m.readU16(a + L.DEST_OFFSET);
          const len = m.readU16(a + L.LEN);
          const flags = m.readU16(a + L.FLAGS);
          if (s === undefined || sd === undefined || so === undefined || t === undefined || td === undefined || to === undefined || len === undefined || flags === undefined) return -E.EFAULT;
          const srcRef = (flags & GNTCOPY.source_gref) !== 0;
          const dstRef = (flags & GNTCOPY.dest_gref) !== 0;
          const op: CopyOp = {
            source: srcRef ? { ref: s, domid: sd, offset: so } : { frame: s, offset: so },
            dest: dstRef ? { ref: t, domid: td, offset: to } : { frame: t, offset: to },
            length: len,
          };
          // A frame operand names the caller's own memory: its domid must be DOMID_SELF or the caller.
          const own = (dom: number) => dom === DOMID.SELF || dom === d.domid;
          const st = (!srcRef && !own(sd)) || (!dstRef && !own(td)) ? GNTST.permission_denied : this.gnttabCopy(d, [op])[0]!;
          if (!m.writeU16(a + L.STATUS, st & 0xffff)) return -E.EFAULT;
        }
        return 0;
      }
      default:
        return -E.ENOSYS;
    }
  }

  private x86MmuUpdate(d: Domain, reqs: number, count: number, successCount: number, foreignDom: number, m: GuestVirtualMemory): number {
    const n = count & 0x7fffffff; // bit 31: MMU_UPDATE_PREEMPTED
    if (n > 4096) return -E.EINVAL;
    const L = A.mmu_update;
    const list: { ptr: number; val: number }[] = [];
    for (let i = 0; i < n; i++) {
      const a = reqs + i * L.SIZE;
      const plo = m.readU32(a + L.PTR);
      const phi = m.readU32(a + L.PTR + 4);
      const vlo = m.readU32(a + L.VAL);
      const vhi = m.readU32(a + L.VAL + 4);
      if (plo === undefined || phi === undefined || vlo === undefined || vhi === undefined) return -E.EFAULT;
      list.push({ ptr: plo + phi * 2 ** 32, val: vlo + vhi * 2 ** 32 });
    }
    const r = this.mmuUpdate(d, list, foreignDom & 0xffff);
    if (successCount !== 0 && !m.writeU32(successCount, r.done)) return -E.EFAULT;
    return r.rc;
  }

  private x86MmuextOp(d: Domain, ops: number, count: number, successCount: number, foreignDom: number, m: GuestVirtualMemory): number {
    const n = count & 0x7fffffff;
    if (n > 4096) return -E.EINVAL;
    if ((foreignDom & 0xffff) !== DOMID.SELF && (foreignDom & 0xffff) !== d.domid) return -E.EPERM;
    const L = A.mmuext_op;
    const list: { cmd: number; arg1: number }[] = [];
    for (let i = 0; i < n; i++) {
      const cmd = m.readU32(ops + i * L.SIZE + L.CMD);
      const arg1 = m.readU32(ops + i * L.SIZE + L.ARG1);
      if (cmd === undefined || arg1 === undefined) return -E.EFAULT;
      list.push({ cmd, arg1 });
    }
    const r = this.mmuextOp(d, list);
    if (successCount !== 0 && !m.writeU32(successCount, r.done)) return -E.EFAULT;
    return r.rc;
  }

  private x86MemoryOp(d: Domain, cmd: number, arg: number, m: GuestVirtualMemory): number {
    switch (cmd) {
      case XENMEM.maximum_ram_page:
        return this.memoryQuery(d, cmd);
      case XENMEM.current_reservation:
      case XENMEM.maximum_reservation: {
        const dom = m.readU16(arg);
        if (dom === undefined) return -E.EFAULT;
        return this.memoryQuery(d, cmd, dom);
      }
      case XENMEM.increase_reservation:
      case XENMEM.decrease_reservation:
      case XENMEM.populate_physmap: {
        const L = A.xen_memory_reservation;
        const list = m.readU32(arg + L.EXTENT_START);
        const n = m.readU32(arg + L.NR_EXTENTS);
        const order = m.readU32(arg + L.EXTENT_ORDER);
        const dom = m.readU16(arg + L.DOMID);
        if (list === undefined || n === undefined || order === undefined || dom === undefined) return -E.EFAULT;
        if (order !== 0) return -E.ENOSYS; // only single pages
        if (n > 1 << 16) return -E.EINVAL;
        if (cmd === XENMEM.increase_reservation) {
          const r = this.memoryIncreaseReservation(d, n, dom);
          if (typeof r === "number") return r;
          if (list !== 0) for (let i = 0; i < r.length; i++) if (!m.writeU32(list + i * 4, r[i]!)) return -E.EFAULT;
          return r.length;
        }
        const frames: number[] = [];
        for (let i = 0; i < n; i++) {
          const f = m.readU32(list + i * 4);
          if (f === undefined) return -E.EFAULT;
          frames.push(f);
        }
        if (cmd === XENMEM.decrease_reservation) return this.memoryDecreaseReservation(d, frames, dom);
        const r = this.memoryPopulatePhysmap(d, frames, dom);
        if (typeof r === "number") return r;
        const t = this.hv.resolveDomain(d, dom)!;
        // A PV domain learns its new pages' machine addresses in place of the pfns.
        if (!t.translated) for (let i = 0; i < r.length; i++) if (!m.writeU32(list + i * 4, r[i]!)) return -E.EFAULT;
        return r.length;
      }
      default:
        return -E.ENOSYS;
    }
  }

  private x86SchedOp(d: Domain, cmd: number, arg: number, m: GuestVirtualMemory): number {
    switch (cmd) {
      case SCHEDOP.yield:
        return this.schedYield(d);
      case SCHEDOP.block:
        return this.schedBlock(d);
      case SCHEDOP.shutdown: {
        // struct sched_shutdown { unsigned int reason; }
        const reason = m.readU32(arg + A.sched_shutdown.REASON);
        if (reason === undefined) return -E.EFAULT;
        return this.schedShutdown(d, reason);
      }
      default:
        return -E.ENOSYS;
    }
  }

  private x86ConsoleIo(d: Domain, cmd: number, count: number, buf: number, m: GuestVirtualMemory): number {
    if (cmd === CONSOLEIO.write) {
      if (count >>> 0 > 65536) return -E.EINVAL;
      const bytes = new Uint8Array(count);
      for (let i = 0; i < count; i++) {
        const b = m.readU8(buf + i);
        if (b === undefined) return -E.EFAULT;
        bytes[i] = b;
      }
      return this.consoleWrite(d, new TextDecoder().decode(bytes));
    }
    if (cmd === CONSOLEIO.read) {
      if (count >>> 0 > 65536) return -E.EINVAL;
      const r = this.consoleRead(d, count);
      if (typeof r === "number") return r;
      const bytes = new TextEncoder().encode(r);
      for (let i = 0; i < bytes.length; i++) if (!m.writeU8(buf + i, bytes[i]!)) return -E.EFAULT;
      return bytes.length;
    }
    return -E.EINVAL;
  }

  private x86PhysdevOp(d: Domain, cmd: number, arg: number, m: GuestVirtualMemory): number {
    switch (cmd) {
      case PHYSDEVOP.eoi: {
        const irq = m.readU32(arg + A.physdev_eoi.IRQ);
        if (irq === undefined) return -E.EFAULT;
        return this.physdevEoi(d, irq);
      }
      case PHYSDEVOP.irq_status_query: {
        const irq = m.readU32(arg + A.physdev_irq_status_query.IRQ);
        if (irq === undefined) return -E.EFAULT;
        const r = this.physdevIrqStatusQuery(d, irq);
        if (r.rc < 0) return r.rc;
        return m.writeU32(arg + A.physdev_irq_status_query.FLAGS, r.flags) ? 0 : -E.EFAULT;
      }
      default:
        return -E.ENOSYS;
    }
  }
}
