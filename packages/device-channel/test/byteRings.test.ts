import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  XENCONS_INTERFACE, XENSTORE_PAYLOAD_MAX, XS, XsMessageReader, consoleRings, encodeXsMessage, parseXsStrings,
  xenstoreRings, xsStrings, xsText, parseXenbusState, xenbusStateName, XENBUS_STATE, type XsMessage,
} from "../src/index.ts";

describe("console ring (io/console.h)", () => {
  it("carries guest output through out[2048] with free-running indexes", () => {
    const page = new Uint8Array(4096);
    const guest = consoleRings(page);
    const backend = consoleRings(page);
    const dv = new DataView(page.buffer);
    dv.setUint32(XENCONS_INTERFACE.OUT_CONS, 0xfffffffe, true);
    dv.setUint32(XENCONS_INTERFACE.OUT_PROD, 0xfffffffe, true);
    expect(guest.out.write(new TextEncoder().encode("hello"))).toBe(5);
    expect(dv.getUint32(XENCONS_INTERFACE.OUT_PROD, true)).toBe(3);
    expect(new TextDecoder().decode(backend.out.drain())).toBe("hello");
    expect(backend.out.available()).toBe(0);
  });

  it("writes only what fits and reports corrupt indexes without moving them", () => {
    const page = new Uint8Array(4096);
    const { out } = consoleRings(page);
    expect(out.write(new Uint8Array(3000))).toBe(2048);
    expect(out.write(new Uint8Array(1))).toBe(0);
    new DataView(page.buffer).setUint32(XENCONS_INTERFACE.OUT_PROD, 999999, true);
    expect(out.corrupt).toBe(true);
    expect(out.read(new Uint8Array(10))).toBe(0);
  });
});

describe("xenstore wire (io/xs_wire.h)", () => {
  it("encodes the 16-byte xsd_sockmsg header little-endian", () => {
    const m = encodeXsMessage({ type: XS.READ, reqId: 7, txId: 0, payload: xsStrings("device/vbd") });
    expect(Array.from(m.subarray(0, 16))).toEqual([2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0]);
    expect(parseXsStrings(m.subarray(16))).toEqual(["device/vbd"]);
  });

  it("reassembles messages split at any byte boundary across the 1024-byte rings", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ type: fc.nat({ max: 22 }), reqId: fc.nat(), txId: fc.nat(), text: fc.string({ maxLength: 1500 }) }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }),
        (msgs, chunks) => {
          const page = new Uint8Array(4096);
          const guest = xenstoreRings(page);
          const server = xenstoreRings(page);
          const stream = msgs.flatMap((m) => Array.from(encodeXsMessage({ type: m.type, reqId: m.reqId, txId: m.txId, payload: new TextEncoder().encode(m.text) })));
          const bytes = Uint8Array.from(stream);
          const reader = new XsMessageReader();
          const got: XsMessage[] = [];
          let sent = 0;
          let c = 0;
          while (sent < bytes.length) {
            const n = chunks[c++ % chunks.length]!;
            sent += guest.req.write(bytes.subarray(sent, sent + n));
            const buf = new Uint8Array(chunks[c % chunks.length]!);
            for (let k = server.req.read(buf); k > 0; k = server.req.read(buf)) expect(reader.push(buf.subarray(0, k), (m) => got.push(m))).toBe("ok");
          }
          expect(got.map((m) => [m.type, m.reqId >>> 0, m.txId >>> 0, new TextDecoder().decode(m.payload)])).toEqual(
            msgs.map((m) => [m.type, m.reqId >>> 0, m.txId >>> 0, m.text]),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("rejects a header announcing more than XENSTORE_PAYLOAD_MAX and buffers nothing", () => {
    const hdr = new Uint8Array(16);
    new DataView(hdr.buffer).setUint32(12, XENSTORE_PAYLOAD_MAX + 1, true);
    const r = new XsMessageReader();
    expect(r.push(hdr, () => {})).toBe("error");
    expect(r.partial).toBe(false);
    expect(() => encodeXsMessage({ type: 2, reqId: 0, txId: 0, payload: new Uint8Array(4097) })).toThrow(RangeError);
  });

  it("reads payload text with or without a trailing NUL", () => {
    expect(xsText(new TextEncoder().encode("4"))).toBe("4");
    expect(xsText(xsStrings("OK"))).toBe("OK");
  });
});

describe("xenbus states (io/xenbus.h)", () => {
  it("parses decimal state nodes and treats garbage as Unknown", () => {
    expect(parseXenbusState("4")).toBe(XENBUS_STATE.Connected);
    expect(parseXenbusState(" 6\n")).toBe(XENBUS_STATE.Closed);
    expect(parseXenbusState("x")).toBe(XENBUS_STATE.Unknown);
    expect(parseXenbusState("99")).toBe(XENBUS_STATE.Unknown);
    expect(xenbusStateName(2)).toBe("InitWait");
    expect(xenbusStateName(42)).toBe("Unknown(42)");
  });
});
