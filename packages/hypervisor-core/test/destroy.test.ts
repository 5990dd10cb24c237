import { EVTCHNSTAT, VIRQ } from "@paravirt/device-channel";
import { XEN_ERRNO, XenError } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../src/index.ts";
import { startPair } from "./ringPair.ts";

describe("destroying a domain in the middle of traffic", () => {
  it("a front end dies: its peer keeps running, and every frame, grant and channel comes back", () => {
    const hv = new Hypervisor({ memoryFrames: 2048 });
    const dom0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 16 });
    let domExc = 0;
    dom0.post(() => dom0.bindVirq(VIRQ.DOM_EXC, () => domExc++));
    const back = hv.createNativeDomain({ name: "back", memoryPages: 64 });
    const front2 = hv.createNativeDomain({ name: "front2", memoryPages: 64 });
    const p2 = startPair(front2, back, 300_000);
    hv.run(hv.clock.now() + 1_000_000);
    const freeBefore = hv.memory.freeFrames;
    const backBefore = hv.resources(back.domid);

    const front1 = hv.createNativeDomain({ name: "front1", memoryPages: 64 });
    const p1 = startPair(front1, back, 1_000_000);
    while (p1.f.received < 50_000) hv.run(hv.clock.now() + 10_000);
    expect(p1.f.received).toBeGreaterThan(1000);
    expect(p1.f.received).toBeLessThan(1_000_000);
    // console + xenstore ports and the xenstore grant (ref 1) come with every domain.
    expect(hv.resources(front1.domid)).toMatchObject({ frames: 64 + 2, grantEntries: 2, grantsPinned: 1, ports: 3 });
    expect(hv.resources(back.domid)).toMatchObject({ mappingsHeld: backBefore.mappingsHeld + 1, ports: backBefore.ports + 1 });

    hv.destroy(front1.domid);
    // The ring page is still mapped by the back end: kept as a zombie until it is unmapped.
    expect(hv.memory.freeFrames).toBe(freeBefore - 1);
    expect(hv.resources(front1.domid)).toMatchObject({ frames: 1, ports: 0, grantEntries: 0 });
    // The peer's end is now unbound; sending on it fails.
    const st = back.portStatus(p1.b.port);
    expect(st.status).toBe(EVTCHNSTAT.unbound);
    let sendErr: number | undefined;
    back.post(() => {
      try {
        back.evtchn.notify(p1.b.port);
      } catch (e) {
        sendErr = (e as XenError).errno;
      }
      // The back end cleans up as it would on the front end's xenstore state going away.
      back.gnttab.unmap(p1.b.mapping!);
      back.evtchn.close(p1.b.port);
    });
    hv.run();
    expect(sendErr).toBe(XEN_ERRNO.EINVAL);
    expect(domExc).toBeGreaterThanOrEqual(1);
    // Everything front1 held is back, and back holds what it held before front1 came.
    expect(hv.memory.freeFrames).toBe(freeBefore);
    expect(hv.resources(front1.domid).frames).toBe(0);
    expect(hv.domain(front1.domid)).toBeUndefined();
    expect(hv.resources(back.domid)).toEqual(backBefore);
    // The other pair ran to completion.
    expect(p2.f.received).toBe(300_000);
    expect(p2.f.errors).toBe(0);
  }, 60_000);

  it("a back end dies: grants it mapped are released, the front end's port unbinds, the front keeps running", () => {
    const hv = new Hypervisor({ memoryFrames: 2048 });
    const front = hv.createNativeDomain({ name: "front", memoryPages: 64 });
    const freeBefore = hv.memory.freeFrames;
    const frontBefore = hv.resources(front.domid);
    const back = hv.createNativeDomain({ name: "back", memoryPages: 64 });
    const p = startPair(front, back, 1_000_000);
    while (p.f.received < 10_000) hv.run(hv.clock.now() + 10_000);
    expect(hv.resources(front.domid)).toMatchObject({ grantEntries: 1, grantsPinned: 1, ports: frontBefore.ports + 1 });
    hv.destroy(back.domid);
    expect(hv.domain(back.domid)).toBeUndefined();
    expect(hv.memory.freeFrames).toBe(freeBefore); // the ring page is front's own
    expect(hv.resources(front.domid)).toMatchObject({ grantsPinned: 0 });
    expect(front.portStatus(p.f.port).status).toBe(EVTCHNSTAT.unbound);
    let ended: boolean | undefined;
    let alive = false;
    front.post(() => {
      ended = front.gnttab.endAccess(p.f.gref); // no longer pinned
      front.evtchn.close(p.f.port);
      alive = true;
    });
    hv.run();
    expect(ended).toBe(true);
    expect(alive).toBe(true);
    expect(hv.resources(front.domid)).toEqual(frontBefore);
    // Its memory is free again: a new domain fits in it.
    const again = hv.createNativeDomain({ name: "back", memoryPages: 64 });
    expect(hv.resources(again.domid).frames).toBe(64 + 2);
  });

  it("pause stops a domain without losing its events; unpause resumes it", () => {
    const hv = new Hypervisor({ memoryFrames: 1024 });
    const a = hv.createNativeDomain({ name: "a", memoryPages: 16 });
    const b = hv.createNativeDomain({ name: "b", memoryPages: 16 });
    let hits = 0;
    let port = -1;
    a.post(() => {
      port = a.evtchn.allocUnbound(b.domid);
      a.evtchn.onEvent(port, () => hits++);
    });
    hv.run();
    let bport = -1;
    b.post(() => {
      bport = b.evtchn.bindInterdomain(a.domid, port);
    });
    hv.run();
    hits = 0;
    hv.pause(a.domid);
    b.post(() => b.evtchn.notify(bport));
    hv.run();
    expect(hits).toBe(0);
    expect(a.sharedInfo.isPending(port)).toBe(true);
    hv.unpause(a.domid);
    hv.run();
    expect(hits).toBe(1);
    expect(() => hv.destroy(999)).toThrow(XenError);
  });
});
