import { describe, expect, it } from "vitest";
import { InMemoryXen, addDevice } from "@paravirt/xen-testing";
import { Netback } from "@paravirt/netback";
import { Netfront } from "@paravirt/netfront";
import { DeviceRegistry, NativeKernel } from "../src/index.ts";

describe("xenbus binding", () => {
  it("binds a back end to each device the toolstack adds, present and future, and front ends by probe", async () => {
    const xen = new InMemoryXen();
    const dom0 = new NativeKernel({ name: "dom0", xen: xen.createDomain(0, { pages: 4096 }) });
    const domU = new NativeKernel({ name: "domU1", xen: xen.createDomain(1, { pages: 2048 }) });
    const domU2 = new NativeKernel({ name: "domU2", xen: xen.createDomain(2, { pages: 2048 }) });
    await addDevice(xen, { kind: "vif", frontendDomid: 1, backendDomid: 0, devid: 0, frontend: { mac: "00:16:3e:00:00:01" } });
    await dom0.backends.register("vif", (d) => {
      const nb = new Netback({ xen: d.xen, frontendDomid: d.frontendDomid, handle: d.devid, backendPath: d.backendPath });
      dom0.netDevices.add(`vif${d.frontendDomid}.${d.devid}`, nb.vif);
      return { start: () => nb.start(), stop: () => nb.stop() };
    });
    // A device added after registration is bound too (the watch on backend/vif).
    await addDevice(xen, { kind: "vif", frontendDomid: 2, backendDomid: 0, devid: 0, frontend: { mac: "00:16:3e:00:00:02" } });
    await xen.settle();
    expect(dom0.netDevices.names().sort()).toEqual(["vif1.0", "vif2.0"]);

    for (const k of [domU, domU2]) {
      const probing = k.frontends.probe("vif", (d) => {
        const nf = new Netfront({ xen: d.xen, handle: d.devid });
        k.netDevices.add(`eth${d.devid}`, nf);
        return { connect: () => nf.connect(), close: () => nf.close() };
      });
      await xen.settle();
      await probing;
    }
    const eth0 = domU.netDevices.get("eth0")!;
    expect(eth0.linkUp).toBe(true);
    const seen: Uint8Array[] = [];
    dom0.netDevices.get("vif1.0")!.onReceive((f) => seen.push(f));
    eth0.send(new Uint8Array(60).fill(7));
    await xen.settle();
    expect(seen.length).toBe(1);
    expect(xen.errors).toEqual([]);
    await dom0.shutdown();
    await xen.settle();
    expect(await xen.toolstackStore().read("/local/domain/0/backend/vif/1/0/state")).toBe("6");
  });
});

describe("DeviceRegistry", () => {
  it("refuses a taken name and tells listeners and waiters", async () => {
    const r = new DeviceRegistry<number>();
    const seen: string[] = [];
    r.add("a", 1);
    r.onAdd((n) => seen.push(n));
    const waiting = r.waitFor("b");
    r.add("b", 2);
    expect(await waiting).toBe(2);
    expect(seen).toEqual(["a", "b"]);
    expect(() => r.add("a", 3)).toThrow(RangeError);
  });
});

describe("NativeKernel.boot", () => {
  it("connects xenstore over the store page and port from start_info", async () => {
    const { XenstoreServer, evtchnPort } = await import("@paravirt/xenstore");
    const xen = new InMemoryXen();
    const d0 = xen.createDomain(0);
    const dU = xen.createDomain(7);
    // The builder's part: a store page in the guest, a port offered to dom0.
    const page = dU.pages.allocPage();
    const ref = dU.gnttab.grantAccess(0, page.frame, false);
    const guestPort = dU.evtchn.allocUnbound(0);
    // xenstored in dom0 maps it and binds the port (XS_INTRODUCE).
    const server = new XenstoreServer();
    const m = d0.gnttab.map(7, ref, true);
    server.introduce(7, evtchnPort(d0.evtchn, d0.evtchn.bindInterdomain(7, guestPort), m.bytes));
    const k = NativeKernel.boot({ name: "guest", services: dU, storePage: page.bytes, storePort: guestPort });
    const done = (async () => {
      await k.xen.xenstore.write("data/hello", "world");
      return k.xen.xenstore.read("/local/domain/7/data/hello");
    })();
    await xen.settle();
    expect(await done).toBe("world");
  });
});
