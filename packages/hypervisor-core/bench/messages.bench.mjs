// Messages per second between two native domains over a granted io/ring.h ring and one event
// channel (built output: run `tsc -b` first; `pnpm bench` does).
import { BackRing, FrontRing } from "@paravirt/device-channel";
import { Hypervisor } from "../dist/index.js";

function pair(total) {
  const hv = new Hypervisor({ memoryFrames: 2048 });
  const front = hv.createNativeDomain({ name: "front", memoryPages: 64 });
  const back = hv.createNativeDomain({ name: "back", memoryPages: 64 });
  let received = 0;
  front.post(() => {
    const page = front.pages.allocPage();
    const ring = FrontRing.init(page.bytes, 8);
    const gref = front.gnttab.grantAccess(back.domid, page.frame, false);
    const port = front.evtchn.allocUnbound(back.domid);
    let sent = 0;
    const pump = () => {
      for (;;) {
        while (ring.takeResponse() !== undefined) received++;
        while (sent < total && !ring.full()) {
          ring.view.setUint32(ring.nextRequest(), sent++, true);
        }
        if (ring.pushRequestsAndCheckNotify()) front.evtchn.notify(port);
        if (received >= total || !ring.finalCheckForResponses()) return;
      }
    };
    front.evtchn.onEvent(port, pump);
    back.post(() => {
      const m = back.gnttab.map(front.domid, gref, true);
      const br = BackRing.attach(m.bytes, 8);
      const bport = back.evtchn.bindInterdomain(front.domid, port);
      back.evtchn.onEvent(bport, () => {
        for (;;) {
          let n = br.pendingRequests();
          while (n-- > 0) {
            const off = br.takeRequest();
            br.view.setUint32(br.nextResponse(), br.view.getUint32(off, true), true);
          }
          if (br.pushResponsesAndCheckNotify()) back.evtchn.notify(bport);
          if (!br.finalCheckForRequests()) return;
        }
      });
      front.post(pump);
    });
  });
  const t0 = performance.now();
  hv.run();
  const ms = performance.now() - t0;
  return { received, ms, notifications: hv.hypercalls.counts.get(32) ?? 0, virtualMs: hv.clock.now() / 1e6 };
}

pair(100_000); // warm-up
const r = pair(2_000_000);
console.log(
  `${r.received} messages in ${r.ms.toFixed(0)} ms host time: ${((r.received / r.ms) * 1000 / 1e6).toFixed(2)} M msg/s; ` +
    `${r.notifications} event-channel ops; ${r.virtualMs.toFixed(2)} ms virtual time`,
);
