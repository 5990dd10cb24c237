/**
 * The same driver, unchanged, in a Xen network driver domain: the NIC is probed by the
 * hypervisor and assigned to "drv-net"; the driver reaches it through the domain's checked
 * I/O space, its interrupt arrives as a pirq event channel, and its DMA uses machine
 * addresses of the domain's own (contiguous) pages.
 */
import { describe, expect, it } from "vitest";
import { E1000PciFunction } from "@paravirt/hw-e1000";
import { Hypervisor, type NativeDomain } from "@paravirt/hypervisor-core";
import { PciHostBridge, PhysicalAddressSpace } from "@paravirt/pc-board";
import { IoBus, IrqRouter, cable, type DriverPlatform } from "@paravirt/vm-interfaces";
import { probeE1000, type E1000ProbeResult } from "../src/index.ts";
import { NIC_MAC, PEER_MAC, seqFrame, seqOf } from "./machine.ts";

const NIC_IRQ = 11;

function xenMachine() {
  const ports = new IoBus(0x10000);
  // Only the MMIO routing of this address space is used (a page of unused "RAM" below it):
  // machine memory is the hypervisor's.
  const mmioSpace = new PhysicalAddressSpace(4096);
  const bridge = new PciHostBridge(ports, mmioSpace);
  const irqs = new IrqRouter();
  const hv = new Hypervisor({
    memoryFrames: 4096,
    ports,
    mmio: mmioSpace.mmio,
    irqs,
    probe: { irqFor: (a) => (a.device === 3 ? NIC_IRQ : undefined) },
    assignments: [{ device: { vendorId: 0x8086, deviceId: 0x100e }, domain: "drv-net" }],
  });
  const [nicEnd, wire] = cable();
  const onWire: Uint8Array[] = [];
  wire.onReceive((f) => onWire.push(f));
  const fn = new E1000PciFunction({ memory: hv.memory, irq: irqs.line(NIC_IRQ), clock: hv.clock, mac: NIC_MAC, port: nicEnd });
  bridge.attach({ bus: 0, device: 3, function: 0 }, fn);
  hv.probePci();
  const drv: NativeDomain = hv.createNativeDomain({ name: "drv-net", privileged: true, memoryPages: 512 });
  const other = hv.createNativeDomain({ name: "domU", memoryPages: 64 });
  return { hv, drv, other, fn, wire, onWire, irqs, platform: drv.driverPlatform() };
}

/** Runs the hypervisor in slices, letting promise continuations run in between. */
async function runUntil(hv: Hypervisor, done: () => boolean, limitNs = 30e9): Promise<void> {
  const end = hv.clock.now() + limitNs;
  while (!done()) {
    if (hv.clock.now() >= end) throw new Error(`condition unmet after ${limitNs} ns`);
    const next = hv.clock.nextDeadline();
    hv.run(Math.min(end, Math.max(hv.clock.now() + 100_000, next ?? 0)));
    await new Promise<void>((r) => setImmediate(r));
  }
}

describe("in a Xen driver domain", () => {
  it("probes, sends and receives through the domain's checked I/O space, pirq and machine-address DMA", async () => {
    const x = xenMachine();
    let probe: E1000ProbeResult | undefined;
    x.drv.post(() => {
      void probeE1000(x.platform, { txRingSize: 32, rxRingSize: 32 }).then((r) => (probe = r));
    });
    await runUntil(x.hv, () => probe !== undefined);
    expect(probe!.failed).toEqual([]);
    const nic = probe!.nics[0]!;
    expect(Array.from(nic.mac)).toEqual(Array.from(NIC_MAC));
    expect(nic.linkUp).toBe(true);

    const got: Uint8Array[] = [];
    nic.onReceive((f) => got.push(f));
    x.drv.post(() => {
      for (let i = 0; i < 100; i++) nic.send(seqFrame(i, 60 + i * 13, PEER_MAC, NIC_MAC));
    });
    for (let i = 0; i < 100; i++) x.hv.clock.schedule(x.hv.clock.now() + (i + 1) * 2000, () => x.wire.send(seqFrame(1000 + i, 64 + i, NIC_MAC, PEER_MAC)));
    await runUntil(x.hv, () => x.onWire.length === 100 && got.length === 100 && nic.txBacklog.inFlight === 0);
    expect(x.onWire.map(seqOf)).toEqual([...Array(100).keys()]);
    expect(got.map(seqOf)).toEqual([...Array(100).keys()].map((i) => 1000 + i));
    expect(got.every((f, i) => f.length === 64 + i)).toBe(true);
    const s = nic.statistics();
    expect(s.interrupts).toBeGreaterThan(0);
    expect(s.hw.goodPacketsRx).toBe(100);
    expect(x.irqs.level(NIC_IRQ)).toBe(false);
    // Nothing the driver did was refused.
    expect(x.drv.record.violations).toBe(0);
    expect(x.hv.logLines.filter((l) => l.includes("refused"))).toEqual([]);
  });

  it("zero-copy transmit from the domain's own pages; a foreign page is refused by dmaMap and bounced", async () => {
    const x = xenMachine();
    let probe: E1000ProbeResult | undefined;
    x.drv.post(() => void probeE1000(x.platform, { txRingSize: 32, rxRingSize: 32 }).then((r) => (probe = r)));
    await runUntil(x.hv, () => probe !== undefined);
    const nic = probe!.nics[0]!;
    const mine = x.platform.dmaAlloc(4096);
    mine.bytes.set(seqFrame(5, 500, PEER_MAC, NIC_MAC));
    // A page of another domain, seen through machine memory: the hypervisor must not let the
    // NIC DMA from it on drv-net's behalf.
    const foreignPlatform: DriverPlatform = x.other.driverPlatform();
    let foreign: Uint8Array | undefined;
    try {
      foreign = foreignPlatform.dmaAlloc(4096).bytes;
    } catch {
      foreign = undefined;
    }
    expect(foreign).toBeDefined();
    const results: boolean[] = [];
    x.drv.post(() => {
      void nic.transmit(mine.bytes.subarray(0, 500)).then((r) => results.push(r));
      if (foreign !== undefined) {
        foreign.set(seqFrame(6, 400, PEER_MAC, NIC_MAC));
        void nic.transmit(foreign.subarray(0, 400)).then((r) => results.push(r));
      }
    });
    await runUntil(x.hv, () => results.length === (foreign !== undefined ? 2 : 1));
    expect(results.every((r) => r)).toBe(true);
    expect(seqOf(x.onWire[0]!)).toBe(5);
    const s = nic.statistics();
    expect(s.txZeroCopy).toBe(1);
    if (foreign !== undefined) {
      expect(seqOf(x.onWire[1]!)).toBe(6);
      expect(s.txCopied).toBe(1);
      // The hypervisor logged the refused mapping; the NIC never read the foreign page.
      expect(x.hv.logLines.some((l) => l.includes("refused") && l.includes("DMA"))).toBe(true);
    }
  });
});
