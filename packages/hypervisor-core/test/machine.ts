/**
 * Test fixtures: a minimal PCI host bridge on ports 0xCF8/0xCFC (mechanism #1) that maps BARs
 * on the port and MMIO buses, and a fake PCI device that counts every access it sees.
 */
import { IoBus, IrqRouter, PciConfigSpace, type AccessSize, type IoDevice, type IrqLine, type PciAddress } from "@paravirt/vm-interfaces";

export class TestHostBridge {
  private addr = 0;
  private readonly fns = new Map<number, PciConfigSpace>();
  private readonly ports: IoBus;
  private readonly mmio: IoBus;

  constructor(ports: IoBus, mmio: IoBus) {
    this.ports = ports;
    this.mmio = mmio;
    ports.register({ base: 0xcf8, length: 4 }, { accessSizes: [4], read: () => this.addr, write: (_o, _s, v) => (this.addr = v >>> 0) }, "cf8");
    ports.register(
      { base: 0xcfc, length: 4 },
      {
        read: (o, s) => {
          const f = this.current();
          return f === undefined ? (s === 4 ? 0xffffffff : (1 << (s * 8)) - 1) : f.configRead((this.addr & 0xfc) + o, s);
        },
        write: (o, s, v) => this.current()?.configWrite((this.addr & 0xfc) + o, s, v),
      },
      "cfc",
    );
  }

  private current(): PciConfigSpace | undefined {
    if ((this.addr & 0x80000000) === 0) return undefined;
    return this.fns.get((this.addr >>> 8) & 0xffff);
  }

  attach(a: PciAddress, fn: PciConfigSpace): void {
    this.fns.set((a.bus << 8) | (a.device << 3) | a.function, fn);
    const mapped = new Map<number, number>();
    const remap = () => {
      fn.bars.forEach((bar, i) => {
        if (bar === undefined) return;
        const bus = bar.kind === "io" ? this.ports : this.mmio;
        const old = mapped.get(i);
        const now = fn.barAddress(i);
        if (old === now) return;
        if (old !== undefined) bus.unregister(old, bar.device);
        mapped.delete(i);
        if (now !== undefined) {
          bus.register({ base: now, length: bar.size }, bar.device, `bar${i}`);
          mapped.set(i, now);
        }
      });
    };
    fn.onDecodeChange(remap);
    remap();
  }
}

/** A device with a 32-byte I/O BAR0, a 4 KiB MMIO BAR1 and INTA#; counts accesses. */
export class CountingDevice {
  readonly config: PciConfigSpace;
  accesses = 0;
  readonly regs = new Uint32Array(1024);
  irq: IrqLine | undefined;

  constructor(vendorId: number, deviceId: number) {
    this.config = new PciConfigSpace({ vendorId, deviceId, classCode: 0x020000, interruptPin: 1 });
    const dev: IoDevice = {
      read: (o: number, _s: AccessSize) => {
        this.accesses++;
        return this.regs[o >> 2]!;
      },
      write: (o: number, _s: AccessSize, v: number) => {
        this.accesses++;
        this.regs[o >> 2] = v;
      },
    };
    this.config.setBar(0, { kind: "io", size: 32, device: dev });
    this.config.setBar(1, { kind: "mem32", size: 4096, device: dev });
  }
}

export interface TestMachine {
  ports: IoBus;
  mmio: IoBus;
  irqs: IrqRouter;
  bridge: TestHostBridge;
  nic: CountingDevice;
  disk: CountingDevice;
}

/** Two devices: a "nic" at 00:03.0 (irq 11) and a "disk" at 00:04.0 (irq 10). */
export function testMachine(): TestMachine {
  const ports = new IoBus(0x10000);
  const mmio = new IoBus(2 ** 32);
  const irqs = new IrqRouter();
  const bridge = new TestHostBridge(ports, mmio);
  const nic = new CountingDevice(0x8086, 0x100e);
  const disk = new CountingDevice(0x1234, 0x0001);
  bridge.attach({ bus: 0, device: 3, function: 0 }, nic.config);
  bridge.attach({ bus: 0, device: 4, function: 0 }, disk.config);
  nic.irq = irqs.line(11);
  disk.irq = irqs.line(10);
  return { ports, mmio, irqs, bridge, nic, disk };
}

/** IRQ routing used by the tests: device 3 → 11, device 4 → 10. */
export const irqFor = (a: PciAddress) => (a.device === 3 ? 11 : a.device === 4 ? 10 : undefined);
