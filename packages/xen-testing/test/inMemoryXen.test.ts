import { GRANT_ENTRY_V1, GTF, readGrantEntryV1 } from "@paravirt/device-channel";
import { GNTST, GrantError, VirtualClock, XEN_ERRNO, XenError } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import { addDevice, GNTTAB_NR_RESERVED_ENTRIES, InMemoryXen } from "../src/index.ts";

function setup() {
  const xen = new InMemoryXen();
  const dom0 = xen.createDomain(0);
  const domU = xen.createDomain(1);
  const domV = xen.createDomain(2);
  return { xen, dom0, domU, domV };
}

async function rejects(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("did not reject");
}

describe("memory", () => {
  it("hands out distinct zeroed pages and takes them back", () => {
    const { domU } = setup();
    const a = domU.pages.allocPage();
    const b = domU.pages.allocPage();
    expect(a.frame).not.toBe(b.frame);
    a.bytes[0] = 9;
    domU.pages.freePage(a);
    expect(() => domU.pages.freePage(a)).toThrow(RangeError);
    expect(domU.memory.allocated).toBe(1);
  });

  it("names the frame of a whole allocated page, and nothing else", () => {
    const { domU } = setup();
    const a = domU.pages.allocPage();
    expect(domU.memory.frameOf(a.bytes)).toBe(a.frame);
    expect(domU.memory.frameOf(a.bytes.subarray(0, 512))).toBeUndefined();
    expect(domU.memory.frameOf(new Uint8Array(4096))).toBeUndefined();
    const b = domU.pages.allocPage();
    domU.pages.freePage(b);
    expect(domU.memory.frameOf(b.bytes)).toBeUndefined();
  });
});

describe("grant table v1", () => {
  it("keeps entries in the grant frames, domid/frame then flags", () => {
    const { domU } = setup();
    const page = domU.pages.allocPage();
    const ref = domU.gnttab.grantAccess(0, page.frame, true);
    expect(ref).toBeGreaterThanOrEqual(GNTTAB_NR_RESERVED_ENTRIES);
    expect(readGrantEntryV1(domU.gnttab.frames, ref)).toEqual({ flags: GTF.permit_access | GTF.readonly, domid: 0, frame: page.frame });
  });

  it("maps live views as granted; writable maps of read-only grants are denied", () => {
    const { dom0, domU } = setup();
    const page = domU.pages.allocPage();
    const ro = domU.gnttab.grantAccess(0, page.frame, true);
    const rw = domU.gnttab.grantAccess(0, page.frame, false);
    expect(() => dom0.gnttab.map(1, ro, true)).toThrow(expect.objectContaining({ status: GNTST.general_error }));
    const m = dom0.gnttab.map(1, rw, true);
    m.bytes[5] = 0xab;
    expect(page.bytes[5]).toBe(0xab);
    expect(m.writable).toBe(true);
    expect(m.machineAddress % 4096).toBe(0);
    const m2 = dom0.gnttab.map(1, ro, false);
    expect(m2.bytes[5]).toBe(0xab);
    dom0.gnttab.unmap(m2);
    dom0.gnttab.unmap(m);
  });

  it("sets GTF_reading/GTF_writing while mapped; endAccess is false until unmapped", () => {
    const { dom0, domU } = setup();
    const page = domU.pages.allocPage();
    const ref = domU.gnttab.grantAccess(0, page.frame, false);
    const m = dom0.gnttab.map(1, ref, true);
    const flags = () => domU.gnttab.frames.getUint16(ref * GRANT_ENTRY_V1.SIZE, true);
    expect(flags() & (GTF.reading | GTF.writing)).toBe(GTF.reading | GTF.writing);
    expect(domU.gnttab.endAccess(ref)).toBe(false);
    dom0.gnttab.unmap(m);
    expect(flags() & (GTF.reading | GTF.writing)).toBe(0);
    expect(domU.gnttab.endAccess(ref)).toBe(true);
    expect(flags()).toBe(0);
    expect(() => dom0.gnttab.map(1, ref, false)).toThrow(GrantError);
    expect(() => dom0.gnttab.unmap(m)).toThrow(expect.objectContaining({ status: GNTST.bad_handle }));
  });

  it("refuses bad refs, other grantees and unknown domains", () => {
    const { dom0, domU, domV } = setup();
    const page = domU.pages.allocPage();
    const ref = domU.gnttab.grantAccess(0, page.frame, false);
    expect(() => domV.gnttab.map(1, ref, false)).toThrow(expect.objectContaining({ status: GNTST.general_error }));
    expect(() => dom0.gnttab.map(1, 1 << 30, false)).toThrow(expect.objectContaining({ status: GNTST.bad_gntref }));
    expect(() => dom0.gnttab.map(1, 3, false)).toThrow(expect.objectContaining({ status: GNTST.general_error }));
    expect(() => dom0.gnttab.map(77, ref, false)).toThrow(expect.objectContaining({ status: GNTST.bad_domain }));
    expect(dom0.gnttab.mappingsHeld).toBe(0);
  });

  it("copies between a grant and an own frame, per-op status", () => {
    const { dom0, domU } = setup();
    const page = domU.pages.allocPage();
    page.bytes.set([1, 2, 3, 4], 100);
    const ro = domU.gnttab.grantAccess(0, page.frame, true);
    const mine = dom0.pages.allocPage();
    const st = dom0.gnttab.copy([
      { source: { ref: ro, domid: 1, offset: 100 }, dest: { frame: mine.frame, offset: 0 }, length: 4 },
      { source: { frame: mine.frame, offset: 0 }, dest: { ref: ro, domid: 1, offset: 0 }, length: 4 },
      { source: { ref: ro, domid: 1, offset: 4090 }, dest: { frame: mine.frame, offset: 0 }, length: 10 },
    ]);
    expect(st).toEqual([GNTST.okay, GNTST.general_error, GNTST.bad_copy_arg]);
    expect([...mine.bytes.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    expect(page.bytes[0]).toBe(0);
  });

  it("reports no_space when the table is full", () => {
    const xen = new InMemoryXen();
    xen.createDomain(0);
    const d = xen.createDomain(1, { grantFrames: 1 });
    const page = d.pages.allocPage();
    for (let i = GNTTAB_NR_RESERVED_ENTRIES; i < 512; i++) d.gnttab.grantAccess(0, page.frame, true);
    expect(() => d.gnttab.grantAccess(0, page.frame, true)).toThrow(expect.objectContaining({ status: GNTST.no_space }));
  });
});

describe("event channels", () => {
  it("delivers asynchronously and coalesces sends while pending", async () => {
    const { xen, dom0, domU } = setup();
    const p = domU.evtchn.allocUnbound(0);
    const b = dom0.evtchn.bindInterdomain(1, p);
    let calls = 0;
    domU.evtchn.onEvent(p, () => calls++);
    dom0.evtchn.notify(b);
    dom0.evtchn.notify(b);
    dom0.evtchn.notify(b);
    expect(calls).toBe(0);
    await xen.settle();
    expect(calls).toBe(1);
    expect(domU.evtchn.portInfo(p)?.coalesced).toBe(2);
    dom0.evtchn.notify(b);
    await xen.settle();
    expect(calls).toBe(2);
  });

  it("holds masked events until unmasked, and works both ways", async () => {
    const { xen, dom0, domU } = setup();
    const p = domU.evtchn.allocUnbound(0);
    const b = dom0.evtchn.bindInterdomain(1, p);
    const seen: string[] = [];
    domU.evtchn.onEvent(p, () => seen.push("U"));
    dom0.evtchn.onEvent(b, () => seen.push("0"));
    domU.evtchn.setMask(p, true);
    dom0.evtchn.notify(b);
    domU.evtchn.notify(p);
    await xen.settle();
    expect(seen).toEqual(["0"]);
    domU.evtchn.setMask(p, false);
    await xen.settle();
    expect(seen).toEqual(["0", "U"]);
  });

  it("refuses bad binds; close unbinds the peer and later sends fail", async () => {
    const { dom0, domU, domV } = setup();
    const p = domU.evtchn.allocUnbound(0);
    expect(() => domV.evtchn.bindInterdomain(1, p)).toThrow(XenError);
    expect(() => dom0.evtchn.bindInterdomain(1, 999)).toThrow(XenError);
    const b = dom0.evtchn.bindInterdomain(1, p);
    expect(() => dom0.evtchn.bindInterdomain(1, p)).toThrow(XenError);
    domU.evtchn.close(p);
    expect(() => dom0.evtchn.notify(b)).toThrow(expect.objectContaining({ errno: XEN_ERRNO.EINVAL }));
    expect(() => domU.evtchn.notify(p)).toThrow(XenError);
    dom0.evtchn.close(b);
    expect(dom0.evtchn.openPorts).toBe(0);
  });

  it("delivers through a VirtualClock when given one", async () => {
    const clock = new VirtualClock();
    const xen = new InMemoryXen({ timers: clock });
    const dom0 = xen.createDomain(0);
    const domU = xen.createDomain(1);
    const p = domU.evtchn.allocUnbound(0);
    const b = dom0.evtchn.bindInterdomain(1, p);
    let calls = 0;
    domU.evtchn.onEvent(p, () => calls++);
    dom0.evtchn.notify(b);
    await Promise.resolve();
    expect(calls).toBe(0);
    clock.advanceBy(0);
    expect(calls).toBe(1);
  });

  it("records handler exceptions instead of losing them", async () => {
    const { xen, dom0, domU } = setup();
    const p = domU.evtchn.allocUnbound(0);
    const b = dom0.evtchn.bindInterdomain(1, p);
    domU.evtchn.onEvent(p, () => {
      throw new Error("boom");
    });
    dom0.evtchn.notify(b);
    await xen.settle();
    expect(xen.errors).toHaveLength(1);
  });
});

describe("xenstore", () => {
  it("resolves relative paths to the domain's home and lists children", async () => {
    const { domU } = setup();
    await domU.xenstore.write("data/a", "1");
    expect(await domU.xenstore.read("/local/domain/1/data/a")).toBe("1");
    expect(await domU.xenstore.directory("data")).toEqual(["a"]);
    expect(await rejects(domU.xenstore.read("data/b"))).toMatchObject({ errno: XEN_ERRNO.ENOENT });
    expect(await rejects(domU.xenstore.read("bad//path"))).toMatchObject({ errno: XEN_ERRNO.EINVAL });
  });

  it("enforces per-domain permissions", async () => {
    const { dom0, domU, domV } = setup();
    await domU.xenstore.write("mine", "x");
    expect(await rejects(domV.xenstore.read("/local/domain/1/mine"))).toMatchObject({ errno: XEN_ERRNO.EACCES });
    expect(await rejects(domV.xenstore.write("/local/domain/1/theirs", "y"))).toMatchObject({ errno: XEN_ERRNO.EACCES });
    expect(await dom0.xenstore.read("/local/domain/1/mine")).toBe("x");
    expect(await domU.xenstore.getPermissions("mine")).toEqual([{ domid: 1, access: "n" }]);
    await domU.xenstore.setPermissions("mine", [{ domid: 1, access: "n" }, { domid: 2, access: "r" }]);
    expect(await domV.xenstore.read("/local/domain/1/mine")).toBe("x");
    expect(await rejects(domV.xenstore.write("/local/domain/1/mine", "z"))).toMatchObject({ errno: XEN_ERRNO.EACCES });
    expect(await rejects(domU.xenstore.setPermissions("mine", [{ domid: 2, access: "b" }]))).toMatchObject({ errno: XEN_ERRNO.EPERM });
    expect(await rejects(domU.xenstore.write("/tool/x", "1"))).toMatchObject({ errno: XEN_ERRNO.EACCES });
  });

  it("fires watches once on registration and on changes at or below the path", async () => {
    const { xen, domU } = setup();
    const seen: string[] = [];
    const unwatch = await domU.xenstore.watch("device", (p) => seen.push(p));
    await xen.settle();
    expect(seen).toEqual(["device"]);
    await domU.xenstore.write("device/vbd/1/state", "1");
    await domU.xenstore.write("other", "1");
    await xen.settle();
    expect(seen).toContain("device/vbd/1/state");
    expect(seen).not.toContain("other");
    seen.length = 0;
    await domU.xenstore.rm("device/vbd");
    await xen.settle();
    expect(seen).toEqual(["device/vbd"]);
    await unwatch();
    await domU.xenstore.write("device/x", "1");
    await xen.settle();
    expect(seen).toEqual(["device/vbd"]);
  });

  it("does not fire watches for nodes the watcher cannot read", async () => {
    const { xen, domU, domV } = setup();
    const seen: string[] = [];
    await domV.xenstore.watch("/local/domain/1", (p) => seen.push(p));
    await domU.xenstore.write("secret", "1");
    await xen.settle();
    expect(seen).toEqual(["/local/domain/1"]);
  });

  it("commits transactions atomically and retries on conflict", async () => {
    const { xen, dom0, domU } = setup();
    let runs = 0;
    const seen: string[] = [];
    await domU.xenstore.watch("t", (p) => seen.push(p));
    await xen.settle();
    const r = await domU.xenstore.transaction(async (tx) => {
      runs++;
      await tx.write("t/a", "1");
      if (runs === 1) await dom0.xenstore.write("/local/domain/1/t/b", "other");
      expect(await domU.xenstore.read("t/a").catch(() => "absent")).toBe("absent");
      await tx.write("t/c", "2");
      return "done";
    });
    expect(r).toBe("done");
    expect(runs).toBe(2);
    expect(domU.xenstore.retries).toBe(1);
    expect(await domU.xenstore.read("t/a")).toBe("1");
    expect(await domU.xenstore.read("t/b")).toBe("other");
    await xen.settle();
    expect(seen).toEqual(expect.arrayContaining(["t/a", "t/c"]));
  });

  it("sets up a device like libxl", async () => {
    const { xen, dom0, domU, domV } = setup();
    const paths = await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: 51712, backend: { mode: "w" } });
    expect(await domU.xenstore.read("device/vbd/51712/backend")).toBe(paths.backendPath);
    expect(await domU.xenstore.read(`${paths.backendPath}/mode`)).toBe("w");
    expect(await dom0.xenstore.read(`${paths.frontendPath}/state`)).toBe("1");
    await domU.xenstore.write("device/vbd/51712/ring-ref", "8");
    expect(await rejects(domU.xenstore.write(`${paths.backendPath}/state`, "4"))).toMatchObject({ errno: XEN_ERRNO.EACCES });
    expect(await rejects(domV.xenstore.read(`${paths.backendPath}/mode`))).toMatchObject({ errno: XEN_ERRNO.EACCES });
    expect(await domU.xenstore.getPermissions("device/vbd/51712/ring-ref")).toEqual([{ domid: 1, access: "n" }, { domid: 0, access: "r" }]);
  });
});

describe("domain destruction", () => {
  it("drops the dead domain's mappings and ports, removes its home and fires @releaseDomain", async () => {
    const { xen, dom0, domU } = setup();
    const seen: string[] = [];
    await dom0.xenstore.watch("@releaseDomain", (p) => seen.push(p));
    await dom0.xenstore.watch("/local/domain/1", (p) => seen.push(p));
    await xen.settle();
    seen.length = 0;
    // domU maps a page of dom0, dom0 maps a page of domU, and they share a channel.
    const p0 = dom0.pages.allocPage();
    const r0 = dom0.gnttab.grantAccess(1, p0.frame, false);
    domU.gnttab.map(0, r0, true);
    const pU = domU.pages.allocPage();
    const rU = domU.gnttab.grantAccess(0, pU.frame, false);
    const mU = dom0.gnttab.map(1, rU, false);
    const port = domU.evtchn.allocUnbound(0);
    const b = dom0.evtchn.bindInterdomain(1, port);
    expect(dom0.gnttab.endAccess(r0)).toBe(false);
    await xen.destroyDomain(1);
    await xen.settle();
    expect(dom0.gnttab.endAccess(r0)).toBe(true);
    expect(() => dom0.evtchn.notify(b)).toThrow(expect.objectContaining({ errno: XEN_ERRNO.EINVAL }));
    expect(() => dom0.gnttab.map(1, rU, false)).toThrow(expect.objectContaining({ status: GNTST.bad_domain }));
    dom0.gnttab.unmap(mU);
    expect(seen).toEqual(expect.arrayContaining(["/local/domain/1", "@releaseDomain"]));
    expect(await rejects(dom0.xenstore.read("/local/domain/1/domid"))).toMatchObject({ errno: XEN_ERRNO.ENOENT });
    expect(xen.domain(1)).toBeUndefined();
  });
});

describe("watches on removed subtrees", () => {
  it("tell a watcher about its node going away when it could read that node", async () => {
    const { xen, dom0, domU, domV } = setup();
    const xs = xen.toolstackStore();
    await xs.write("/local/domain/2/backend/x/state", "4");
    await xs.setPermissions("/local/domain/2/backend/x", [{ domid: 2, access: "n" }, { domid: 1, access: "r" }]);
    await xs.setPermissions("/local/domain/2/backend/x/state", [{ domid: 2, access: "n" }, { domid: 1, access: "r" }]);
    const seen: string[] = [];
    await domU.xenstore.watch("/local/domain/2/backend/x/state", (p) => seen.push(p));
    await xen.settle();
    seen.length = 0;
    void dom0;
    void domV;
    await xs.rm("/local/domain/2");
    await xen.settle();
    expect(seen).toEqual(["/local/domain/2/backend/x/state"]);
  });
});
