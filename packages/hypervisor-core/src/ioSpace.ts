/**
 * A domain's I/O space: the port ranges, MMIO ranges and IRQs the hypervisor has granted it
 * (Xen's `ioport_caps`, `iomem_caps` and `irq_caps` rangesets, xen/include/xen/iocap.h).
 * Anything outside is refused.
 */

export interface IoRangeGrant {
  readonly base: number;
  readonly length: number;
}

export class IoSpace {
  private readonly ports: IoRangeGrant[] = [];
  private readonly mmio: IoRangeGrant[] = [];
  private readonly irqs = new Set<number>();

  allowPorts(base: number, length: number): void {
    this.ports.push({ base, length });
  }
  allowMmio(base: number, length: number): void {
    this.mmio.push({ base, length });
  }
  allowIrq(irq: number): void {
    this.irqs.add(irq);
  }
  denyPorts(base: number, length: number): void {
    remove(this.ports, base, length);
  }
  denyMmio(base: number, length: number): void {
    remove(this.mmio, base, length);
  }
  denyIrq(irq: number): void {
    this.irqs.delete(irq);
  }

  /** Whether every byte of `[port, port + size)` is granted (`ioports_access_permitted`). */
  portsPermitted(port: number, size: number): boolean {
    return covered(this.ports, port, size);
  }
  /** Whether every byte of `[addr, addr + length)` is granted (`iomem_access_permitted`). */
  mmioPermitted(addr: number, length: number): boolean {
    return covered(this.mmio, addr, length);
  }
  /** `irq_access_permitted`. */
  irqPermitted(irq: number): boolean {
    return this.irqs.has(irq);
  }

  clear(): void {
    this.ports.length = 0;
    this.mmio.length = 0;
    this.irqs.clear();
  }

  /** What is granted, for inspection. */
  snapshot(): { ports: IoRangeGrant[]; mmio: IoRangeGrant[]; irqs: number[] } {
    return { ports: [...this.ports], mmio: [...this.mmio], irqs: [...this.irqs].sort((a, b) => a - b) };
  }
}

function covered(ranges: readonly IoRangeGrant[], base: number, length: number): boolean {
  if (!(length > 0) || base < 0) return false;
  for (const r of ranges) if (base >= r.base && base + length <= r.base + r.length) return true;
  return false;
}

function remove(ranges: IoRangeGrant[], base: number, length: number): void {
  for (let i = ranges.length - 1; i >= 0; i--) {
    const r = ranges[i]!;
    if (r.base === base && r.length === length) ranges.splice(i, 1);
  }
}
