/**
 * The `DriverPlatform` of a vanilla driver running in a privileged native domain: port and
 * MMIO accesses checked against the domain's I/O space (refused ones read all ones, drop
 * writes and are logged), config space through the checked physdev interface, interrupts as
 * pirq event channels acknowledged with PHYSDEVOP_eoi, and DMA in machine (= bus) addresses.
 */
import {
  XEN_ERRNO,
  XenError,
  PAGE_SIZE,
  type AccessSize,
  type DmaDirection,
  type DmaRegion,
  type DmaSegment,
  type DriverPlatform,
  type IrqRegistration,
  type MmioWindow,
  type PciAddress,
  type PciDeviceInfo,
  type TimerId,
  type TimerQueue,
} from "@paravirt/vm-interfaces";
import type { Hypervisor } from "./hypervisor.ts";
import type { NativeDomain } from "./nativeDomain.ts";

export class XenDriverPlatform implements DriverPlatform {
  readonly name: string;
  readonly timers: TimerQueue;
  private readonly hv: Hypervisor;
  private readonly nd: NativeDomain;
  private readonly regions = new Map<number, number[]>();

  constructor(hv: Hypervisor, nd: NativeDomain) {
    this.hv = hv;
    this.nd = nd;
    this.name = `xen d${nd.domid} (${nd.name})`;
    const clock = hv.clock;
    // Timer callbacks run as tasks of the domain, in its context.
    this.timers = {
      now: () => clock.now(),
      schedule: (at: number, callback: () => void): TimerId => clock.schedule(at, () => nd.post(callback)),
      cancel: (id: TimerId) => clock.cancel(id),
    };
  }

  private get d() {
    return this.nd.record;
  }

  pciDevices(filter?: { vendorId: number; deviceId?: number }): PciDeviceInfo[] {
    return this.hv.devices
      .filter((p) => p.owner === this.nd.domid)
      .filter((p) => filter === undefined || (p.vendorId === filter.vendorId && (filter.deviceId === undefined || p.deviceId === filter.deviceId)))
      .map(({ owner: _owner, ...info }) => info);
  }

  pciConfigRead(dev: PciAddress, offset: number, size: 1 | 2 | 4): number {
    return this.hv.hypercalls.physdevPciCfgRead(this.d, dev.bus, (dev.device << 3) | dev.function, offset, size).value;
  }

  pciConfigWrite(dev: PciAddress, offset: number, size: 1 | 2 | 4, value: number): void {
    this.hv.hypercalls.physdevPciCfgWrite(this.d, dev.bus, (dev.device << 3) | dev.function, offset, size, value);
  }

  inb(port: number): number {
    return this.hv.checkedPortRead(this.d, port, 1);
  }
  inw(port: number): number {
    return this.hv.checkedPortRead(this.d, port, 2);
  }
  inl(port: number): number {
    return this.hv.checkedPortRead(this.d, port, 4);
  }
  outb(port: number, value: number): void {
    this.hv.checkedPortWrite(this.d, port, 1, value);
  }
  outw(port: number, value: number): void {
    this.hv.checkedPortWrite(this.d, port, 2, value);
  }
  outl(port: number, value: number): void {
    this.hv.checkedPortWrite(this.d, port, 4, value);
  }

  ioremap(base: number, length: number): MmioWindow {
    const d = this.d;
    if (!d.ioSpace.mmioPermitted(base, length)) {
      d.violations++;
      this.hv.log(`d${d.domid}: refused ioremap 0x${base.toString(16)}+0x${length.toString(16)}`);
      throw new XenError(XEN_ERRNO.EPERM, `MMIO 0x${base.toString(16)}+0x${length.toString(16)} is outside d${d.domid}'s I/O space`);
    }
    const hv = this.hv;
    const rd = (off: number, size: AccessSize) => (off < 0 || off + size > length ? (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1) : hv.checkedMmioRead(d, base + off, size));
    const wr = (off: number, size: AccessSize, v: number) => {
      if (off >= 0 && off + size <= length) hv.checkedMmioWrite(d, base + off, size, v);
    };
    return {
      readb: (o) => rd(o, 1),
      readw: (o) => rd(o, 2),
      readl: (o) => rd(o, 4),
      writeb: (o, v) => wr(o, 1, v),
      writew: (o, v) => wr(o, 2, v),
      writel: (o, v) => wr(o, 4, v),
    };
  }

  requestIrq(irq: number, handler: () => void): IrqRegistration {
    const d = this.d;
    const hc = this.hv.hypercalls;
    const port = hc.evtchnBindPirq(d, irq);
    if (port < 0) throw new XenError(-port, `irq ${irq}`);
    const off = this.nd.evtchn.onEvent(port, () => {
      handler();
      hc.physdevEoi(d, irq);
    });
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        off();
        hc.evtchnClose(d, port);
      },
    };
  }

  dmaAlloc(length: number): DmaRegion {
    if (!(length > 0)) throw new RangeError(`DMA length ${length}`);
    const count = Math.ceil(length / PAGE_SIZE);
    const { pfns, mfn } = this.nd.allocContiguous(count);
    const busAddress = mfn * PAGE_SIZE;
    this.regions.set(busAddress, pfns);
    return { bytes: this.hv.memory.bytes.subarray(busAddress, busAddress + length), busAddress };
  }

  dmaFree(region: DmaRegion): void {
    const pfns = this.regions.get(region.busAddress);
    if (pfns === undefined) throw new Error(`no DMA region at 0x${region.busAddress.toString(16)}`);
    this.regions.delete(region.busAddress);
    this.nd.freeContiguous(pfns);
  }

  dmaMap(buffer: Uint8Array, direction: DmaDirection): DmaSegment[] | undefined {
    if (buffer.buffer !== this.hv.memory.buffer || buffer.byteLength === 0) return undefined;
    if (!this.hv.dmaPermitted(this.d, buffer.byteOffset, buffer.byteLength, direction !== "to-device")) return undefined;
    return [{ busAddress: buffer.byteOffset, length: buffer.byteLength }];
  }

  dmaUnmap(_segments: DmaSegment[]): void {
    // No IOMMU (Xen 2.0 had none): nothing to tear down.
  }

  log(message: string): void {
    this.hv.log(`d${this.nd.domid} driver: ${message}`);
  }
}
