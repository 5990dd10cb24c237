import { describe, expect, it } from "vitest";
import { InMemoryXen, addDevice, type InMemoryDomain } from "@paravirt/xen-testing";
import { Netfront } from "@paravirt/netfront";
import {
  FrontRing, NETIF_RSP, NETIF_TX_ENTRY_SIZE, NETTXF, decodeNetifTxResponse, encodeNetifTxRequest, XENBUS_STATE,
} from "@paravirt/device-channel";
import { Netback, fillChecksum } from "../src/index.ts";

const MAC_U1 = "00:16:3e:00:00:01";

/** dom0 with a netback per vif, and `n` domUs each with a netfront, connected. */
async function system(n = 1, lendFrames = false) {
  const xen = new InMemoryXen();
  const dom0 = xen.createDomain(0, { pages: 4096 });
  const backs: Netback[] = [];
  const fronts: Netfront[] = [];
  const domUs: InMemoryDomain[] = [];
  for (let i = 1; i <= n; i++) {
    const domU = xen.createDomain(i, { pages: 2048 });
    domUs.push(domU);
    const paths = await addDevice(xen, { kind: "vif", frontendDomid: i, backendDomid: 0, devid: 0, frontend: { mac: `00:16:3e:00:00:0${i}` }, backend: { mac: `00:16:3e:00:00:0${i}` } });
    const back = new Netback({ xen: dom0, frontendDomid: i, handle: 0, backendPath: paths.backendPath, lendFrames });
    await back.start();
    backs.push(back);
    const front = new Netfront({ xen: domU, handle: 0 });
    const up = front.connect();
    await xen.settle();
    await up;
    fronts.push(front);
  }
  return { xen, dom0, domUs, backs, fronts };
}

/**
 * Replaces `domU`'s netfront by a raw front end: its own TX/RX rings, a granted data page and
 * an event channel, published in xenstore so that `back` reconnects to them.
 */
async function rawFront(xen: InMemoryXen, domU: InMemoryDomain, back: Netback) {
  const d = "device/vif/0";
  await domU.xenstore.write(`${d}/state`, String(XENBUS_STATE.Closing));
  await xen.settle();
  const txPage = domU.pages.allocPage();
  const rxPage = domU.pages.allocPage();
  const tx = FrontRing.init(txPage.bytes, NETIF_TX_ENTRY_SIZE);
  FrontRing.init(rxPage.bytes, 8);
  const page = domU.pages.allocPage();
  const dataRef = domU.gnttab.grantAccess(0, page.frame, true);
  const port = domU.evtchn.allocUnbound(0);
  await domU.xenstore.write(`${d}/tx-ring-ref`, String(domU.gnttab.grantAccess(0, txPage.frame, false)));
  await domU.xenstore.write(`${d}/rx-ring-ref`, String(domU.gnttab.grantAccess(0, rxPage.frame, false)));
  await domU.xenstore.write(`${d}/event-channel`, String(port));
  await domU.xenstore.write(`${d}/request-rx-copy`, "1");
  await domU.xenstore.write(`${d}/state`, String(XENBUS_STATE.Initialised));
  await xen.settle();
  if (!back.isConnected) throw new Error("netback did not reconnect to the raw front end");
  return { tx, dataRef, port, page };
}

function frame(dst: number, src: number, len: number, seq: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set([0x00, 0x16, 0x3e, 0, 0, dst, 0x00, 0x16, 0x3e, 0, 0, src, 0x88, 0xb5]);
  for (let i = 14; i < len; i++) f[i] = (seq * 31 + i) & 0xff;
  new DataView(f.buffer).setUint32(14, seq);
  return f;
}

describe("netback + netfront handshake", () => {
  it("connects both ends through xenstore (InitWait, Initialised, Connected)", async () => {
    const { xen, backs, fronts } = await system();
    const xs = xen.toolstackStore();
    expect(await xs.read("/local/domain/0/backend/vif/1/0/state")).toBe(String(XENBUS_STATE.Connected));
    expect(await xs.read("/local/domain/1/device/vif/0/state")).toBe(String(XENBUS_STATE.Connected));
    expect(await xs.read("/local/domain/1/device/vif/0/request-rx-copy")).toBe("1");
    expect(await xs.read("/local/domain/0/backend/vif/1/0/feature-rx-copy")).toBe("1");
    expect(backs[0]!.isConnected).toBe(true);
    expect(fronts[0]!.linkUp).toBe(true);
    expect(Array.from(fronts[0]!.mac)).toEqual([0x00, 0x16, 0x3e, 0, 0, 1]);
  });
});

describe("netif data path", () => {
  it("carries a guest frame to dom0 byte for byte, and a dom0 frame to the guest", async () => {
    const { xen, backs, fronts } = await system();
    const fromGuest: Uint8Array[] = [];
    const toGuest: Uint8Array[] = [];
    backs[0]!.vif.onReceive((f) => fromGuest.push(f));
    fronts[0]!.onReceive((f) => toGuest.push(f));
    const a = frame(0xff, 1, 1514, 7);
    fronts[0]!.send(a);
    await xen.settle();
    expect(fromGuest).toEqual([a]);
    const b = frame(1, 0xee, 60, 9);
    backs[0]!.vif.send(b);
    await xen.settle();
    expect(toGuest).toEqual([b]);
    expect(xen.errors).toEqual([]);
  });

  it("moves 1,000 frames each way in order, with the rings wrapping and RX buffers reposted", async () => {
    const { xen, backs, fronts } = await system();
    const up: number[] = [];
    const down: number[] = [];
    backs[0]!.vif.onReceive((f) => up.push(new DataView(f.buffer, f.byteOffset).getUint32(14)));
    fronts[0]!.onReceive((f) => down.push(new DataView(f.buffer, f.byteOffset).getUint32(14)));
    for (let i = 0; i < 1000; i++) {
      fronts[0]!.send(frame(0xff, 1, 60 + (i % 1400), i));
      backs[0]!.vif.send(frame(1, 0xee, 60 + ((i * 7) % 1400), i));
      if (i % 50 === 49) await xen.settle();
    }
    await xen.settle();
    expect(up).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(down).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(backs[0]!.stats.rxDropped).toBe(0);
  });

  it("lends one-slot frames as views of its buffer when asked (lendFrames), byte for byte", async () => {
    const { xen, backs, fronts } = await system(1, true);
    const got: Uint8Array[] = [];
    let views = 0;
    backs[0]!.vif.onReceive((f) => {
      if (f.byteLength < f.buffer.byteLength) views++; // a window on netback's page, not a fresh array
      got.push(f.slice()); // a receiver that keeps a frame copies it
    });
    const sent = Array.from({ length: 200 }, (_, i) => frame(0xff, 1, 60 + ((i * 37) % 1455), i));
    for (const f of sent) fronts[0]!.send(f);
    await xen.settle();
    expect(got).toEqual(sent);
    expect(views).toBe(200);
  });

  it("keeps a lent frame intact while its receiver sends a reply to the guest on the same vif", async () => {
    const { xen, backs, fronts } = await system(1, true);
    const seen: Uint8Array[] = [];
    const replies: Uint8Array[] = [];
    fronts[0]!.onReceive((f) => replies.push(f));
    backs[0]!.vif.onReceive((f) => {
      const reply = frame(1, 0xee, 1514 - f.length + 60, 0xabc);
      backs[0]!.vif.send(reply); // staged for the guest while `f` is still lent
      seen.push(f.slice());
    });
    const sent = Array.from({ length: 20 }, (_, i) => frame(0xff, 1, 60 + i * 71, i));
    for (const f of sent) fronts[0]!.send(f);
    await xen.settle();
    expect(seen).toEqual(sent);
    expect(replies.length).toBe(20);
  });

  it("answers a malformed slot among well-formed ones with NETIF_RSP_ERROR and passes its neighbours on in order", async () => {
    const { xen, backs, domUs } = await system(1);
    const got: number[] = [];
    backs[0]!.vif.onReceive((f) => got.push(new DataView(f.buffer, f.byteOffset).getUint32(14)));
    // A raw front end on a ring of its own (netback reconnects to it).
    const { tx, dataRef, port, page } = await rawFront(xen, domUs[0]!, backs[0]!);
    const good = frame(0xff, 1, 200, 0);
    page.bytes.set(good);
    const statuses: number[] = [];
    // Slots: good (seq 0), too short, good, crossing the page end, bad gref, good.
    const bad = [
      { gref: dataRef, offset: 0, size: 200 },
      { gref: dataRef, offset: 0, size: 10 },
      { gref: dataRef, offset: 0, size: 200 },
      { gref: dataRef, offset: 4000, size: 200 },
      { gref: 4999, offset: 0, size: 200 },
      { gref: dataRef, offset: 0, size: 200 },
    ];
    bad.forEach((s, id) => encodeNetifTxRequest(tx.view, tx.nextRequest(), { ...s, flags: 0, id }));
    tx.pushRequests();
    domUs[0]!.evtchn.notify(port);
    await xen.settle();
    for (let at = tx.takeResponse(); at !== undefined; at = tx.takeResponse()) statuses.push(decodeNetifTxResponse(tx.view, at).id * 10 + decodeNetifTxResponse(tx.view, at).status);
    expect(statuses).toEqual([0 * 10 + NETIF_RSP.OKAY, 1 * 10 + NETIF_RSP.ERROR, 2 * 10 + NETIF_RSP.OKAY, 3 * 10 + NETIF_RSP.ERROR, 4 * 10 + NETIF_RSP.ERROR, 5 * 10 + NETIF_RSP.OKAY]);
    expect(got).toEqual([0, 0, 0]);
    expect(backs[0]!.stats.txErrors).toBe(3);
  });

  it("carries a frame bigger than a page in several slots (feature-sg)", async () => {
    const { xen, backs, fronts } = await system();
    const got: Uint8Array[] = [];
    const back: Uint8Array[] = [];
    backs[0]!.vif.onReceive((f) => got.push(f));
    fronts[0]!.onReceive((f) => back.push(f));
    const big = frame(0xff, 1, 9000, 1);
    fronts[0]!.send(big);
    backs[0]!.vif.send(big);
    await xen.settle();
    expect(got).toEqual([big]);
    expect(back).toEqual([big]);
  });
});

describe("checksum completion (NETTXF_csum_blank)", () => {
  it("fills a blank UDP checksum so that the packet verifies", () => {
    // 14 Ethernet + 20 IPv4 + 8 UDP + 4 payload
    const f = new Uint8Array(46);
    f.set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00]);
    f.set([0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2], 14);
    f.set([0x30, 0x39, 0x00, 0x07, 0, 12, 0, 0, 1, 2, 3, 4], 34);
    fillChecksum(f);
    // Verify independently: one's-complement sum over pseudo-header + UDP must be 0xffff.
    let sum = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 17 + 12;
    for (let i = 34; i < 46; i += 2) sum += (f[i]! << 8) | f[i + 1]!;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    expect(sum).toBe(0xffff);
    expect((f[40]! << 8) | f[41]!).not.toBe(0);
  });
});

describe("a hostile front end", () => {
  it("costs only its own packets: 100,000 malformed TX slots while another guest's traffic flows intact", async () => {
    const { xen, dom0, backs, fronts, domUs } = await system(2);
    // Guest 2's netfront is replaced by a hand-made hostile one on the same rings: it closes its
    // device and writes raw slots into a ring of its own that netback 2 will map.
    const hostile = domUs[1]!;
    const good = fronts[0]!;
    await fronts[1]!.close();
    await xen.settle();
    // Build a hostile ring set and reconnect netback 2 to it.
    const txPage = hostile.pages.allocPage();
    const rxPage = hostile.pages.allocPage();
    const tx = FrontRing.init(txPage.bytes, NETIF_TX_ENTRY_SIZE);
    FrontRing.init(rxPage.bytes, 8);
    const txRef = hostile.gnttab.grantAccess(0, txPage.frame, false);
    const rxRef = hostile.gnttab.grantAccess(0, rxPage.frame, false);
    const data = hostile.pages.allocPage();
    const dataRef = hostile.gnttab.grantAccess(0, data.frame, true);
    const port = hostile.evtchn.allocUnbound(0);
    const d = "device/vif/0";
    await hostile.xenstore.write(`${d}/tx-ring-ref`, String(txRef));
    await hostile.xenstore.write(`${d}/rx-ring-ref`, String(rxRef));
    await hostile.xenstore.write(`${d}/event-channel`, String(port));
    await hostile.xenstore.write(`${d}/request-rx-copy`, "1");
    await hostile.xenstore.write(`${d}/state`, String(XENBUS_STATE.Initialised));
    await xen.settle();
    expect(backs[1]!.isConnected).toBe(true);

    const received: Uint8Array[] = [];
    backs[0]!.vif.onReceive((f) => received.push(f));
    const hostileFrames: Uint8Array[] = [];
    backs[1]!.vif.onReceive((f) => hostileFrames.push(f));
    let seed = 12345;
    const rnd = () => {
      seed ^= seed << 13;
      seed >>>= 0;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      seed >>>= 0;
      return seed;
    };
    let slots = 0;
    let sent = 0;
    while (slots < 100_000) {
      // A burst of garbage: random flags/sizes/offsets/grefs, sometimes plausible, mostly not.
      const burst = 1 + (rnd() % 24);
      for (let i = 0; i < burst && tx.freeRequests() > 0; i++) {
        const r = rnd();
        const kind = r % 4;
        encodeNetifTxRequest(tx.view, tx.nextRequest(), {
          gref: kind === 0 ? dataRef : rnd() % 5000,
          offset: kind === 1 ? rnd() & 0xffff : rnd() % 4096,
          flags: rnd() & 0xf & (kind === 2 ? ~NETTXF.more_data : 0xf),
          id: rnd() & 0xffff,
          size: kind === 3 ? rnd() & 0xffff : rnd() % 1600,
        });
        slots++;
      }
      if (tx.pushRequestsAndCheckNotify() || rnd() % 2 === 0) hostile.evtchn.notify(port);
      // The hostile guest never reads responses: consume them for it so the ring keeps moving.
      for (let at = tx.takeResponse(); at !== undefined; at = tx.takeResponse());
      // Meanwhile the good guest sends sequenced frames.
      good.send(frame(0xff, 1, 60 + (sent % 1000), sent));
      sent++;
      if (sent % 64 === 0) await xen.settle();
      if (!backs[1]!.isConnected) break;
    }
    await xen.settle();
    expect(slots).toBeGreaterThanOrEqual(100_000);
    expect(received.length).toBe(sent);
    const corrupt = received.map((f, i) => (Buffer.compare(Buffer.from(f), Buffer.from(frame(0xff, 1, 60 + (i % 1000), i))) === 0 ? -1 : i)).filter((i) => i >= 0);
    expect(corrupt).toEqual([]);
    expect(xen.errors).toEqual([]);
    expect(backs[1]!.stats.txErrors).toBeGreaterThan(0);
    // Whatever netback 2 passed on was a well-formed frame of the claimed size.
    for (const f of hostileFrames) expect(f.length).toBeGreaterThanOrEqual(14);
    void dom0;
  });
});
