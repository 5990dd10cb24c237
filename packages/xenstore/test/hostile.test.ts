import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { XENSTORE_CONNECTION, XENSTORE_DOMAIN_INTERFACE as XDI, XENSTORE_ERROR, XS, encodeXsMessage, xsStrings, xenstoreRings } from "@paravirt/device-channel";
import { XEN_ERRNO } from "@paravirt/vm-interfaces";
import { XenstoreClient, XenstoreServer, createLocalChannel } from "../src/index.ts";
import { rawDomain, settle, world } from "./harness.ts";

const enc = new TextEncoder();

describe("hostile and malformed input", () => {
  it("marks a connection announcing an oversized message with XENSTORE_ERROR_PROTO; others keep working", async () => {
    const { server, dom0, domU } = world();
    const good = domU(2);
    const bad = rawDomain(server, 1);
    const hdr = new Uint8Array(16);
    const dv = new DataView(hdr.buffer);
    dv.setUint32(0, XS.WRITE, true);
    dv.setUint32(12, 4097, true);
    bad.send(hdr);
    await settle();
    expect(bad.dv.getUint32(XDI.ERROR, true)).toBe(XENSTORE_ERROR.PROTO);
    // Not served any more.
    bad.request(XS.WRITE, enc.encode("x\0y"), 5);
    await settle();
    expect(bad.received).toEqual([]);
    await good.write("alive", "yes");
    expect(await dom0.read("/local/domain/2/alive")).toBe("yes");
    expect(await dom0.directory("/local/domain/1")).toEqual([]);
  });

  it("marks a message type outside xs_wire with XENSTORE_ERROR_PROTO", async () => {
    const { server, dom0 } = world();
    const bad = rawDomain(server, 1);
    bad.request(XS.READ, xsStrings("/x"), 1);
    bad.request(XS.INVALID, xsStrings("x"), 2);
    bad.request(XS.WRITE, enc.encode("a\0b"), 3);
    await settle();
    expect(bad.dv.getUint32(XDI.ERROR, true)).toBe(XENSTORE_ERROR.PROTO);
    expect(bad.received.map((m) => m.reqId)).toEqual([1]); // the request before the garbage was answered
    expect(await dom0.directory("/local/domain/1")).toEqual([]);
  });

  it("marks garbage ring indexes with XENSTORE_ERROR_RINGIDX", async () => {
    const { server, domU } = world();
    const good = domU(2);
    const bad = rawDomain(server, 1);
    bad.dv.setUint32(XDI.REQ_PROD, 0x80000000, true);
    bad.notify();
    await settle();
    expect(bad.dv.getUint32(XDI.ERROR, true)).toBe(XENSTORE_ERROR.RINGIDX);
    const bad2 = rawDomain(server, 3);
    bad2.dv.setUint32(XDI.RSP_CONS, 5000, true);
    bad2.notify();
    await settle();
    expect(bad2.dv.getUint32(XDI.ERROR, true)).toBe(XENSTORE_ERROR.RINGIDX);
    await good.write("x", "1");
    expect(await good.read("x")).toBe("1");
  });

  it("answers malformed payloads with EINVAL and keeps the connection", async () => {
    const { server } = world();
    const d = rawDomain(server, 1);
    const cases: [number, Uint8Array][] = [
      [XS.READ, enc.encode("noterminator")],
      [XS.READ, xsStrings("a", "b")],
      [XS.WRITE, enc.encode("nonul")],
      [XS.SET_PERMS, xsStrings("x", "q7")],
      [XS.SET_PERMS, xsStrings("x")],
      [XS.WATCH, xsStrings("onlypath")],
      [XS.MKDIR, new Uint8Array(0)],
      [XS.DIRECTORY_PART, xsStrings("/", "-1")],
      [XS.TRANSACTION_END, xsStrings("T")],
    ];
    cases.forEach(([t, p], i) => d.request(t, p, 100 + i));
    await settle();
    const names = d.received.map((m) => [m.reqId, m.type, new TextDecoder().decode(m.payload)]);
    expect(names).toEqual(cases.map(([], i) => [100 + i, XS.ERROR, i === 8 ? "ENOENT\0" : "EINVAL\0"]));
    expect(d.dv.getUint32(XDI.ERROR, true)).toBe(0);
  });

  it("stops reading requests from a domain that does not read its replies, without touching others", async () => {
    const server = new XenstoreServer();
    const { guest, server: end } = createLocalChannel();
    server.introduce(1, end);
    const rings = xenstoreRings(guest.page);
    const dom0 = new XenstoreClient(server.connectLocal());
    // Flood: keep the request ring full, never read the response ring.
    let sent = 0;
    const msg = encodeXsMessage({ type: XS.GET_DOMAIN_PATH, reqId: 1, txId: 0, payload: xsStrings("1") });
    for (let round = 0; round < 200; round++) {
      while (rings.req.space() >= msg.length) {
        rings.req.write(msg);
        sent++;
      }
      guest.notify();
      await settle();
    }
    expect(rings.rsp.available()).toBe(1024); // response ring full
    expect(sent).toBeLessThan(2000); // the server stopped consuming: bounded work and memory
    await dom0.write("/still", "fine");
    expect(await dom0.read("/still")).toBe("fine");
    // Once the domain drains its ring, every request is answered, in order.
    let answered = 0;
    const c = { n: 0 };
    for (let i = 0; i < 2000 && answered < sent; i++) {
      const bytes = rings.rsp.drain();
      c.n += bytes.length;
      answered = c.n / (16 + "/local/domain/1\0".length);
      guest.notify();
      await settle();
    }
    expect(answered).toBe(sent);
  });

  it("drops watch events beyond the quota for a domain that does not read them", async () => {
    const server = new XenstoreServer({ quota: { maxPendingWatchEvents: 50 } });
    const { guest, server: end } = createLocalChannel();
    server.introduce(1, end);
    const rings = xenstoreRings(guest.page);
    rings.req.write(encodeXsMessage({ type: XS.WATCH, reqId: 1, txId: 0, payload: xsStrings("/local/domain/1", "t") }));
    guest.notify();
    await settle();
    const dom0 = new XenstoreClient(server.connectLocal());
    for (let i = 0; i < 300; i++) await dom0.write(`/local/domain/1/k${i}`, "v");
    expect(server.droppedWatchEvents).toBeGreaterThan(200);
  });

  it("resets a broken connection when the guest asks to reconnect (XENSTORE_CONNECTION_RECONNECT)", async () => {
    const { server, dom0 } = world();
    const { guest, server: end } = createLocalChannel();
    server.introduce(1, end);
    const dv = new DataView(guest.page.buffer);
    dv.setUint32(XDI.REQ_PROD, 99999, true);
    guest.notify();
    await settle();
    expect(dv.getUint32(XDI.ERROR, true)).toBe(XENSTORE_ERROR.RINGIDX);
    dv.setUint32(XDI.CONNECTION, XENSTORE_CONNECTION.RECONNECT, true);
    guest.notify();
    await settle();
    expect(dv.getUint32(XDI.CONNECTION, true)).toBe(XENSTORE_CONNECTION.CONNECTED);
    expect(dv.getUint32(XDI.ERROR, true)).toBe(XENSTORE_ERROR.NONE);
    expect([XDI.REQ_CONS, XDI.REQ_PROD, XDI.RSP_CONS, XDI.RSP_PROD].map((o) => dv.getUint32(o, true))).toEqual([0, 0, 0, 0]);
    const c = new XenstoreClient(guest);
    await c.write("back", "1");
    expect(await dom0.read("/local/domain/1/back")).toBe("1");
  });

  it("marks XENSTORE_ERROR_COMM when the domain's event channel fails, and carries on with others", async () => {
    const { server, dom0 } = world();
    const { guest, server: end } = createLocalChannel();
    let broken = false;
    server.introduce(1, {
      page: end.page,
      onEvent: (h) => end.onEvent(h),
      notify: () => {
        if (broken) throw new Error("EVTCHNOP_send: port closed");
        end.notify();
      },
    });
    const c = new XenstoreClient(guest);
    await c.watch("x", () => {});
    broken = true;
    await dom0.write("/local/domain/1/x", "1"); // fires the watch: notifying dom1 fails
    await settle();
    expect(new DataView(guest.page.buffer).getUint32(XDI.ERROR, true)).toBe(XENSTORE_ERROR.COMM);
    await dom0.write("/still", "ok");
    expect(await dom0.read("/still")).toBe("ok");
  });

  it("a client on a connection marked in error rejects with EIO", async () => {
    const { server } = world();
    const { guest, server: end } = createLocalChannel();
    server.introduce(1, end);
    const c = new XenstoreClient(guest);
    new DataView(guest.page.buffer).setUint32(XDI.RSP_PROD, 77777, true);
    const p = c.read("x");
    await expect(p).rejects.toMatchObject({ errno: XEN_ERRNO.EIO });
    await expect(c.read("y")).rejects.toMatchObject({ errno: XEN_ERRNO.EIO });
  });

  it("survives arbitrary bytes and index writes from one domain while others keep working (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant("bytes" as const), data: fc.uint8Array({ maxLength: 1100 }) }),
            fc.record({ kind: fc.constant("msg" as const), type: fc.nat({ max: 30 }), tx: fc.nat({ max: 3 }), data: fc.uint8Array({ maxLength: 300 }) }),
            fc.record({ kind: fc.constant("index" as const), off: fc.constantFrom(XDI.REQ_CONS, XDI.REQ_PROD, XDI.RSP_CONS, XDI.RSP_PROD, XDI.CONNECTION), value: fc.nat() }),
          ),
          { maxLength: 25 },
        ),
        async (actions) => {
          const { server, dom0, domU } = world();
          const good = domU(2);
          const bad = rawDomain(server, 1);
          for (const a of actions) {
            if (a.kind === "bytes") bad.send(a.data);
            else if (a.kind === "msg") bad.send(encodeXsMessage({ type: a.type, reqId: 1, txId: a.tx, payload: a.data }));
            else {
              bad.dv.setUint32(a.off, a.value, true);
              bad.notify();
            }
            await settle();
          }
          expect([0, XENSTORE_ERROR.RINGIDX, XENSTORE_ERROR.PROTO]).toContain(bad.dv.getUint32(XDI.ERROR, true));
          await good.write("ok", "1");
          expect(await dom0.read("/local/domain/2/ok")).toBe("1");
          expect(await dom0.directory("/local/domain/2")).toEqual(["ok"]);
        },
      ),
      { numRuns: 60 },
    );
  });
});
