/**
 * System-level fuzz on the real hypervisor: a hostile domU's hand-made netif front end (raw
 * io/ring.h TX ring, its own grants and event channel) writes 100,000 random and malformed TX
 * slots at dom0's netback, while a well-behaved domU's UDP traffic to the host on the e1000's
 * wire keeps flowing through dom0 without loss or corruption.
 */
import { describe, expect, it } from "vitest";
import { FrontRing, NETIF_RX_ENTRY_SIZE, NETIF_TX_ENTRY_SIZE, NETTXF, XENBUS_STATE, encodeNetifTxRequest } from "@paravirt/device-channel";
import { PAGE_SIZE } from "@paravirt/vm-interfaces";
import { addDomU } from "../src/xen2/system.ts";
import { bootXen2Net, createVifDevice, dom0Network, inGuest, WIRE_HOST } from "../src/xen2/network.ts";

const HOSTILE_SLOTS = 100_000;
const GOOD_DATAGRAMS = 1_000;

describe("a hostile domU on the real hypervisor", () => {
  it("writes 100,000 random TX slots; another domU's traffic through dom0 flows without loss or corruption", async () => {
    const sys = await bootXen2Net({ domUs: 1 });
    const good = sys.domUs[0]!;
    const evil = addDomU(sys, "evil");
    const vifName = await createVifDevice(sys, evil, "00:16:3e:00:00:66");
    const xen = evil.kernel.xen;

    // The hostile front end: rings, a data page full of 0x02 bytes (so every frame it manages
    // to send is from and to 02:02:02:02:02:02, which the bridge learns on its own port and
    // then filters: it floods nobody), its own event channel.
    const txPage = xen.pages.allocPage();
    const rxPage = xen.pages.allocPage();
    const tx = FrontRing.init(txPage.bytes, NETIF_TX_ENTRY_SIZE);
    FrontRing.init(rxPage.bytes, NETIF_RX_ENTRY_SIZE);
    const data = xen.pages.allocPage();
    data.bytes.fill(0x02);
    const refs = {
      tx: xen.gnttab.grantAccess(0, txPage.frame, false),
      rx: xen.gnttab.grantAccess(0, rxPage.frame, false),
      data: xen.gnttab.grantAccess(0, data.frame, true),
    };
    const port = xen.evtchn.allocUnbound(0);
    xen.evtchn.onEvent(port, () => {
      // Responses are consumed so the ring keeps room; their contents are not trusted.
      do while (tx.takeResponse() !== undefined);
      while (tx.finalCheckForResponses());
    });
    await sys.run(
      inGuest(evil, async () => {
        const d = "device/vif/0";
        await xen.xenstore.write(`${d}/tx-ring-ref`, String(refs.tx));
        await xen.xenstore.write(`${d}/rx-ring-ref`, String(refs.rx));
        await xen.xenstore.write(`${d}/event-channel`, String(port));
        await xen.xenstore.write(`${d}/request-rx-copy`, "1");
        await xen.xenstore.write(`${d}/state`, String(XENBUS_STATE.Initialised));
      }),
    );
    const net = dom0Network(sys);
    await sys.run(new Promise<void>((resolve) => {
      const check = () => (net.netbacks.get(vifName)?.isConnected ? resolve() : sys.clock.schedule(sys.clock.now() + 100_000, check));
      check();
    }));
    const evilBack = net.netbacks.get(vifName)!;

    let seed = 0x1234567;
    const rnd = () => {
      seed ^= seed << 13;
      seed >>>= 0;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      seed >>>= 0;
      return seed;
    };
    const flagBits = [NETTXF.csum_blank, NETTXF.data_validated, NETTXF.more_data, NETTXF.extra_info];
    let slots = 0;
    const burst = () => {
      while (tx.takeResponse() !== undefined); // polling as well, as a busy front end does
      const n = 1 + (rnd() % 24);
      for (let i = 0; i < n && slots < HOSTILE_SLOTS && tx.freeRequests() > 0; i++) {
        const r = rnd();
        let flags = 0;
        for (const b of flagBits) if (rnd() % 3 === 0) flags |= b;
        if (r % 11 === 0) flags = rnd() & 0xffff;
        encodeNetifTxRequest(tx.view, tx.nextRequest(), {
          gref: r % 5 === 0 ? rnd() : r % 5 === 1 ? refs.tx : refs.data,
          offset: r % 7 === 0 ? rnd() & 0xffff : rnd() % PAGE_SIZE,
          flags,
          id: rnd() & 0xffff,
          size: r % 3 === 0 ? rnd() & 0xffff : 14 + (rnd() % 1600),
        });
        slots++;
      }
      if (tx.pushRequestsAndCheckNotify()) xen.evtchn.notify(port);
      else if (rnd() % 4 === 0) xen.evtchn.notify(port); // spurious notifications too
    };
    const hostileDone = new Promise<void>((resolve) => {
      const step = () => {
        burst();
        if (slots >= HOSTILE_SLOTS) resolve();
        else sys.clock.schedule(sys.clock.now() + 2_000, () => evil.domain.post(step));
      };
      evil.domain.post(step);
    });

    // The well-behaved domU: datagrams to the host's UDP echo port on the wire, each with a
    // distinct payload, every one of which must come back exactly.
    const echoed: Uint8Array[] = [];
    const sock = await sys.run(inGuest(good, () => good.stack.bind(40000, (d) => echoed.push(d))));
    const payload = (i: number) => {
      const p = Uint8Array.from({ length: 16 + ((i * 53) % 1400) }, (_, j) => (i * 13 + j * 7) & 0xff);
      new DataView(p.buffer).setUint32(0, i);
      return p;
    };
    const goodDone = new Promise<void>((resolve, reject) => {
      let i = 0;
      const step = () => {
        sock.sendTo(WIRE_HOST.ip, 7, payload(i)).catch(reject);
        i++;
        if (i >= GOOD_DATAGRAMS) resolve();
        else sys.clock.schedule(sys.clock.now() + 20_000, () => good.domain.post(step));
      };
      good.domain.post(step);
    });
    await sys.run(Promise.all([hostileDone, goodDone]));
    await sys.run(new Promise<void>((resolve) => {
      const check = () => (echoed.length >= GOOD_DATAGRAMS ? resolve() : sys.clock.schedule(sys.clock.now() + 100_000, check));
      check();
    }));

    expect(slots).toBe(HOSTILE_SLOTS);
    expect(echoed.length).toBe(GOOD_DATAGRAMS);
    echoed.forEach((d, i) => expect(d).toEqual(payload(i)));
    expect(good.stack.counters.badChecksum).toBe(0);
    expect(sys.host.counters.udpEchoes).toBe(GOOD_DATAGRAMS);
    // The hostile front end only cost itself: its malformed packets were answered with errors
    // and dropped. (Frames it did form, e.g. from its granted ring page, are bridged like any
    // guest's; those from its 0x02 data page are filtered once the bridge learnt the address.)
    expect(evilBack.stats.txErrors).toBeGreaterThan(1000);
    expect(evilBack.stats.txSlots).toBeGreaterThan(HOSTILE_SLOTS / 2);
    const wireFromEvil = sys.host.log.filter((f) => f[6] === 0x02 && f[7] === 0x02 && f[11] === 0x02);
    expect(wireFromEvil.length).toBeLessThanOrEqual(1); // at most the first, before the bridge learnt it
    // dom0 is still running and its good vif still connected.
    expect(sys.dom0.domain.record.alive).toBe(true);
    expect(good.vif.netback.isConnected).toBe(true);
    expect(sys.hv.logLines.filter((l) => l.includes("crashed"))).toEqual([]);
    // A bogus req_prod gets the hostile vif disconnected; the good one carries on.
    await sys.run(inGuest(evil, () => {
      new DataView(txPage.bytes.buffer, txPage.bytes.byteOffset).setUint32(0, (tx.reqProdPvt + 100_000) >>> 0, true);
      xen.evtchn.notify(port);
    }));
    await sys.run(new Promise<void>((resolve) => {
      const check = () => (!evilBack.isConnected ? resolve() : sys.clock.schedule(sys.clock.now() + 100_000, check));
      check();
    }));
    const before = echoed.length;
    await sys.run(sock.sendTo(WIRE_HOST.ip, 7, payload(7)));
    await sys.run(new Promise<void>((resolve) => {
      const check = () => (echoed.length > before ? resolve() : sys.clock.schedule(sys.clock.now() + 100_000, check));
      check();
    }));
    expect(echoed.at(-1)).toEqual(payload(7));
  });
});
