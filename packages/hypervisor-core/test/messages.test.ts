import { describe, expect, it } from "vitest";
import { Hypervisor } from "../src/index.ts";
import { startPair } from "./ringPair.ts";

describe("two native domains over a granted ring and an event channel", () => {
  it("exchange 1,000,000 messages, in order, in deterministic virtual time", () => {
    const hv = new Hypervisor({ memoryFrames: 2048 });
    const front = hv.createNativeDomain({ name: "front", memoryPages: 64 });
    const back = hv.createNativeDomain({ name: "back", memoryPages: 64 });
    const TOTAL = 1_000_000;
    const { f, b } = startPair(front, back, TOTAL);
    expect(hv.run()).toBe("idle");
    expect(f.sent).toBe(TOTAL);
    expect(f.received).toBe(TOTAL);
    expect(b.served).toBe(TOTAL);
    expect(f.errors).toBe(0);
    // Batching through ring event indexes: far fewer notifications than messages.
    expect(hv.hypercalls.counts.get(32)!).toBeLessThan(TOTAL / 10);
    // While mapped, the grant entry carries GTF_reading|GTF_writing and cannot be ended.
    expect(front.gnttab.endAccess(f.gref)).toBe(false);
    back.gnttab.unmap(b.mapping!);
    expect(front.gnttab.endAccess(f.gref)).toBe(true);
    // Same inputs, same run: virtual time is a pure function of the workload.
    const t1 = hv.clock.now();
    const hv2 = new Hypervisor({ memoryFrames: 2048 });
    const f2 = hv2.createNativeDomain({ name: "front", memoryPages: 64 });
    const b2 = hv2.createNativeDomain({ name: "back", memoryPages: 64 });
    startPair(f2, b2, 10_000);
    hv2.run();
    const hv3 = new Hypervisor({ memoryFrames: 2048 });
    startPair(hv3.createNativeDomain({ name: "front", memoryPages: 64 }), hv3.createNativeDomain({ name: "back", memoryPages: 64 }), 10_000);
    hv3.run();
    expect(hv3.clock.now()).toBe(hv2.clock.now());
    expect(t1).toBeGreaterThan(0);
  }, 120_000);
});
