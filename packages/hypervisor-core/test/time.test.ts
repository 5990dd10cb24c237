import { VIRQ } from "@paravirt/device-channel";
import { VirtualClock } from "@paravirt/vm-interfaces";
import { describe, expect, it } from "vitest";
import { Hypervisor, LAPIC_TIMER_REG, LVT_TIMER, LocalApicTimer, SHARED_INFO, VCPU_INFO, VCPU_TIME_INFO, tscScale } from "../src/index.ts";

describe("time", () => {
  it("tsc_to_system_mul / tsc_shift as Xen publishes them (1 GHz, 100 MHz, 3 GHz)", () => {
    expect(tscScale(1e9)).toEqual({ mul: 0x80000000, shift: 1 });
    expect(tscScale(100e6)).toEqual({ mul: 0xa0000000, shift: 4 });
    const s = tscScale(3e9);
    // ns = (tsc << shift) * mul >> 32 reproduces 1/3 ns per tick.
    expect(((3e9 * 2 ** s.shift) * s.mul) / 2 ** 32).toBeCloseTo(1e9, -1);
  });

  it("publishes system time and the wall clock in shared_info at Xen's x86_32 offsets", () => {
    const hv = new Hypervisor({ memoryFrames: 256, tscHz: 100e6, wallClock: { sec: 1_700_000_000, nsec: 5 } });
    const d = hv.createNativeDomain({ name: "a", memoryPages: 8 });
    d.post(() => {}, 1000);
    hv.run(2_000_000);
    const page = hv.memory.page(d.record.sharedInfoMfn);
    const dv = new DataView(page.buffer, page.byteOffset, 4096);
    // pv-grub.md §2: mul at shared_info+56, shift at +60 for vcpu 0.
    expect(VCPU_INFO.TIME + VCPU_TIME_INFO.TSC_TO_SYSTEM_MUL).toBe(56);
    expect(dv.getUint32(56, true)).toBe(0xa0000000);
    expect(dv.getInt8(60)).toBe(4);
    const t = d.sharedInfo.readTime();
    expect(t.version % 2).toBe(0);
    expect(t.tscTimestamp).toBe(t.systemTime / 10);
    expect(dv.getUint32(SHARED_INFO.WC_SEC, true)).toBe(1_700_000_000);
    expect(dv.getUint32(SHARED_INFO.WC_NSEC, true)).toBe(5);
    expect(dv.getUint32(SHARED_INFO.WC_VERSION, true) % 2).toBe(0);
    // The next time the domain runs, it sees the time it was scheduled at.
    d.post(() => {});
    hv.run(3_000_000);
    expect(d.sharedInfo.readTime().systemTime).toBe(2_000_000);
  });

  it("set_timer_op raises VIRQ_TIMER at the deadline; 0 cancels", () => {
    const hv = new Hypervisor({ memoryFrames: 256 });
    const d = hv.createNativeDomain({ name: "a", memoryPages: 8 });
    const fired: number[] = [];
    d.post(() => {
      d.onTimer(() => {
        fired.push(d.now());
        if (fired.length < 3) d.setTimer(d.now() + 1_000_000);
      });
      d.setTimer(5_000_000);
    });
    expect(hv.run()).toBe("idle");
    expect(fired).toEqual([5_000_000, 6_000_000, 7_000_000]);
    d.post(() => {
      d.setTimer(d.now() + 10);
      d.setTimer(0);
    });
    hv.run();
    expect(fired.length).toBe(3);
    // VIRQ_TIMER can be bound once.
    expect(hv.hypercalls.evtchnBindVirq(d.record, VIRQ.TIMER)).toBe(-17);
  });

  it("the local APIC timer counts down at bus clock / divisor and drives the scheduler tick", () => {
    const clock = new VirtualClock();
    const irqs: number[] = [];
    const apic = new LocalApicTimer(clock, 100e6, (v) => irqs.push(v));
    apic.write(LAPIC_TIMER_REG.DIVIDE_CONFIG, 4, 0b0001); // divide by 4 → 40 ns per count
    apic.write(LAPIC_TIMER_REG.LVT_TIMER, 4, 0x40 | LVT_TIMER.PERIODIC);
    apic.write(LAPIC_TIMER_REG.INITIAL_COUNT, 4, 1000);
    clock.advanceTo(20_000);
    expect(apic.read(LAPIC_TIMER_REG.CURRENT_COUNT)).toBe(500);
    clock.advanceTo(120_000);
    expect(irqs).toEqual([0x40, 0x40, 0x40]);
    apic.write(LAPIC_TIMER_REG.LVT_TIMER, 4, 0x40 | LVT_TIMER.MASKED | LVT_TIMER.PERIODIC);
    clock.advanceTo(200_000);
    expect(irqs.length).toBe(3);
    expect(apic.fired).toBe(5);

    // Two CPU-bound domains, weights 2:1, share the CPU 2:1; slices end on the APIC tick.
    const hv = new Hypervisor({ memoryFrames: 256, sliceNs: 100_000 });
    const heavy = hv.createNativeDomain({ name: "heavy", memoryPages: 8, weight: 512 });
    const light = hv.createNativeDomain({ name: "light", memoryPages: 8, weight: 256 });
    const spin = (d: typeof heavy) => {
      const loop = () => d.post(loop, 1000);
      d.post(loop, 1000);
    };
    spin(heavy);
    spin(light);
    expect(hv.run(30_000_000)).toBe("until");
    const ratio = heavy.record.cpuTime / light.record.cpuTime;
    expect(ratio).toBeGreaterThan(1.9);
    expect(ratio).toBeLessThan(2.1);
    expect(hv.scheduler.ticks).toBeGreaterThan(250);
    expect(hv.apic.fired).toBe(hv.scheduler.ticks);
  });

  it("a domain woken by an event preempts a CPU-bound one (BVT wake-up), not at the slice end", () => {
    const hv = new Hypervisor({ memoryFrames: 256, sliceNs: 1_000_000 });
    const hog = hv.createNativeDomain({ name: "hog", memoryPages: 8 });
    const io = hv.createNativeDomain({ name: "io", memoryPages: 8 });
    const loop = () => hog.post(loop, 1000);
    hog.post(loop, 1000);
    let ranAt = -1;
    io.post(() => {
      io.onTimer(() => (ranAt = io.now()));
      io.setTimer(2_500_000);
    });
    hv.run(5_000_000);
    expect(ranAt).toBeGreaterThanOrEqual(2_500_000);
    expect(ranAt).toBeLessThan(2_510_000);
  });
});
