import { describe, expect, it } from "vitest";
import { Hypervisor } from "../src/index.ts";
import { irqFor, testMachine } from "./machine.ts";

describe("pirq dispatch", () => {
  function setup() {
    const m = testMachine();
    const hv = new Hypervisor({ memoryFrames: 512, ports: m.ports, mmio: m.mmio, irqs: m.irqs, probe: { irqFor }, assignments: [{ device: { vendorId: 0x8086 }, domain: "drv" }] });
    hv.probePci();
    const drv = hv.createNativeDomain({ name: "drv", privileged: true, memoryPages: 32 });
    return { m, hv, drv, p: drv.driverPlatform() };
  }

  it("masks the line until the owner's EOI, then re-delivers a line still asserted", () => {
    const { m, hv, drv, p } = setup();
    const seen: number[] = [];
    let deassert = false;
    drv.post(() => {
      p.requestIrq(11, () => {
        seen.push(hv.clock.now());
        if (deassert) m.nic.irq!.setLevel(false);
      });
    });
    hv.run();
    // Level interrupt, handler does not clear it: in service, not delivered again until EOI.
    m.nic.irq!.setLevel(true);
    expect(hv.pirq.stats(11)).toMatchObject({ owner: drv.domid, inService: true, delivered: 1 });
    m.nic.irq!.setLevel(false);
    m.nic.irq!.setLevel(true); // another edge while in service: latched
    expect(hv.pirq.stats(11).delivered).toBe(1);
    expect(seen).toEqual([]); // the handler runs in the domain, not inside the device's call
    hv.run(hv.clock.now() + 1000);
    // Handler ran and EOI'd; the line was still high, so it was delivered again, and so on.
    expect(seen.length).toBeGreaterThanOrEqual(2);
    deassert = true;
    hv.run();
    const n = seen.length;
    expect(hv.pirq.stats(11).inService).toBe(false);
    // Quiet line: nothing more happens.
    hv.run(hv.clock.now() + 1_000_000);
    expect(seen.length).toBe(n);
    // A fresh assertion is delivered once and acknowledged.
    m.nic.irq!.setLevel(true);
    hv.run();
    expect(seen.length).toBe(n + 1);
    expect(hv.pirq.stats(11).inService).toBe(false);
  });

  it("only the binding domain may EOI; release unbinds; an unbound line counts as spurious", () => {
    const { m, hv, drv, p } = setup();
    const other = hv.createNativeDomain({ name: "other", privileged: true, memoryPages: 16 });
    let reg: { release(): void } | undefined;
    drv.post(() => {
      reg = p.requestIrq(11, () => {});
    });
    hv.run();
    // Xen lets only the domain with the pirq bound acknowledge it.
    expect(hv.hypercalls.physdevEoi(other.record, 11)).toBe(-22);
    // A second bind in the same domain: EEXIST.
    expect(hv.hypercalls.evtchnBindPirq(drv.record, 11)).toBe(-17);
    reg!.release();
    expect(hv.pirq.stats(11).owner).toBeUndefined();
    m.nic.irq!.setLevel(true);
    expect(hv.pirq.stats(11).spurious).toBe(1);
  });

  it("a line shared by two domains is unmasked only after both EOI", () => {
    const { m, hv, drv, p } = setup();
    const other = hv.createNativeDomain({ name: "other", privileged: true, memoryPages: 16 });
    hv.grantIrq(other.domid, 11); // e.g. two functions wired to the same INTx line
    const q = other.driverPlatform();
    let a = 0;
    let b = 0;
    drv.post(() => void p.requestIrq(11, () => a++));
    hv.run();
    // other binds but does not EOI (raw pirq channel, no DriverPlatform EOI).
    const port = hv.hypercalls.evtchnBindPirq(other.record, 11);
    other.post(() => other.evtchn.onEvent(port, () => b++));
    hv.run();
    expect(hv.hypercalls.physdevIrqStatusQuery(drv.record, 11).flags).toBe(3); // needs_eoi | shared
    m.nic.irq!.setLevel(true);
    m.nic.irq!.setLevel(false);
    hv.run();
    expect([a, b]).toEqual([1, 1]);
    expect(hv.pirq.stats(11).inService).toBe(true); // drv acked, other has not
    m.nic.irq!.setLevel(true);
    m.nic.irq!.setLevel(false);
    hv.run();
    expect([a, b]).toEqual([1, 1]); // latched, still masked
    expect(hv.hypercalls.physdevEoi(other.record, 11)).toBe(0);
    hv.run();
    expect([a, b]).toEqual([2, 2]); // the latched edge, delivered to both
    void q;
  });
});
