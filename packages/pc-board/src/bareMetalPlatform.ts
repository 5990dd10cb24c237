/**
 * The driver platform on bare metal: a driver's port, MMIO, configuration and DMA accesses go
 * straight to the board (physical address = bus address), and its interrupt handlers run
 * from the board's IRQ lines. The same driver source runs in a Xen domain on hypervisor-core's
 * platform instead.
 */
import type {
  DmaDirection, DmaRegion, DmaSegment, DriverPlatform, IrqRegistration, MmioWindow, PciAddress, PciDeviceInfo, VirtualClock,
} from "@paravirt/vm-interfaces";
import { PAGE_SIZE } from "@paravirt/vm-interfaces";
import type { PcBoard } from "./board.ts";
import { formatBdf } from "./pciHost.ts";

/** After this many back-to-back handler runs with the line still asserted, the IRQ is disabled (Linux's "nobody cared"). */
const STUCK_LIMIT = 10_000;

export class BareMetalPlatform implements DriverPlatform {
  readonly name = "bare metal";
  readonly timers: VirtualClock;
  private readonly board: PcBoard;
  private readonly handlers = new Map<number, Set<() => void>>();
  private readonly scheduled = new Set<number>();
  private readonly disabled = new Set<number>();
  private readonly logLines: string[] = [];
  private dmaNext: number;
  private readonly dmaFreeList: { base: number; pages: number }[] = [];
  /** Where `log` goes; default: kept in `logs`. */
  onLog: ((line: string) => void) | undefined;

  /** @param dmaBase first physical address the platform may hand out for DMA memory. */
  constructor(board: PcBoard, dmaBase = 0x10_0000) {
    this.board = board;
    this.timers = board.clock;
    this.dmaNext = dmaBase;
  }

  get logs(): readonly string[] {
    return this.logLines;
  }

  pciDevices(filter?: { vendorId: number; deviceId?: number }): PciDeviceInfo[] {
    return this.board.devices.filter(
      (d) => filter === undefined || (d.vendorId === filter.vendorId && (filter.deviceId === undefined || d.deviceId === filter.deviceId)),
    );
  }

  pciConfigRead(dev: PciAddress, offset: number, size: 1 | 2 | 4): number {
    return this.board.pci.configRead(dev, offset, size);
  }
  pciConfigWrite(dev: PciAddress, offset: number, size: 1 | 2 | 4, value: number): void {
    this.board.pci.configWrite(dev, offset, size, value);
  }

  inb(port: number): number {
    return this.board.ports.read(port & 0xffff, 1);
  }
  inw(port: number): number {
    return this.board.ports.read(port & 0xffff, 2);
  }
  inl(port: number): number {
    return this.board.ports.read(port & 0xffff, 4);
  }
  outb(port: number, value: number): void {
    this.board.ports.write(port & 0xffff, 1, value & 0xff);
  }
  outw(port: number, value: number): void {
    this.board.ports.write(port & 0xffff, 2, value & 0xffff);
  }
  outl(port: number, value: number): void {
    this.board.ports.write(port & 0xffff, 4, value >>> 0);
  }

  ioremap(base: number, length: number): MmioWindow {
    const mem = this.board.memory;
    const check = (off: number, size: number) => {
      if (off < 0 || off + size > length) throw new RangeError(`MMIO access at +0x${off.toString(16)} outside a ${length}-byte window`);
      return base + off;
    };
    return {
      readb: (o) => mem.mmio.read(check(o, 1), 1),
      readw: (o) => mem.mmio.read(check(o, 2), 2),
      readl: (o) => mem.mmio.read(check(o, 4), 4),
      writeb: (o, v) => mem.mmio.write(check(o, 1), 1, v),
      writew: (o, v) => mem.mmio.write(check(o, 2), 2, v),
      writel: (o, v) => mem.mmio.write(check(o, 4), 4, v),
    };
  }

  requestIrq(irq: number, handler: () => void): IrqRegistration {
    let set = this.handlers.get(irq);
    if (set === undefined) {
      this.handlers.set(irq, (set = new Set()));
      this.board.irqs.listen(irq, (asserted) => {
        if (asserted) this.dispatchSoon(irq);
      });
    }
    set.add(handler);
    if (this.board.irqs.level(irq)) this.dispatchSoon(irq);
    return { release: () => void set.delete(handler) };
  }

  /** Handlers run from the clock, never inside the device's register access that raised the line. */
  private dispatchSoon(irq: number): void {
    if (this.scheduled.has(irq) || this.disabled.has(irq)) return;
    this.scheduled.add(irq);
    this.timers.schedule(this.timers.now(), () => this.dispatch(irq));
  }

  private dispatch(irq: number): void {
    this.scheduled.delete(irq);
    const set = this.handlers.get(irq);
    if (set === undefined || set.size === 0) return;
    let runs = 0;
    do {
      for (const h of [...set]) h();
      if (++runs >= STUCK_LIMIT) {
        this.disabled.add(irq);
        this.log(`irq ${irq}: nobody cared (line stuck asserted), disabled`);
        return;
      }
    } while (this.board.irqs.level(irq));
  }

  dmaAlloc(length: number): DmaRegion {
    const pages = Math.max(1, Math.ceil(length / PAGE_SIZE));
    const i = this.dmaFreeList.findIndex((r) => r.pages >= pages);
    let base: number;
    if (i >= 0) {
      const r = this.dmaFreeList[i]!;
      base = r.base;
      if (r.pages === pages) this.dmaFreeList.splice(i, 1);
      else this.dmaFreeList[i] = { base: r.base + pages * PAGE_SIZE, pages: r.pages - pages };
    } else {
      base = this.dmaNext;
      if (base + pages * PAGE_SIZE > this.board.memory.ram.length) throw new RangeError("out of DMA memory");
      this.dmaNext += pages * PAGE_SIZE;
    }
    const bytes = this.board.memory.ram.subarray(base, base + pages * PAGE_SIZE);
    bytes.fill(0);
    return { bytes: bytes.subarray(0, length), busAddress: base };
  }

  dmaFree(region: DmaRegion): void {
    this.dmaFreeList.push({ base: region.busAddress, pages: Math.max(1, Math.ceil(region.bytes.length / PAGE_SIZE)) });
  }

  dmaMap(buffer: Uint8Array, _direction: DmaDirection): DmaSegment[] | undefined {
    const at = this.board.memory.addressOf(buffer);
    return at === undefined ? undefined : [{ busAddress: at, length: buffer.length }];
  }

  dmaUnmap(_segments: DmaSegment[]): void {}

  log(message: string): void {
    this.logLines.push(message);
    this.onLog?.(message);
  }

  /** A device's location as text, for logs. */
  static describe(d: PciDeviceInfo): string {
    return `${formatBdf(d.address)} [${d.vendorId.toString(16).padStart(4, "0")}:${d.deviceId.toString(16).padStart(4, "0")}]`;
  }
}
