import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { BackRing, FrontRing, SRING, initSharedRing, ringSize } from "../src/index.ts";

const ENTRY = 16; // a request/response of two u32 words + padding, as a test payload

/** A fresh one-page ring whose indexes all start at `start` (ring.h indexes are free-running). */
function pair(start = 0, pages = 1) {
  const buf = new Uint8Array(4096 * pages);
  initSharedRing(buf);
  const dv = new DataView(buf.buffer);
  dv.setUint32(SRING.REQ_PROD, start >>> 0, true);
  dv.setUint32(SRING.RSP_PROD, start >>> 0, true);
  dv.setUint32(SRING.REQ_EVENT, (start + 1) >>> 0, true);
  dv.setUint32(SRING.RSP_EVENT, (start + 1) >>> 0, true);
  return { buf, dv, front: FrontRing.attach(buf, ENTRY, start), back: BackRing.attach(buf, ENTRY, start) };
}

describe("shared ring layout (io/ring.h)", () => {
  it("initialises producer indexes to 0 and event indexes to 1 (SHARED_RING_INIT)", () => {
    const buf = new Uint8Array(4096).fill(0xaa);
    const front = FrontRing.init(buf, ENTRY);
    const dv = new DataView(buf.buffer);
    expect(dv.getUint32(0, true)).toBe(0);
    expect(dv.getUint32(4, true)).toBe(1);
    expect(dv.getUint32(8, true)).toBe(0);
    expect(dv.getUint32(12, true)).toBe(1);
    expect(Array.from(buf.subarray(16, 64)).every((b) => b === 0)).toBe(true);
    expect(front.freeRequests()).toBe(front.size);
  });

  it("computes __RING_SIZE as the largest power of two that fits after the 64-byte header", () => {
    expect(ringSize(4096, 112)).toBe(32);
    expect(ringSize(4096, 108)).toBe(32);
    expect(ringSize(4096, 12)).toBe(256);
    expect(ringSize(4096 * 16, 112)).toBe(512);
    expect(ringSize(64, 8)).toBe(0);
    expect(() => new FrontRing(new Uint8Array(64), 8)).toThrow(RangeError);
  });

  it("places entry i at 64 + (i mod size) * entrySize", () => {
    const { front } = pair();
    expect(front.slot(0)).toBe(64);
    expect(front.slot(front.size + 3)).toBe(64 + 3 * ENTRY);
    expect(front.slot(0xffffffff)).toBe(64 + (front.size - 1) * ENTRY);
  });
});

describe("FrontRing and BackRing", () => {
  it("carries a request and its response, notifying each way once", () => {
    const { front, back, dv } = pair();
    dv.setUint32(front.nextRequest(), 0xc0ffee, true);
    expect(front.pushRequestsAndCheckNotify()).toBe(true);
    const at = back.takeRequest()!;
    expect(dv.getUint32(at, true)).toBe(0xc0ffee);
    expect(back.takeRequest()).toBeUndefined();
    dv.setUint32(back.nextResponse(), 0xbeef, true);
    expect(back.pushResponsesAndCheckNotify()).toBe(true);
    expect(dv.getUint32(front.takeResponse()!, true)).toBe(0xbeef);
    expect(front.freeRequests()).toBe(front.size);
  });

  it("suppresses the notification while the back end has not asked for one (req_event)", () => {
    const { front, back } = pair();
    front.nextRequest();
    expect(front.pushRequestsAndCheckNotify()).toBe(true); // req_event was 1
    front.nextRequest();
    expect(front.pushRequestsAndCheckNotify()).toBe(false); // back end is busy: no event wanted
    back.takeRequest();
    back.takeRequest();
    expect(back.finalCheckForRequests()).toBe(false); // sets req_event = req_cons + 1
    front.nextRequest();
    expect(front.pushRequestsAndCheckNotify()).toBe(true);
  });

  it("reports waiting work from the final check instead of sleeping through it", () => {
    const { front, back } = pair();
    front.nextRequest();
    front.pushRequests();
    expect(back.finalCheckForRequests()).toBe(true);
  });

  it("refuses to produce into a full ring (RING_FULL)", () => {
    const { front } = pair();
    for (let i = 0; i < front.size; i++) front.nextRequest();
    expect(front.full()).toBe(true);
    expect(() => front.nextRequest()).toThrow(RangeError);
  });

  it("wraps indexes across 2^32", () => {
    const { front, back, dv } = pair(0xfffffffe);
    for (let i = 0; i < 5; i++) dv.setUint32(front.nextRequest(), i, true);
    front.pushRequests();
    expect(dv.getUint32(SRING.REQ_PROD, true)).toBe(3);
    const got: number[] = [];
    for (let at = back.takeRequest(); at !== undefined; at = back.takeRequest()) got.push(dv.getUint32(at, true));
    expect(got).toEqual([0, 1, 2, 3, 4]);
    expect(back.reqCons).toBe(3);
  });

  it("bounds the work a hostile req_prod can cause to the ring size", () => {
    const { back, dv } = pair();
    dv.setUint32(SRING.REQ_PROD, 0x7fffffff, true);
    expect(back.requestProducerOverflow()).toBe(true);
    expect(back.pendingRequests()).toBe(-1);
    let taken = 0;
    while (back.takeRequest() !== undefined) taken++;
    expect(taken).toBe(back.size);
  });

  it("ignores responses beyond the requests outstanding (hostile rsp_prod)", () => {
    const { front, dv } = pair();
    front.nextRequest();
    front.pushRequests();
    dv.setUint32(SRING.RSP_PROD, 1000, true);
    expect(front.responseProducerOverflow()).toBe(true);
    expect(front.unconsumedResponses()).toBe(1);
    expect(front.takeResponse()).toBeDefined();
    expect(front.takeResponse()).toBeUndefined();
  });
});

/**
 * Random interleavings of a producer and a consumer, each going to sleep only after its final
 * check and woken only by a notification. Invariants: every request is seen once and in order,
 * every response likewise, and nobody sleeps while work is waiting for them (no notification
 * needed was ever suppressed).
 */
describe("ring properties", () => {
  /** Start indexes: anywhere, or within a few hundred of the 2^32 wrap. */
  const nearWrap = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0xfffffe00, max: 0xffffffff }));
  const action = fc.oneof(
    fc.record({ k: fc.constant("produce" as const), n: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ k: fc.constant("frontPush" as const) }),
    fc.record({ k: fc.constant("backWork" as const), n: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ k: fc.constant("backPush" as const) }),
    fc.record({ k: fc.constant("frontWork" as const), n: fc.integer({ min: 1, max: 40 }) }),
  );

  it("loses, duplicates and reorders nothing, and never sleeps through work", () => {
    fc.assert(
      fc.property(nearWrap, fc.array(action, { maxLength: 300 }), (start, actions) => {
        const { front, back, dv } = pair(start);
        let nextReq = 0; // value of the next request produced
        let expectReq = 0; // value the back end must see next
        let expectRsp = 0; // value the front end must see next
        let backAsleep = true;
        let frontAsleep = true;
        const answered: number[] = [];
        const backRun = (n: number) => {
          for (let i = 0; i < n; i++) {
            const at = back.takeRequest();
            if (at === undefined) break;
            const v = dv.getUint32(at, true);
            if (v !== expectReq) throw new Error(`back end saw ${v}, expected ${expectReq}`);
            expectReq++;
            answered.push(v);
          }
          // The consumer answers everything it took, then sleeps only after a final check.
          while (answered.length > 0) dv.setUint32(back.nextResponse(), answered.shift()!, true);
          if (!back.finalCheckForRequests()) backAsleep = true;
        };
        const frontRun = (n: number) => {
          for (let i = 0; i < n; i++) {
            const at = front.takeResponse();
            if (at === undefined) break;
            const v = dv.getUint32(at, true);
            if (v !== expectRsp) throw new Error(`front end saw ${v}, expected ${expectRsp}`);
            expectRsp++;
          }
          if (!front.finalCheckForResponses()) frontAsleep = true;
        };
        for (const a of actions) {
          switch (a.k) {
            case "produce":
              for (let i = 0; i < a.n && !front.full(); i++) dv.setUint32(front.nextRequest(), nextReq++, true);
              break;
            case "frontPush":
              if (front.pushRequestsAndCheckNotify()) backAsleep = false;
              break;
            case "backWork":
              if (!backAsleep) backRun(a.n);
              break;
            case "backPush":
              if (back.pushResponsesAndCheckNotify()) frontAsleep = false;
              break;
            case "frontWork":
              if (!frontAsleep) frontRun(a.n);
              break;
          }
        }
        // Quiesce: publish everything and let woken parties run until nothing changes.
        for (let round = 0; round < 10; round++) {
          if (front.pushRequestsAndCheckNotify()) backAsleep = false;
          if (!backAsleep) backRun(1 << 20);
          if (back.pushResponsesAndCheckNotify()) frontAsleep = false;
          if (!frontAsleep) frontRun(1 << 20);
        }
        // A sleeper with work waiting means a suppressed notification.
        expect(back.unconsumedRequests()).toBe(0);
        expect(front.unconsumedResponses()).toBe(0);
        expect(expectReq).toBe(nextReq);
        expect(expectRsp).toBe(nextReq);
      }),
      { numRuns: 300 },
    );
  });

  it("does bounded work whatever garbage the peer writes into the shared indexes", () => {
    fc.assert(
      fc.property(
        nearWrap,
        fc.array(fc.tuple(fc.constantFrom(0, 4, 8, 12), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 50 }),
        (start, writes) => {
          const { front, back, dv } = pair(start);
          for (let i = 0; i < 3; i++) front.nextRequest();
          front.pushRequests();
          for (const [off, v] of writes) dv.setUint32(off, v, true);
          // One consumer pass, answering as it goes (the pattern blkback/netback use).
          const pending = back.pendingRequests();
          expect(pending).toBeLessThanOrEqual(back.size);
          let steps = 0;
          for (let i = 0; i < pending; i++) {
            expect(back.takeRequest()).toBeDefined();
            back.nextResponse();
            steps++;
          }
          expect(steps).toBeLessThanOrEqual(back.size);
          let rsp = 0;
          while (front.takeResponse() !== undefined) rsp++;
          expect(rsp).toBeLessThanOrEqual(3);
        },
      ),
      { numRuns: 500 },
    );
  });
});
