import {
  BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP, BLKIF_RSP, BLKIF_SECTOR_SIZE, BLKIF_SEGS_PER_INDIRECT_FRAME, BLKIF_SEGMENT,
  BLKIF_X86_32, BLKIF_X86_64, FrontRing, VDISK, XENBUS_STATE, XEN_IO_PROTO_ABI,
  decodeBlkifResponse, encodeBlkifRequest, encodeBlkifSegment, parseXenbusState, xenbusStateName,
  type BlkifLayout, type BlkifSegment, type XenbusState,
} from "@paravirt/device-channel";
import {
  BlockError, PAGE_SIZE, checkBlockRequest, xsReadOptional,
  type BlockDevice, type BlockDeviceInfo, type Clock, type DomId, type GrantRef, type Page, type Port, type XenServices,
} from "@paravirt/vm-interfaces";
import { XenbusStateKeeper } from "@paravirt/xenstore";

/** Default cap on the ring size we ask for: 2^4 pages, as Linux allows [XENBUS_MAX_RING_GRANT_ORDER]. */
export const BLKFRONT_DEFAULT_MAX_RING_PAGE_ORDER = 4;
/** Linux xen-blkfront's default `max_indirect_segments` (module parameter `max`). */
export const BLKFRONT_DEFAULT_MAX_INDIRECT_SEGMENTS = 32;
/**
 * Default cap on the persistent grant pool: Linux xen-blkback's `max_persistent_grants` default
 * (1056), so that a backend with the default limit keeps every page of our pool mapped.
 */
export const BLKFRONT_DEFAULT_MAX_PERSISTENT_GRANTS = 1056;
const SECTORS_PER_PAGE = PAGE_SIZE / BLKIF_SECTOR_SIZE;

export interface BlkfrontOptions {
  /** The guest's Xen services. */
  readonly xen: XenServices;
  /** Device id: the `device/vbd/<devid>` directory (51712 = xvda). */
  readonly devid: number;
  /** Frontend directory; default `/local/domain/<self>/device/vbd/<devid>`. */
  readonly frontendPath?: string;
  /** Backend directory; default: the frontend's `backend` key. */
  readonly backendPath?: string;
  /** Ring ABI announced in `protocol`. Default `x86_64-abi`. */
  readonly protocol?: "x86_64-abi" | "x86_32-abi";
  /** Largest ring order used when the backend offers `max-ring-page-order`. Default 4; 0 = one page. */
  readonly maxRingPageOrder?: number;
  /** Segments per indirect request when the backend offers them (0 = never indirect). Default 32. */
  readonly maxIndirectSegments?: number;
  /**
   * Offer `feature-persistent` (default true): when the backend offers it too, data goes through a
   * pool of pages granted once per connection and reused for every request (the caller's data
   * is copied in and out), so the backend can keep them mapped instead of mapping and unmapping
   * every request's pages. `frameOf` is then not used.
   */
  readonly persistent?: boolean;
  /**
   * Most pages kept in the persistent pool (default 1056, at least what one request needs:
   * `max(11, maxIndirectSegments + its indirect pages)`); a request finding the pool exhausted waits.
   */
  readonly maxPersistentGrants?: number;
  /**
   * The guest frame of `bytes` when it is one whole page of the guest's own memory (page-sized,
   * page-aligned), else undefined. With it, such 4 KiB pieces of a caller's buffer are granted
   * directly instead of being copied through pages of the frontend's own.
   */
  readonly frameOf?: (bytes: Uint8Array) => number | undefined;
  readonly clock?: Clock;
  readonly log?: (message: string) => void;
}

/** Counters of one frontend. */
export interface BlkfrontStats {
  requests: number;
  responses: number;
  /** Requests placed on a ring again after a reconnect. */
  reissued: number;
  /** Responses ignored: unknown id, or an operation not matching the request. */
  badResponses: number;
  /** Caller pages granted directly (no copy). */
  directPages: number;
  /** Pages of data copied through the frontend's own pages (persistent pool pages included). */
  bouncedPages: number;
  /** Pages granted persistently (pool growth; each is granted once per connection). */
  persistentGrants: number;
  /** Events sent to the backend (requests published past its req_event). */
  notifications: number;
  connects: number;
}

type Kind = "read" | "write" | "flush" | "discard";

/** A request we have made, kept until answered (Linux's shadow). */
interface Shadow {
  readonly id: bigint;
  readonly kind: Kind;
  readonly operation: number;
  /** In 512-byte units. */
  readonly sector: number;
  /** Bytes of data (read/write), or 512-byte sectors (discard). */
  readonly length: number;
  /** Data pages (read/write), allocated when first placed on a ring and kept until answered. */
  pages: Page[];
  /** Where a read's data goes. */
  readonly dst: Uint8Array | undefined;
  /** A write's data (copied into the pages when first placed). */
  readonly src: Uint8Array | undefined;
  /** Grants for the current placement (data pages then indirect pages). */
  grants: { ref: GrantRef; page: Page }[];
  indirectPages: Page[];
  /** Persistent pool entries of the current placement (data pages then indirect pages). */
  pooled: PGrant[];
  /** The current placement is a BLKIF_OP_INDIRECT request. */
  indirect: boolean;
  readonly resolve: () => void;
  readonly reject: (e: BlockError) => void;
}

/** A page of the persistent pool and its grant (read-write, ended only when the pool is dropped). */
interface PGrant {
  readonly ref: GrantRef;
  readonly page: Page;
  /** The page as a DataView, for segment descriptors when it serves as an indirect page. */
  readonly view: DataView;
  /** Where the page lies (`page.bytes.buffer` and `byteOffset`, read once: the getter is not free). */
  readonly buffer: ArrayBufferLike;
  readonly offset: number;
}

interface Channel {
  readonly ring: FrontRing;
  readonly layout: BlkifLayout;
  readonly ringPages: Page[];
  readonly ringGrants: { ref: GrantRef; page: Page }[];
  readonly port: Port;
  readonly unbind: () => void;
}

interface BackendFeatures {
  flushOp: number | undefined;
  discard: boolean;
  indirect: number;
  /** Both ends use persistent grants on this connection. */
  persistent: boolean;
}

/**
 * The first `length` bytes of the pool pages `pooled` as one view when the pages follow each
 * other in one buffer (the pool hands out runs of pages allocated together), else undefined.
 */
function poolRun(pooled: readonly PGrant[], length: number): Uint8Array | undefined {
  const first = pooled[0]!;
  const n = Math.ceil(length / PAGE_SIZE);
  if (n === 1) return length === PAGE_SIZE ? first.page.bytes : first.page.bytes.subarray(0, length);
  for (let i = 1; i < n; i++) {
    const g = pooled[i]!;
    if (g.buffer !== first.buffer || g.offset !== first.offset + i * PAGE_SIZE) return undefined;
  }
  return new Uint8Array(first.buffer, first.offset, length);
}

/**
 * A Xen block frontend (Linux's xen-blkfront, Mirage's `Blkfront`): the guest's vm-interfaces
 * `BlockDevice` over a backend domain's disk.
 *
 * Data goes through pages the frontend allocates and grants (written data is copied in when
 * the request is made, read data copied out when it completes). Every request is kept in a
 * shadow until answered; when the backend disconnects and comes back (Closing, Closed, then
 * InitWait again while `online` stays 1) the ring is rebuilt and unanswered requests are
 * placed again. When the backend goes away for good (offline, or its directory removed),
 * pending and later requests fail with `BlockError("closed")`.
 */
export class Blkfront implements BlockDevice {
  readonly stats: BlkfrontStats = {
    requests: 0, responses: 0, reissued: 0, badResponses: 0, directPages: 0, bouncedPages: 0, persistentGrants: 0, notifications: 0, connects: 0,
  };
  private readonly xen: XenServices;
  private readonly devid: number;
  private readonly layout: BlkifLayout;
  private readonly maxRingPageOrder: number;
  private readonly maxIndirect: number;
  private readonly persistentOffered: boolean;
  private readonly maxPersistent: number;
  /** Persistent pool entries not in use by a request (LIFO: recently used pages first). */
  private readonly poolFree: PGrant[] = [];
  /** Every persistent pool entry of the current connection. */
  private readonly poolAll: PGrant[] = [];
  private readonly clock: Clock | undefined;
  private readonly frameOf: ((bytes: Uint8Array) => number | undefined) | undefined;
  /** Caller pages lent to a request (granted, never freed by us). */
  private readonly borrowed = new WeakSet<Page>();
  private readonly logFn: ((message: string) => void) | undefined;
  private frontendPathValue: string;
  private backendPathValue: string | undefined;
  private backendDomid: DomId = 0;
  /** This end's xenbus state, published under its directory. */
  private readonly own: XenbusStateKeeper;
  private channel: Channel | undefined;
  private infoValue: BlockDeviceInfo | undefined;
  private features: BackendFeatures = { flushOp: undefined, discard: false, indirect: 0, persistent: false };
  private nextId = 1n;
  /** Requests not on the ring (new, or to be reissued), in order. */
  private readonly waiting: (Shadow | undefined)[] = [];
  /** Index of the first waiting request in `waiting` (a queue: taking one is O(1)). */
  private waitHead = 0;
  /** Requests on the ring, by id. */
  private readonly inflight = new Map<bigint, Shadow>();
  /** Grants the backend still had mapped when we ended them, with the pages to free after. */
  private readonly deferred: { ref: GrantRef; page: Page }[] = [];
  /** References held on our pages: the owner, plus one per grant not yet ended. */
  private readonly pageRefs = new Map<Page, number>();
  private chain: Promise<void> = Promise.resolve();
  private unwatch: (() => Promise<void>) | undefined;
  private dead: BlockError | undefined;
  private closingByUs = false;
  /** Reused to encode indirect segment descriptors without an object per segment. */
  private readonly scratchSegment: { gref: number; firstSect: number; lastSect: number } = { gref: 0, firstSect: 0, lastSect: 0 };
  private connectWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(opts: BlkfrontOptions) {
    this.xen = opts.xen;
    this.devid = opts.devid;
    const protocol = opts.protocol ?? XEN_IO_PROTO_ABI.X86_64;
    if (protocol !== XEN_IO_PROTO_ABI.X86_64 && protocol !== XEN_IO_PROTO_ABI.X86_32) throw new RangeError(`protocol ${String(protocol)}`);
    this.layout = protocol === XEN_IO_PROTO_ABI.X86_32 ? BLKIF_X86_32 : BLKIF_X86_64;
    const order = opts.maxRingPageOrder ?? BLKFRONT_DEFAULT_MAX_RING_PAGE_ORDER;
    if (!Number.isInteger(order) || order < 0 || order > 4) throw new RangeError(`maxRingPageOrder ${order}`);
    this.maxRingPageOrder = order;
    const ind = opts.maxIndirectSegments ?? BLKFRONT_DEFAULT_MAX_INDIRECT_SEGMENTS;
    if (!Number.isInteger(ind) || ind < 0 || ind > 8 * BLKIF_SEGS_PER_INDIRECT_FRAME) throw new RangeError(`maxIndirectSegments ${ind}`);
    this.maxIndirect = ind;
    this.persistentOffered = opts.persistent ?? true;
    const perRequest = Math.max(BLKIF_MAX_SEGMENTS_PER_REQUEST, ind + Math.ceil(ind / BLKIF_SEGS_PER_INDIRECT_FRAME));
    const cap = opts.maxPersistentGrants ?? Math.max(BLKFRONT_DEFAULT_MAX_PERSISTENT_GRANTS, perRequest);
    if (!Number.isInteger(cap) || cap < perRequest) throw new RangeError(`maxPersistentGrants ${cap} (one request needs ${perRequest})`);
    this.maxPersistent = cap;
    this.clock = opts.clock;
    this.frameOf = opts.frameOf;
    this.logFn = opts.log;
    this.frontendPathValue = opts.frontendPath ?? `/local/domain/${opts.xen.domid}/device/vbd/${opts.devid}`;
    this.backendPathValue = opts.backendPath;
    this.own = new XenbusStateKeeper({ xen: this.xen, devicePath: this.frontendPathValue, log: (m) => this.log(m) });
  }

  /** The disk as the backend describes it. **Errors:** Error before the first connection (host misuse). */
  get info(): BlockDeviceInfo {
    if (this.infoValue === undefined) throw new Error("blkfront: not connected yet");
    return this.infoValue;
  }

  get state(): XenbusState {
    return this.own.state;
  }

  get frontendPath(): string {
    return this.frontendPathValue;
  }

  /** Requests made and not yet answered. */
  get pending(): number {
    return this.waiting.length - this.waitHead + this.inflight.size;
  }

  /** Ring pages in use (2^ring-page-order), 0 when disconnected. */
  get ringPages(): number {
    return this.channel?.ringPages.length ?? 0;
  }

  /** Pages in the persistent grant pool (granted to the backend for this connection). */
  get persistentGrants(): number {
    return this.poolAll.length;
  }

  /** True when both ends negotiated `feature-persistent` on the current connection. */
  get persistent(): boolean {
    return this.channel !== undefined && this.features.persistent;
  }

  /** Grants we could not end yet because the backend still maps them. */
  get deferredGrants(): number {
    return this.deferred.length;
  }

  private log(msg: string): void {
    if (this.logFn) this.logFn(`${this.clock ? `[${this.clock.now()}] ` : ""}blkfront ${this.devid}: ${msg}`);
  }

  /**
   * Runs the handshake: watches the backend's state, sets up the ring when it is in InitWait,
   * and resolves once both ends are Connected. **Errors:** BlockError("closed") when the
   * backend closes or goes away before connecting.
   */
  async connect(): Promise<void> {
    if (this.dead) throw this.dead;
    const xs = this.xen.xenstore;
    const f = this.frontendPathValue;
    const backend = this.backendPathValue ?? (await xs.read(`${f}/backend`));
    this.backendPathValue = backend;
    const idText = await xs.read(`${f}/backend-id`);
    const id = Number(idText);
    if (!/^\d+$/.test(idText) || id > 0x7fef) throw new BlockError("io", `bad backend-id ${idText}`);
    this.backendDomid = id;
    const connected = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this.unwatch === undefined) {
      this.unwatch = await xs.watch(`${backend}/state`, () => this.queue(() => this.backendChanged()));
    }
    return connected;
  }

  /** Resolves when the frontend reaches a state `want` accepts. */
  waitForState(want: (s: XenbusState) => boolean): Promise<void> {
    return this.own.waitFor(want);
  }

  /**
   * Detaches (guest shutdown / unplug): Closing, wait for the backend to close, tear the ring
   * down, Closed. Requests still pending fail with BlockError("closed").
   */
  async close(): Promise<void> {
    this.closingByUs = true;
    await this.queue(async () => {
      await this.own.switchTo(XENBUS_STATE.Closing);
    });
    await this.backendAtLeastClosing();
    await this.queue(async () => {
      this.teardown();
      await this.own.switchTo(XENBUS_STATE.Closed);
      await this.kill(new BlockError("closed", "blkfront closed"));
    });
  }

  private async backendAtLeastClosing(): Promise<void> {
    const xs = this.xen.xenstore;
    const path = `${this.backendPathValue}/state`;
    for (;;) {
      const s = parseXenbusState(await xsReadOptional(xs, path).catch(() => undefined));
      if (s === XENBUS_STATE.Closing || s === XENBUS_STATE.Closed || s === XENBUS_STATE.Unknown) return;
      await new Promise<void>((resolve) => {
        let done = false;
        let un: (() => Promise<void>) | undefined;
        void xs.watch(path, () => {
          if (done) return;
          void (async () => {
            const t = parseXenbusState(await xsReadOptional(xs, path).catch(() => undefined));
            if (t >= XENBUS_STATE.Closing || t === XENBUS_STATE.Unknown) {
              done = true;
              await un?.();
              resolve();
            }
          })();
        }).then((u) => {
          un = u;
          if (done) void u();
        });
      });
    }
  }

  private queue(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn).catch((e: unknown) => this.log(`xenbus handling failed: ${String(e)}`));
    this.chain = next;
    return next;
  }

  private async backendChanged(): Promise<void> {
    if (this.dead) {
      // Gone for good: only grants the backend still mapped are left to end.
      this.retryDeferred();
      await this.unwatchWhenClean();
      return;
    }
    const xs = this.xen.xenstore;
    const b = this.backendPathValue!;
    let text: string | undefined;
    try {
      text = await xsReadOptional(xs, `${b}/state`);
    } catch (e) {
      this.log(`cannot read backend state: ${String(e)}`);
      return;
    }
    const bs = parseXenbusState(text);
    this.log(`backend ${xenbusStateName(bs)}`);
    switch (bs) {
      case XENBUS_STATE.InitWait:
        if (this.own.state === XENBUS_STATE.Initialising && !this.closingByUs) await this.talkToBackend();
        break;
      case XENBUS_STATE.Connected:
        if (this.own.state === XENBUS_STATE.Initialised) await this.connected();
        break;
      case XENBUS_STATE.Closing:
      case XENBUS_STATE.Closed: {
        if (this.closingByUs) break;
        this.teardown();
        const online = await xsReadOptional(xs, `${b}/online`).catch(() => undefined);
        if (online !== "1") {
          await this.own.switchTo(XENBUS_STATE.Closed);
          await this.kill(new BlockError("closed", "backend closed"));
          break;
        }
        if (bs === XENBUS_STATE.Closing) {
          if (this.own.state !== XENBUS_STATE.Closed) await this.own.switchTo(XENBUS_STATE.Closed);
        } else {
          // The backend closed but stays online: start again, it will offer InitWait.
          this.log("backend closed; reconnecting");
          await this.own.switchTo(XENBUS_STATE.Initialising);
        }
        break;
      }
      case XENBUS_STATE.Unknown:
        if (text === undefined) {
          this.teardown();
          await this.kill(new BlockError("closed", "backend removed"));
        }
        break;
      default:
        break;
    }
  }

  /** talk_to_blkback: ring pages, grants, event channel, then Initialised. */
  private async talkToBackend(): Promise<void> {
    const xs = this.xen.xenstore;
    const b = this.backendPathValue!;
    const f = this.frontendPathValue;
    const offered = Number((await xsReadOptional(xs, `${b}/max-ring-page-order`).catch(() => undefined)) ?? "0");
    let order = Number.isInteger(offered) && offered > 0 ? Math.min(offered, this.maxRingPageOrder) : 0;
    let pages: Page[] = [];
    for (;;) {
      pages = [];
      for (let i = 0; i < 1 << order; i++) pages.push(this.allocPage());
      const first = pages[0]!.bytes;
      const contiguous = pages.every((p, i) => p.bytes.buffer === first.buffer && p.bytes.byteOffset === first.byteOffset + i * PAGE_SIZE);
      if (contiguous || order === 0) break;
      this.log(`ring pages for order ${order} not contiguous; using one page`);
      for (const p of pages) this.releasePage(p);
      order = 0;
    }
    const first = pages[0]!.bytes;
    const bytes = new Uint8Array(first.buffer, first.byteOffset, pages.length * PAGE_SIZE);
    const ring = FrontRing.init(bytes, this.layout.entrySize);
    const ringGrants = pages.map((p) => this.grant(p, false));
    const refs = ringGrants.map((g) => g.ref);
    const port = this.xen.evtchn.allocUnbound(this.backendDomid);
    const ch: Channel = { ring, layout: this.layout, ringPages: pages, ringGrants, port, unbind: () => {} };
    (ch as { unbind: () => void }).unbind = this.xen.evtchn.onEvent(port, () => this.onResponses(ch));
    this.channel = ch;
    await xs.transaction(async (tx) => {
      if (order === 0) {
        await tx.write(`${f}/ring-ref`, String(refs[0]));
        await tx.rm(`${f}/ring-page-order`);
      } else {
        await tx.rm(`${f}/ring-ref`);
        await tx.write(`${f}/ring-page-order`, String(order));
        for (let i = 0; i < refs.length; i++) await tx.write(`${f}/ring-ref${i}`, String(refs[i]));
      }
      await tx.write(`${f}/event-channel`, String(port));
      await tx.write(`${f}/protocol`, this.layout.protocol);
      await tx.write(`${f}/feature-persistent`, this.persistentOffered ? "1" : "0");
    });
    await this.own.switchTo(XENBUS_STATE.Initialised);
  }

  /** blkfront_connect: reads the disk's description, Connected, (re)issues requests. */
  private async connected(): Promise<void> {
    const xs = this.xen.xenstore;
    const b = this.backendPathValue!;
    const read = async (k: string): Promise<string | undefined> => xsReadOptional(xs, `${b}/${k}`).catch(() => undefined);
    const num = async (k: string, dflt: number): Promise<number> => {
      const t = await read(k);
      const n = t !== undefined && /^\s*\d+\s*$/.test(t) ? Number(t) : NaN;
      return Number.isSafeInteger(n) ? n : dflt;
    };
    const sectors512 = await num("sectors", 0);
    let sectorSize = await num("sector-size", BLKIF_SECTOR_SIZE);
    if (sectorSize < 512 || sectorSize > 4096 || (sectorSize & (sectorSize - 1)) !== 0) sectorSize = BLKIF_SECTOR_SIZE;
    let physical = await num("physical-sector-size", sectorSize);
    if (physical < sectorSize || (physical & (physical - 1)) !== 0) physical = sectorSize;
    const vdisk = await num("info", 0);
    const mode = await read("mode");
    const flushCache = (await num("feature-flush-cache", 0)) === 1;
    const barrier = (await num("feature-barrier", 0)) === 1;
    const discard = (await num("feature-discard", 0)) === 1;
    const indirect = Math.min(await num("feature-max-indirect-segments", 0), this.maxIndirect);
    const persistent = this.persistentOffered && (await num("feature-persistent", 0)) === 1;
    this.features = {
      flushOp: flushCache ? BLKIF_OP.FLUSH_DISKCACHE : barrier ? BLKIF_OP.WRITE_BARRIER : undefined,
      discard,
      indirect: indirect > BLKIF_MAX_SEGMENTS_PER_REQUEST ? indirect : 0,
      persistent,
    };
    this.log(`persistent grants ${persistent ? "on" : "off"}`);
    this.infoValue = {
      sectorSize,
      sectors: Math.floor((sectors512 * BLKIF_SECTOR_SIZE) / sectorSize),
      physicalSectorSize: physical,
      readOnly: (vdisk & VDISK.READONLY) !== 0 || mode === "r",
      flush: this.features.flushOp !== undefined,
      discard,
    };
    this.stats.connects++;
    await this.own.switchTo(XENBUS_STATE.Connected);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve();
    this.pump();
  }

  /**
   * Stops using the ring: unanswered requests go back to the front of the waiting queue (in
   * order) with their grants ended (or deferred while the backend still maps them).
   */
  private teardown(): void {
    const ch = this.channel;
    this.channel = undefined;
    if (ch !== undefined) {
      ch.unbind();
      try {
        this.xen.evtchn.close(ch.port);
      } catch {
        // already closed
      }
      for (const g of ch.ringGrants) this.endGrant(g);
      for (const p of ch.ringPages) this.releasePage(p);
    }
    const back = [...this.inflight.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
    this.inflight.clear();
    this.stats.reissued += back.length;
    for (const s of back) {
      this.releaseGrants(s);
      // Pool pages go with the connection; a reissue copies the caller's data in again.
      s.pooled = [];
    }
    this.waiting.splice(0, this.waitHead, ...back);
    this.waitHead = 0;
    this.dropPool();
    this.retryDeferred();
  }

  private async kill(err: BlockError): Promise<void> {
    if (this.dead) return;
    this.dead = err;
    this.teardown();
    const all = this.waiting.splice(this.waitHead) as Shadow[];
    this.waiting.length = 0;
    this.waitHead = 0;
    for (const s of all) {
      this.freePages(s);
      s.reject(err);
    }
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(err);
    await this.unwatchWhenClean();
  }

  /** Stops watching the backend once nothing is left to clean up. */
  private async unwatchWhenClean(): Promise<void> {
    if (this.deferred.length > 0) return;
    const u = this.unwatch;
    this.unwatch = undefined;
    if (u) await u();
  }

  /**
   * Tries again to end grants the backend still had mapped (also done on every response and
   * backend state change). Returns how many are still outstanding.
   */
  releaseDeferred(): number {
    this.retryDeferred();
    return this.deferred.length;
  }

  /** Allocates a page we hold one reference to (its owner). */
  private allocPage(): Page {
    const p = this.xen.pages.allocPage();
    this.pageRefs.set(p, 1);
    return p;
  }

  /** Drops one reference; the page is freed when neither an owner nor a live grant holds it. */
  private releasePage(p: Page): void {
    const n = (this.pageRefs.get(p) ?? 1) - 1;
    if (n > 0) {
      this.pageRefs.set(p, n);
      return;
    }
    this.pageRefs.delete(p);
    if (this.borrowed.has(p)) this.borrowed.delete(p);
    else this.xen.pages.freePage(p);
  }

  /** Grants `p` to the backend; the grant holds a reference to the page until it ends. */
  private grant(p: Page, readonly: boolean): { ref: GrantRef; page: Page } {
    const ref = this.xen.gnttab.grantAccess(this.backendDomid, p.frame, readonly);
    this.pageRefs.set(p, (this.pageRefs.get(p) ?? 0) + 1);
    return { ref, page: p };
  }

  /** Ends a grant; while the backend still maps it, keeps it (and its page) for a later try. */
  private endGrant(g: { ref: GrantRef; page: Page }): void {
    let ended: boolean;
    try {
      ended = this.xen.gnttab.endAccess(g.ref);
    } catch {
      ended = true;
    }
    if (ended) this.releasePage(g.page);
    else this.deferred.push(g);
  }

  private retryDeferred(): void {
    for (const g of this.deferred.splice(0)) this.endGrant(g);
  }

  /** Ends every persistent grant of the connection (deferred while the backend maps it); frees the pages. */
  private dropPool(): void {
    this.poolFree.length = 0;
    for (const g of this.poolAll) this.endGrant(g);
    this.poolAll.length = 0;
  }

  /**
   * Takes `n` pool entries for `s`, growing the pool (a page allocated and granted read-write
   * once) up to its cap. Returns false, taking nothing, when pages, grant entries or the cap run out.
   */
  private takePooled(s: Shadow, n: number): boolean {
    const out = s.pooled;
    while (out.length < n) {
      const g = this.poolFree.pop();
      if (g !== undefined) {
        out.push(g);
        continue;
      }
      if (this.poolAll.length >= this.maxPersistent) break;
      let page: Page;
      try {
        page = this.allocPage();
      } catch {
        break;
      }
      let ref: GrantRef;
      try {
        ref = this.xen.gnttab.grantAccess(this.backendDomid, page.frame, false);
      } catch {
        this.releasePage(page);
        break;
      }
      const buffer = page.bytes.buffer;
      const offset = page.bytes.byteOffset;
      const pg: PGrant = { ref, page, view: new DataView(buffer, offset, PAGE_SIZE), buffer, offset };
      this.poolAll.push(pg);
      this.stats.persistentGrants++;
      out.push(pg);
    }
    if (out.length === n) return true;
    this.returnPooled(s);
    return false;
  }

  private returnPooled(s: Shadow): void {
    const p = s.pooled;
    for (let i = p.length - 1; i >= 0; i--) this.poolFree.push(p[i]!);
    s.pooled = [];
  }

  /** Ends the grants of a placement and frees its indirect pages; data pages stay with the shadow. */
  private releaseGrants(s: Shadow): void {
    for (const g of s.grants) this.endGrant(g);
    s.grants = [];
    for (const p of s.indirectPages) this.releasePage(p);
    s.indirectPages = [];
  }

  private freePages(s: Shadow): void {
    for (const p of s.pages) this.releasePage(p);
    s.pages = [];
  }

  // ---------------------------------------------------------------- BlockDevice

  read(sector: number, dst: Uint8Array): Promise<void> {
    try {
      const err = this.check(sector, dst.length, false);
      if (err) return Promise.reject(err);
      return this.rw("read", sector, dst, undefined);
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  write(sector: number, src: Uint8Array): Promise<void> {
    try {
      const err = this.check(sector, src.length, true);
      if (err) return Promise.reject(err);
      return this.rw("write", sector, undefined, src);
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  async flush(): Promise<void> {
    if (this.dead) throw this.dead;
    const op = this.features.flushOp;
    if (op === undefined) return;
    try {
      await this.submit("flush", op, 0, 0);
    } catch (e) {
      if (e instanceof BlockError && e.kind === "unsupported") {
        this.log("flush not supported by the backend; disabled");
        this.features.flushOp = undefined;
        return;
      }
      throw e;
    }
  }

  async discard(sector: number, count: number): Promise<void> {
    if (this.dead) throw this.dead;
    const info = this.info;
    if (!this.features.discard) throw new BlockError("unsupported", "backend offers no discard");
    const err = checkBlockRequest(info, sector, count * info.sectorSize, true);
    if (err) throw err;
    const per = info.sectorSize / BLKIF_SECTOR_SIZE;
    try {
      await this.submit("discard", BLKIF_OP.DISCARD, sector * per, count * per);
    } catch (e) {
      if (e instanceof BlockError && e.kind === "unsupported") this.features.discard = false;
      throw e;
    }
  }

  private check(sector: number, bytes: number, write: boolean): BlockError | undefined {
    if (this.dead) return this.dead;
    return checkBlockRequest(this.info, sector, bytes, write);
  }

  /** Splits a transfer into ring requests of at most the segments one request can carry. */
  private rw(kind: "read" | "write", sector: number, dst: Uint8Array | undefined, src: Uint8Array | undefined): Promise<void> {
    const buf = (dst ?? src)!;
    const per = this.info.sectorSize / BLKIF_SECTOR_SIZE;
    const maxSegs = this.features.indirect > 0 ? this.features.indirect : BLKIF_MAX_SEGMENTS_PER_REQUEST;
    const chunk = maxSegs * PAGE_SIZE;
    const op = kind === "read" ? BLKIF_OP.READ : BLKIF_OP.WRITE;
    // One ring request: no split bookkeeping.
    if (buf.length <= chunk) return this.submit(kind, op, sector * per, buf.length, dst, src);
    return this.rwSplit(kind, op, sector * per, chunk, dst, src);
  }

  private async rwSplit(kind: "read" | "write", op: number, sector512: number, chunk: number, dst: Uint8Array | undefined, src: Uint8Array | undefined): Promise<void> {
    const buf = (dst ?? src)!;
    const parts: Promise<void>[] = [];
    for (let o = 0; o < buf.length; o += chunk) {
      const len = Math.min(chunk, buf.length - o);
      parts.push(this.submit(kind, op, sector512 + o / BLKIF_SECTOR_SIZE, len, dst?.subarray(o, o + len), src?.subarray(o, o + len)));
    }
    const results = await Promise.allSettled(parts);
    for (const r of results) if (r.status === "rejected") throw r.reason;
  }

  private submit(kind: Kind, operation: number, sector: number, length: number, dst?: Uint8Array, src?: Uint8Array): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.dead) {
        reject(this.dead);
        return;
      }
      this.waiting.push({
        id: this.nextId++, kind, operation, sector, length, pages: [], dst, src, grants: [], indirectPages: [], pooled: [], indirect: false, resolve, reject,
      });
      this.stats.requests++;
      this.pump();
    });
  }

  /** Drops the first waiting request (the caller holds it). */
  private dequeue(): void {
    this.waiting[this.waitHead++] = undefined;
    if (this.waitHead === this.waiting.length) {
      this.waiting.length = 0;
      this.waitHead = 0;
    } else if (this.waitHead >= 1024 && this.waitHead * 2 >= this.waiting.length) {
      this.waiting.splice(0, this.waitHead);
      this.waitHead = 0;
    }
  }

  /** Places waiting requests on the ring while it has room, then notifies if the backend asked. */
  private pump(): void {
    const ch = this.channel;
    if (ch === undefined || this.own.state !== XENBUS_STATE.Connected) return;
    let placed = 0;
    while (this.waitHead < this.waiting.length && ch.ring.freeRequests() > 0) {
      const s = this.waiting[this.waitHead]!;
      if (!this.place(ch, s)) {
        // Out of pages or grant entries: wait for completions to free some, unless none will come.
        if (this.inflight.size > 0) break;
        this.dequeue();
        this.freePages(s);
        s.reject(new BlockError("io", "blkfront: out of pages or grant entries"));
        continue;
      }
      this.dequeue();
      placed++;
    }
    if (placed > 0 && ch.ring.pushRequestsAndCheckNotify()) {
      this.stats.notifications++;
      try {
        this.xen.evtchn.notify(ch.port);
      } catch (e) {
        this.log(`notify failed: ${String(e)}`);
      }
    }
  }

  /**
   * Puts `s` in the next ring slot: allocates its data pages on first placement (copying a
   * write's data in), grants them, and builds indirect pages when it has more than 11
   * segments. Returns false, leaving nothing behind, when pages or grant entries run out.
   */
  private place(ch: Channel, s: Shadow): boolean {
    const handle = this.devid & 0xffff;
    if (s.kind === "flush" || s.kind === "discard") {
      const off = ch.ring.nextRequest();
      this.inflight.set(s.id, s);
      if (s.kind === "flush") encodeBlkifRequest(ch.ring.view, off, { operation: s.operation, nrSegments: 0, handle, id: s.id, sectorNumber: 0, segments: [] }, ch.layout);
      else encodeBlkifRequest(ch.ring.view, off, { operation: BLKIF_OP.DISCARD, flag: 0, handle, id: s.id, sectorNumber: s.sector, nrSectors: s.length }, ch.layout);
      return true;
    }
    if (this.features.persistent) return this.placePersistent(ch, s, handle);
    const segments: BlkifSegment[] = [];
    const indirectGrefs: number[] = [];
    try {
      if (s.pages.length === 0) {
        const user = (s.dst ?? s.src)!;
        for (let o = 0; o < s.length; o += PAGE_SIZE) {
          const piece = user.subarray(o, Math.min(o + PAGE_SIZE, s.length));
          const frame = piece.byteLength === PAGE_SIZE && this.frameOf ? this.frameOf(piece) : undefined;
          if (frame !== undefined) {
            const lent: Page = { frame, bytes: piece };
            this.borrowed.add(lent);
            this.pageRefs.set(lent, 1);
            s.pages.push(lent);
            this.stats.directPages++;
            continue;
          }
          const page = this.allocPage();
          s.pages.push(page);
          this.stats.bouncedPages++;
          if (s.src) page.bytes.set(piece);
        }
      }
      const readonly = s.kind === "write";
      let left = s.length;
      for (const p of s.pages) {
        const n = Math.min(left, PAGE_SIZE) / BLKIF_SECTOR_SIZE;
        left -= n * BLKIF_SECTOR_SIZE;
        const g = this.grant(p, readonly);
        s.grants.push(g);
        segments.push({ gref: g.ref, firstSect: 0, lastSect: Math.min(n, SECTORS_PER_PAGE) - 1 });
      }
      if (segments.length > BLKIF_MAX_SEGMENTS_PER_REQUEST) {
        for (let i = 0; i < segments.length; i += BLKIF_SEGS_PER_INDIRECT_FRAME) {
          const page = this.allocPage();
          s.indirectPages.push(page);
          const v = new DataView(page.bytes.buffer, page.bytes.byteOffset, PAGE_SIZE);
          const n = Math.min(BLKIF_SEGS_PER_INDIRECT_FRAME, segments.length - i);
          for (let k = 0; k < n; k++) encodeBlkifSegment(v, k * BLKIF_SEGMENT.SIZE, segments[i + k]!);
          const g = this.grant(page, true);
          s.grants.push(g);
          indirectGrefs.push(g.ref);
        }
      }
    } catch (e) {
      // Nothing was shared yet: undo and let the caller wait for resources.
      this.log(`cannot place request: ${String(e)}`);
      this.releaseGrants(s);
      this.freePages(s);
      return false;
    }
    const off = ch.ring.nextRequest();
    this.inflight.set(s.id, s);
    s.indirect = indirectGrefs.length > 0;
    if (indirectGrefs.length === 0) {
      encodeBlkifRequest(ch.ring.view, off, { operation: s.operation, nrSegments: segments.length, handle, id: s.id, sectorNumber: s.sector, segments }, ch.layout);
    } else {
      encodeBlkifRequest(ch.ring.view, off, {
        operation: BLKIF_OP.INDIRECT, indirectOp: s.operation, nrSegments: segments.length, handle, id: s.id, sectorNumber: s.sector, indirectGrefs,
      }, ch.layout);
    }
    return true;
  }

  /**
   * `place` over persistent grants: takes pool pages for the data (and indirect descriptors),
   * copies a write's data in and names the pool's grants. Nothing is granted or ended per request.
   */
  private placePersistent(ch: Channel, s: Shadow, handle: number): boolean {
    // Pages of a placement made before a reconnect without persistent grants: the data is copied
    // from the caller's buffer again, so they go.
    if (s.pages.length > 0) this.freePages(s);
    const nData = Math.ceil(s.length / PAGE_SIZE);
    const indirect = nData > BLKIF_MAX_SEGMENTS_PER_REQUEST;
    const nInd = indirect ? Math.ceil(nData / BLKIF_SEGS_PER_INDIRECT_FRAME) : 0;
    if (!this.takePooled(s, nData + nInd)) {
      this.log("cannot place request: persistent pool exhausted");
      return false;
    }
    const pooled = s.pooled;
    const src = s.src;
    if (src !== undefined) {
      const run = poolRun(pooled, s.length);
      if (run !== undefined) run.set(src);
      else {
        for (let i = 0, o = 0; i < nData; i++, o += PAGE_SIZE) {
          const n = s.length - o < PAGE_SIZE ? s.length - o : PAGE_SIZE;
          pooled[i]!.page.bytes.set(src.subarray(o, o + n));
        }
      }
    }
    this.stats.bouncedPages += nData;
    // Every segment covers a whole page but the last, which covers what is left.
    const lastSectOfLast = (s.length - (nData - 1) * PAGE_SIZE) / BLKIF_SECTOR_SIZE - 1;
    const off = ch.ring.nextRequest();
    this.inflight.set(s.id, s);
    s.indirect = indirect;
    if (!indirect) {
      const segments: BlkifSegment[] = new Array(nData);
      for (let i = 0; i < nData; i++) segments[i] = { gref: pooled[i]!.ref, firstSect: 0, lastSect: i === nData - 1 ? lastSectOfLast : SECTORS_PER_PAGE - 1 };
      encodeBlkifRequest(ch.ring.view, off, { operation: s.operation, nrSegments: nData, handle, id: s.id, sectorNumber: s.sector, segments }, ch.layout);
      return true;
    }
    // The descriptors go straight into the indirect pages (struct blkif_request_segment [blkif.h]).
    const seg = this.scratchSegment;
    seg.firstSect = 0;
    const indirectGrefs: number[] = new Array(nInd);
    for (let j = 0; j < nInd; j++) {
      const g = pooled[nData + j]!;
      const first = j * BLKIF_SEGS_PER_INDIRECT_FRAME;
      const n = Math.min(BLKIF_SEGS_PER_INDIRECT_FRAME, nData - first);
      for (let k = 0; k < n; k++) {
        const i = first + k;
        seg.gref = pooled[i]!.ref;
        seg.lastSect = i === nData - 1 ? lastSectOfLast : SECTORS_PER_PAGE - 1;
        encodeBlkifSegment(g.view, k * BLKIF_SEGMENT.SIZE, seg);
      }
      indirectGrefs[j] = g.ref;
    }
    encodeBlkifRequest(ch.ring.view, off, {
      operation: BLKIF_OP.INDIRECT, indirectOp: s.operation, nrSegments: nData, handle, id: s.id, sectorNumber: s.sector, indirectGrefs,
    }, ch.layout);
    return true;
  }

  /** Consumes responses (event handler). */
  private onResponses(ch: Channel): void {
    if (this.channel !== ch) return;
    const ring = ch.ring;
    for (;;) {
      if (ring.responseProducerOverflow()) this.log("backend published more responses than requests");
      let off: number | undefined;
      while ((off = ring.takeResponse()) !== undefined) {
        const rsp = decodeBlkifResponse(ring.view, off, ch.layout);
        this.complete(rsp.id, rsp.operation, rsp.status);
        if (this.channel !== ch) return;
      }
      if (!ring.finalCheckForResponses()) break;
    }
    if (this.deferred.length > 0) this.retryDeferred();
    this.pump();
  }

  private complete(id: bigint, operation: number, status: number): void {
    const s = this.inflight.get(id);
    // Linux's blkback answers an indirect request with its indirect_op; accept BLKIF_OP_INDIRECT too.
    const indirect = s !== undefined && s.indirect;
    if (s === undefined || (operation !== s.operation && !(indirect && operation === BLKIF_OP.INDIRECT))) {
      this.stats.badResponses++;
      this.log(`bad response: id ${id} operation ${operation}`);
      return;
    }
    this.inflight.delete(id);
    this.stats.responses++;
    if (s.pooled.length > 0) {
      if (status === BLKIF_RSP.OKAY && s.kind === "read" && s.dst) {
        const dst = s.dst;
        const pooled = s.pooled;
        const run = poolRun(pooled, s.length);
        if (run !== undefined) dst.set(run);
        else {
          for (let o = 0, i = 0; o < s.length; o += PAGE_SIZE, i++) {
            const n = s.length - o < PAGE_SIZE ? s.length - o : PAGE_SIZE;
            const b = pooled[i]!.page.bytes;
            dst.set(n === PAGE_SIZE ? b : b.subarray(0, n), o);
          }
        }
      }
      this.returnPooled(s);
      this.settle(s, status);
      return;
    }
    this.releaseGrants(s);
    if (status === BLKIF_RSP.OKAY) {
      if (s.kind === "read" && s.dst) {
        let o = 0;
        for (const p of s.pages) {
          const n = Math.min(PAGE_SIZE, s.length - o);
          if (!this.borrowed.has(p)) s.dst.set(p.bytes.subarray(0, n), o);
          o += n;
        }
      }
      this.freePages(s);
      s.resolve();
      return;
    }
    this.freePages(s);
    this.settle(s, status);
  }

  private settle(s: Shadow, status: number): void {
    if (status === BLKIF_RSP.OKAY) {
      s.resolve();
      return;
    }
    if (status === BLKIF_RSP.EOPNOTSUPP) s.reject(new BlockError("unsupported", `backend does not support operation ${s.operation}`));
    else s.reject(new BlockError("io", `backend answered ${status} to ${s.kind} at ${s.sector}`));
  }
}
