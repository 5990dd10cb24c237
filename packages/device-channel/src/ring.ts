/**
 * Shared request/response rings [xen/include/public/io/ring.h].
 *
 * The shared page starts with a 64-byte header (`RING_IDX req_prod, req_event, rsp_prod,
 * rsp_event;` then private/padding bytes) followed by `RING_SIZE` fixed-size entries; a ring
 * may span several pages (`ring-page-order`). Indexes are free-running 32-bit counters.
 *
 * The ring never notifies anyone: pushes return whether the peer must be notified, and the
 * caller sends the event (MirageOS shared-memory-ring). Entries are addressed by byte offset
 * into the ring buffer; the blkif/netif codecs read and write at those offsets.
 */

/** `struct *_sring` header layout. */
export const SRING = {
  REQ_PROD: 0,
  REQ_EVENT: 4,
  RSP_PROD: 8,
  RSP_EVENT: 12,
  /** `union pvt` (4 bytes) then `__pad[44]`. */
  PVT: 16,
  /** Offset of `ring[0]`. */
  HEADER_SIZE: 64,
} as const;

/**
 * `__RING_SIZE`: the number of entries of `entrySize` bytes that fit after the header in
 * `bytes`, rounded down to a power of two. Zero when not even one fits.
 */
export function ringSize(bytes: number, entrySize: number): number {
  const n = Math.floor((bytes - SRING.HEADER_SIZE) / entrySize);
  if (n < 1) return 0;
  return 2 ** Math.floor(Math.log2(n));
}

/** `SHARED_RING_INIT`: zero indexes, events at 1, private bytes cleared. */
export function initSharedRing(ring: Uint8Array): void {
  const dv = new DataView(ring.buffer, ring.byteOffset, SRING.HEADER_SIZE);
  dv.setUint32(SRING.REQ_PROD, 0, true);
  dv.setUint32(SRING.RSP_PROD, 0, true);
  dv.setUint32(SRING.REQ_EVENT, 1, true);
  dv.setUint32(SRING.RSP_EVENT, 1, true);
  ring.fill(0, SRING.PVT, SRING.HEADER_SIZE);
}

abstract class RingEnd {
  /** The whole shared ring (header + entries). */
  readonly bytes: Uint8Array;
  /** DataView over the whole shared ring, for codecs. */
  readonly view: DataView;
  /** Number of entries (`RING_SIZE`), a power of two. */
  readonly size: number;
  readonly entrySize: number;
  protected readonly mask: number;

  constructor(ring: Uint8Array, entrySize: number) {
    const size = ringSize(ring.byteLength, entrySize);
    if (size === 0) throw new RangeError(`a ${ring.byteLength}-byte ring holds no ${entrySize}-byte entry`);
    this.bytes = ring;
    this.view = new DataView(ring.buffer, ring.byteOffset, ring.byteLength);
    this.size = size;
    this.entrySize = entrySize;
    this.mask = size - 1;
  }

  /** Byte offset of the entry at free-running index `idx` (`RING_GET_REQUEST/RESPONSE`). */
  slot(idx: number): number {
    return SRING.HEADER_SIZE + (idx & this.mask) * this.entrySize;
  }

  protected u32(off: number): number {
    return this.view.getUint32(off, true);
  }
  protected setU32(off: number, v: number): void {
    this.view.setUint32(off, v >>> 0, true);
  }

  get sharedReqProd(): number {
    return this.u32(SRING.REQ_PROD);
  }
  get sharedRspProd(): number {
    return this.u32(SRING.RSP_PROD);
  }
  get sharedReqEvent(): number {
    return this.u32(SRING.REQ_EVENT);
  }
  get sharedRspEvent(): number {
    return this.u32(SRING.RSP_EVENT);
  }
}

/**
 * The front end's view (`struct *_front_ring`): produces requests, consumes responses.
 *
 * A back end that publishes a `rsp_prod` more than `size` ahead of `rspCons`, or beyond the
 * requests it was given, is detected by {@link responseProducerOverflow}; consuming stops there.
 */
export class FrontRing extends RingEnd {
  /** `req_prod_pvt`: requests produced but maybe not yet pushed. */
  reqProdPvt = 0;
  /** `rsp_cons`: responses consumed. */
  rspCons = 0;

  /** `SHARED_RING_INIT` + `FRONT_RING_INIT` over a fresh ring buffer. */
  static init(ring: Uint8Array, entrySize: number): FrontRing {
    initSharedRing(ring);
    return new FrontRing(ring, entrySize);
  }

  /** `FRONT_RING_ATTACH`: reattach to a ring already in use, both private indexes at `start`. */
  static attach(ring: Uint8Array, entrySize: number, start = 0): FrontRing {
    const r = new FrontRing(ring, entrySize);
    r.reqProdPvt = start >>> 0;
    r.rspCons = start >>> 0;
    return r;
  }

  /** `RING_FREE_REQUESTS`. */
  freeRequests(): number {
    return this.size - ((this.reqProdPvt - this.rspCons) >>> 0);
  }

  /** `RING_FULL`. */
  full(): boolean {
    return this.freeRequests() === 0;
  }

  /**
   * Offset of the next request slot (`RING_GET_REQUEST(req_prod_pvt)`), which it then
   * claims (`req_prod_pvt++`). **Errors:** RangeError when the ring is full (host misuse).
   */
  nextRequest(): number {
    if (this.full()) throw new RangeError("ring full: check freeRequests() first");
    const off = this.slot(this.reqProdPvt);
    this.reqProdPvt = (this.reqProdPvt + 1) >>> 0;
    return off;
  }

  /** `RING_PUSH_REQUESTS`: publishes without deciding about notification. */
  pushRequests(): void {
    this.setU32(SRING.REQ_PROD, this.reqProdPvt);
  }

  /**
   * `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes `req_prod` and returns whether the
   * back end asked (through `req_event`) to be notified of one of the requests just pushed.
   */
  pushRequestsAndCheckNotify(): boolean {
    const old = this.sharedReqProd;
    const now = this.reqProdPvt;
    this.setU32(SRING.REQ_PROD, now);
    const event = this.sharedReqEvent;
    return ((now - event) >>> 0) < ((now - old) >>> 0);
  }

  /** `RING_HAS_UNCONSUMED_RESPONSES`, clamped to what can legitimately be outstanding. */
  unconsumedResponses(): number {
    const n = (this.sharedRspProd - this.rspCons) >>> 0;
    const outstanding = (this.reqProdPvt - this.rspCons) >>> 0;
    return n <= outstanding ? n : outstanding;
  }

  /** True when the back end published more responses than there are requests outstanding. */
  responseProducerOverflow(): boolean {
    return ((this.sharedRspProd - this.rspCons) >>> 0) > ((this.reqProdPvt - this.rspCons) >>> 0);
  }

  /** Offset of the next unconsumed response, which it then consumes; `undefined` when none. */
  takeResponse(): number | undefined {
    if (this.unconsumedResponses() === 0) return undefined;
    const off = this.slot(this.rspCons);
    this.rspCons = (this.rspCons + 1) >>> 0;
    return off;
  }

  /**
   * `RING_FINAL_CHECK_FOR_RESPONSES`: when nothing is waiting, sets `rsp_event` so the back
   * end notifies on the next response, then checks again (closing the race). Returns whether
   * responses are waiting.
   */
  finalCheckForResponses(): boolean {
    if (this.unconsumedResponses() > 0) return true;
    this.setU32(SRING.RSP_EVENT, (this.rspCons + 1) >>> 0);
    return this.unconsumedResponses() > 0;
  }
}

/**
 * The back end's view (`struct *_back_ring`): consumes requests, produces responses.
 *
 * Work is bounded against a hostile front end: `unconsumedRequests` never exceeds the slots
 * the back end has room to answer (`RING_HAS_UNCONSUMED_REQUESTS`'s clamp), so a `req_prod`
 * of garbage cannot make the consumer loop.
 */
export class BackRing extends RingEnd {
  /** `rsp_prod_pvt`: responses produced but maybe not yet pushed. */
  rspProdPvt = 0;
  /** `req_cons`: requests consumed. */
  reqCons = 0;

  /** `BACK_RING_INIT` over a ring the front end initialised. */
  static attach(ring: Uint8Array, entrySize: number, start = 0): BackRing {
    const r = new BackRing(ring, entrySize);
    r.rspProdPvt = start >>> 0;
    r.reqCons = start >>> 0;
    return r;
  }

  /** `RING_HAS_UNCONSUMED_REQUESTS`: min(published − consumed, free response slots). */
  unconsumedRequests(): number {
    const req = (this.sharedReqProd - this.reqCons) >>> 0;
    const rsp = this.size - ((this.reqCons - this.rspProdPvt) >>> 0);
    return req < rsp ? req : rsp;
  }

  /**
   * `RING_REQUEST_PROD_OVERFLOW`: the front end published more than a ring's worth of
   * requests beyond our responses, which no correct front end does. Back ends treat it as
   * fatal for the channel (Linux's "Frontend provided bogus ring requests").
   */
  requestProducerOverflow(): boolean {
    return ((this.sharedReqProd - this.rspProdPvt) >>> 0) > this.size;
  }

  /**
   * Start of a consumer pass, as Linux's back ends do it: reads `req_prod` once and returns
   * how many requests this pass may take (at most `size`), or -1 when `req_prod` is beyond
   * anything a correct front end can publish ({@link requestProducerOverflow}). Taking only
   * that many per pass is what bounds a back end's work against a hostile front end, even
   * one that keeps `req_prod` racing ahead while responses are produced.
   */
  pendingRequests(): number {
    if (this.requestProducerOverflow()) return -1;
    return this.unconsumedRequests();
  }

  /** Offset of the next unconsumed request, which it then consumes; `undefined` when none. */
  takeRequest(): number | undefined {
    if (this.unconsumedRequests() === 0) return undefined;
    const off = this.slot(this.reqCons);
    this.reqCons = (this.reqCons + 1) >>> 0;
    return off;
  }

  /**
   * Offset of the next response slot (`RING_GET_RESPONSE(rsp_prod_pvt)`), which it then claims.
   * **Errors:** RangeError when it would overtake the requests consumed (host misuse).
   */
  nextResponse(): number {
    if (this.rspProdPvt === this.reqCons) throw new RangeError("no consumed request left to answer");
    const off = this.slot(this.rspProdPvt);
    this.rspProdPvt = (this.rspProdPvt + 1) >>> 0;
    return off;
  }

  /** `RING_PUSH_RESPONSES`. */
  pushResponses(): void {
    this.setU32(SRING.RSP_PROD, this.rspProdPvt);
  }

  /** `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes and returns whether to notify. */
  pushResponsesAndCheckNotify(): boolean {
    const old = this.sharedRspProd;
    const now = this.rspProdPvt;
    this.setU32(SRING.RSP_PROD, now);
    const event = this.sharedRspEvent;
    return ((now - event) >>> 0) < ((now - old) >>> 0);
  }

  /**
   * Asks the front end to notify once it has published request `index` (free-running), e.g.
   * the rest of a packet seen only in part. Sets `req_event = index + 1`, following ring.h's
   * `req_event` semantics: notify when req_prod passes `req_event - 1`.
   */
  requestEventAt(index: number): void {
    this.setU32(SRING.REQ_EVENT, (index + 1) >>> 0);
  }

  /**
   * `RING_FINAL_CHECK_FOR_REQUESTS`: when nothing is waiting, sets `req_event` so the front
   * end notifies on its next request, then checks again. Returns whether requests are waiting.
   */
  finalCheckForRequests(): boolean {
    if (this.unconsumedRequests() > 0) return true;
    this.setU32(SRING.REQ_EVENT, (this.reqCons + 1) >>> 0);
    return this.unconsumedRequests() > 0;
  }
}
