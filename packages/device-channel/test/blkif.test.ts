import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  BLKIF_OP, BLKIF_RSP, BLKIF_X86_32, BLKIF_X86_64, FrontRing, BackRing, blkifLayoutForProtocol,
  decodeBlkifRequest, decodeBlkifResponse, encodeBlkifRequest, encodeBlkifResponse, type BlkifRequest,
} from "../src/index.ts";

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const sector = fc.integer({ min: 0, max: 2 ** 48 });
const segment = fc.record({ gref: fc.nat({ max: 0xffffffff }), firstSect: fc.nat({ max: 7 }), lastSect: fc.nat({ max: 7 }) });
const rw = fc.record({
  operation: fc.constantFrom(BLKIF_OP.READ, BLKIF_OP.WRITE, BLKIF_OP.WRITE_BARRIER, BLKIF_OP.FLUSH_DISKCACHE),
  handle: fc.nat({ max: 0xffff }),
  id: u64,
  sectorNumber: sector,
  segments: fc.array(segment, { maxLength: 11 }),
}).map((r) => ({ ...r, nrSegments: r.segments.length }));
const discard = fc.record({
  operation: fc.constant(BLKIF_OP.DISCARD),
  flag: fc.nat({ max: 1 }),
  handle: fc.nat({ max: 0xffff }),
  id: u64,
  sectorNumber: sector,
  nrSectors: sector,
});
const indirect = fc.record({
  operation: fc.constant(BLKIF_OP.INDIRECT),
  indirectOp: fc.constantFrom(BLKIF_OP.READ, BLKIF_OP.WRITE),
  nrSegments: fc.integer({ min: 1, max: 4096 }),
  handle: fc.nat({ max: 0xffff }),
  id: u64,
  sectorNumber: sector,
}).map((r) => ({ ...r, indirectGrefs: Array.from({ length: Math.ceil(r.nrSegments / 512) }, (_, i) => 1000 + i) }));
const request: fc.Arbitrary<BlkifRequest> = fc.oneof(rw, discard, indirect);

describe.each([BLKIF_X86_32, BLKIF_X86_64])("blkif codec, $abi", (layout) => {
  it("decodes what it encodes, for every request variant", () => {
    fc.assert(
      fc.property(request, (req) => {
        const v = new DataView(new ArrayBuffer(layout.entrySize));
        encodeBlkifRequest(v, 0, req, layout);
        expect(decodeBlkifRequest(v, 0, layout)).toEqual(req);
      }),
    );
  });

  it("decodes any bytes without throwing, reporting nr_segments as written", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: layout.entrySize, maxLength: layout.entrySize }), (bytes) => {
        const r = decodeBlkifRequest(new DataView(bytes.buffer), 0, layout);
        if ("segments" in r) {
          expect(r.nrSegments).toBe(bytes[1]);
          expect(r.segments.length).toBe(Math.min(bytes[1]!, 11));
        }
      }),
    );
  });

  it("round-trips responses with negative status", () => {
    const v = new DataView(new ArrayBuffer(16));
    encodeBlkifResponse(v, 0, { id: 0xfedcba9876543210n, operation: BLKIF_OP.WRITE, status: BLKIF_RSP.EOPNOTSUPP }, layout);
    expect(decodeBlkifResponse(v, 0, layout)).toEqual({ id: 0xfedcba9876543210n, operation: 1, status: -2 });
    expect(v.getInt16(10, true)).toBe(-2);
  });
});

describe("blkif wire bytes", () => {
  it("lays out a PV GRUB read (x86_32-abi) as blkif.h says: id at 4, sector at 12, seg at 20", () => {
    const v = new DataView(new ArrayBuffer(108));
    encodeBlkifRequest(v, 0, { operation: BLKIF_OP.READ, nrSegments: 1, handle: 51712, id: 7n, sectorNumber: 0x1_0000_0002, segments: [{ gref: 3, firstSect: 0, lastSect: 7 }] }, BLKIF_X86_32);
    const b = new Uint8Array(v.buffer);
    expect(Array.from(b.subarray(0, 28))).toEqual([
      0, 1, 0x00, 0xca, 7, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 7, 0, 0,
    ]);
  });

  it("lays out the same request for x86_64-abi with 8-byte alignment: id at 8, sector at 16, seg at 24", () => {
    const v = new DataView(new ArrayBuffer(112));
    encodeBlkifRequest(v, 0, { operation: BLKIF_OP.WRITE, nrSegments: 1, handle: 1, id: 7n, sectorNumber: 2, segments: [{ gref: 3, firstSect: 1, lastSect: 2 }] }, BLKIF_X86_64);
    expect(v.getBigUint64(8, true)).toBe(7n);
    expect(v.getBigUint64(16, true)).toBe(2n);
    expect(v.getUint32(24, true)).toBe(3);
    expect([v.getUint8(28), v.getUint8(29)]).toEqual([1, 2]);
  });

  it("picks the layout from the protocol key, native (x86_64) when absent, none for unknown ABIs", () => {
    expect(blkifLayoutForProtocol("x86_32-abi")).toBe(BLKIF_X86_32);
    expect(blkifLayoutForProtocol(undefined)).toBe(BLKIF_X86_64);
    expect(blkifLayoutForProtocol("sparc-abi")).toBeUndefined();
  });

  it("carries requests through a one-page ring of 32 entries for both ABIs", () => {
    for (const layout of [BLKIF_X86_32, BLKIF_X86_64]) {
      const page = new Uint8Array(4096);
      const front = FrontRing.init(page, layout.entrySize);
      const back = BackRing.attach(page, layout.entrySize);
      expect(front.size).toBe(32);
      for (let i = 0; i < 32; i++) {
        encodeBlkifRequest(front.view, front.nextRequest(), { operation: BLKIF_OP.READ, nrSegments: 1, handle: 0, id: BigInt(i), sectorNumber: i * 8, segments: [{ gref: i, firstSect: 0, lastSect: 7 }] }, layout);
      }
      front.pushRequests();
      const ids: bigint[] = [];
      for (let at = back.takeRequest(); at !== undefined; at = back.takeRequest()) ids.push(decodeBlkifRequest(back.view, at, layout).id);
      expect(ids).toEqual(Array.from({ length: 32 }, (_, i) => BigInt(i)));
    }
  });
});
