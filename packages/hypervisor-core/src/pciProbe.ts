/**
 * PCI probing through configuration mechanism #1 [PCI Local Bus Spec 3.0 §3.2.2.3.2]:
 * CONFIG_ADDRESS at port 0xCF8 (enable bit 31, bus 23:16, device 15:11, function 10:8,
 * register 7:2), CONFIG_DATA at 0xCFC-0xCFF. BARs are sized by writing all ones with decoding
 * off [PCI 3.0 §6.2.5.1]; unassigned BARs get addresses from the hypervisor's windows.
 */
import { PCI_COMMAND, PCI_CONFIG, type AccessSize, type IoBus, type PciAddress, type PciDeviceInfo } from "@paravirt/vm-interfaces";

/** Mechanism #1 ports [PCI 3.0 §3.2.2.3.2]. */
export const PCI_CONF1 = {
  ADDRESS_PORT: 0xcf8,
  DATA_PORT: 0xcfc,
  ENABLE: 0x80000000,
} as const;

/** CONFIG_ADDRESS value for `offset` (dword-aligned) of `a`. */
export function configAddress(a: PciAddress, offset: number): number {
  return (PCI_CONF1.ENABLE | (a.bus << 16) | (a.device << 11) | (a.function << 8) | (offset & 0xfc)) >>> 0;
}

/** Decodes a CONFIG_ADDRESS value; `undefined` when the enable bit is clear. */
export function decodeConfigAddress(v: number): { address: PciAddress; register: number } | undefined {
  if ((v & PCI_CONF1.ENABLE) === 0) return undefined;
  return {
    address: { bus: (v >>> 16) & 0xff, device: (v >>> 11) & 0x1f, function: (v >>> 8) & 7 },
    register: v & 0xfc,
  };
}

/** Configuration-space access through ports 0xCF8/0xCFC of a port bus. */
export class PciConfigMechanism1 {
  private readonly ports: IoBus;

  constructor(ports: IoBus) {
    this.ports = ports;
  }

  read(a: PciAddress, offset: number, size: AccessSize): number {
    this.ports.write(PCI_CONF1.ADDRESS_PORT, 4, configAddress(a, offset));
    return this.ports.read(PCI_CONF1.DATA_PORT + (offset & 3), size);
  }

  write(a: PciAddress, offset: number, size: AccessSize, value: number): void {
    this.ports.write(PCI_CONF1.ADDRESS_PORT, 4, configAddress(a, offset));
    this.ports.write(PCI_CONF1.DATA_PORT + (offset & 3), size, value);
  }
}

export interface ProbeOptions {
  /** Buses to scan (default 1: bus 0). */
  buses?: number;
  /** Where unassigned I/O BARs go (default 0xC000-0xFFFF). */
  ioWindow?: { base: number; limit: number };
  /** Where unassigned memory BARs go (default 0xE0000000-0xFEBFFFFF). */
  mmioWindow?: { base: number; limit: number };
  /** IRQ for a function's INTx pin (1 = INTA#); default: its INTERRUPT_LINE register if set. */
  irqFor?: (address: PciAddress, pin: number) => number | undefined;
}

/** Enumerates every function, sizes and (if needed) assigns its BARs, and routes its IRQ. */
export function probePci(cfg: PciConfigMechanism1, options: ProbeOptions = {}): PciDeviceInfo[] {
  const found: PciDeviceInfo[] = [];
  let io = options.ioWindow?.base ?? 0xc000;
  const ioLimit = options.ioWindow?.limit ?? 0xffff;
  let mem = options.mmioWindow?.base ?? 0xe0000000;
  const memLimit = options.mmioWindow?.limit ?? 0xfebfffff;
  for (let bus = 0; bus < (options.buses ?? 1); bus++) {
    for (let device = 0; device < 32; device++) {
      for (let fn = 0; fn < 8; fn++) {
        const address: PciAddress = { bus, device, function: fn };
        const vendorId = cfg.read(address, PCI_CONFIG.VENDOR_ID, 2);
        if (vendorId === 0xffff) {
          if (fn === 0) break;
          continue;
        }
        const deviceId = cfg.read(address, PCI_CONFIG.DEVICE_ID, 2);
        const classCode = cfg.read(address, PCI_CONFIG.REVISION_ID, 4) >>> 8;
        const headerType = cfg.read(address, PCI_CONFIG.HEADER_TYPE, 1);
        const command = cfg.read(address, PCI_CONFIG.COMMAND, 2);
        cfg.write(address, PCI_CONFIG.COMMAND, 2, command & ~(PCI_COMMAND.IO | PCI_COMMAND.MEMORY));
        const bars: ({ kind: "io" | "mem32"; base: number; size: number } | undefined)[] = [];
        let enable = 0;
        for (let i = 0; i < 6; i++) {
          const off = PCI_CONFIG.BAR0 + i * 4;
          const orig = cfg.read(address, off, 4);
          cfg.write(address, off, 4, 0xffffffff);
          const probe = cfg.read(address, off, 4);
          cfg.write(address, off, 4, orig);
          if (probe === 0 || probe === 0xffffffff) {
            bars.push(undefined);
            continue;
          }
          const isIo = (probe & 1) !== 0;
          const size = isIo ? (~(probe & 0xfffffffc) + 1) & 0xffff : (~(probe & 0xfffffff0) + 1) >>> 0;
          let base = (orig & (isIo ? 0xfffffffc : 0xfffffff0)) >>> 0;
          if (base === 0) {
            // Assign from the window, naturally aligned.
            const cursor = isIo ? io : mem;
            const aligned = Math.ceil(cursor / size) * size;
            if (aligned + size - 1 <= (isIo ? ioLimit : memLimit)) {
              base = aligned;
              cfg.write(address, off, 4, (base | (orig & (isIo ? 0x3 : 0xf))) >>> 0);
              if (isIo) io = aligned + size;
              else mem = aligned + size;
            }
          }
          if (base === 0) {
            bars.push(undefined);
            continue;
          }
          enable |= isIo ? PCI_COMMAND.IO : PCI_COMMAND.MEMORY;
          bars.push({ kind: isIo ? "io" : "mem32", base, size });
          // A 64-bit memory BAR uses the next slot too; it is not supported by our 32-bit machine.
          if (!isIo && (probe & 0x6) === 0x4) {
            bars.push(undefined);
            i++;
          }
        }
        cfg.write(address, PCI_CONFIG.COMMAND, 2, command | enable);
        const pin = cfg.read(address, PCI_CONFIG.INTERRUPT_PIN, 1);
        let irq: number | undefined;
        if (pin !== 0) {
          const line = cfg.read(address, PCI_CONFIG.INTERRUPT_LINE, 1);
          irq = options.irqFor?.(address, pin) ?? (line !== 0 && line !== 0xff ? line : undefined);
          if (irq !== undefined) cfg.write(address, PCI_CONFIG.INTERRUPT_LINE, 1, irq);
        }
        found.push({ address, vendorId, deviceId, classCode, bars, irq });
        if (fn === 0 && (headerType & 0x80) === 0) break;
      }
    }
  }
  return found;
}

/** "bb:dd.f" */
export function formatBdf(a: PciAddress): string {
  const h = (n: number, w: number) => n.toString(16).padStart(w, "0");
  return `${h(a.bus, 2)}:${h(a.device, 2)}.${a.function}`;
}

export function sameAddress(a: PciAddress, b: PciAddress): boolean {
  return a.bus === b.bus && a.device === b.device && a.function === b.function;
}
