/**
 * The hypercall table. One set of implementations serves both kinds of guest:
 * - native (TypeScript) kernels call the typed methods directly (`evtchnSend(d, port)`);
 * - x86 PV guests trap with `int 0x82`; {@link Hypercalls.x86} decodes EAX (the hypercall
 *   number) and EBX, ECX, EDX, ESI, EDI (arguments) and the argument structures in guest
 *   memory [x86_32 ABI, xen/include/public/arch-x86/xen-x86_32.h], calls the same typed method,
 *   and writes the result (negated errno on failure) back to EAX.
 *
 * Struct offsets below are x86_32 layouts of xen/include/public/event_channel.h,
 * grant_table.h, sched.h and physdev.h.
 */
import { EVTCHNOP, EVTCHNSTAT, GNTMAP, GNTTABOP, GNTCOPY } from "@paravirt/device-channel";
import { DOMID, GNTST, XEN_ERRNO, type DomId } from "@paravirt/vm-interfaces";
import { CONSOLEIO, DOMCTL, HYPERVISOR, PHYSDEVOP, SCHEDOP, VMASST, XENVER, XEN_VERSION } from "./abi.ts";
import type { Domain, GuestVirtualMemory, X86Registers } from "./domain.ts";
import type { EvtchnStatus } from "./eventChannels.ts";
import type { CopyOp, MapResult } from "./grantTable.ts";
import type { Hypervisor } from "./hypervisor.ts";

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
  { nr: HYPERVISOR.sched_op, name: "sched_op", subops: ["yield", "block", "shutdown"] },
  { nr: HYPERVISOR.set_timer_op, name: "set_timer_op", subops: [] },
  { nr: HYPERVISOR.xen_version, name: "xen_version", subops: ["version", "extraversion", "pagesize"] },
  { nr: HYPERVISOR.console_io, name: "console_io", subops: ["write", "read"] },
  { nr: HYPERVISOR.grant_table_op, name: "grant_table_op", subops: ["map_grant_ref", "unmap_grant_ref", "setup_table", "dump_table", "copy", "query_size", "set_version", "get_version"] },
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
    this.x86Table.set(HYPERVISOR.physdev_op, (d, r, m) => this.x86PhysdevOp(d, r.ebx, r.ecx, m));
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

  /** vm_assist: accepted and recorded; no assist changes behaviour yet. */
  vmAssist(d: Domain, cmd: number, type: number): number {
    this.count(HYPERVISOR.vm_assist);
    void d;
    if (cmd !== VMASST.CMD_enable && cmd !== VMASST.CMD_disable) return -E.ENOSYS;
    if (type > VMASST.TYPE_pae_extended_cr3) return -E.EINVAL;
    return 0;
  }

  /** CONSOLEIO_write to the hypervisor console: privileged domains only (xsm_console_io). */
  consoleWrite(d: Domain, text: string): number {
    this.count(HYPERVISOR.console_io);
    if (!d.privileged) return -E.EPERM;
    this.hv.consoleOutput += text;
    return 0;
  }

  /** CONSOLEIO_read: drains up to `max` bytes of console input (none is ever queued yet). */
  consoleRead(d: Domain, max: number): string | number {
    this.count(HYPERVISOR.console_io);
    if (!d.privileged) return -E.EPERM;
    void max;
    return "";
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
    switch (cmd) {
      case EVTCHNOP.alloc_unbound: {
        // struct evtchn_alloc_unbound { domid_t dom @0, remote_dom @2; evtchn_port_t port @4 }
        const dom = u16(0);
        const remote = u16(2);
        if (dom === undefined || remote === undefined) return -E.EFAULT;
        const rc = this.evtchnAllocUnbound(d, dom, remote);
        if (rc < 0) return rc;
        return m.writeU32(arg + 4, rc) ? 0 : -E.EFAULT;
      }
      case EVTCHNOP.bind_interdomain: {
        // { domid_t remote_dom @0; evtchn_port_t remote_port @4; evtchn_port_t local_port @8 }
        const dom = u16(0);
        const port = u32(4);
        if (dom === undefined || port === undefined) return -E.EFAULT;
        const rc = this.evtchnBindInterdomain(d, dom, port);
        if (rc < 0) return rc;
        return m.writeU32(arg + 8, rc) ? 0 : -E.EFAULT;
      }
      case EVTCHNOP.bind_virq: {
        // { uint32_t virq @0; uint32_t vcpu @4; evtchn_port_t port @8 }
        const virq = u32(0);
        const vcpu = u32(4);
        if (virq === undefined || vcpu === undefined) return -E.EFAULT;
        const rc = this.evtchnBindVirq(d, virq, vcpu);
        if (rc < 0) return rc;
        return m.writeU32(arg + 8, rc) ? 0 : -E.EFAULT;
      }
      case EVTCHNOP.bind_pirq: {
        // { uint32_t pirq @0; uint32_t flags @4; evtchn_port_t port @8 }
        const pirq = u32(0);
        if (pirq === undefined) return -E.EFAULT;
        const rc = this.evtchnBindPirq(d, pirq);
        if (rc < 0) return rc;
        return m.writeU32(arg + 8, rc) ? 0 : -E.EFAULT;
      }
      case EVTCHNOP.bind_ipi: {
        // { uint32_t vcpu @0; evtchn_port_t port @4 }
        const vcpu = u32(0);
        if (vcpu === undefined) return -E.EFAULT;
        const rc = this.evtchnBindIpi(d, vcpu);
        if (rc < 0) return rc;
        return m.writeU32(arg + 4, rc) ? 0 : -E.EFAULT;
      }
      case EVTCHNOP.close:
      case EVTCHNOP.send:
      case EVTCHNOP.unmask: {
        // { evtchn_port_t port @0 }
        const port = u32(0);
        if (port === undefined) return -E.EFAULT;
        if (cmd === EVTCHNOP.close) return this.evtchnClose(d, port);
        if (cmd === EVTCHNOP.send) return this.evtchnSend(d, port);
        return this.evtchnUnmask(d, port);
      }
      case EVTCHNOP.status: {
        // { domid_t dom @0; evtchn_port_t port @4; uint32_t status @8; uint32_t vcpu @12; union u @16 }
        const dom = u16(0);
        const port = u32(4);
        if (dom === undefined || port === undefined) return -E.EFAULT;
        const st = this.evtchnStatus(d, dom, port);
        if (typeof st === "number") return st;
        let ok = m.writeU32(arg + 8, st.status) && m.writeU32(arg + 12, st.vcpu);
        if (st.status === EVTCHNSTAT.unbound || st.status === EVTCHNSTAT.interdomain) ok &&= m.writeU16(arg + 16, st.dom!);
        if (st.status === EVTCHNSTAT.interdomain) ok &&= m.writeU32(arg + 20, st.port!);
        if (st.status === EVTCHNSTAT.pirq) ok &&= m.writeU32(arg + 16, st.pirq!);
        if (st.status === EVTCHNSTAT.virq) ok &&= m.writeU32(arg + 16, st.virq!);
        return ok ? 0 : -E.EFAULT;
      }
      default:
        return -E.ENOSYS;
    }
  }

  private x86GrantTableOp(d: Domain, cmd: number, arg: number, count: number, m: GuestVirtualMemory): number {
    if (count >>> 0 > 512) return -E.EINVAL;
    switch (cmd) {
      case GNTTABOP.map_grant_ref:
        // struct gnttab_map_grant_ref (32 bytes): host_addr u64 @0, flags u32 @8, ref u32 @12,
        // dom u16 @16, status i16 @18, handle u32 @20, dev_bus_addr u64 @24
        for (let i = 0; i < count; i++) {
          const a = arg + i * 32;
          const flags = m.readU32(a + 8);
          const ref = m.readU32(a + 12);
          const dom = m.readU16(a + 16);
          if (flags === undefined || ref === undefined || dom === undefined) return -E.EFAULT;
          const r = this.gnttabMapGrantRef(d, dom, ref, flags);
          const bus = r.mfn < 0 ? 0 : r.mfn * 4096;
          const ok =
            m.writeU16(a + 18, r.status & 0xffff) &&
            m.writeU32(a + 20, r.handle >>> 0) &&
            m.writeU32(a + 24, bus >>> 0) &&
            m.writeU32(a + 28, Math.floor(bus / 2 ** 32));
          if (!ok) return -E.EFAULT;
        }
        return 0;
      case GNTTABOP.unmap_grant_ref:
        // struct gnttab_unmap_grant_ref (24 bytes): host_addr u64 @0, dev_bus_addr u64 @8,
        // handle u32 @16, status i16 @20
        for (let i = 0; i < count; i++) {
          const a = arg + i * 24;
          const handle = m.readU32(a + 16);
          if (handle === undefined) return -E.EFAULT;
          if (!m.writeU16(a + 20, this.gnttabUnmapGrantRef(d, handle) & 0xffff)) return -E.EFAULT;
        }
        return 0;
      case GNTTABOP.setup_table: {
        // struct gnttab_setup_table (16 bytes): dom u16 @0, nr_frames u32 @4, status i16 @8,
        // frame_list handle @12
        if (count !== 1) return -E.EINVAL;
        const dom = m.readU16(arg);
        const nr = m.readU32(arg + 4);
        const list = m.readU32(arg + 12);
        if (dom === undefined || nr === undefined || list === undefined) return -E.EFAULT;
        const r = this.gnttabSetupTable(d, dom, nr);
        for (let i = 0; i < r.frames.length; i++) if (!m.writeU32(list + i * 4, r.frames[i]!)) return -E.EFAULT;
        return m.writeU16(arg + 8, r.status & 0xffff) ? 0 : -E.EFAULT;
      }
      case GNTTABOP.query_size: {
        // struct gnttab_query_size: dom u16 @0, nr_frames u32 @4, max_nr_frames u32 @8, status i16 @12
        const dom = m.readU16(arg);
        if (dom === undefined) return -E.EFAULT;
        const r = this.gnttabQuerySize(d, dom);
        return m.writeU32(arg + 4, r.nrFrames) && m.writeU32(arg + 8, r.maxFrames) && m.writeU16(arg + 12, r.status & 0xffff) ? 0 : -E.EFAULT;
      }
      case GNTTABOP.dump_table: {
        // struct gnttab_dump_table: dom u16 @0, status i16 @2
        const dom = m.readU16(arg);
        if (dom === undefined) return -E.EFAULT;
        return m.writeU16(arg + 2, this.gnttabDumpTable(d, dom) & 0xffff) ? 0 : -E.EFAULT;
      }
      case GNTTABOP.set_version: {
        // struct gnttab_set_version: version u32 @0 (in/out)
        const v = m.readU32(arg);
        if (v === undefined) return -E.EFAULT;
        const rc = this.gnttabSetVersion(d, v);
        if (rc < 0) return rc;
        return m.writeU32(arg, d.grantVersion) ? 0 : -E.EFAULT;
      }
      case GNTTABOP.get_version: {
        // struct gnttab_get_version: dom u16 @0, pad, version u32 @4
        return m.writeU32(arg + 4, d.grantVersion) ? 0 : -E.EFAULT;
      }
      case GNTTABOP.copy:
        // struct gnttab_copy (24 bytes): source {u32 ref|gmfn @0, u16 domid @4, u16 offset @6},
        // dest @8 (same), u16 len @16, u16 flags @18, i16 status @20
        for (let i = 0; i < count; i++) {
          const a = arg + i * 24;
          const s = m.readU32(a);
          const sd = m.readU16(a + 4);
          const so = m.readU16(a + 6);
          const t = m.readU32(a + 8);
          const td = m.readU16(a + 12);
          const to = m.readU16(a + 14);
          const len = m.readU16(a + 16);
          const flags = m.readU16(a + 18);
          if ([s, sd, so, t, td, to, len, flags].some((v) => v === undefined)) return -E.EFAULT;
          const op: CopyOp = {
            source: (flags! & GNTCOPY.source_gref) !== 0 ? { ref: s!, domid: sd!, offset: so! } : { frame: s!, offset: so! },
            dest: (flags! & GNTCOPY.dest_gref) !== 0 ? { ref: t!, domid: td!, offset: to! } : { frame: t!, offset: to! },
            length: len!,
          };
          // A frame operand names the caller's own memory: its domid must be DOMID_SELF or the caller.
          const own = (dom: number) => dom === DOMID.SELF || dom === d.domid;
          const foreignFrame = ((flags! & GNTCOPY.source_gref) === 0 && !own(sd!)) || ((flags! & GNTCOPY.dest_gref) === 0 && !own(td!));
          const st = foreignFrame ? GNTST.permission_denied : this.gnttabCopy(d, [op])[0]!;
          if (!m.writeU16(a + 20, st & 0xffff)) return -E.EFAULT;
        }
        return 0;
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
        const reason = m.readU32(arg);
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
      const r = this.consoleRead(d, count);
      return typeof r === "number" ? r : r.length;
    }
    return -E.EINVAL;
  }

  private x86PhysdevOp(d: Domain, cmd: number, arg: number, m: GuestVirtualMemory): number {
    switch (cmd) {
      case PHYSDEVOP.eoi: {
        const irq = m.readU32(arg);
        if (irq === undefined) return -E.EFAULT;
        return this.physdevEoi(d, irq);
      }
      case PHYSDEVOP.irq_status_query: {
        const irq = m.readU32(arg);
        if (irq === undefined) return -E.EFAULT;
        const r = this.physdevIrqStatusQuery(d, irq);
        if (r.rc < 0) return r.rc;
        return m.writeU32(arg + 4, r.flags) ? 0 : -E.EFAULT;
      }
      default:
        return -E.ENOSYS;
    }
  }
}
