/**
 * The Xen 2.0 I/O flow end to end: a domU grants a buffer page; the driver domain maps it,
 * gets its bus address from dmaMap (zero copy), programs a bus-master device through its
 * I/O space, the device DMAs straight into the domU's frame and raises its IRQ; the pirq event
 * runs the driver's handler in the driver domain, which EOIs and notifies the domU.
 */
import type { GuestMemory, IoDevice, IrqLine, XenServices, XenStore } from "@paravirt/vm-interfaces";
import { PciConfigSpace, XEN_ERRNO, XenError } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import { Hypervisor } from "../src/index.ts";
import { TestHostBridge } from "./machine.ts";
import { IoBus, IrqRouter } from "@paravirt/vm-interfaces";

/** A bus-master device: write a bus address to reg 0, a length to reg 4, then 1 to reg 8 to fill the buffer with a pattern after 5 µs. */
class PatternDma {
  readonly config = new PciConfigSpace({ vendorId: 0xabcd, deviceId: 1, classCode: 0x018000, interruptPin: 1 });
  addr = 0;
  len = 0;
  status = 0;
  constructor(mem: GuestMemory, irq: IrqLine, schedule: (ns: number, fn: () => void) => void) {
    const regs: IoDevice = {
      read: (o) => (o === 12 ? this.status : 0),
      write: (o, _s, v) => {
        if (o === 0) this.addr = v;
        if (o === 4) this.len = v;
        if (o === 8 && v === 1)
          schedule(5000, () => {
            const data = new Uint8Array(this.len).map((_, i) => (i * 3 + 1) & 0xff);
            mem.write(this.addr, data); // bus-master DMA into machine memory
            this.status = 1;
            irq.setLevel(true);
          });
        if (o === 12) {
          this.status = 0;
          irq.setLevel(false);
        }
      },
    };
    this.config.setBar(0, { kind: "io", size: 16, device: regs });
  }
}

describe("split I/O: grant, map, DMA, IRQ, EOI, event", () => {
  it("a device DMAs into a domU's granted page through its driver domain, zero copy", () => {
    const ports = new IoBus(0x10000);
    const mmio = new IoBus(2 ** 32);
    const irqs = new IrqRouter();
    const bridge = new TestHostBridge(ports, mmio);
    const hv = new Hypervisor({ memoryFrames: 1024, ports, mmio, irqs, probe: { irqFor: () => 9 }, assignments: [{ device: { vendorId: 0xabcd }, domain: "drv" }] });
    const dev = new PatternDma(hv.memory, irqs.line(9), (ns, fn) => hv.clock.after(ns, fn));
    bridge.attach({ bus: 0, device: 5, function: 0 }, dev.config);
    hv.probePci();
    const drv = hv.createNativeDomain({ name: "drv", privileged: true, memoryPages: 32 });
    const domU = hv.createNativeDomain({ name: "domU", memoryPages: 32 });
    const platform = drv.driverPlatform();
    const [info] = platform.pciDevices({ vendorId: 0xabcd });
    const io = info!.bars[0]!.base;

    // domU: grant a page to drv, offer a port; "xenstore" is the test handing them over.
    let gref = -1;
    let uport = -1;
    let page: Uint8Array | undefined;
    let done = false;
    domU.post(() => {
      const p = domU.pages.allocPage();
      page = p.bytes;
      gref = domU.gnttab.grantAccess(drv.domid, p.frame, false);
      uport = domU.evtchn.allocUnbound(drv.domid);
      domU.evtchn.onEvent(uport, () => (done = true));
    });
    hv.run();
    let irqAt = -1;
    drv.post(() => {
      const m = drv.gnttab.map(domU.domid, gref, true);
      const seg = platform.dmaMap(m.bytes.subarray(512, 1536), "from-device")!;
      expect(seg).toEqual([{ busAddress: m.machineAddress + 512, length: 1024 }]);
      const dport = drv.evtchn.bindInterdomain(domU.domid, uport);
      platform.requestIrq(info!.irq!, () => {
        irqAt = platform.timers.now();
        platform.outl(io + 12, 0); // ack at the device: line deasserted before EOI
        drv.gnttab.unmap(m);
        drv.evtchn.notify(dport);
      });
      platform.outl(io + 0, seg[0]!.busAddress);
      platform.outl(io + 4, seg[0]!.length);
      platform.outl(io + 8, 1);
    });
    hv.run();
    expect(done).toBe(true);
    expect(irqAt).toBeGreaterThanOrEqual(5000);
    expect(page![511]).toBe(0);
    expect([...page!.subarray(512, 516)]).toEqual([1, 4, 7, 10]);
    expect(page![1536]).toBe(0);
    expect(hv.pirq.stats(9)).toMatchObject({ delivered: 1, inService: false });
    expect(domU.gnttab.endAccess(gref)).toBe(true);
  });

  it("XenServices for a native domain: typed against vm-interfaces, xenstore injectable", async () => {
    const hv = new Hypervisor({ memoryFrames: 256 });
    const d = hv.createNativeDomain({ name: "d", memoryPages: 16 });
    const xs: XenServices = d.services();
    expect(xs.domid).toBe(d.domid);
    await expect(xs.xenstore.read("domid")).rejects.toMatchObject({ errno: XEN_ERRNO.ENOTCONN });
    const fake = { read: async (p: string) => `value of ${p}` } as unknown as XenStore;
    d.attachXenStore(fake);
    expect(await xs.xenstore.read("name")).toBe("value of name");
    const page = xs.pages.allocPage();
    expect(page.bytes.length).toBe(4096);
    expect(() => xs.pages.freePage({ frame: 9999, bytes: page.bytes })).toThrow();
    xs.pages.freePage(page);
    expect(() => xs.evtchn.notify(55)).toThrow(XenError);
  });

  it("driver timers fire as tasks of the driver's domain, in virtual time", () => {
    const hv = new Hypervisor({ memoryFrames: 256 });
    const d = hv.createNativeDomain({ name: "d", privileged: true, memoryPages: 16 });
    const p = d.driverPlatform();
    const log: string[] = [];
    const id = p.timers.schedule(2_000_000, () => log.push(`fired at ${p.timers.now()}`));
    p.timers.schedule(1_000_000, () => {
      log.push("first");
      p.timers.cancel(id);
    });
    hv.run();
    expect(log).toEqual(["first"]);
    expect(hv.clock.now()).toBeGreaterThanOrEqual(1_000_000);
  });
});
