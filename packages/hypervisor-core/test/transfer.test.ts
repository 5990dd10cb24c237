import { GNTST } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import { Hypervisor, XENMEM } from "../src/index.ts";

describe("page transfer (Xen 2.0's page flipping) and ballooning", () => {
  it("a back end flips a filled page into a front end's offered slot; frames change hands, totals do not", () => {
    const hv = new Hypervisor({ memoryFrames: 512 });
    const front = hv.createNativeDomain({ name: "front", memoryPages: 32 });
    const back = hv.createNativeDomain({ name: "back", memoryPages: 32 });
    const hc = hv.hypercalls;
    const framesBefore = [hv.resources(front.domid).frames, hv.resources(back.domid).frames];
    let ref = -1;
    front.post(() => {
      ref = front.offerTransfer(back.domid);
    });
    hv.run();
    expect(hc.memoryQuery(front.record, XENMEM.current_reservation)).toBe(31);
    expect(front.transferCompleted(ref)).toBeUndefined();
    let status = -99;
    let flipped: Uint8Array | undefined;
    back.post(() => {
      const page = back.pages.allocPage();
      page.bytes.set([1, 2, 3, 4]);
      flipped = page.bytes;
      // Not offered to a third party, nor twice:
      expect(back.transferPage(page, front.domid, ref + 1)).toBe(GNTST.general_error);
      status = back.transferPage(page, front.domid, ref);
    });
    hv.run();
    expect(status).toBe(GNTST.okay);
    const got = front.transferCompleted(ref)!;
    expect([...got.bytes.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    expect(got.bytes.byteOffset).toBe(flipped!.byteOffset); // the very frame, zero copy
    expect(hv.memory.owner[got.bytes.byteOffset / 4096]).toBe(front.domid);
    expect([hv.resources(front.domid).frames, hv.resources(back.domid).frames]).toEqual([framesBefore[0], framesBefore[1]! - 1]);
    expect(hc.memoryQuery(back.record, XENMEM.current_reservation)).toBe(31);
    // The back end repopulates its hole.
    expect(back.reclaimPages(1)).toBe(1);
    expect(hv.resources(back.domid).frames).toBe(framesBefore[1]);
  });

  it("a mapped page cannot be released or transferred; reservations never exceed the maximum", () => {
    const hv = new Hypervisor({ memoryFrames: 512 });
    const a = hv.createNativeDomain({ name: "a", memoryPages: 16 });
    const b = hv.createNativeDomain({ name: "b", memoryPages: 16 });
    const hc = hv.hypercalls;
    const page = a.pages.allocPage();
    const ref = a.gnttab.grantAccess(b.domid, page.frame, true);
    const m = b.gnttab.map(a.domid, ref, false);
    expect(() => a.releasePages([page])).toThrow(/released 0 of 1/);
    expect(hc.memoryDecreaseReservation(a.record, [page.frame])).toBe(0);
    b.gnttab.unmap(m);
    expect(a.gnttab.endAccess(ref)).toBe(true);
    a.releasePages([page]);
    expect(hc.memoryQuery(a.record, XENMEM.current_reservation)).toBe(15);
    expect(hc.memoryQuery(a.record, XENMEM.maximum_reservation)).toBe(16);
    // Only holes can be populated: one, not two.
    expect(hc.memoryIncreaseReservation(a.record, 2)).toHaveLength(1);
    expect(hc.memoryPopulatePhysmap(a.record, [0])).toEqual([]); // pfn 0 is backed already
    // Another domain's reservation needs privilege.
    expect(hc.memoryDecreaseReservation(b.record, [0], a.domid)).toBe(-1);
  });
});
