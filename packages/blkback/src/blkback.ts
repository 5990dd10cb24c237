import {
  BackRing, SRING, BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP, BLKIF_RSP, BLKIF_SECTOR_SIZE, BLKIF_SEGS_PER_INDIRECT_FRAME,
  BLKIF_DISCARD_SECURE, VDISK, XENBUS_STATE, blkifLayoutForProtocol, decodeBlkifRequest, decodeBlkifSegment,
  encodeBlkifResponse, parseXenbusState,
  type BlkifLayout, type BlkifRequest, type BlkifSegment, type XenbusState,
} from "@paravirt/device-channel";
import {
  PAGE_SIZE, readVectored, writeVectored, xsReadOptional,
  type BlockDevice, type Clock, type DomId, type GrantMapping, type Port, type XenServices,
} from "@paravirt/vm-interfaces";
import { XenbusStateKeeper } from "@paravirt/xenstore";

/** Linux's default `max_ring_page_order` of xen-blkback (16 pages). */
export const BLKBACK_DEFAULT_MAX_RING_PAGE_ORDER = 4;
/** Linux's default `max_indirect_segments` of xen-blkback [MAX_INDIRECT_SEGMENTS]. */
export const BLKBACK_DEFAULT_MAX_INDIRECT_SEGMENTS = 256;
/** Linux's default `max_persistent_grants` of xen-blkback [xen_blkif_max_pgrants]. */
export const BLKBACK_DEFAULT_MAX_PERSISTENT_GRANTS = 1056;
/** Share of the persistent grants unmapped when the cache is full (Linux's LRU_PERCENT_CLEAN). */
const PERSISTENT_PURGE_PERCENT = 5;
/** Highest `max-ring-page-order` we accept to advertise [XENBUS_MAX_RING_GRANT_ORDER]. */
export const XENBUS_MAX_RING_GRANT_ORDER = 4;
/** Sectors (512 B) per page: a segment's last_sect is at most this minus one [blkif.h]. */
const SECTORS_PER_PAGE = PAGE_SIZE / BLKIF_SECTOR_SIZE;
/** Largest indirect segment count a request can carry: 8 indirect pages of 512 segments [blkif.h]. */
const MAX_INDIRECT_LIMIT = 8 * BLKIF_SEGS_PER_INDIRECT_FRAME;

export interface BlkbackOptions {
  /** The backend (driver) domain's Xen services. */
  readonly xen: XenServices;
  /** The disk served. */
  readonly device: BlockDevice;
  readonly frontendDomid: DomId;
  /** Device id (virtual-device number, e.g. 51712 for xvda). */
  readonly devid: number;
  /** Backend directory; default `/local/domain/<self>/backend/vbd/<frontendDomid>/<devid>`. */
  readonly backendPath?: string;
  /** Advertised `max-ring-page-order` (0..4). Default 4. */
  readonly maxRingPageOrder?: number;
  /** Advertised `feature-max-indirect-segments` (0 = no indirect). Default 256. */
  readonly maxIndirectSegments?: number;
  /**
   * Offer `feature-persistent` (default true). With a frontend that offers it too, data grants
   * are mapped once (read-write) and kept mapped, by gref, until the ring is torn down, instead
   * of being mapped and unmapped for every request.
   */
  readonly persistent?: boolean;
  /**
   * Most persistent grants kept mapped per ring (default 1056, as Linux). When full, the least
   * recently used idle ones are unmapped; a gref that still finds no room is mapped for its
   * request only.
   */
  readonly maxPersistentGrants?: number;
  /** Serve read-only even if the device is writable (the toolstack's `mode` = `r` does too). */
  readonly readOnly?: boolean;
  /** Requests taken from the ring per consumer pass (bounds work per event). Default: the ring size. */
  readonly batch?: number;
  /** Virtual time, for log lines. */
  readonly clock?: Clock;
  readonly log?: (message: string) => void;
}

/** Counters of one backend. */
export interface BlkbackStats {
  requests: number;
  reads: number;
  writes: number;
  flushes: number;
  barriers: number;
  discards: number;
  indirect: number;
  /** Requests answered BLKIF_RSP_ERROR. */
  errors: number;
  /** Requests answered BLKIF_RSP_EOPNOTSUPP. */
  unsupported: number;
  /** Device calls made straight on granted pages. */
  zeroCopyCalls: number;
  /** Requests that went through a bounce buffer (segments not device-sector sized). */
  bounced: number;
  /** Grants mapped persistently (cache misses). */
  persistentMaps: number;
  /** Segments served from an already-mapped persistent grant. */
  persistentHits: number;
  /** Persistent grants unmapped to stay under the limit. */
  persistentEvictions: number;
  /** Events sent to the frontend (responses published past its rsp_event). */
  notifications: number;
  /** Channels shut down because the frontend broke the ring protocol. */
  protocolErrors: number;
  connects: number;
}

/** A grant mapped for a request: the mapping and where its page lies (read once: `bytes.buffer` is not free). */
interface Mapped {
  readonly mapping: GrantMapping;
  readonly buffer: ArrayBufferLike;
  readonly offset: number;
}

function mapped(mapping: GrantMapping): Mapped {
  return { mapping, buffer: mapping.bytes.buffer, offset: mapping.bytes.byteOffset };
}

/** A grant kept mapped for the life of a ring (Linux's struct persistent_gnt). */
interface PersistentGrant extends Mapped {
  readonly ref: number;
  /** Requests using it right now: never unmapped while above 0. */
  users: number;
  /** Last use, for LRU eviction. */
  stamp: number;
  /** The page as a DataView, made the first time it serves as an indirect page. */
  view: DataView | undefined;
}

/** Grants one request holds: persistent ones (released) and transient ones (unmapped). */
interface Held {
  readonly pinned: PersistentGrant[];
  readonly transient: GrantMapping[];
}

interface Channel {
  readonly ring: BackRing;
  readonly layout: BlkifLayout;
  readonly ringMappings: GrantMapping[];
  readonly port: Port;
  readonly unbind: () => void;
  alive: boolean;
  passQueued: boolean;
  /** A consumer pass is running (a response made during it leaves new requests to it). */
  passing: boolean;
  /** Requests being served, by sequence number: each settles after its response is published. */
  readonly inflight: Map<number, Promise<void>>;
  nextSeq: number;
  /** A WRITE_BARRIER in progress: later requests start after it. */
  barrier: Promise<void> | undefined;
  /** The barrier's sequence number, -1 without one. */
  barrierSeq: number;
  /** Persistent grants by gref, when both ends negotiated `feature-persistent`. */
  readonly persistent: Map<number, PersistentGrant> | undefined;
  /** Use counter for the persistent grants' LRU stamps. */
  uses: number;
  /** Persistent grants some request is using (users > 0): when all are, there is nothing to purge. */
  busy: number;
}

interface Failure {
  status: number;
  why: string;
}

function fail(status: number, why: string): Failure {
  return { status, why };
}

/** A mapped page as a DataView. */
function pageView(m: Mapped): DataView {
  return new DataView(m.buffer, m.offset, PAGE_SIZE);
}

/** Parses a peer's decimal unsigned 32-bit number; undefined for anything else. */
function parseU32(text: string | undefined): number | undefined {
  if (text === undefined || !/^\s*\d{1,10}\s*$/.test(text)) return undefined;
  const n = Number(text.trim());
  return n <= 0xffffffff ? n : undefined;
}

/**
 * A Xen block backend (Linux's xen-blkback, Mirage's `Blkback.Make`): serves `device` to the
 * frontend domain through the blkif protocol. It runs the xenbus handshake on the backend
 * directory, maps the frontend's ring and data grants, and hands the block device views of the
 * granted pages directly (page-contiguous segments merged into one call).
 *
 * Everything the frontend writes is validated; a bad request is answered BLKIF_RSP_ERROR (or
 * EOPNOTSUPP for an operation not offered) and never throws; every grant mapped is unmapped
 * before the response is published. A `req_prod` beyond what a correct frontend can publish
 * shuts the channel down (state Closing, `error` node written).
 */
export class Blkback {
  readonly stats: BlkbackStats = {
    requests: 0, reads: 0, writes: 0, flushes: 0, barriers: 0, discards: 0, indirect: 0,
    errors: 0, unsupported: 0, zeroCopyCalls: 0, bounced: 0, persistentMaps: 0, persistentHits: 0, persistentEvictions: 0,
    notifications: 0, protocolErrors: 0, connects: 0,
  };
  readonly backendPath: string;
  private readonly xen: XenServices;
  private readonly device: BlockDevice;
  private readonly frontendDomid: DomId;
  private readonly devid: number;
  private readonly maxRingPageOrder: number;
  private readonly maxIndirectSegments: number;
  private readonly persistentOffered: boolean;
  private readonly maxPersistentGrants: number;
  private readonly forceReadOnly: boolean;
  private readonly batch: number | undefined;
  private readonly clock: Clock | undefined;
  private readonly logFn: ((message: string) => void) | undefined;
  private frontendPath = "";
  private readOnly = false;
  private channel: Channel | undefined;
  /** This end's xenbus state, published under its directory. */
  private readonly own: XenbusStateKeeper;
  private chain: Promise<void> = Promise.resolve();
  private unwatch: (() => Promise<void>) | undefined;
  private finished = false;

  constructor(opts: BlkbackOptions) {
    this.xen = opts.xen;
    this.device = opts.device;
    this.frontendDomid = opts.frontendDomid;
    this.devid = opts.devid;
    this.backendPath = opts.backendPath ?? `/local/domain/${opts.xen.domid}/backend/vbd/${opts.frontendDomid}/${opts.devid}`;
    const order = opts.maxRingPageOrder ?? BLKBACK_DEFAULT_MAX_RING_PAGE_ORDER;
    if (!Number.isInteger(order) || order < 0 || order > XENBUS_MAX_RING_GRANT_ORDER) throw new RangeError(`maxRingPageOrder ${order}`);
    this.maxRingPageOrder = order;
    const ind = opts.maxIndirectSegments ?? BLKBACK_DEFAULT_MAX_INDIRECT_SEGMENTS;
    if (!Number.isInteger(ind) || ind < 0 || ind > MAX_INDIRECT_LIMIT) throw new RangeError(`maxIndirectSegments ${ind}`);
    this.maxIndirectSegments = ind;
    this.persistentOffered = opts.persistent ?? true;
    const pg = opts.maxPersistentGrants ?? BLKBACK_DEFAULT_MAX_PERSISTENT_GRANTS;
    if (!Number.isInteger(pg) || pg < 0) throw new RangeError(`maxPersistentGrants ${pg}`);
    this.maxPersistentGrants = pg;
    this.forceReadOnly = opts.readOnly ?? false;
    this.batch = opts.batch;
    this.clock = opts.clock;
    this.logFn = opts.log;
    this.own = new XenbusStateKeeper({ xen: this.xen, devicePath: this.backendPath, log: (m) => this.log(m) });
  }

  /** The backend's xenbus state. */
  get state(): XenbusState {
    return this.own.state;
  }

  /** True while a ring is connected. */
  get connected(): boolean {
    return this.channel !== undefined;
  }

  /** Grant mappings held right now (ring pages, persistent grants and in-flight data). */
  get mappedGrants(): number {
    return this.liveMappings;
  }

  /**
   * The ring ABI the frontend connected with (its `protocol` key [io/protocols.h]: "x86_64-abi",
   * "x86_32-abi"): the current connection's, or the last one's once it has ended; undefined
   * before the first connection.
   */
  get protocol(): string | undefined {
    return this.protocolValue;
  }
  private protocolValue: string | undefined;

  /** Persistent grants mapped on the current ring (0 when not negotiated or disconnected). */
  get persistentGrants(): number {
    return this.channel?.persistent?.size ?? 0;
  }
  private liveMappings = 0;

  private log(msg: string): void {
    if (this.logFn) this.logFn(`${this.clock ? `[${this.clock.now()}] ` : ""}blkback ${this.frontendDomid}/${this.devid}: ${msg}`);
  }

  /**
   * Probes: writes the features to the backend directory, switches to InitWait and watches the
   * frontend's state. The toolstack must have created the directory (`frontend`, `mode`, ...).
   */
  async start(): Promise<void> {
    const xs = this.xen.xenstore;
    const p = this.backendPath;
    this.frontendPath = (await xsReadOptional(xs, `${p}/frontend`)) ?? `/local/domain/${this.frontendDomid}/device/vbd/${this.devid}`;
    const mode = await xsReadOptional(xs, `${p}/mode`);
    const info = this.device.info;
    this.readOnly = this.forceReadOnly || info.readOnly || (mode !== undefined && !mode.includes("w"));
    const discard = info.discard && typeof this.device.discard === "function" && !this.readOnly;
    await xs.transaction(async (tx) => {
      if (mode === undefined) await tx.write(`${p}/mode`, this.readOnly ? "r" : "w");
      await tx.write(`${p}/feature-flush-cache`, info.flush ? "1" : "0");
      await tx.write(`${p}/feature-barrier`, info.flush ? "1" : "0");
      await tx.write(`${p}/feature-discard`, discard ? "1" : "0");
      if (discard) {
        await tx.write(`${p}/discard-granularity`, String(info.sectorSize));
        await tx.write(`${p}/discard-alignment`, "0");
        await tx.write(`${p}/discard-secure`, "0");
      }
      await tx.write(`${p}/feature-persistent`, this.persistentOffered ? "1" : "0");
      await tx.write(`${p}/feature-max-indirect-segments`, String(this.maxIndirectSegments));
      await tx.write(`${p}/max-ring-page-order`, String(this.maxRingPageOrder));
    });
    await this.own.switchTo(XENBUS_STATE.InitWait);
    this.unwatch = await xs.watch(`${this.frontendPath}/state`, () => this.queue(() => this.frontendChanged()));
  }

  /**
   * Asks the frontend to disconnect and reconnect (a backend restart): Closing now; when the
   * frontend has closed, the ring is torn down (in-flight requests finish against the device
   * but are not answered; the frontend reissues them) and a frontend that re-initialises is
   * served again.
   */
  async reset(): Promise<void> {
    await this.queue(async () => {
      await this.disconnect();
      await this.own.switchTo(XENBUS_STATE.Closing);
    });
  }

  /** Stops serving: disconnects, switches to Closed, stops watching. */
  async stop(): Promise<void> {
    await this.queue(async () => {
      await this.disconnect();
      await this.own.switchTo(XENBUS_STATE.Closed);
      await this.finish();
    });
  }

  /** Resolves when the backend reaches a state `want` accepts. */
  waitForState(want: (s: XenbusState) => boolean): Promise<void> {
    return this.own.waitFor(want);
  }

  private queue(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn).catch((e: unknown) => this.log(`xenbus handling failed: ${String(e)}`));
    this.chain = next;
    return next;
  }

  private async finish(): Promise<void> {
    this.finished = true;
    const u = this.unwatch;
    this.unwatch = undefined;
    if (u) await u();
  }

  /** xenbus_dev_fatal: records why under `error/<backend path>` and closes. */
  private async fatal(why: string): Promise<void> {
    this.log(`fatal: ${why}`);
    const rel = this.backendPath.replace(/^\/local\/domain\/\d+\//, "");
    try {
      await this.xen.xenstore.write(`error/${rel}/error`, why);
    } catch {
      // best effort, as in Linux
    }
    await this.own.switchTo(XENBUS_STATE.Closing);
  }

  private async frontendChanged(): Promise<void> {
    if (this.finished) return;
    const xs = this.xen.xenstore;
    let text: string | undefined;
    try {
      text = await xsReadOptional(xs, `${this.frontendPath}/state`);
    } catch (e) {
      this.log(`cannot read frontend state: ${String(e)}`);
      return;
    }
    const fs = parseXenbusState(text);
    switch (fs) {
      case XENBUS_STATE.Initialising:
        if (this.own.state === XENBUS_STATE.Closed) {
          this.log("frontend re-initialising: prepare for reconnect");
          await this.own.switchTo(XENBUS_STATE.InitWait);
        }
        break;
      case XENBUS_STATE.Initialised:
      case XENBUS_STATE.Connected:
        if (this.own.state === XENBUS_STATE.Connected || this.own.state === XENBUS_STATE.Closing) break;
        await this.disconnect();
        await this.connect();
        break;
      case XENBUS_STATE.Closing:
        await this.disconnect();
        await this.own.switchTo(XENBUS_STATE.Closing);
        break;
      case XENBUS_STATE.Closed: {
        await this.disconnect();
        await this.own.switchTo(XENBUS_STATE.Closed);
        const online = await xsReadOptional(xs, `${this.backendPath}/online`).catch(() => undefined);
        if (online !== "1") await this.finish();
        break;
      }
      case XENBUS_STATE.Unknown:
        if (text === undefined) {
          await this.disconnect();
          await this.own.switchTo(XENBUS_STATE.Closed);
          await this.finish();
        }
        break;
      default:
        break;
    }
  }

  /** connect_ring + connect: maps the ring, binds the event channel, publishes the disk. */
  private async connect(): Promise<void> {
    const xs = this.xen.xenstore;
    const f = this.frontendPath;
    const read = (k: string) => xsReadOptional(xs, `${f}/${k}`).catch(() => undefined);
    const orderText = await read("ring-page-order");
    let refs: number[] = [];
    if (orderText === undefined) {
      const r = parseU32(await read("ring-ref"));
      if (r === undefined) return this.fatal("reading ring-ref");
      refs = [r];
    } else {
      const order = parseU32(orderText);
      if (order === undefined || order > this.maxRingPageOrder) return this.fatal(`ring-page-order ${orderText} beyond ${this.maxRingPageOrder}`);
      for (let i = 0; i < 1 << order; i++) {
        const r = parseU32(await read(`ring-ref${i}`));
        if (r === undefined) return this.fatal(`reading ring-ref${i}`);
        refs.push(r);
      }
    }
    const evtText = await read("event-channel");
    const evtchn = parseU32(evtText);
    if (evtchn === undefined) return this.fatal("reading event-channel");
    const protocol = await read("protocol");
    const layout = blkifLayoutForProtocol(protocol);
    if (layout === undefined) return this.fatal(`unknown protocol ${protocol}`);
    // Anything but "1" (missing, garbage) means no persistent grants, as in Linux.
    const persistent = this.persistentOffered && parseU32(await read("feature-persistent")) === 1;

    const gnttab = this.xen.gnttab;
    const mappings: GrantMapping[] = [];
    const unmapAll = () => {
      for (const m of mappings) this.unmap(m);
    };
    try {
      for (const r of refs) {
        mappings.push(gnttab.map(this.frontendDomid, r, true));
        this.liveMappings++;
      }
    } catch (e) {
      unmapAll();
      return this.fatal(`mapping ring-ref: ${String(e)}`);
    }
    let bytes = mappings[0]!.bytes;
    if (mappings.length > 1) {
      const first = mappings[0]!.bytes;
      const contiguous = mappings.every(
        (m, i) => m.bytes.buffer === first.buffer && m.bytes.byteOffset === first.byteOffset + i * PAGE_SIZE && m.bytes.byteLength === PAGE_SIZE,
      );
      if (!contiguous) {
        unmapAll();
        return this.fatal("ring pages are not contiguous in this address space");
      }
      bytes = new Uint8Array(first.buffer, first.byteOffset, mappings.length * PAGE_SIZE);
    }
    let port: Port;
    try {
      port = this.xen.evtchn.bindInterdomain(this.frontendDomid, evtchn);
    } catch (e) {
      unmapAll();
      return this.fatal(`binding event channel ${evtchn}: ${String(e)}`);
    }
    // BACK_RING_ATTACH at the published rsp_prod (Linux's xen_blkif_map): a fresh ring starts at
    // 0; a ring we take over from a backend that died is resumed, requests it consumed but never
    // answered being served again.
    const ring = BackRing.attach(bytes, layout.entrySize, new DataView(bytes.buffer, bytes.byteOffset, SRING.HEADER_SIZE).getUint32(SRING.RSP_PROD, true));
    if (ring.requestProducerOverflow()) {
      unmapAll();
      try {
        this.xen.evtchn.close(port);
      } catch {
        // closed already
      }
      return this.fatal(`ring indexes inconsistent (req_prod ${ring.sharedReqProd}, rsp_prod ${ring.sharedRspProd})`);
    }
    const ch: Channel = {
      ring, layout, ringMappings: mappings, port, unbind: () => {}, alive: true, passQueued: false, passing: false, inflight: new Map(), nextSeq: 0, barrier: undefined, barrierSeq: -1,
      persistent: persistent ? new Map() : undefined, uses: 0, busy: 0,
    };
    (ch as { unbind: () => void }).unbind = this.xen.evtchn.onEvent(port, () => this.kick(ch));
    this.channel = ch;
    this.protocolValue = layout.protocol;
    this.stats.connects++;
    this.log(`ring connected: ${refs.length} page(s), port ${port}, ${layout.protocol}${persistent ? ", persistent grants" : ""}`);

    const info = this.device.info;
    const p = this.backendPath;
    try {
      await xs.transaction(async (tx) => {
        await tx.write(`${p}/sectors`, String((info.sectors * info.sectorSize) / BLKIF_SECTOR_SIZE));
        await tx.write(`${p}/info`, String(this.readOnly ? VDISK.READONLY : 0));
        await tx.write(`${p}/sector-size`, String(info.sectorSize));
        await tx.write(`${p}/physical-sector-size`, String(info.physicalSectorSize ?? info.sectorSize));
      });
    } catch (e) {
      this.log(`cannot publish disk: ${String(e)}`);
    }
    await this.own.switchTo(XENBUS_STATE.Connected);
    this.kick(ch);
  }

  /** Tears the ring down after every in-flight request has finished with its grants. */
  private async disconnect(): Promise<void> {
    const ch = this.channel;
    if (ch === undefined) return;
    this.channel = undefined;
    ch.alive = false;
    ch.unbind();
    while (ch.inflight.size > 0) await Promise.allSettled([...ch.inflight.values()]);
    if (ch.persistent !== undefined) {
      for (const g of ch.persistent.values()) this.unmap(g.mapping);
      ch.persistent.clear();
    }
    for (const m of ch.ringMappings) this.unmap(m);
    try {
      this.xen.evtchn.close(ch.port);
    } catch {
      // already closed
    }
    this.log("ring disconnected");
  }

  private unmap(m: GrantMapping): void {
    try {
      this.xen.gnttab.unmap(m);
      this.liveMappings--;
    } catch (e) {
      this.log(`unmap failed: ${String(e)}`);
    }
  }

  /** Schedules a consumer pass (one per event, however many arrive meanwhile). */
  private kick(ch: Channel): void {
    if (!ch.alive || ch.passQueued) return;
    ch.passQueued = true;
    queueMicrotask(() => {
      ch.passQueued = false;
      this.pass(ch);
    });
  }

  /** One bounded consumer pass over the ring. */
  private pass(ch: Channel): void {
    if (!ch.alive) return;
    ch.passing = true;
    try {
      this.passOnce(ch);
    } finally {
      ch.passing = false;
    }
  }

  private passOnce(ch: Channel): void {
    const ring = ch.ring;
    const n = ring.pendingRequests();
    if (n < 0) {
      ch.alive = false; // answer nothing more on this ring
      this.stats.protocolErrors++;
      this.log(`frontend provided bogus ring requests (req_prod ${ring.sharedReqProd}, rsp_prod ${ring.rspProdPvt})`);
      void this.queue(async () => {
        await this.disconnect();
        await this.fatal("frontend provided bogus ring requests");
      });
      return;
    }
    const take = Math.min(n, this.batch ?? ring.size);
    for (let i = 0; i < take; i++) {
      const off = ring.takeRequest();
      if (off === undefined) break;
      this.dispatch(ch, off);
    }
    if (take < n) this.kick(ch);
    else this.checkForRequests(ch);
  }

  /**
   * After a pass or a response: with requests still unanswered we will look at the ring again
   * when the next one is answered, so we do not ask for events (no re-arming of `req_event`, as
   * Linux 2.6.18's blkback make_response did); with none, RING_FINAL_CHECK_FOR_REQUESTS. New
   * requests found after a response are taken at once (no extra turn), unless a pass is running
   * or queued already.
   */
  private checkForRequests(ch: Channel): void {
    const ring = ch.ring;
    const more = ring.rspProdPvt !== ring.reqCons ? ring.unconsumedRequests() > 0 : ring.finalCheckForRequests();
    if (!more) return;
    if (ch.passing || ch.passQueued) this.kick(ch);
    else this.pass(ch);
  }

  /** Decodes (copies) one request and starts it; always ends in exactly one response. */
  private dispatch(ch: Channel, off: number): void {
    const req = decodeBlkifRequest(ch.ring.view, off, ch.layout);
    this.stats.requests++;
    const refusal = this.classify(req);
    const id = req.id;
    // Linux answers an indirect request with its indirect_op (pending_req->operation).
    const operation = req.operation === BLKIF_OP.INDIRECT ? (req as { indirectOp: number }).indirectOp : req.operation;
    const isBarrier = refusal === undefined && req.operation === BLKIF_OP.WRITE_BARRIER;
    const before = ch.barrier;
    if (!isBarrier && before === undefined) {
      // The common case: no barrier to order against, the work starts now.
      let r: number | Promise<number>;
      try {
        r = this.perform(ch, req, refusal);
      } catch (e) {
        // Defensive: nothing in the work should throw on peer input.
        this.log(`request failed unexpectedly: ${String(e)}`);
        r = BLKIF_RSP.ERROR;
      }
      if (typeof r === "number") this.respond(ch, id, operation, r);
      else this.track(ch, r, id, operation);
      return;
    }
    const earlier = isBarrier ? [...ch.inflight.values()] : undefined;
    const run = async (): Promise<number> => {
      if (earlier !== undefined) await Promise.allSettled(earlier);
      else await before;
      return this.perform(ch, req, refusal);
    };
    const seq = this.track(ch, run(), id, operation);
    if (isBarrier) {
      ch.barrier = ch.inflight.get(seq);
      ch.barrierSeq = seq;
    }
  }

  /**
   * Keeps `work` in the channel's in-flight set until it settles, then answers with its status.
   * Returns its sequence number (its key in `inflight`).
   */
  private track(ch: Channel, work: Promise<number>, id: bigint, operation: number): number {
    const seq = ch.nextSeq++;
    const done = work.then(
      (status) => this.answer(ch, seq, id, operation, status),
      (e: unknown) => {
        // Defensive: nothing in the work should throw on peer input.
        this.log(`request failed unexpectedly: ${String(e)}`);
        this.answer(ch, seq, id, operation, BLKIF_RSP.ERROR);
      },
    );
    ch.inflight.set(seq, done);
    return seq;
  }

  private answer(ch: Channel, seq: number, id: bigint, operation: number, status: number): void {
    ch.inflight.delete(seq);
    if (ch.barrierSeq === seq) {
      ch.barrier = undefined;
      ch.barrierSeq = -1;
    }
    this.respond(ch, id, operation, status);
  }

  /**
   * Counts the request and checks what needs no device: an operation not offered, a bad handle
   * or segment count. Returns why it is refused, or undefined.
   */
  private classify(req: BlkifRequest): Failure | undefined {
    const handle = this.devid & 0xffff;
    switch (req.operation) {
      case BLKIF_OP.READ:
      case BLKIF_OP.WRITE:
      case BLKIF_OP.FLUSH_DISKCACHE:
      case BLKIF_OP.WRITE_BARRIER: {
        const r = req as { nrSegments: number; handle: number };
        const op = req.operation;
        const isFlush = op === BLKIF_OP.FLUSH_DISKCACHE || op === BLKIF_OP.WRITE_BARRIER;
        if (isFlush && !this.device.info.flush) return fail(BLKIF_RSP.EOPNOTSUPP, "flush not offered");
        if (r.handle !== handle) return fail(BLKIF_RSP.ERROR, `handle ${r.handle}`);
        if (r.nrSegments > BLKIF_MAX_SEGMENTS_PER_REQUEST || (r.nrSegments === 0 && !isFlush)) return fail(BLKIF_RSP.ERROR, `nr_segments ${r.nrSegments}`);
        if (op === BLKIF_OP.READ) this.stats.reads++;
        else if (op === BLKIF_OP.WRITE) this.stats.writes++;
        else if (op === BLKIF_OP.FLUSH_DISKCACHE) this.stats.flushes++;
        else this.stats.barriers++;
        return undefined;
      }
      case BLKIF_OP.DISCARD:
        this.stats.discards++;
        return undefined;
      case BLKIF_OP.INDIRECT:
        this.stats.indirect++;
        return this.maxIndirectSegments === 0 ? fail(BLKIF_RSP.EOPNOTSUPP, "indirect not offered") : undefined;
      default:
        return fail(BLKIF_RSP.EOPNOTSUPP, `operation ${req.operation}`);
    }
  }

  /** Does a classified request: its status now, or a promise of it. */
  private perform(ch: Channel, req: BlkifRequest, refusal: Failure | undefined): number | Promise<number> {
    if (refusal !== undefined) return this.refuse(refusal);
    switch (req.operation) {
      case BLKIF_OP.DISCARD: {
        const r = req as { flag: number; handle: number; sectorNumber: number; nrSectors: number };
        return this.discard(r.handle, r.flag, r.sectorNumber, r.nrSectors);
      }
      case BLKIF_OP.INDIRECT: {
        const r = req as { indirectOp: number; nrSegments: number; handle: number; sectorNumber: number; indirectGrefs: number[] };
        return this.indirect(ch, r.indirectOp, r.nrSegments, r.handle, r.sectorNumber, r.indirectGrefs);
      }
      default: {
        const r = req as { sectorNumber: number; segments: BlkifSegment[] };
        const op = req.operation;
        const isFlush = op === BLKIF_OP.FLUSH_DISKCACHE || op === BLKIF_OP.WRITE_BARRIER;
        return this.rw(ch, r.sectorNumber, r.segments, op !== BLKIF_OP.READ, isFlush);
      }
    }
  }

  private refuse(f: Failure): number {
    if (f.status === BLKIF_RSP.EOPNOTSUPP) this.stats.unsupported++;
    else this.stats.errors++;
    this.log(`refused: ${f.why}`);
    return f.status;
  }

  private respond(ch: Channel, id: bigint, operation: number, status: number): void {
    if (!ch.alive) return;
    const ring = ch.ring;
    let off: number;
    try {
      off = ring.nextResponse();
    } catch (e) {
      this.log(`no response slot: ${String(e)}`);
      return;
    }
    encodeBlkifResponse(ring.view, off, { id, operation, status }, ch.layout);
    if (ring.pushResponsesAndCheckNotify()) {
      this.stats.notifications++;
      try {
        this.xen.evtchn.notify(ch.port);
      } catch (e) {
        this.log(`notify failed: ${String(e)}`);
      }
    }
    this.checkForRequests(ch);
  }

  /** Validates a sector range (in 512-byte units) against the disk; returns device sector and count. */
  private range(sector512: number, count512: number, write: boolean): { sector: number; count: number } | Failure {
    const info = this.device.info;
    if (write && this.readOnly) return fail(BLKIF_RSP.ERROR, "write to a read-only disk");
    const per = info.sectorSize / BLKIF_SECTOR_SIZE;
    if (sector512 % per !== 0 || count512 % per !== 0) return fail(BLKIF_RSP.ERROR, `range ${sector512}+${count512} not aligned to ${info.sectorSize}`);
    const sector = sector512 / per;
    const count = count512 / per;
    if (!Number.isSafeInteger(sector) || sector + count > info.sectors) return fail(BLKIF_RSP.ERROR, `range ${sector512}+${count512} beyond the disk`);
    return { sector, count };
  }

  /**
   * READ/WRITE (and flushes, with or without data) over `segs`. Returns a BLKIF_RSP status, now
   * when the request is refused, else once the device is done (every grant released by then).
   */
  private rw(ch: Channel, sector512: number, segs: readonly BlkifSegment[], write: boolean, flush: boolean): number | Promise<number> {
    let total512 = 0;
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i]!;
      if (s.firstSect > s.lastSect || s.lastSect >= SECTORS_PER_PAGE) return this.refuse(fail(BLKIF_RSP.ERROR, `segment sectors ${s.firstSect}..${s.lastSect}`));
      total512 += s.lastSect - s.firstSect + 1;
    }
    let sector = 0;
    if (segs.length > 0) {
      const r = this.range(sector512, total512, write);
      if ("status" in r) return this.refuse(r);
      sector = r.sector;
    }
    if (flush) return this.rwFlush(ch, sector, segs, write);
    return this.rwData(ch, sector, segs, write);
  }

  /** A flush (FLUSH_DISKCACHE, WRITE_BARRIER): flush, the data if any, flush again. */
  private async rwFlush(ch: Channel, sector: number, segs: readonly BlkifSegment[], write: boolean): Promise<number> {
    if (!(await this.deviceOk(() => this.device.flush()))) return this.refuse(fail(BLKIF_RSP.ERROR, "flush failed"));
    if (segs.length === 0) return BLKIF_RSP.OKAY;
    const status = await this.rwData(ch, sector, segs, write);
    if (status !== BLKIF_RSP.OKAY) return status;
    if (!(await this.deviceOk(() => this.device.flush()))) return this.refuse(fail(BLKIF_RSP.ERROR, "flush failed"));
    return BLKIF_RSP.OKAY;
  }

  /** Maps the segments' grants, moves the data, releases the grants. */
  private rwData(ch: Channel, sector: number, segs: readonly BlkifSegment[], write: boolean): number | Promise<number> {
    const maps: Mapped[] = new Array(segs.length);
    const held: Held = { pinned: [], transient: [] };
    try {
      for (let i = 0; i < segs.length; i++) maps[i] = this.acquire(ch, segs[i]!.gref, !write, held);
    } catch (e) {
      this.release(ch, held);
      return this.refuse(fail(BLKIF_RSP.ERROR, `grant map: ${String(e)}`));
    }
    let io: Promise<void>;
    try {
      io = this.transfer(sector, maps, segs, write);
    } catch {
      io = Promise.reject(new Error("device call threw"));
    }
    return io.then(
      () => {
        this.release(ch, held);
        return BLKIF_RSP.OKAY;
      },
      () => {
        this.release(ch, held);
        return this.refuse(fail(BLKIF_RSP.ERROR, "device I/O failed"));
      },
    );
  }

  /**
   * A mapping of the frontend's `gref` for one request, recorded in `held`. With persistent
   * grants, the kept mapping (mapped read-write on first use, as Linux does, since the frontend
   * reuses its pages for reads and writes); a gref granted read-only, or one finding the cache
   * full of grants in use, is mapped for this request only. **Errors:** GrantError (peer input:
   * callers turn it into an error response).
   */
  private acquire(ch: Channel, gref: number, writable: boolean, held: Held): Mapped {
    const cache = ch.persistent;
    if (cache !== undefined) {
      let g = cache.get(gref);
      if (g !== undefined) this.stats.persistentHits++;
      else {
        // Only when some are idle: a frontend keeping them all busy costs no scan per miss.
        if (cache.size >= this.maxPersistentGrants && ch.busy < cache.size) this.purge(cache);
        if (cache.size < this.maxPersistentGrants) {
          let m: GrantMapping | undefined;
          try {
            m = this.xen.gnttab.map(this.frontendDomid, gref, true);
          } catch (e) {
            if (writable) throw e;
            // A read-only grant serves a write or an indirect page: map it for this request.
          }
          if (m !== undefined) {
            this.liveMappings++;
            this.stats.persistentMaps++;
            g = { ref: gref, mapping: m, buffer: m.bytes.buffer, offset: m.bytes.byteOffset, users: 0, stamp: 0, view: undefined };
            cache.set(gref, g);
          }
        }
      }
      if (g !== undefined) {
        if (g.users++ === 0) ch.busy++;
        g.stamp = ++ch.uses;
        held.pinned.push(g);
        return g;
      }
    }
    const m = this.xen.gnttab.map(this.frontendDomid, gref, writable);
    this.liveMappings++;
    held.transient.push(m);
    return mapped(m);
  }

  private release(ch: Channel, held: Held): void {
    for (const g of held.pinned) if (--g.users === 0) ch.busy--;
    for (const m of held.transient) this.unmap(m);
  }

  /**
   * The cache is full: unmaps the least recently used idle grants (5 % of the limit, at least
   * one), as Linux's purge_persistent_gnt does. A frontend still using them maps them again.
   */
  private purge(cache: Map<number, PersistentGrant>): void {
    const idle: PersistentGrant[] = [];
    for (const g of cache.values()) if (g.users === 0) idle.push(g);
    if (idle.length === 0) return;
    idle.sort((a, b) => a.stamp - b.stamp);
    const n = Math.min(idle.length, Math.max(1, Math.ceil((this.maxPersistentGrants * PERSISTENT_PURGE_PERCENT) / 100)));
    for (let i = 0; i < n; i++) {
      const g = idle[i]!;
      cache.delete(g.ref);
      this.unmap(g.mapping);
      this.stats.persistentEvictions++;
    }
  }

  private async deviceOk(fn: () => Promise<void>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Moves the data between the device and the granted pages: views of page-contiguous
   * segments are merged; each piece that is a whole number of device sectors goes to the device
   * directly (zero copy); otherwise the request goes through one bounce buffer. Settles once
   * the device is done with every piece; rejects when any part failed.
   */
  private transfer(sector: number, maps: readonly Mapped[], segs: readonly BlkifSegment[], write: boolean): Promise<void> {
    // Runs of segments adjacent in one buffer become one view (one allocation per run).
    const pieces: Uint8Array[] = [];
    let runBuffer: ArrayBufferLike | undefined;
    let runStart = 0;
    let runEnd = 0;
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i]!;
      const b = maps[i]!;
      const from = b.offset + s.firstSect * BLKIF_SECTOR_SIZE;
      const to = b.offset + (s.lastSect + 1) * BLKIF_SECTOR_SIZE;
      if (b.buffer === runBuffer && from === runEnd) {
        runEnd = to;
        continue;
      }
      if (runBuffer !== undefined) pieces.push(new Uint8Array(runBuffer, runStart, runEnd - runStart));
      runBuffer = b.buffer;
      runStart = from;
      runEnd = to;
    }
    if (runBuffer !== undefined) pieces.push(new Uint8Array(runBuffer, runStart, runEnd - runStart));
    const dev = this.device;
    const ss = dev.info.sectorSize;
    let whole = true;
    for (const p of pieces) if (p.byteLength % ss !== 0) whole = false;
    if (!whole) return this.bounceTransfer(sector, pieces, write);
    if (pieces.length === 1) {
      this.stats.zeroCopyCalls++;
      const p = pieces[0]!;
      return write ? dev.write(sector, p) : dev.read(sector, p);
    }
    // One scatter-gather request when the device takes one (the ATA driver builds one PRD list
    // over all the granted pages); else a call per piece.
    if ((write ? dev.writev : dev.readv) !== undefined) {
      this.stats.zeroCopyCalls++;
      return write ? writeVectored(dev, sector, pieces) : readVectored(dev, sector, pieces);
    }
    const calls: Promise<void>[] = [];
    let at = sector;
    for (const p of pieces) {
      calls.push(write ? dev.write(at, p) : dev.read(at, p));
      at += p.byteLength / ss;
    }
    this.stats.zeroCopyCalls += calls.length;
    // Every call settles before the grants are released, even when one fails early.
    return Promise.allSettled(calls).then((results) => {
      for (const r of results) if (r.status === "rejected") throw r.reason;
    });
  }

  /** Pieces that are not whole device sectors: the request goes through one bounce buffer. */
  private async bounceTransfer(sector: number, pieces: readonly Uint8Array[], write: boolean): Promise<void> {
    const dev = this.device;
    this.stats.bounced++;
    const total = pieces.reduce((n, p) => n + p.byteLength, 0);
    const bounce = new Uint8Array(total);
    if (write) {
      let o = 0;
      for (const p of pieces) {
        bounce.set(p, o);
        o += p.byteLength;
      }
      return dev.write(sector, bounce);
    }
    await dev.read(sector, bounce);
    let o = 0;
    for (const p of pieces) {
      p.set(bounce.subarray(o, o + p.byteLength));
      o += p.byteLength;
    }
  }

  private async discard(handle: number, flag: number, sector512: number, count512: number): Promise<number> {
    const info = this.device.info;
    const discard = this.device.discard;
    if (!info.discard || discard === undefined || this.readOnly) {
      return this.refuse(fail(this.readOnly ? BLKIF_RSP.ERROR : BLKIF_RSP.EOPNOTSUPP, "discard not offered"));
    }
    if (flag & BLKIF_DISCARD_SECURE) return this.refuse(fail(BLKIF_RSP.EOPNOTSUPP, "secure discard not offered"));
    if (handle !== (this.devid & 0xffff)) return this.refuse(fail(BLKIF_RSP.ERROR, `handle ${handle}`));
    const r = this.range(sector512, count512, true);
    if ("status" in r) return this.refuse(r);
    if (r.count === 0) return BLKIF_RSP.OKAY;
    const ok = await this.deviceOk(() => discard.call(this.device, r.sector, r.count));
    return ok ? BLKIF_RSP.OKAY : this.refuse(fail(BLKIF_RSP.ERROR, "discard failed"));
  }

  private indirect(ch: Channel, op: number, nrSegments: number, handle: number, sector512: number, grefs: readonly number[]): number | Promise<number> {
    if (op !== BLKIF_OP.READ && op !== BLKIF_OP.WRITE) return this.refuse(fail(BLKIF_RSP.ERROR, `indirect operation ${op}`));
    if (handle !== (this.devid & 0xffff)) return this.refuse(fail(BLKIF_RSP.ERROR, `handle ${handle}`));
    if (nrSegments === 0 || nrSegments > this.maxIndirectSegments) return this.refuse(fail(BLKIF_RSP.ERROR, `indirect nr_segments ${nrSegments}`));
    const pages = Math.ceil(nrSegments / BLKIF_SEGS_PER_INDIRECT_FRAME);
    if (grefs.length < pages) return this.refuse(fail(BLKIF_RSP.ERROR, "indirect pages"));
    const segs: BlkifSegment[] = [];
    for (let i = 0; i < pages; i++) {
      const held: Held = { pinned: [], transient: [] };
      let m: Mapped;
      try {
        m = this.acquire(ch, grefs[i]!, false, held);
      } catch (e) {
        return this.refuse(fail(BLKIF_RSP.ERROR, `indirect page map: ${String(e)}`));
      }
      // Copy the segment descriptors out before releasing: the frontend may rewrite the page.
      const kept = held.pinned[0];
      const v = kept !== undefined ? (kept.view ??= pageView(m)) : pageView(m);
      const n = Math.min(BLKIF_SEGS_PER_INDIRECT_FRAME, nrSegments - i * BLKIF_SEGS_PER_INDIRECT_FRAME);
      for (let k = 0; k < n; k++) segs.push(decodeBlkifSegment(v, k * 8));
      this.release(ch, held);
    }
    return this.rw(ch, sector512, segs, op === BLKIF_OP.WRITE, false);
  }
}
