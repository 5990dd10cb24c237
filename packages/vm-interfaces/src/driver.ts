/**
 * The driver platform: everything a vanilla device driver (driver-ata, driver-e1000) may touch.
 *
 * The same driver source runs on bare metal, where these calls reach the machine directly
 * (physical address = bus address), and in a privileged Xen domain, where they go through the
 * hypervisor's I/O-space checks, pirq event channels and the domain's P2M map. Vocabulary is
 * Linux's (`inb`, `ioremap`, `readl`, `request_irq`, `dma_map`), because that is what
 * "unmodified driver" meant in Xen 2.0.
 */
import type { PciAddress } from "./pci.ts";
import type { TimerQueue } from "./clock.ts";

/** A PCI function found by probing, with its BARs as assigned by firmware or the hypervisor. */
export interface PciDeviceInfo {
  readonly address: PciAddress;
  readonly vendorId: number;
  readonly deviceId: number;
  /** class << 16 | subclass << 8 | prog-if */
  readonly classCode: number;
  /** BAR0..BAR5 as decoded (`undefined` where unimplemented or unassigned). */
  readonly bars: readonly ({ readonly kind: "io" | "mem32"; readonly base: number; readonly size: number } | undefined)[];
  /** The legacy IRQ the function's INTx pin is routed to, if any. */
  readonly irq: number | undefined;
}

/** A mapped MMIO window (`ioremap`); offsets are from its base. */
export interface MmioWindow {
  readb(offset: number): number;
  readw(offset: number): number;
  readl(offset: number): number;
  writeb(offset: number, value: number): void;
  writew(offset: number, value: number): void;
  writel(offset: number, value: number): void;
}

/** Coherent DMA memory (`dma_alloc_coherent`): CPU view and the bus address the device uses. */
export interface DmaRegion {
  readonly bytes: Uint8Array;
  readonly busAddress: number;
}

/** A piece of a streaming DMA mapping: one bus-contiguous run. */
export interface DmaSegment {
  readonly busAddress: number;
  readonly length: number;
}

/** Which way a streaming mapping's data moves. */
export type DmaDirection = "to-device" | "from-device" | "bidirectional";

/** A registered interrupt handler (`request_irq`). */
export interface IrqRegistration {
  /** `free_irq`. */
  release(): void;
}

/**
 * What a driver sees of its machine.
 *
 * **Guest-visible behaviour:** in a Xen domain, port and MMIO accesses outside the domain's
 * I/O space are refused (reads return all ones, writes are dropped) and logged by the
 * hypervisor; they never reach a device.
 */
export interface DriverPlatform {
  /** Short description of where the driver runs ("bare metal", "xen dom0", ...). */
  readonly name: string;
  /** PCI functions visible to this driver, optionally filtered by vendor/device id. */
  pciDevices(filter?: { vendorId: number; deviceId?: number }): PciDeviceInfo[];
  pciConfigRead(dev: PciAddress, offset: number, size: 1 | 2 | 4): number;
  pciConfigWrite(dev: PciAddress, offset: number, size: 1 | 2 | 4, value: number): void;

  inb(port: number): number;
  inw(port: number): number;
  inl(port: number): number;
  outb(port: number, value: number): void;
  outw(port: number, value: number): void;
  outl(port: number, value: number): void;

  /** Maps `length` bytes of MMIO at physical `base`. **Errors:** throws when outside the I/O space. */
  ioremap(base: number, length: number): MmioWindow;

  /**
   * Calls `handler` for each interrupt on line `irq`. The line is acknowledged (EOI) when the
   * handler returns, so a level-triggered device must have deasserted it by then.
   * **Errors:** throws when the IRQ is not the driver's to take.
   */
  requestIrq(irq: number, handler: () => void): IrqRegistration;

  /** Allocates zeroed, physically contiguous, coherent DMA memory. */
  dmaAlloc(length: number): DmaRegion;
  dmaFree(region: DmaRegion): void;
  /**
   * Streaming mapping of a buffer the driver was handed (a block request's pages, a frame):
   * the bus segments that cover it, in order. `undefined` when the buffer is not DMA-able
   * memory (then the driver bounces through a {@link DmaRegion}). This is the zero-copy path
   * for grant-mapped pages.
   */
  dmaMap(buffer: Uint8Array, direction: DmaDirection): DmaSegment[] | undefined;
  dmaUnmap(segments: DmaSegment[]): void;

  /** Virtual time, for timeouts and delays. */
  readonly timers: TimerQueue;
  /** Driver log line. */
  log(message: string): void;
}
