/**
 * The kernel-side handle of a native (TypeScript) domain: what the guest kernel's lowest
 * layer does in a PV Linux (drivers/xen/events, grant-table.c, the page allocator), written
 * over the same hypercall table x86 PV guests use. It implements the vm-interfaces
 * `EventChannels`, `GrantTable` and `PageAllocator` for this domain, and hands out
 * `XenServices` (with an injectable xenstore) and a `DriverPlatform`.
 *
 * Work runs as tasks on the domain's queue, in virtual time: event handlers and timer
 * callbacks are never called synchronously inside another domain's hypercall.
 */
import { VIRQ, writeGrantEntryV1, GRANT_ENTRIES_PER_FRAME_V1, GRANT_ENTRY_V1, GNTMAP, GTF } from "@paravirt/device-channel";
import {
  DOMID,
  GNTST,
  GrantError,
  PAGE_SIZE,
  XEN_ERRNO,
  XenError,
  type DomId,
  type DriverPlatform,
  type EventChannels,
  type GrantCopyOp,
  type GrantMapping,
  type GrantRef,
  type GrantTable,
  type GuestMemory,
  type Page,
  type PageAllocator,
  type Port,
  type XenServices,
  type XenStore,
} from "@paravirt/vm-interfaces";
import { GNTTAB_FIRST_FREE_REF } from "./abi.ts";
import { readConsoleIn, writeConsoleOut } from "./console.ts";
import type { Domain } from "./domain.ts";
import { XenDriverPlatform } from "./driverPlatform.ts";
import type { EvtchnStatus } from "./eventChannels.ts";
import type { Hypervisor, StartInfo } from "./hypervisor.ts";
import type { SharedInfoPage } from "./sharedInfo.ts";
import { PseudoPhysicalMemory } from "./p2m.ts";

/** Virtual cost of a task posted without one. */
export const DEFAULT_TASK_NS = 100;

function check(rc: number, what: string): number {
  if (rc < 0) throw new XenError(-rc, what);
  return rc;
}

/** A xenstore placeholder until one is attached: every call rejects with ENOTCONN. */
const NO_XENSTORE: XenStore = new Proxy({} as XenStore, {
  // Not a thenable: only the XenStore methods exist.
  get: (_t, key) => (key === "then" ? undefined : () => Promise.reject(new XenError(XEN_ERRNO.ENOTCONN, "no xenstore attached to this domain"))),
});

export class NativeDomain {
  readonly domid: DomId;
  readonly name: string;
  /** The hypervisor's record of this domain (read-only use). */
  readonly record: Domain;
  readonly evtchn: EventChannels;
  readonly gnttab: GrantTable;
  readonly pages: PageAllocator;
  /** This domain's pseudo-physical memory (address = pfn * 4096 + offset). */
  readonly memory: GuestMemory;
  private readonly hv: Hypervisor;
  private readonly handlers = new Map<number, () => void>();
  private readonly freePfns: number[] = [];
  private readonly usedPfns = new Set<number>();
  private readonly freeRefs: number[] = [];
  /** Pfns given back to the hypervisor (balloon holes), and pending transfer offers. */
  private readonly holes: number[] = [];
  private readonly offers = new Map<number, number>();
  private xenstore: XenStore = NO_XENSTORE;
  private platform: XenDriverPlatform | undefined;

  constructor(hv: Hypervisor, d: Domain) {
    this.hv = hv;
    this.record = d;
    this.domid = d.domid;
    this.name = d.name;
    for (let pfn = d.nrPages - 1; pfn >= 0; pfn--) if (pfn !== d.consolePfn && pfn !== d.storePfn) this.freePfns.push(pfn);
    this.refillRefs(GNTTAB_FIRST_FREE_REF);
    d.upcall = () => this.dispatch();
    this.evtchn = {
      allocUnbound: (remote) => check(hv.hypercalls.evtchnAllocUnbound(d, DOMID.SELF, remote), "alloc_unbound"),
      bindInterdomain: (remote, remotePort) => check(hv.hypercalls.evtchnBindInterdomain(d, remote, remotePort), "bind_interdomain"),
      notify: (port) => void check(hv.hypercalls.evtchnSend(d, port), `send on port ${port}`),
      onEvent: (port, handler) => {
        if (this.handlers.has(port)) throw new Error(`port ${port} already has a handler`);
        this.handlers.set(port, handler);
        return () => {
          if (this.handlers.get(port) === handler) this.handlers.delete(port);
        };
      },
      setMask: (port, masked) => {
        if (masked) d.sharedInfo.setMasked(port, true);
        else check(hv.hypercalls.evtchnUnmask(d, port), "unmask");
      },
      close: (port) => {
        this.handlers.delete(port);
        check(hv.hypercalls.evtchnClose(d, port), "close");
      },
    };
    this.gnttab = {
      grantAccess: (domid, frame, readonly) => this.grantAccess(domid, frame, readonly),
      endAccess: (ref) => this.endAccess(ref),
      map: (domid, ref, writable) => this.mapGrant(domid, ref, writable),
      unmap: (mapping) => {
        const st = hv.hypercalls.gnttabUnmapGrantRef(d, mapping.handle);
        if (st !== GNTST.okay) throw new GrantError(st, "unmap");
      },
      copy: (ops) => hv.hypercalls.gnttabCopy(d, ops as GrantCopyOp[]),
    };
    this.pages = {
      allocPage: () => this.allocPage(),
      freePage: (page) => this.freePage(page),
    };
    this.memory = new PseudoPhysicalMemory(hv.memory, d);
  }

  /** What the builder set up: xenstore page/port/gref, console page/port, shared_info. */
  get startInfo(): StartInfo {
    return this.hv.startInfo(this.domid);
  }

  /** This domain's xenstore ring page (io/xs_wire.h), live; `undefined` in the xenstore domain. */
  storePage(): Uint8Array | undefined {
    const d = this.record;
    return d.storePfn < 0 ? undefined : this.hv.memory.page(d.p2m[d.storePfn]!);
  }

  /** The shared_info page as this kernel sees it. */
  get sharedInfo(): SharedInfoPage {
    return this.record.sharedInfo;
  }

  /** Virtual time (ns since boot). */
  now(): number {
    return this.hv.clock.now();
  }

  /** Queues `fn` to run in this domain, costing `cost` virtual ns. */
  post(fn: () => void, cost = DEFAULT_TASK_NS): void {
    this.hv.post(this.record, fn, cost);
  }

  /** Connects this domain's xenstore client (from `@paravirt/xenstore`). */
  attachXenStore(xs: XenStore): void {
    this.xenstore = xs;
  }

  /** The Xen services a split driver in this domain uses. */
  services(): XenServices {
    const self = this;
    return {
      domid: this.domid,
      evtchn: this.evtchn,
      gnttab: this.gnttab,
      pages: this.pages,
      get xenstore() {
        return self.xenstore;
      },
    };
  }

  /** The driver platform for vanilla drivers in this (privileged) domain. */
  driverPlatform(): DriverPlatform {
    this.platform ??= new XenDriverPlatform(this.hv, this);
    return this.platform;
  }

  // ---------------------------------------------------------------- events

  /** The 2-level upcall: scans evtchn_pending_sel, then pending & ~mask words, clearing as it goes. */
  private dispatch(): void {
    const d = this.record;
    d.upcallQueued = false;
    if (!d.alive) return;
    const si = d.sharedInfo;
    // One pass per upcall: events raised meanwhile post the next upcall task, so virtual time
    // passes between passes (a level-triggered interrupt storm cannot livelock the kernel).
    si.setUpcallPending(0, 0);
    let sel = si.pendingSel(0);
    si.setPendingSel(0, 0);
    while (sel !== 0) {
      const w = 31 - Math.clz32(sel & -sel);
      sel &= sel - 1;
      let bits = (si.pendingWord(w) & ~si.maskWord(w)) >>> 0;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits & -bits);
        bits = (bits & (bits - 1)) >>> 0;
        const port = w * 32 + b;
        si.clearPending(port);
        this.handlers.get(port)?.();
      }
    }
  }

  /** Binds a VIRQ and registers its handler; returns the port. */
  bindVirq(virq: number, handler: () => void): Port {
    const port = check(this.hv.hypercalls.evtchnBindVirq(this.record, virq), `bind_virq ${virq}`);
    this.handlers.set(port, handler);
    return port;
  }

  /** set_timer_op: VIRQ_TIMER at absolute system time `deadline` ns (0 cancels). */
  setTimer(deadline: number): void {
    check(this.hv.hypercalls.setTimerOp(this.record, deadline), "set_timer_op");
  }

  /** Binds VIRQ_TIMER to `handler`. */
  onTimer(handler: () => void): Port {
    return this.bindVirq(VIRQ.TIMER, handler);
  }

  /** EVTCHNOP_status of one of our ports. */
  portStatus(port: Port): EvtchnStatus {
    const st = this.hv.hypercalls.evtchnStatus(this.record, DOMID.SELF, port);
    if (typeof st === "number") throw new XenError(-st, "status");
    return st;
  }

  /** SCHEDOP_shutdown. */
  shutdown(reason: number): void {
    this.hv.hypercalls.schedShutdown(this.record, reason);
  }

  // ---------------------------------------------------------------- console

  /** Writes to this domain's console ring, notifying the console port as the ring fills. */
  consoleWrite(text: string): void {
    const d = this.record;
    const page = this.hv.memory.page(d.p2m[d.consolePfn]!);
    let bytes = new TextEncoder().encode(text);
    while (bytes.length > 0) {
      const n = writeConsoleOut(page, bytes);
      this.hv.hypercalls.evtchnSend(d, d.consolePort);
      if (n === 0) break;
      bytes = bytes.subarray(n);
    }
  }

  /** Calls `handler` with console input typed into this domain (see `Hypervisor.consoleInput`). */
  onConsoleInput(handler: (text: string) => void): () => void {
    const d = this.record;
    const page = this.hv.memory.page(d.p2m[d.consolePfn]!);
    return this.evtchn.onEvent(d.consolePort, () => {
      const text = readConsoleIn(page);
      if (text !== "") handler(text);
    });
  }

  /** Reads another domain's console output (privileged domains only). */
  readConsole(domid: DomId): string {
    if (!this.record.privileged) throw new XenError(XEN_ERRNO.EPERM, "console of another domain");
    return this.hv.consoleOf(domid);
  }

  // ---------------------------------------------------------------- pages

  private allocPage(): Page {
    const pfn = this.freePfns.pop();
    if (pfn === undefined) throw new XenError(XEN_ERRNO.ENOMEM, `${this.name} is out of pages`);
    this.usedPfns.add(pfn);
    const bytes = this.hv.memory.page(this.record.p2m[pfn]!);
    bytes.fill(0);
    return { frame: pfn, bytes };
  }

  private freePage(page: Page): void {
    if (!this.usedPfns.delete(page.frame)) throw new Error(`page ${page.frame} is not allocated`);
    this.freePfns.push(page.frame);
  }

  /** Free pages left. */
  get freePages(): number {
    return this.freePfns.length;
  }

  /**
   * Allocates `count` pages that are contiguous in machine memory (for DMA), exchanging
   * frames with the hypervisor when no run of free pages is contiguous already.
   */
  allocContiguous(count: number): { pfns: number[]; mfn: number } {
    const d = this.record;
    const free = [...this.freePfns].sort((a, b) => a - b);
    for (let i = 0; i + count <= free.length; i++) {
      let ok = true;
      for (let k = 1; k < count && ok; k++) ok = free[i + k] === free[i]! + k && d.p2m[free[i + k]!] === d.p2m[free[i]!]! + k;
      if (ok) return this.take(free.slice(i, i + count), d.p2m[free[i]!]!);
    }
    if (free.length < count) throw new XenError(XEN_ERRNO.ENOMEM, `${this.name} is out of pages`);
    const pfns = free.slice(0, count);
    const mfn = check(this.hv.exchangeContiguous(d, pfns), "memory exchange");
    return this.take(pfns, mfn);
  }

  private take(pfns: number[], mfn: number): { pfns: number[]; mfn: number } {
    const set = new Set(pfns);
    for (let i = this.freePfns.length - 1; i >= 0; i--) if (set.has(this.freePfns[i]!)) this.freePfns.splice(i, 1);
    for (const p of pfns) this.usedPfns.add(p);
    this.hv.memory.bytes.fill(0, mfn * PAGE_SIZE, (mfn + pfns.length) * PAGE_SIZE);
    return { pfns, mfn };
  }

  /** Returns pages taken by {@link allocContiguous}. */
  freeContiguous(pfns: readonly number[]): void {
    for (const p of pfns) this.freePage({ frame: p, bytes: new Uint8Array(0) });
  }

  // ---------------------------------------------------------------- ballooning and page transfer

  /** XENMEM_decrease_reservation of pages this kernel allocated: they leave the domain. */
  releasePages(pages: readonly Page[]): void {
    for (const p of pages) if (!this.usedPfns.has(p.frame)) throw new Error(`page ${p.frame} is not allocated`);
    const done = this.hv.hypercalls.memoryDecreaseReservation(this.record, pages.map((p) => p.frame));
    for (let i = 0; i < Math.max(0, done); i++) {
      this.usedPfns.delete(pages[i]!.frame);
      this.holes.push(pages[i]!.frame);
    }
    if (done !== pages.length) throw new XenError(XEN_ERRNO.EBUSY, `released ${done} of ${pages.length} pages (a page still mapped by a grantee?)`);
  }

  /** XENMEM_populate_physmap of up to `count` holes: they come back as free pages. Returns how many. */
  reclaimPages(count: number): number {
    const want = this.holes.slice(0, count);
    const r = this.hv.hypercalls.memoryPopulatePhysmap(this.record, want);
    const n = typeof r === "number" ? 0 : r.length;
    for (const pfn of this.holes.splice(0, n)) this.freePfns.push(pfn);
    return n;
  }

  /**
   * Offers `domid` to transfer a page to us (Xen 2.0 netfront's receive path): a page of ours
   * goes back to the hypervisor and its pfn is named in a GTF_accept_transfer entry.
   */
  offerTransfer(domid: DomId): GrantRef {
    const page = this.allocPage();
    this.releasePages([page]);
    this.holes.pop();
    const ref = this.grantAccess(domid, page.frame, false);
    const { dv, index } = this.entryView(ref);
    writeGrantEntryV1(dv, index, { flags: GTF.accept_transfer, domid, frame: page.frame });
    this.offers.set(ref, page.frame);
    return ref;
  }

  /** The page a completed transfer brought in (and the ref is freed), or `undefined` while pending. */
  transferCompleted(ref: GrantRef): Page | undefined {
    const pfn = this.offers.get(ref);
    if (pfn === undefined) throw new Error(`grant ref ${ref} is not a transfer offer`);
    const { dv, index } = this.entryView(ref);
    const at = index * GRANT_ENTRY_V1.SIZE + GRANT_ENTRY_V1.FLAGS;
    if ((dv.getUint16(at, true) & GTF.transfer_completed) === 0) return undefined;
    dv.setUint16(at, 0, true);
    this.freeRefs.push(ref);
    this.offers.delete(ref);
    this.usedPfns.add(pfn);
    return { frame: pfn, bytes: this.hv.memory.page(this.record.p2m[pfn]!) };
  }

  /** GNTTABOP_transfer of one of our pages into `domid`'s offer `ref`; the page leaves us on success. */
  transferPage(page: Page, domid: DomId, ref: GrantRef): number {
    if (!this.usedPfns.has(page.frame)) throw new Error(`page ${page.frame} is not allocated`);
    const st = this.hv.hypercalls.gnttabTransfer(this.record, page.frame, domid, ref);
    if (st === GNTST.okay) {
      this.usedPfns.delete(page.frame);
      this.holes.push(page.frame);
    }
    return st;
  }

  // ---------------------------------------------------------------- grants

  private refillRefs(from: number): void {
    const total = this.record.grantFrames.length * GRANT_ENTRIES_PER_FRAME_V1;
    for (let r = total - 1; r >= from; r--) this.freeRefs.push(r);
  }

  private entryView(ref: number): { dv: DataView; index: number } {
    const frame = this.record.grantFrames[Math.floor(ref / GRANT_ENTRIES_PER_FRAME_V1)]!;
    const page = this.hv.memory.page(frame);
    return { dv: new DataView(page.buffer, page.byteOffset, PAGE_SIZE), index: ref % GRANT_ENTRIES_PER_FRAME_V1 };
  }

  private grantAccess(domid: DomId, frame: number, readonly: boolean): GrantRef {
    let ref = this.freeRefs.pop();
    if (ref === undefined) {
      const before = this.record.grantFrames.length;
      const r = this.hv.hypercalls.gnttabSetupTable(this.record, DOMID.SELF, before + 1);
      if (r.status === GNTST.okay) this.refillRefs(before * GRANT_ENTRIES_PER_FRAME_V1);
      ref = this.freeRefs.pop();
      if (ref === undefined) throw new GrantError(GNTST.no_space, "grant table full");
    }
    const { dv, index } = this.entryView(ref);
    writeGrantEntryV1(dv, index, { flags: GTF.permit_access | (readonly ? GTF.readonly : 0), domid, frame });
    return ref;
  }

  /** gnttab_end_foreign_access_ref: fails while the grantee has the grant pinned. */
  private endAccess(ref: GrantRef): boolean {
    const total = this.record.grantFrames.length * GRANT_ENTRIES_PER_FRAME_V1;
    if (!Number.isInteger(ref) || ref < GNTTAB_FIRST_FREE_REF || ref >= total) throw new RangeError(`grant ref ${ref} is not ours to end`);
    const { dv, index } = this.entryView(ref);
    const at = index * GRANT_ENTRY_V1.SIZE + GRANT_ENTRY_V1.FLAGS;
    const flags = dv.getUint16(at, true);
    if ((flags & (GTF.reading | GTF.writing)) !== 0) return false;
    if ((flags & GTF.type_mask) === 0) throw new Error(`grant ref ${ref} is not in use`);
    dv.setUint16(at, 0, true);
    this.freeRefs.push(ref);
    return true;
  }

  private mapGrant(domid: DomId, ref: GrantRef, writable: boolean): GrantMapping {
    const r = this.hv.hypercalls.gnttabMapGrantRef(this.record, domid, ref, GNTMAP.host_map | (writable ? 0 : GNTMAP.readonly));
    if (r.status !== GNTST.okay) throw new GrantError(r.status, `map d${domid} gref ${ref}`);
    return { bytes: this.hv.memory.page(r.mfn), machineAddress: r.mfn * PAGE_SIZE, writable, handle: r.handle };
  }
}
