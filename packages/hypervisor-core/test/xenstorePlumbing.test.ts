import { EVTCHNSTAT, xenstoreRings } from "@paravirt/device-channel";
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../src/index.ts";

describe("what xenstored in dom0 gets for each domain", () => {
  it("a xenstore page granted to dom0 as ref 1 and an unbound port offered to dom0", () => {
    const hv = new Hypervisor({ memoryFrames: 512 });
    const dom0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 32 });
    const u = hv.createNativeDomain({ name: "u", memoryPages: 32 });
    expect(dom0.startInfo.storePfn).toBe(-1); // xenstored's own domain has no ring
    const si = u.startInfo;
    expect(si).toMatchObject({ domid: u.domid, nrPages: 32, storePfn: 30, storeGref: 1, consolePfn: 31 });
    expect(u.portStatus(si.storePort)).toEqual({ status: EVTCHNSTAT.unbound, vcpu: 0, dom: dom0.domid });
    // xenstored: map GNTTAB_RESERVED_XENSTORE of the new domain, bind its port (XS_INTRODUCE).
    let reply = "";
    dom0.post(() => {
      const m = dom0.gnttab.map(u.domid, si.storeGref, true);
      const port = dom0.evtchn.bindInterdomain(u.domid, si.storePort);
      dom0.evtchn.onEvent(port, () => {
        const rings = xenstoreRings(m.bytes);
        const req = new TextDecoder().decode(rings.req.drain());
        if (req === "") return; // the kick that follows bind_interdomain
        rings.rsp.write(new TextEncoder().encode(`ack:${req}`));
        dom0.evtchn.notify(port);
      });
    });
    hv.run();
    // The domain's side of the ring is its own page.
    u.post(() => {
      const rings = xenstoreRings(u.storePage()!);
      u.evtchn.onEvent(si.storePort, () => (reply = new TextDecoder().decode(rings.rsp.drain())));
      rings.req.write(new TextEncoder().encode("hello"));
      u.evtchn.notify(si.storePort);
    });
    hv.run();
    expect(reply).toBe("ack:hello");
    // The page is not handed out by the domain's page allocator.
    const frames = new Set<number>();
    u.post(() => {
      for (let i = 0; i < 30; i++) frames.add(u.pages.allocPage().frame);
    });
    hv.run();
    expect(frames.has(30) || frames.has(31)).toBe(false);
    expect(frames.size).toBe(30);
  });
});
