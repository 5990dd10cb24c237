/**
 * A PCI host bridge on bus 0 with configuration mechanism #1 [PCI 3.0 §3.2.2.3.2]: a 32-bit
 * CONFIG_ADDRESS at port 0xCF8 (enable bit 31, bus 23:16, device 15:11, function 10:8,
 * register 7:2) and CONFIG_DATA at 0xCFC-0xCFF. Functions' BARs are mapped on the port or
 * MMIO bus wherever their configuration space says they decode, and moved when it changes.
 */
import type { AccessSize, IoBus, IoDevice, PciAddress, PciFunction } from "@paravirt/vm-interfaces";
import type { PhysicalAddressSpace } from "./physicalAddressSpace.ts";

export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
export const PCI_CONFIG_DATA_PORT = 0xcfc;

interface Slot {
  readonly address: PciAddress;
  readonly fn: PciFunction;
  /** BAR index → where it is mapped now. */
  readonly mapped: Map<number, { base: number; kind: "io" | "mem32" }>;
}

function key(a: PciAddress): number {
  return (a.bus << 8) | (a.device << 3) | a.function;
}

export class PciHostBridge {
  private configAddress = 0;
  private readonly slots = new Map<number, Slot>();
  private readonly ports: IoBus;
  private readonly memory: PhysicalAddressSpace;

  constructor(ports: IoBus, memory: PhysicalAddressSpace) {
    this.ports = ports;
    this.memory = memory;
    const address: IoDevice = {
      accessSizes: [4],
      read: () => this.configAddress,
      write: (_o, _s, v) => {
        this.configAddress = v >>> 0;
      },
    };
    const data: IoDevice = {
      read: (offset, size) => this.dataRead(offset, size),
      write: (offset, size, value) => this.dataWrite(offset, size, value),
    };
    ports.register({ base: PCI_CONFIG_ADDRESS_PORT, length: 4 }, address, "pci-config-address");
    ports.register({ base: PCI_CONFIG_DATA_PORT, length: 4 }, data, "pci-config-data");
  }

  /** Plugs `fn` in at `address` (bus 0). **Errors:** RangeError when the slot is taken. */
  attach(address: PciAddress, fn: PciFunction): void {
    const k = key(address);
    if (this.slots.has(k)) throw new RangeError(`PCI ${formatBdf(address)} is already populated`);
    const slot: Slot = { address, fn, mapped: new Map() };
    this.slots.set(k, slot);
    fn.onDecodeChange(() => this.remap(slot));
    this.remap(slot);
  }

  /** Every populated function, in bus/device/function order. */
  functions(): { address: PciAddress; fn: PciFunction }[] {
    return [...this.slots.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => ({ address: s.address, fn: s.fn }));
  }

  /** Direct configuration access (what a checked hypervisor interface ends up calling). */
  configRead(address: PciAddress, offset: number, size: AccessSize): number {
    const s = this.slots.get(key(address));
    if (s === undefined) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    return s.fn.configRead(offset, size);
  }

  configWrite(address: PciAddress, offset: number, size: AccessSize, value: number): void {
    this.slots.get(key(address))?.fn.configWrite(offset, size, value);
  }

  private decode(): { address: PciAddress; register: number } | undefined {
    const a = this.configAddress;
    if ((a & 0x80000000) === 0) return undefined;
    return {
      address: { bus: (a >>> 16) & 0xff, device: (a >>> 11) & 0x1f, function: (a >>> 8) & 0x7 },
      register: a & 0xfc,
    };
  }

  private dataRead(offset: number, size: AccessSize): number {
    const d = this.decode();
    if (d === undefined) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    return this.configRead(d.address, d.register + offset, size);
  }

  private dataWrite(offset: number, size: AccessSize, value: number): void {
    const d = this.decode();
    if (d !== undefined) this.configWrite(d.address, d.register + offset, size, value);
  }

  private remap(slot: Slot): void {
    slot.fn.bars.forEach((bar, i) => {
      if (bar === undefined) return;
      const want = slot.fn.barAddress(i);
      const have = slot.mapped.get(i);
      if (have !== undefined && have.base === want) return;
      if (have !== undefined) {
        if (have.kind === "io") this.ports.unregister(have.base, bar.device);
        else this.memory.unmapMmio(have.base, bar.device);
        slot.mapped.delete(i);
      }
      if (want === undefined) return;
      const name = `${formatBdf(slot.address)} BAR${i}`;
      try {
        if (bar.kind === "io") this.ports.register({ base: want, length: bar.size }, bar.device, name);
        else this.memory.mapMmio({ base: want, length: bar.size }, bar.device, name);
        slot.mapped.set(i, { base: want, kind: bar.kind });
      } catch {
        // A BAR programmed over another claim does not decode (as a real conflict would
        // misbehave); it stays unmapped until moved somewhere free.
      }
    });
  }
}

/** `bb:dd.f` */
export function formatBdf(a: PciAddress): string {
  return `${a.bus.toString(16).padStart(2, "0")}:${a.device.toString(16).padStart(2, "0")}.${a.function}`;
}
