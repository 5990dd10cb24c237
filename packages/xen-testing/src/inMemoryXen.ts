import type { DomId, PageAllocator, TimerQueue, XenServices } from "@paravirt/vm-interfaces";
import { InMemoryEventChannels } from "./eventChannels.ts";
import { InMemoryGrantTable } from "./grantTable.ts";
import { DomainMemory } from "./memory.ts";
import { XenScheduler } from "./scheduler.ts";
import { InMemoryXenStore, XenStoreTree } from "./xenstore.ts";

export interface InMemoryXenOptions {
  /**
   * Deliver events and watch firings on this timer queue at the current virtual time (its
   * owner advances it). Default: the microtask queue.
   */
  readonly timers?: TimerQueue;
}

export interface CreateDomainOptions {
  /** Pages of memory (4 KiB each). Default 1024 (4 MiB). */
  readonly pages?: number;
  /** Grant-table frames (512 v1 entries each). Default 4. */
  readonly grantFrames?: number;
  /** May bypass xenstore permissions. Default: domid 0. */
  readonly privileged?: boolean;
  /** Written to `/local/domain/<domid>/name`. */
  readonly name?: string;
}

/** One domain of an {@link InMemoryXen}: its `XenServices` plus the parts tests inspect. */
export class InMemoryDomain implements XenServices {
  readonly domid: DomId;
  readonly memory: DomainMemory;
  readonly evtchn: InMemoryEventChannels;
  readonly gnttab: InMemoryGrantTable;
  readonly xenstore: InMemoryXenStore;
  readonly pages: PageAllocator;

  constructor(domid: DomId, memory: DomainMemory, evtchn: InMemoryEventChannels, gnttab: InMemoryGrantTable, xenstore: InMemoryXenStore) {
    this.domid = domid;
    this.memory = memory;
    this.evtchn = evtchn;
    this.gnttab = gnttab;
    this.xenstore = xenstore;
    this.pages = memory;
  }
}

/**
 * Several Xen domains in one process, for testing split drivers without the hypervisor:
 * per-domain memory, v1 grant tables kept in grant frames, interdomain event channels with
 * asynchronous coalescing delivery, and one xenstore with per-domain permissions, watches and
 * transactions.
 *
 * ```ts
 * const xen = new InMemoryXen();
 * const dom0 = xen.createDomain(0);
 * const domU = xen.createDomain(1);
 * const port = domU.evtchn.allocUnbound(0);
 * const back = dom0.evtchn.bindInterdomain(1, port);
 * domU.evtchn.onEvent(port, () => console.log("kicked"));
 * dom0.evtchn.notify(back);
 * await xen.settle();
 * ```
 */
export class InMemoryXen {
  readonly scheduler: XenScheduler;
  readonly store: XenStoreTree;
  private readonly timers: TimerQueue | undefined;
  private readonly domains = new Map<DomId, InMemoryDomain>();
  private nextMfnBase = 0x10000;

  constructor(opts: InMemoryXenOptions = {}) {
    this.timers = opts.timers;
    this.scheduler = new XenScheduler(opts.timers);
    this.store = new XenStoreTree(this.scheduler);
    this.store.root.children.set("local", { value: "", perms: [{ domid: 0, access: "n" }], children: new Map([["domain", { value: "", perms: [{ domid: 0, access: "n" }], children: new Map() }]]) });
  }

  /**
   * Creates domain `domid` and its xenstore home `/local/domain/<domid>` (owned by it, as the
   * toolstack does). **Errors:** RangeError when it exists.
   */
  createDomain(domid: DomId, opts: CreateDomainOptions = {}): InMemoryDomain {
    if (this.domains.has(domid)) throw new RangeError(`domain ${domid} exists`);
    const pages = opts.pages ?? 1024;
    const memory = new DomainMemory(pages, this.nextMfnBase);
    this.nextMfnBase += pages;
    const peers = {
      grantTableOf: (d: DomId) => this.domains.get(d)?.gnttab,
      eventChannelsOf: (d: DomId) => this.domains.get(d)?.evtchn,
    };
    const dom = new InMemoryDomain(
      domid,
      memory,
      new InMemoryEventChannels(domid, peers, this.scheduler),
      new InMemoryGrantTable(domid, memory, opts.grantFrames ?? 4, peers),
      new InMemoryXenStore(this.store, domid, opts.privileged ?? domid === 0),
    );
    this.domains.set(domid, dom);
    const home = { value: "", perms: [{ domid, access: "n" as const }], children: new Map() };
    home.children.set("domid", { value: String(domid), perms: [{ domid: 0, access: "r" as const }, { domid, access: "r" as const }], children: new Map() });
    if (opts.name !== undefined) home.children.set("name", { value: opts.name, perms: [{ domid: 0, access: "r" as const }, { domid, access: "r" as const }], children: new Map() });
    this.store.root.children.get("local")!.children.get("domain")!.children.set(String(domid), home);
    this.store.generation++;
    this.store.fireSpecial("@introduceDomain");
    return dom;
  }

  /**
   * Destroys a domain as Xen and the toolstack do: its grant mappings of others are dropped,
   * its ports closed (peers' ports become unbound), its watches removed, its xenstore home
   * removed (firing watches on it) and `@releaseDomain` fired. Its grants can no longer be
   * mapped (bad_domain); mappings others still hold stay valid until they unmap them.
   */
  async destroyDomain(domid: DomId): Promise<void> {
    const dom = this.domains.get(domid);
    if (dom === undefined) throw new RangeError(`no domain ${domid}`);
    dom.gnttab.releaseAllMappings();
    dom.evtchn.closeAll();
    this.store.dropWatches(domid);
    this.domains.delete(domid);
    await this.toolstackStore().rm(`/local/domain/${domid}`);
    this.store.fireSpecial("@releaseDomain");
  }

  /** A privileged xenstore connection for toolstack work in tests (as dom0's tools use). */
  toolstackStore(): InMemoryXenStore {
    return new InMemoryXenStore(this.store, 0, true);
  }

  domain(domid: DomId): InMemoryDomain | undefined {
    return this.domains.get(domid);
  }

  /** Exceptions thrown by event handlers and watch callbacks. */
  get errors(): readonly unknown[] {
    return this.scheduler.errors;
  }

  /**
   * Runs queued deliveries (and, with a timer queue, timers due now) and lets the promises they
   * start settle, until nothing is left to run. Test helper: it waits on the host's macrotask
   * queue, so it is not for device models.
   */
  async settle(maxRounds = 100_000): Promise<void> {
    let quiet = 0;
    for (let i = 0; i < maxRounds; i++) {
      const before = this.scheduler.delivered;
      const t = this.timers as (TimerQueue & { advanceTo?(at: number): void }) | undefined;
      if (t?.advanceTo) t.advanceTo(t.now());
      await new Promise<void>((r) => setImmediate(r));
      if (this.scheduler.delivered === before && this.scheduler.queued === 0) {
        if (++quiet >= 2) return;
      } else quiet = 0;
    }
    throw new Error("InMemoryXen.settle: still busy");
  }
}
