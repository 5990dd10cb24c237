/**
 * What a PC BIOS does to PCI before an OS runs: size every BAR (write all ones, read back
 * [PCI 3.0 §6.2.5.1]), give it a naturally aligned address (I/O from 0xC000, memory from
 * 0xF0000000), enable decoding and bus mastering, and write the routed IRQ into
 * INTERRUPT_LINE. Done through configuration mechanism #1, as firmware would.
 */
import { PCI_COMMAND, PCI_CONFIG, type AccessSize, type IoBus, type PciAddress } from "@paravirt/vm-interfaces";
import type { PciDeviceInfo } from "@paravirt/vm-interfaces";
import { PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT } from "./pciHost.ts";

/** Config access through ports 0xCF8/0xCFC. */
export function configRead(ports: IoBus, a: PciAddress, offset: number, size: AccessSize): number {
  ports.write(PCI_CONFIG_ADDRESS_PORT, 4, (0x80000000 | (a.bus << 16) | (a.device << 11) | (a.function << 8) | (offset & 0xfc)) >>> 0);
  return ports.read(PCI_CONFIG_DATA_PORT + (offset & 3), size);
}

export function configWrite(ports: IoBus, a: PciAddress, offset: number, size: AccessSize, value: number): void {
  ports.write(PCI_CONFIG_ADDRESS_PORT, 4, (0x80000000 | (a.bus << 16) | (a.device << 11) | (a.function << 8) | (offset & 0xfc)) >>> 0);
  ports.write(PCI_CONFIG_DATA_PORT + (offset & 3), size, value);
}

export interface FirmwareOptions {
  /** INTx routing: the IRQ for a device's pin. Default: PIIX-style swizzle onto IRQs 10, 11, 10, 11. */
  routeIrq?(address: PciAddress, pin: number): number | undefined;
  ioBase?: number;
  memBase?: number;
}

const defaultRoute = (a: PciAddress, pin: number): number => [10, 11, 10, 11][(a.device + pin - 1) & 3]!;

/**
 * Scans bus 0, assigns resources to every function found, and returns what it found, as the
 * probing code of an OS or hypervisor will see it.
 */
export function assignPciResources(ports: IoBus, options: FirmwareOptions = {}): PciDeviceInfo[] {
  let io = options.ioBase ?? 0xc000;
  let mem = options.memBase ?? 0xf000_0000;
  const route = options.routeIrq ?? defaultRoute;
  const found: PciDeviceInfo[] = [];
  for (let device = 0; device < 32; device++) {
    for (let fn = 0; fn < 8; fn++) {
      const address = { bus: 0, device, function: fn };
      const id = configRead(ports, address, PCI_CONFIG.VENDOR_ID, 4);
      if ((id & 0xffff) === 0xffff) {
        if (fn === 0) break;
        continue;
      }
      const bars: PciDeviceInfo["bars"][number][] = [];
      for (let i = 0; i < 6; i++) {
        const off = PCI_CONFIG.BAR0 + 4 * i;
        const orig = configRead(ports, address, off, 4);
        configWrite(ports, address, off, 4, 0xffffffff);
        const probe = configRead(ports, address, off, 4);
        if (probe === 0 || probe === 0xffffffff) {
          configWrite(ports, address, off, 4, orig);
          bars.push(undefined);
          continue;
        }
        const isIo = (probe & 1) === 1;
        const size = (~(probe & (isIo ? 0xfffffffc : 0xfffffff0)) + 1) >>> 0;
        let base: number;
        if (isIo) {
          base = Math.ceil(io / size) * size;
          io = base + size;
        } else {
          base = Math.ceil(mem / size) * size;
          mem = base + size;
        }
        configWrite(ports, address, off, 4, base);
        bars.push({ kind: isIo ? "io" : "mem32", base, size });
      }
      const pin = configRead(ports, address, PCI_CONFIG.INTERRUPT_PIN, 1);
      const irq = pin >= 1 && pin <= 4 ? route(address, pin) : undefined;
      if (irq !== undefined) configWrite(ports, address, PCI_CONFIG.INTERRUPT_LINE, 1, irq);
      const cmd = configRead(ports, address, PCI_CONFIG.COMMAND, 2);
      configWrite(ports, address, PCI_CONFIG.COMMAND, 2, cmd | PCI_COMMAND.IO | PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER);
      const classRev = configRead(ports, address, 0x08, 4);
      found.push({ address, vendorId: id & 0xffff, deviceId: id >>> 16, classCode: classRev >>> 8, bars, irq });
      const header = configRead(ports, address, PCI_CONFIG.HEADER_TYPE, 1);
      if (fn === 0 && (header & 0x80) === 0) break; // single-function device
    }
  }
  return found;
}
