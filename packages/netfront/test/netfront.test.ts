/**
 * netfront against a back end written here from io/netif.h alone (no netback), so the front
 * end is checked against the ABI rather than against our own other half.
 */
import { describe, expect, it } from "vitest";
import { InMemoryXen, addDevice } from "@paravirt/xen-testing";
import {
  BackRing, NETIF_RSP, NETIF_RX_ENTRY_SIZE, NETIF_TX_ENTRY_SIZE, NETRXF, NETTXF, XENBUS_STATE,
  decodeNetifRxRequest, decodeNetifTxRequest, encodeNetifRxResponse, encodeNetifTxResponse,
} from "@paravirt/device-channel";
import { Netfront } from "../src/index.ts";

async function setup(txBuffers?: number) {
  const xen = new InMemoryXen();
  const dom0 = xen.createDomain(0);
  const domU = xen.createDomain(5);
  const paths = await addDevice(xen, { kind: "vif", frontendDomid: 5, backendDomid: 0, devid: 0, frontend: { mac: "00:16:3e:aa:bb:cc" } });
  const front = new Netfront({ xen: domU, handle: 0, ...(txBuffers !== undefined ? { txBuffers } : {}) });
  const connecting = front.connect();
  await xen.settle();
  const xs = dom0.xenstore;
  const f = paths.frontendPath;
  expect(await xs.read(`${f}/state`)).toBe(String(XENBUS_STATE.Initialised));
  const txMap = dom0.gnttab.map(5, Number(await xs.read(`${f}/tx-ring-ref`)), true);
  const rxMap = dom0.gnttab.map(5, Number(await xs.read(`${f}/rx-ring-ref`)), true);
  const port = dom0.evtchn.bindInterdomain(5, Number(await xs.read(`${f}/event-channel`)));
  await xs.write(`${paths.backendPath}/state`, String(XENBUS_STATE.Connected));
  await xen.settle();
  await connecting;
  return { xen, dom0, domU, front, port, tx: BackRing.attach(txMap.bytes, NETIF_TX_ENTRY_SIZE), rx: BackRing.attach(rxMap.bytes, NETIF_RX_ENTRY_SIZE), paths };
}

describe("Netfront", () => {
  it("publishes rings, event channel and features, then connects when the back end does", async () => {
    const { xen, dom0, front, paths } = await setup();
    expect(front.linkUp).toBe(true);
    expect(Array.from(front.mac)).toEqual([0x00, 0x16, 0x3e, 0xaa, 0xbb, 0xcc]);
    expect(await dom0.xenstore.read(`${paths.frontendPath}/request-rx-copy`)).toBe("1");
    expect(await dom0.xenstore.read(`${paths.frontendPath}/state`)).toBe(String(XENBUS_STATE.Connected));
    void xen;
  });

  it("fills the RX ring with writable grants and transmits a frame through a read-only grant", async () => {
    const { xen, dom0, front, tx, rx } = await setup();
    expect(rx.pendingRequests()).toBe(rx.size);
    const frameOut = Uint8Array.from({ length: 100 }, (_, i) => i);
    front.send(frameOut);
    await xen.settle();
    expect(tx.pendingRequests()).toBe(1);
    const req = decodeNetifTxRequest(tx.view, tx.takeRequest()!);
    expect(req.size).toBe(100);
    expect(req.flags & NETTXF.more_data).toBe(0);
    const m = dom0.gnttab.map(5, req.gref, false);
    expect(m.bytes.subarray(req.offset, req.offset + 100)).toEqual(frameOut);
    expect(() => dom0.gnttab.map(5, req.gref, true)).toThrow(); // granted read-only
    dom0.gnttab.unmap(m);
    encodeNetifTxResponse(tx.view, tx.nextResponse(), { id: req.id, status: NETIF_RSP.OKAY });
    tx.pushResponses();
    expect(front.stats.txPackets).toBe(1);
  });

  it("delivers a frame the back end copied into two RX buffers (more_data)", async () => {
    const { xen, dom0, front, rx, port } = await setup();
    const got: Uint8Array[] = [];
    front.onReceive((f) => got.push(f));
    const r1 = decodeNetifRxRequest(rx.view, rx.takeRequest()!);
    const r2 = decodeNetifRxRequest(rx.view, rx.takeRequest()!);
    const m1 = dom0.gnttab.map(5, r1.gref, true);
    const m2 = dom0.gnttab.map(5, r2.gref, true);
    m1.bytes.fill(0xa1, 0, 4096);
    m2.bytes.fill(0xb2, 0, 10);
    encodeNetifRxResponse(rx.view, rx.nextResponse(), { id: r1.id, offset: 0, flags: NETRXF.more_data, status: 4096 });
    encodeNetifRxResponse(rx.view, rx.nextResponse(), { id: r2.id, offset: 0, flags: 0, status: 10 });
    rx.pushResponses();
    dom0.evtchn.notify(port);
    await xen.settle();
    expect(got.length).toBe(1);
    expect(got[0]!.length).toBe(4106);
    expect(got[0]![4095]).toBe(0xa1);
    expect(got[0]![4096]).toBe(0xb2);
    // Both buffers were reposted.
    expect(rx.pendingRequests()).toBe(rx.size);
  });

  it("asks for no TX completion event while nothing waits, and reaps answered buffers when it runs out", async () => {
    const { xen, dom0, front, tx, port } = await setup(2);
    const answer = () => {
      for (let at = tx.takeRequest(); at !== undefined; at = tx.takeRequest()) {
        encodeNetifTxResponse(tx.view, tx.nextResponse(), { id: decodeNetifTxRequest(tx.view, at).id, status: NETIF_RSP.OKAY });
      }
      return tx.pushResponsesAndCheckNotify();
    };
    // The ring starts with rsp_event = 1 [io/ring.h SHARED_RING_INIT]: the first answer notifies.
    front.send(new Uint8Array(60));
    expect(answer()).toBe(true);
    dom0.evtchn.notify(port);
    await xen.settle();
    for (let round = 0; round < 3; round++) {
      front.send(new Uint8Array(60));
      front.send(new Uint8Array(60));
      await xen.settle();
      expect(front.stats.txQueued).toBe(0); // answered buffers reaped by send, none waits
      expect(front.txInFlight).toBe(2);
      expect(answer()).toBe(false); // rsp_event not re-armed: no event for these completions
      expect(front.txInFlight).toBe(0);
    }
  });

  it("asks for a TX completion event while frames wait for buffers, and sends them when it comes", async () => {
    const { xen, dom0, front, tx, port } = await setup(2);
    for (let i = 0; i < 5; i++) front.send(Uint8Array.from({ length: 60 }, () => i));
    await xen.settle();
    expect(front.stats.txQueued).toBe(3);
    const sent: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (let at = tx.takeRequest(); at !== undefined; at = tx.takeRequest()) {
        const req = decodeNetifTxRequest(tx.view, at);
        const m = dom0.gnttab.map(5, req.gref, false);
        sent.push(m.bytes[req.offset]!);
        dom0.gnttab.unmap(m);
        encodeNetifTxResponse(tx.view, tx.nextResponse(), { id: req.id, status: NETIF_RSP.OKAY });
      }
      if (tx.pushResponsesAndCheckNotify()) dom0.evtchn.notify(port);
      else break;
      await xen.settle();
    }
    expect(sent).toEqual([0, 1, 2, 3, 4]);
    expect(front.stats.txQueued).toBe(0);
  });

  it("counts an RX error response and keeps going", async () => {
    const { xen, front, rx, port, dom0 } = await setup();
    const r = decodeNetifRxRequest(rx.view, rx.takeRequest()!);
    encodeNetifRxResponse(rx.view, rx.nextResponse(), { id: r.id, offset: 0, flags: 0, status: NETIF_RSP.ERROR });
    rx.pushResponses();
    dom0.evtchn.notify(port);
    await xen.settle();
    expect(front.stats.rxErrors).toBe(1);
    expect(front.stats.rxPackets).toBe(0);
  });
});
