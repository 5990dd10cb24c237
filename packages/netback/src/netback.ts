/**
 * The netif back end for one vif [io/netif.h; behaviour as Linux's xen-netback]: advertises
 * its features in xenstore, connects when the front end is Initialised, then
 * - TX (guest → dom0): per event, one bounded pass over the TX ring; each packet is
 *   validated ({@link takePacket}), copied out of the granted pages with one GNTTABOP_copy,
 *   answered slot by slot (NETIF_RSP_OKAY / ERROR / NULL for extra slots), and handed to
 *   whoever listens on the vif (a bridge);
 * - RX (dom0 → guest): frames sent to the vif are queued and copied by grant copy into the
 *   buffers the front end posted on the RX ring, one response per buffer.
 * A front end that publishes a bogus req_prod is disconnected; anything else it writes only
 * costs it its own packets.
 */
import {
  BackRing, NETIF_RSP, XEN_NETIF_NR_SLOTS_MIN, NETIF_RX_ENTRY_SIZE, NETIF_TX_REQUEST, NETIF_TX_ENTRY_SIZE, NETRXF, NETTXF, XENBUS_STATE,
  decodeNetifRxRequest, encodeNetifRxResponse, encodeNetifTxResponse, parseXenbusState, xenbusStateName,
} from "@paravirt/device-channel";
import {
  GNTST, PAGE_SIZE, xsReadOptional, type DomId, type GrantCopyOp, type GrantMapping, type NetDevice, type Page,
  type Port, type XenServices,
} from "@paravirt/vm-interfaces";
import { ETH_HLEN, peekPacketSlots, takePacket } from "./txPacket.ts";

export interface NetbackOptions {
  xen: XenServices;
  frontendDomid: DomId;
  /** The vif's handle (devid): the N of `device/vif/N`. */
  handle: number;
  /** xenstore directory of this back end; default `backend/vif/<frontendDomid>/<handle>` under our home. */
  backendPath?: string;
  /** Frames queued for a guest with no RX buffers posted before new ones are dropped. Default 256. */
  rxQueueLimit?: number;
  /**
   * Hand a one-slot packet to the vif's receiver as a view of netback's own buffer page, valid
   * only until the receiver returns (as a bridge that transmits or copies it at once needs),
   * instead of a fresh copy it may keep. Default false.
   */
  lendFrames?: boolean;
  log?: (line: string) => void;
}

export interface NetbackStats {
  txPackets: number;
  txBytes: number;
  txSlots: number;
  txErrors: number;
  rxPackets: number;
  rxBytes: number;
  rxDropped: number;
  events: number;
}

/** The MAC Linux gives the dom0 side of every vif (never used on the wire). */
const VIF_MAC = Uint8Array.of(0xfe, 0xff, 0xff, 0xff, 0xff, 0xff);

/**
 * Where in its pool page a one-slot packet of `size` bytes is copied: 1 KiB in when it fits,
 * so that the pool's frames, the NIC driver's 2 KiB transmit buffers and the front end's
 * (at the end of its pages) do not all compete for the cache sets of offset 0.
 */
function poolOffset(size: number): number {
  return size <= PAGE_SIZE - 1024 ? 1024 : 0;
}

/** One-slot packets copied by one GNTTABOP_copy (Linux's netback batches its TX copy ops too). */
const TX_BATCH = 64;

export class Netback {
  readonly stats: NetbackStats = { txPackets: 0, txBytes: 0, txSlots: 0, txErrors: 0, rxPackets: 0, rxBytes: 0, rxDropped: 0, events: 0 };
  /** The domain's side of the vif: send() delivers to the guest, onReceive hears what it transmits. */
  readonly vif: NetDevice;
  readonly backendPath: string;
  private readonly xen: XenServices;
  private readonly frontendDomid: DomId;
  private readonly handle: number;
  private readonly rxQueueLimit: number;
  private readonly lendFrames: boolean;
  private readonly log: (line: string) => void;
  private frontendPath = "";
  private tx: BackRing | undefined;
  private rx: BackRing | undefined;
  private maps: GrantMapping[] = [];
  private ports: Port[] = [];
  private unsubscribe: (() => void)[] = [];
  private unwatch: (() => Promise<void>) | undefined;
  /** Pages TX copies into (one per batched packet, or per slot of a larger packet). */
  private pool: Page[] = [];
  /** The page RX frames are staged in for their grant copy into the guest's buffers. */
  private rxPage: Page | undefined;
  private readonly rxQueue: Uint8Array[] = [];
  private receiver: ((frame: Uint8Array) => void) | undefined;
  private linkHandler: ((up: boolean) => void) | undefined;
  private connected = false;
  private rxNotify = false;

  constructor(options: NetbackOptions) {
    this.xen = options.xen;
    this.frontendDomid = options.frontendDomid;
    this.handle = options.handle;
    this.backendPath = options.backendPath ?? `backend/vif/${options.frontendDomid}/${options.handle}`;
    this.rxQueueLimit = options.rxQueueLimit ?? 256;
    this.lendFrames = options.lendFrames ?? false;
    this.log = options.log ?? (() => {});
    const self = this;
    this.vif = {
      mac: VIF_MAC,
      mtu: 1500,
      get linkUp() {
        return self.connected;
      },
      send: (frame) => this.deliver(frame),
      onReceive: (h) => {
        this.receiver = h;
      },
      onLinkChange: (h) => {
        this.linkHandler = h;
      },
    };
  }

  /** Whether the channel to the front end is connected. */
  get isConnected(): boolean {
    return this.connected;
  }

  /**
   * Advertises features, moves to InitWait and follows the front end's state from then on.
   * The toolstack must already have written `frontend` (and the front end's `backend`) links.
   */
  async start(): Promise<void> {
    const xs = this.xen.xenstore;
    const p = this.backendPath;
    this.frontendPath = (await xsReadOptional(xs, `${p}/frontend`)) ?? `/local/domain/${this.frontendDomid}/device/vif/${this.handle}`;
    await xs.write(`${p}/feature-sg`, "1");
    // No GSO: nothing behind the vif (bridge, e1000 driver) segments large packets yet.
    await xs.write(`${p}/feature-gso-tcpv4`, "0");
    await xs.write(`${p}/feature-gso-tcpv6`, "0");
    await xs.write(`${p}/feature-rx-copy`, "1");
    await xs.write(`${p}/feature-rx-flip`, "0");
    await xs.write(`${p}/feature-split-event-channels`, "1");
    await xs.write(`${p}/multi-queue-max-queues`, "1");
    await xs.write(`${p}/state`, String(XENBUS_STATE.InitWait));
    this.unwatch = await xs.watch(`${this.frontendPath}/state`, () => void this.frontendChanged());
  }

  private async frontendChanged(): Promise<void> {
    const state = parseXenbusState(await xsReadOptional(this.xen.xenstore, `${this.frontendPath}/state`));
    switch (state) {
      case XENBUS_STATE.Initialised:
      case XENBUS_STATE.Connected:
        if (!this.connected) await this.connect();
        break;
      case XENBUS_STATE.Closing:
        this.disconnect();
        await this.setState(XENBUS_STATE.Closing);
        break;
      case XENBUS_STATE.Closed:
      case XENBUS_STATE.Unknown:
        if (this.connected) this.disconnect();
        await this.setState(XENBUS_STATE.Closed);
        break;
      default:
        break;
    }
  }

  private async setState(state: number): Promise<void> {
    await this.xen.xenstore.write(`${this.backendPath}/state`, String(state));
  }

  private async connect(): Promise<void> {
    const xs = this.xen.xenstore;
    const f = this.frontendPath;
    const num = async (key: string): Promise<number | undefined> => {
      const v = await xsReadOptional(xs, `${f}/${key}`);
      return v !== undefined && /^\d+$/.test(v.trim()) ? Number(v.trim()) : undefined;
    };
    const txRef = await num("tx-ring-ref");
    const rxRef = await num("rx-ring-ref");
    const evtTx = (await num("event-channel-tx")) ?? (await num("event-channel"));
    const evtRx = (await num("event-channel-rx")) ?? evtTx;
    const rxCopy = await num("request-rx-copy");
    if (txRef === undefined || rxRef === undefined || evtTx === undefined || evtRx === undefined) {
      return this.fail("front end did not publish tx-ring-ref, rx-ring-ref and event-channel");
    }
    if (rxCopy !== 1) return this.fail("front end does not request-rx-copy (page flipping is not supported)");
    this.rxNotify = (await num("feature-rx-notify")) === 1;
    try {
      const txMap = this.xen.gnttab.map(this.frontendDomid, txRef, true);
      this.maps.push(txMap);
      const rxMap = this.xen.gnttab.map(this.frontendDomid, rxRef, true);
      this.maps.push(rxMap);
      this.tx = BackRing.attach(txMap.bytes, NETIF_TX_ENTRY_SIZE);
      this.rx = BackRing.attach(rxMap.bytes, NETIF_RX_ENTRY_SIZE);
      const pTx = this.xen.evtchn.bindInterdomain(this.frontendDomid, evtTx);
      this.ports.push(pTx);
      this.unsubscribe.push(this.xen.evtchn.onEvent(pTx, () => this.onEvent()));
      if (evtRx !== evtTx) {
        const pRx = this.xen.evtchn.bindInterdomain(this.frontendDomid, evtRx);
        this.ports.push(pRx);
        this.unsubscribe.push(this.xen.evtchn.onEvent(pRx, () => this.onEvent()));
      }
      // A page per batched packet (one GNTTABOP_copy each), at least a largest packet's slots.
      while (this.pool.length < Math.max(TX_BATCH, XEN_NETIF_NR_SLOTS_MIN)) this.pool.push(this.xen.pages.allocPage());
      this.copyOps = this.pool.slice(0, TX_BATCH).map((pg) => ({ source: { ref: 0, domid: this.frontendDomid, offset: 0 }, dest: { frame: pg.frame, offset: 0 }, length: 0 }));
      this.copyLists = this.copyOps.map((_, i) => this.copyOps.slice(0, i + 1));
      this.lent = this.pool.map((pg) => pg.bytes.subarray(0, 0));
      this.rxPage = this.xen.pages.allocPage();
    } catch (e) {
      this.disconnect();
      return this.fail(`cannot connect: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.connected = true;
    await this.setState(XENBUS_STATE.Connected);
    this.log(`vif${this.frontendDomid}.${this.handle}: connected (rx-notify ${this.rxNotify ? "on" : "off"})`);
    this.linkHandler?.(true);
    this.onEvent();
  }

  private async fail(why: string): Promise<void> {
    this.log(`vif${this.frontendDomid}.${this.handle}: ${why}`);
    await this.xen.xenstore.write(`${this.backendPath}/error`, why).catch(() => {});
    await this.setState(XENBUS_STATE.Closing);
  }

  private disconnect(): void {
    const was = this.connected;
    this.connected = false;
    for (const u of this.unsubscribe.splice(0)) u();
    for (const p of this.ports.splice(0)) {
      try {
        this.xen.evtchn.close(p);
      } catch {
        // already closed by the peer's death
      }
    }
    for (const m of this.maps.splice(0)) {
      try {
        this.xen.gnttab.unmap(m);
      } catch {
        // the grant went with its domain
      }
    }
    for (const pg of this.pool.splice(0)) this.xen.pages.freePage(pg);
    if (this.rxPage !== undefined) this.xen.pages.freePage(this.rxPage);
    this.rxPage = undefined;
    this.copyOps = [];
    this.copyLists = [];
    this.lent = [];
    this.batched = 0;
    this.copies = 0;
    this.tx = undefined;
    this.rx = undefined;
    this.rxQueue.length = 0;
    if (was) this.linkHandler?.(false);
  }

  /** Stops following the front end and releases everything. */
  async stop(): Promise<void> {
    await this.unwatch?.();
    this.disconnect();
    await this.setState(XENBUS_STATE.Closed).catch(() => {});
  }

  private onEvent(): void {
    if (!this.connected) return;
    this.stats.events++;
    this.processTx();
    this.processRx();
  }

  /** One bounded pass over the TX ring, then the final check that re-arms req_event. */
  private processTx(): void {
    const ring = this.tx!;
    for (;;) {
      const pending = ring.pendingRequests();
      if (pending < 0) {
        this.log(`vif${this.frontendDomid}.${this.handle}: bogus TX req_prod, disconnecting`);
        this.disconnect();
        void this.setState(XENBUS_STATE.Closing);
        return;
      }
      let left = pending;
      while (left > 0 && this.connected) {
        // The common case, a packet in one slot with no extra info: batched, without decoding
        // objects. The slot is published (one of `pending`): consumed as RING_GET_REQUEST + req_cons++.
        const at = ring.slot(ring.reqCons);
        if ((ring.view.getUint16(at + NETIF_TX_REQUEST.FLAGS, true) & (NETTXF.more_data | NETTXF.extra_info)) === 0) {
          ring.reqCons = (ring.reqCons + 1) >>> 0;
          this.takeOneSlot(ring.view, at);
          left--;
          if (this.batched === TX_BATCH) this.transmitBatch(ring);
          continue;
        }
        // A packet of several slots goes after the one-slot packets before it (slot order).
        this.transmitBatch(ring);
        const n = peekPacketSlots(ring, left);
        if (n === 0) break; // the rest of a packet is not published yet
        left -= n;
        this.transmitPacket(ring, n);
      }
      this.transmitBatch(ring);
      if (!this.connected) return; // a receiver stopped the vif
      if (ring.pushResponsesAndCheckNotify()) this.notifyTx();
      if (left > 0) {
        // Part of a packet is published: wake us when the slot after it is.
        ring.requestEventAt((ring.reqCons + left) >>> 0);
        return;
      }
      if (!ring.finalCheckForRequests() || pending === 0) return;
    }
  }

  /**
   * The batch of one-slot packets taken off the ring and not yet answered: their ids, sizes
   * and flags, and for each either the index of its copy op (its pool page) or -1 when a
   * check already failed (`batchError`). The ops are made once, at connect, one per pool page.
   */
  private batched = 0;
  private readonly batchId = new Uint16Array(TX_BATCH);
  private readonly batchSize = new Uint16Array(TX_BATCH);
  private readonly batchFlags = new Uint16Array(TX_BATCH);
  private readonly batchOp = new Int16Array(TX_BATCH);
  private readonly batchError: (string | undefined)[] = [];
  private copies = 0;
  private copyOps: { source: { ref: number; domid: DomId; offset: number }; dest: { frame: number; offset: number }; length: number }[] = [];
  /** `copyLists[n - 1]`: the first n ops, so that one GNTTABOP_copy takes exactly the batch. */
  private copyLists: GrantCopyOp[][] = [];
  /** Per pool page, the last view lent of it (a frame of the same size reuses it). */
  private lent: Uint8Array[] = [];

  /**
   * Takes the packet in the one TX slot at `at` (no NETTXF_more_data, no NETTXF_extra_info),
   * already consumed, into the batch: the checks {@link takePacket} makes for such a slot, and
   * its copy op. Each field of the request is read once from the shared ring.
   */
  private takeOneSlot(v: DataView, at: number): void {
    const gref = v.getUint32(at + NETIF_TX_REQUEST.GREF, true);
    const offset = v.getUint16(at + NETIF_TX_REQUEST.OFFSET, true);
    const size = v.getUint16(at + NETIF_TX_REQUEST.SIZE_FIELD, true);
    const b = this.batched++;
    this.batchId[b] = v.getUint16(at + NETIF_TX_REQUEST.ID, true);
    this.batchFlags[b] = v.getUint16(at + NETIF_TX_REQUEST.FLAGS, true);
    this.batchSize[b] = size;
    this.stats.txSlots++;
    let error: string | undefined;
    if (size < ETH_HLEN) error = `packet of ${size} bytes is shorter than an Ethernet header`;
    else if (offset + size > PAGE_SIZE) error = `slot crosses a page boundary (offset ${offset} + size ${size})`;
    if (error !== undefined) {
      this.batchOp[b] = -1;
      this.batchError[b] = error;
      return;
    }
    const c = this.copies++;
    const op = this.copyOps[c]!;
    op.source.ref = gref;
    op.source.offset = offset;
    op.dest.offset = poolOffset(size);
    op.length = size;
    this.batchOp[b] = c;
  }

  /**
   * Copies the batch out of the granted pages with one GNTTABOP_copy (as Linux's netback
   * batches its copy ops), then in slot order answers each packet (NETIF_RSP_OKAY or ERROR)
   * and hands it to the vif's receiver.
   */
  private transmitBatch(ring: BackRing): void {
    const n = this.batched;
    if (n === 0) return;
    const results = this.copies > 0 ? this.xen.gnttab.copy(this.copyLists[this.copies - 1]!) : undefined;
    this.batched = 0;
    this.copies = 0;
    const v = ring.view;
    for (let b = 0; b < n; b++) {
      const c = this.batchOp[b]!;
      let error = c < 0 ? this.batchError[b] : undefined;
      if (c >= 0 && results![c] !== GNTST.okay) error = `grant copy failed (${results![c]})`;
      encodeNetifTxResponse(v, ring.nextResponse(), { id: this.batchId[b]!, status: error === undefined ? NETIF_RSP.OKAY : NETIF_RSP.ERROR });
      if (error !== undefined) {
        this.stats.txErrors++;
        this.log(`vif${this.frontendDomid}.${this.handle}: dropped TX packet: ${error}`);
        continue;
      }
      const size = this.batchSize[b]!;
      let frame: Uint8Array;
      if (this.lendFrames) {
        frame = this.lent[c]!;
        if (frame.length !== size) {
          const at = poolOffset(size);
          this.lent[c] = frame = this.pool[c]!.bytes.subarray(at, at + size);
        }
      } else {
        const at = poolOffset(size);
        frame = this.pool[c]!.bytes.slice(at, at + size);
      }
      if ((this.batchFlags[b]! & NETTXF.csum_blank) !== 0) fillChecksum(frame);
      this.stats.txPackets++;
      this.stats.txBytes += size;
      this.receiver?.(frame);
      if (!this.connected) {
        // The receiver stopped the vif: the rest of the batch is not answered (the ring is gone).
        this.batched = 0;
        return;
      }
    }
  }

  private transmitPacket(ring: BackRing, slotCount: number): void {
    const pkt = takePacket(ring, slotCount);
    this.stats.txSlots += slotCount;
    let status: number = NETIF_RSP.OKAY;
    let frame: Uint8Array | undefined;
    if (pkt.error !== undefined) {
      status = NETIF_RSP.ERROR;
      this.stats.txErrors++;
      this.log(`vif${this.frontendDomid}.${this.handle}: dropped TX packet: ${pkt.error}`);
    } else {
      const ops: GrantCopyOp[] = [];
      for (let i = 0; i < pkt.slots.length; i++) {
        const s = pkt.slots[i]!;
        ops.push({ source: { ref: s.gref, domid: this.frontendDomid, offset: s.offset }, dest: { frame: this.pool[i]!.frame, offset: 0 }, length: s.size });
      }
      const results = this.xen.gnttab.copy(ops);
      let copied = true;
      for (const r of results) if (r !== GNTST.okay) copied = false;
      if (!copied) {
        status = NETIF_RSP.ERROR;
        this.stats.txErrors++;
        this.log(`vif${this.frontendDomid}.${this.handle}: dropped TX packet: grant copy failed (${results.join(",")})`);
      } else if (pkt.slots.length === 1) {
        // Lent: a view of the pool page (no allocation); else one slice (no zero fill).
        frame = this.lendFrames ? this.pool[0]!.bytes.subarray(0, pkt.length) : this.pool[0]!.bytes.slice(0, pkt.length);
      } else {
        frame = new Uint8Array(pkt.length);
        let at = 0;
        pkt.slots.forEach((s, i) => {
          frame!.set(this.pool[i]!.bytes.subarray(0, s.size), at);
          at += s.size;
        });
        if ((pkt.slots[0]!.flags & NETTXF.csum_blank) !== 0) fillChecksum(frame);
      }
    }
    // Responses in slot order: slot 0, its extra slots (NULL), then the fragments.
    const v = ring.view;
    encodeNetifTxResponse(v, ring.nextResponse(), { id: pkt.slots[0]!.id, status });
    for (let i = 0; i < pkt.extraSlots; i++) encodeNetifTxResponse(v, ring.nextResponse(), { id: 0, status: NETIF_RSP.NULL });
    for (let i = 1; i < pkt.slots.length; i++) encodeNetifTxResponse(v, ring.nextResponse(), { id: pkt.slots[i]!.id, status });
    if (frame !== undefined) {
      this.stats.txPackets++;
      this.stats.txBytes += frame.length;
      this.receiver?.(frame);
    }
  }

  private notifyTx(): void {
    this.safeNotify(this.ports[0]);
  }
  private notifyRx(): void {
    this.safeNotify(this.ports[1] ?? this.ports[0]);
  }
  private safeNotify(port: Port | undefined): void {
    if (port === undefined) return;
    try {
      this.xen.evtchn.notify(port);
    } catch {
      // the front end closed its end
    }
  }

  /** A frame for the guest (dom0 → domU). */
  private deliver(frame: Uint8Array): void {
    if (!this.connected) {
      this.stats.rxDropped++;
      return;
    }
    if (this.rxQueue.length >= this.rxQueueLimit) {
      this.stats.rxDropped++;
      return;
    }
    this.rxQueue.push(frame.slice());
    this.processRx();
  }

  /** Copies queued frames into the buffers the front end posted. */
  private processRx(): void {
    const ring = this.rx;
    if (ring === undefined || this.rxQueue.length === 0) return;
    let pending = ring.pendingRequests();
    if (pending < 0) {
      this.log(`vif${this.frontendDomid}.${this.handle}: bogus RX req_prod, disconnecting`);
      this.disconnect();
      void this.setState(XENBUS_STATE.Closing);
      return;
    }
    let produced = false;
    while (this.rxQueue.length > 0) {
      const frame = this.rxQueue[0]!;
      const need = Math.max(1, Math.ceil(frame.length / PAGE_SIZE));
      if (pending < need) {
        if (!this.rxNotify && pending === 0) {
          // Without rx-notify the front end never tells us about new buffers: drop.
          this.rxQueue.shift();
          this.stats.rxDropped++;
          continue;
        }
        break;
      }
      this.rxQueue.shift();
      pending -= need;
      const reqs = [];
      for (let i = 0; i < need; i++) reqs.push(decodeNetifRxRequest(ring.view, ring.takeRequest()!));
      for (let i = 0; i < need; i++) {
        const chunk = frame.subarray(i * PAGE_SIZE, Math.min(frame.length, (i + 1) * PAGE_SIZE));
        const page = this.rxPage!;
        page.bytes.set(chunk);
        const [st] = this.xen.gnttab.copy([
          { source: { frame: page.frame, offset: 0 }, dest: { ref: reqs[i]!.gref, domid: this.frontendDomid, offset: 0 }, length: chunk.length },
        ]);
        const more = i < need - 1 ? NETRXF.more_data : 0;
        encodeNetifRxResponse(ring.view, ring.nextResponse(), {
          id: reqs[i]!.id,
          offset: 0,
          flags: more | NETRXF.data_validated,
          status: st === GNTST.okay ? chunk.length : NETIF_RSP.ERROR,
        });
      }
      this.stats.rxPackets++;
      this.stats.rxBytes += frame.length;
      produced = true;
    }
    if (produced && ring.pushResponsesAndCheckNotify()) this.notifyRx();
    ring.finalCheckForRequests();
  }
}

/**
 * Fills in a transport checksum the guest left blank (NETTXF_csum_blank: its stack relied on
 * offload). IPv4 TCP/UDP only; anything else is left as is.
 */
export function fillChecksum(frame: Uint8Array): void {
  if (frame.length < 34 || frame[12] !== 0x08 || frame[13] !== 0x00) return;
  const ihl = (frame[14]! & 0x0f) * 4;
  const proto = frame[23]!;
  const l4 = 14 + ihl;
  const total = ((frame[16]! << 8) | frame[17]!) - ihl;
  if (l4 + total > frame.length || total < 8) return;
  const csumAt = proto === 6 ? l4 + 16 : proto === 17 ? l4 + 6 : -1;
  if (csumAt < 0 || csumAt + 2 > frame.length) return;
  frame[csumAt] = 0;
  frame[csumAt + 1] = 0;
  let sum = 0;
  for (let i = 26; i < 34; i += 2) sum += (frame[i]! << 8) | frame[i + 1]!; // source + destination address
  sum += proto + total;
  for (let i = 0; i < total; i += 2) sum += (frame[l4 + i]! << 8) | (i + 1 < total ? frame[l4 + i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  let c = ~sum & 0xffff;
  if (proto === 17 && c === 0) c = 0xffff;
  frame[csumAt] = c >> 8;
  frame[csumAt + 1] = c & 0xff;
}
