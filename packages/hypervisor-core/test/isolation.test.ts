import { GTF, readGrantEntryV1 } from "@paravirt/device-channel";
import { GNTST, GrantError, XEN_ERRNO, XenError, type DriverPlatform } from "@paravirt/vm-interfaces";
import { beforeEach, describe, expect, it } from "vitest";
import { Hypervisor, type NativeDomain } from "../src/index.ts";
import { irqFor, testMachine, type TestMachine } from "./machine.ts";

function errno(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof XenError) return e.errno;
    throw e;
  }
  return undefined;
}
function gntst(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof GrantError) return e.status;
    throw e;
  }
  return undefined;
}

describe("probing, I/O spaces and refusals", () => {
  let m: TestMachine;
  let hv: Hypervisor;
  let drvNet: NativeDomain;
  let drvBlk: NativeDomain;
  let domU: NativeDomain;
  let net: DriverPlatform;

  beforeEach(() => {
    m = testMachine();
    hv = new Hypervisor({
      memoryFrames: 1024,
      ports: m.ports,
      mmio: m.mmio,
      irqs: m.irqs,
      probe: { irqFor },
      assignments: [
        { device: { vendorId: 0x8086, deviceId: 0x100e }, domain: "drv-net" },
        { device: { bus: 0, device: 4, function: 0 }, domain: "drv-blk" },
      ],
    });
    drvNet = hv.createNativeDomain({ name: "drv-net", privileged: true, memoryPages: 64 });
    hv.probePci();
    drvBlk = hv.createNativeDomain({ name: "drv-blk", privileged: true, memoryPages: 64 });
    domU = hv.createNativeDomain({ name: "domU", memoryPages: 64 });
    net = drvNet.driverPlatform();
  });

  it("probes through 0xCF8/0xCFC, assigns BARs and gives each driver domain exactly its device", () => {
    expect(hv.devices.map((d) => [d.vendorId, d.deviceId, d.irq, d.owner])).toEqual([
      [0x8086, 0x100e, 11, drvNet.domid],
      [0x1234, 0x0001, 10, drvBlk.domid],
    ]);
    const nicInfo = hv.devices[0]!;
    expect(nicInfo.bars[0]).toEqual({ kind: "io", base: 0xc000, size: 32 });
    expect(nicInfo.bars[1]).toEqual({ kind: "mem32", base: 0xe0000000, size: 4096 });
    expect(drvNet.record.ioSpace.snapshot()).toEqual({ ports: [{ base: 0xc000, length: 32 }], mmio: [{ base: 0xe0000000, length: 4096 }], irqs: [11] });
    expect(net.pciDevices().map((p) => p.deviceId)).toEqual([0x100e]);
    expect(net.pciDevices({ vendorId: 0x1234 })).toEqual([]);
    // Its own device works: ports, MMIO, config space.
    net.outl(0xc004, 0xdeadbeef);
    expect(net.inl(0xc004)).toBe(0xdeadbeef);
    const w = net.ioremap(0xe0000000, 4096);
    w.writel(8, 0x1234);
    expect(w.readl(8)).toBe(0x1234);
    expect(net.pciConfigRead(nicInfo.address, 0, 4)).toBe(0x100e8086);
    // The same through the trapped 0xCF8/0xCFC ports.
    net.outl(0xcf8, 0x80001800);
    expect(net.inl(0xcfc)).toBe(0x100e8086);
  });

  it("refuses another device's ports, MMIO, config space and IRQ, and nothing changes", () => {
    const disk = hv.devices[1]!;
    const ioBase = disk.bars[0]!.base;
    const memBase = disk.bars[1]!.base;
    m.disk.regs[1] = 0x55;
    const before = { accesses: m.disk.accesses, free: hv.memory.freeFrames, res: [0, 1, 2].map((i) => hv.resources(i)), reg: m.disk.regs[1] };
    expect(net.inl(ioBase + 4)).toBe(0xffffffff);
    expect(net.inb(ioBase)).toBe(0xff);
    net.outl(ioBase + 4, 0);
    expect(errno(() => net.ioremap(memBase, 4096))).toBe(XEN_ERRNO.EPERM);
    // A window that straddles the edge of its own BAR is refused too.
    expect(errno(() => net.ioremap(0xe0000000, 8192))).toBe(XEN_ERRNO.EPERM);
    expect(net.pciConfigRead(disk.address, 0, 4)).toBe(0xffffffff);
    net.pciConfigWrite(disk.address, 4, 2, 0);
    net.outl(0xcf8, 0x80002000);
    expect(net.inl(0xcfc)).toBe(0xffffffff);
    expect(errno(() => net.requestIrq(10, () => {}))).toBe(XEN_ERRNO.EPERM);
    // Moving its own BAR would move its I/O space: refused.
    net.pciConfigWrite(hv.devices[0]!.address, 0x10, 4, 0xd000);
    expect(hv.devices[0]!.bars[0]!.base).toBe(0xc000);
    expect(m.nic.config.barAddress(0)).toBe(0xc000);
    const after = { accesses: m.disk.accesses, free: hv.memory.freeFrames, res: [0, 1, 2].map((i) => hv.resources(i)), reg: m.disk.regs[1] };
    expect(after).toEqual(before);
    expect(m.disk.config.configRead(4, 2) & 3).toBe(3); // COMMAND still decodes
    expect(drvNet.record.violations).toBeGreaterThanOrEqual(8);
    expect(hv.logLines.filter((l) => l.includes("refused")).length).toBeGreaterThanOrEqual(8);
  });

  it("an unprivileged domain gets no I/O at all", () => {
    const p = domU.driverPlatform();
    const disk = hv.devices[1]!;
    expect(p.pciDevices()).toEqual([]);
    expect(p.inl(disk.bars[0]!.base)).toBe(0xffffffff);
    expect(errno(() => p.requestIrq(10, () => {}))).toBe(XEN_ERRNO.EPERM);
    expect(errno(() => p.requestIrq(11, () => {}))).toBe(XEN_ERRNO.EPERM);
    expect(m.disk.accesses).toBe(0);
  });

  it("refuses a grant it was not given with Xen's GNTST codes, changing nothing", () => {
    // domU grants a page to drv-blk only, and a read-only page to drv-net.
    let refBlk = -1;
    let refRo = -1;
    let frame = -1;
    domU.post(() => {
      const page = domU.pages.allocPage();
      frame = page.frame;
      page.bytes[0] = 42;
      refBlk = domU.gnttab.grantAccess(drvBlk.domid, page.frame, false);
      refRo = domU.gnttab.grantAccess(drvNet.domid, page.frame, true);
    });
    hv.run();
    const tableDv = () => new DataView(hv.memory.page(domU.record.grantFrames[0]!).buffer, domU.record.grantFrames[0]! * 4096, 4096);
    const snapshot = () => ({
      blk: readGrantEntryV1(tableDv(), refBlk),
      ro: readGrantEntryV1(tableDv(), refRo),
      refs: hv.memory.refs[domU.record.p2m[frame]!],
      res: [drvNet.domid, drvBlk.domid, domU.domid].map((d) => hv.resources(d)),
    });
    const before = snapshot();
    expect(gntst(() => drvNet.gnttab.map(domU.domid, refBlk, false))).toBe(GNTST.general_error); // not ours
    expect(gntst(() => drvNet.gnttab.map(domU.domid, refBlk, true))).toBe(GNTST.general_error);
    expect(gntst(() => drvNet.gnttab.map(domU.domid, refRo, true))).toBe(GNTST.general_error); // r/o grant, writable map
    expect(gntst(() => drvNet.gnttab.map(domU.domid, 5000, false))).toBe(GNTST.bad_gntref);
    expect(gntst(() => drvNet.gnttab.map(0x1234, refRo, false))).toBe(GNTST.bad_domain);
    expect(drvNet.gnttab.copy([{ source: { ref: refBlk, domid: domU.domid, offset: 0 }, dest: { frame: 0, offset: 0 }, length: 16 }])).toEqual([GNTST.general_error]);
    expect(drvNet.gnttab.copy([{ source: { frame: 0, offset: 0 }, dest: { ref: refRo, domid: domU.domid, offset: 0 }, length: 16 }])).toEqual([GNTST.general_error]);
    expect(drvNet.gnttab.copy([{ source: { ref: refRo, domid: domU.domid, offset: 4090 }, dest: { frame: 0, offset: 0 }, length: 16 }])).toEqual([GNTST.bad_copy_arg]);
    expect(gntst(() => drvNet.gnttab.unmap({ handle: 77, bytes: new Uint8Array(0), machineAddress: 0, writable: false }))).toBe(GNTST.bad_handle);
    expect(snapshot()).toEqual(before);
    // What it was given works, read-only, and pins GTF_reading only.
    const mp = drvNet.gnttab.map(domU.domid, refRo, false);
    expect(mp.bytes[0]).toBe(42);
    expect(readGrantEntryV1(tableDv(), refRo).flags).toBe(GTF.permit_access | GTF.readonly | GTF.reading);
    expect(drvNet.gnttab.copy([{ source: { ref: refRo, domid: domU.domid, offset: 0 }, dest: { frame: 3, offset: 100 }, length: 1 }])).toEqual([GNTST.okay]);
    expect(drvNet.memory.readU8(3 * 4096 + 100)).toBe(42);
    drvNet.gnttab.unmap(mp);
    expect(readGrantEntryV1(tableDv(), refRo).flags).toBe(GTF.permit_access | GTF.readonly);
  });

  it("DMA only to its own memory or grants it mapped; dmaAlloc is machine-contiguous", () => {
    const r = net.dmaAlloc(3 * 4096);
    expect(r.bytes.buffer).toBe(hv.memory.buffer);
    expect(r.busAddress).toBe(r.bytes.byteOffset);
    expect(hv.memory.owner[r.busAddress / 4096]).toBe(drvNet.domid);
    expect(net.dmaMap(r.bytes.subarray(100, 9000), "from-device")).toEqual([{ busAddress: r.busAddress + 100, length: 8900 }]);
    // A page of domU that was not granted: refused.
    const foreign = hv.memory.page(domU.record.p2m[0]!);
    expect(net.dmaMap(foreign, "to-device")).toBeUndefined();
    // Not machine memory at all: the driver must bounce.
    expect(net.dmaMap(new Uint8Array(64), "to-device")).toBeUndefined();
    // A granted page is DMA-able in the granted direction (zero copy).
    let ref = -1;
    domU.post(() => {
      const p = domU.pages.allocPage();
      ref = domU.gnttab.grantAccess(drvNet.domid, p.frame, true);
    });
    hv.run();
    const g = drvNet.gnttab.map(domU.domid, ref, false);
    expect(net.dmaMap(g.bytes, "to-device")).toEqual([{ busAddress: g.machineAddress, length: 4096 }]);
    expect(net.dmaMap(g.bytes, "from-device")).toBeUndefined();
    net.dmaFree(r);
  });
});
