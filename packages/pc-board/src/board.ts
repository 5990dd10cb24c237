/**
 * A PC-style board: RAM + MMIO address space, the 64 KiB port bus, a PCI host bridge on
 * bus 0, IRQ lines (ORed per line), and a virtual clock. Device models are plugged in by
 * whoever composes the machine; `boot()` runs the firmware's PCI resource assignment.
 */
import { IoBus, IrqRouter, PciConfigSpace, VirtualClock, type IrqLine, type PciAddress, type PciDeviceInfo, type PciFunction } from "@paravirt/vm-interfaces";
import { PhysicalAddressSpace } from "./physicalAddressSpace.ts";
import { PciHostBridge } from "./pciHost.ts";
import { assignPciResources, type FirmwareOptions } from "./firmware.ts";
import { HostIoTracker } from "./hostIo.ts";
import { runUntil, type RunOptions } from "./eventLoop.ts";

export interface PcBoardOptions {
  /** RAM in bytes (default 64 MiB). */
  ramBytes?: number;
  /** Use this buffer as RAM instead (e.g. a hypervisor's machine memory); overrides `ramBytes`. */
  ram?: ArrayBuffer;
  /** Buses and IRQ router to build on, when something else (a hypervisor) already owns them. */
  ports?: IoBus;
  mmio?: IoBus;
  irqs?: IrqRouter;
  clock?: VirtualClock;
  /**
   * Plug the i440FX chipset's own functions, as on the PC QEMU models: the host bridge at
   * 00:00.0 (8086:1237) and the PIIX3 ISA bridge at 00:01.0 (8086:7000, multi-function, so
   * the PIIX IDE function can sit at 00:01.1). Default true.
   */
  chipset?: boolean;
  /** INTx wiring: the IRQ a device's pin (1 = INTA#) reaches. Default: PIIX-style swizzle onto 10, 11, 10, 11. */
  routeIrq?(address: PciAddress, pin: number): number | undefined;
}

/** PIIX-style INTx swizzle onto IRQs 10, 11, 10, 11. */
export function defaultIrqRoute(address: PciAddress, pin: number): number {
  return [10, 11, 10, 11][(address.device + pin - 1) & 3]!;
}

export class PcBoard {
  readonly clock: VirtualClock;
  readonly memory: PhysicalAddressSpace;
  readonly ports: IoBus;
  readonly irqs: IrqRouter;
  readonly pci: PciHostBridge;
  /** Host I/O of this machine's backends (wrap them with `trackBlockDevice`). */
  readonly hostIo = new HostIoTracker();
  /** PCI functions as firmware found and configured them (after `boot()`). */
  devices: PciDeviceInfo[] = [];
  /** The board's INTx wiring, which firmware reports in INTERRUPT_LINE. */
  readonly routeIrq: (address: PciAddress, pin: number) => number | undefined;

  constructor(options: PcBoardOptions = {}) {
    this.clock = options.clock ?? new VirtualClock();
    this.ports = options.ports ?? new IoBus(0x10000);
    this.irqs = options.irqs ?? new IrqRouter();
    this.memory = new PhysicalAddressSpace(options.ram ?? options.ramBytes ?? 64 * 1024 * 1024, options.mmio);
    this.pci = new PciHostBridge(this.ports, this.memory);
    this.routeIrq = options.routeIrq ?? defaultIrqRoute;
    if (options.chipset ?? true) {
      // [i440FX datasheet §3.2; PIIX3 datasheet §2.2]: class 06:00 host bridge, 06:01 ISA bridge.
      this.pci.attach({ bus: 0, device: 0, function: 0 }, new PciConfigSpace({ vendorId: 0x8086, deviceId: 0x1237, classCode: 0x060000, revision: 2 }));
      this.pci.attach({ bus: 0, device: 1, function: 0 }, new PciConfigSpace({ vendorId: 0x8086, deviceId: 0x7000, classCode: 0x060100, headerType: 0x80 }));
    }
  }

  /** The IRQ line wired to INTx pin `pin` (1 = INTA#) of PCI device `device` on bus 0. */
  intxLine(device: number, pin = 1): IrqLine {
    const irq = this.routeIrq({ bus: 0, device, function: 0 }, pin);
    if (irq === undefined) throw new RangeError(`device ${device} pin ${pin} is not wired`);
    return this.irqs.line(irq);
  }

  /** An input on IRQ line `n` for a device to drive. */
  irqLine(n: number): IrqLine {
    return this.irqs.line(n);
  }

  /** Plugs a PCI function into bus 0 at `device`.`fn`. */
  plugPci(device: number, fn: PciFunction, func = 0): PciAddress {
    const address = { bus: 0, device, function: func };
    this.pci.attach(address, fn);
    return address;
  }

  /** Runs the machine (virtual time + host I/O) until `done()`; see {@link runUntil}. */
  run(done: () => boolean, options: RunOptions = {}): Promise<void> {
    return runUntil(this.clock, done, { hostBusy: () => this.hostIo.inFlight > 0, ...options });
  }

  /** Firmware: assigns BARs and IRQs to every PCI function; returns (and keeps) the device list. */
  boot(options: FirmwareOptions = {}): PciDeviceInfo[] {
    this.devices = assignPciResources(this.ports, { routeIrq: this.routeIrq, ...options });
    return this.devices;
  }
}
