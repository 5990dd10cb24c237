import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  NETTXF, XEN_NETIF_EXTRA_TYPE, XEN_NETIF_GSO_TYPE, decodeNetifExtraInfo, decodeNetifRxRequest, decodeNetifRxResponse,
  decodeNetifTxRequest, decodeNetifTxResponse, encodeNetifExtraInfo, encodeNetifRxRequest, encodeNetifRxResponse,
  encodeNetifTxRequest, encodeNetifTxResponse,
} from "../src/index.ts";

const u16 = fc.nat({ max: 0xffff });
const i16 = fc.integer({ min: -0x8000, max: 0x7fff });

describe("netif codecs", () => {
  it("round-trip every structure", () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), u16, u16, u16, u16, i16, (gref, offset, flags, id, size, status) => {
        const v = new DataView(new ArrayBuffer(12));
        encodeNetifTxRequest(v, 0, { gref, offset, flags, id, size });
        expect(decodeNetifTxRequest(v, 0)).toEqual({ gref, offset, flags, id, size });
        encodeNetifTxResponse(v, 0, { id, status });
        expect(decodeNetifTxResponse(v, 0)).toEqual({ id, status });
        encodeNetifRxRequest(v, 0, { id, gref });
        expect(decodeNetifRxRequest(v, 0)).toEqual({ id, gref });
        encodeNetifRxResponse(v, 0, { id, offset, flags, status });
        expect(decodeNetifRxResponse(v, 0)).toEqual({ id, offset, flags, status });
      }),
    );
  });

  it("encodes a first TX slot with csum_blank|more_data|extra_info as netif.h lays it out", () => {
    const v = new DataView(new ArrayBuffer(12));
    encodeNetifTxRequest(v, 0, { gref: 9, offset: 0x36, flags: NETTXF.csum_blank | NETTXF.more_data | NETTXF.extra_info, id: 5, size: 9000 });
    expect(Array.from(new Uint8Array(v.buffer))).toEqual([9, 0, 0, 0, 0x36, 0, 13, 0, 5, 0, 0x28, 0x23]);
  });

  it("round-trips GSO, multicast and hash extra-info slots", () => {
    const v = new DataView(new ArrayBuffer(8));
    const gso = { type: XEN_NETIF_EXTRA_TYPE.GSO, flags: 1, gsoSize: 1448, gsoType: XEN_NETIF_GSO_TYPE.TCPV4, gsoFeatures: 0 };
    encodeNetifExtraInfo(v, 0, gso);
    expect(decodeNetifExtraInfo(v, 0)).toEqual(gso);
    const mc = { type: XEN_NETIF_EXTRA_TYPE.MCAST_ADD, flags: 0, addr: Uint8Array.of(1, 0, 0x5e, 0, 0, 1) };
    encodeNetifExtraInfo(v, 0, mc);
    expect(decodeNetifExtraInfo(v, 0)).toEqual(mc);
    const hash = { type: XEN_NETIF_EXTRA_TYPE.HASH, flags: 0, hashType: 2, algorithm: 1, value: 0xdeadbeef };
    encodeNetifExtraInfo(v, 0, hash);
    expect(decodeNetifExtraInfo(v, 0)).toEqual(hash);
  });

  it("decodes an unknown extra type to its type and flags, without throwing", () => {
    const v = new DataView(Uint8Array.of(0x77, 3, 1, 2, 3, 4, 5, 6).buffer);
    expect(decodeNetifExtraInfo(v, 0)).toEqual({ type: 0x77, flags: 3 });
  });
});
