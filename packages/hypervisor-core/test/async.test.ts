import { describe, expect, it } from "vitest";
import { Hypervisor } from "../src/index.ts";

describe("kernels written with promises", () => {
  it("runAsync lets await-continuations post work before time moves on", async () => {
    const hv = new Hypervisor({ memoryFrames: 256 });
    const a = hv.createNativeDomain({ name: "a", memoryPages: 16 });
    const b = hv.createNativeDomain({ name: "b", memoryPages: 16 });
    // A tiny request/response helper over an event channel, promise-based (like a xenstore client).
    let port = -1;
    let bport = -1;
    const replies: (() => void)[] = [];
    a.post(() => {
      port = a.evtchn.allocUnbound(b.domid);
      a.evtchn.onEvent(port, () => replies.shift()?.());
      b.post(() => {
        bport = b.evtchn.bindInterdomain(a.domid, port);
        b.evtchn.onEvent(bport, () => b.post(() => b.evtchn.notify(bport), 10_000));
      });
    });
    await hv.runAsync();
    replies.length = 0;
    const ask = () =>
      new Promise<number>((resolve) => {
        replies.push(() => resolve(a.now()));
        a.evtchn.notify(port);
      });
    const times: number[] = [];
    a.post(() => {
      void (async () => {
        for (let i = 0; i < 5; i++) times.push(await ask());
      })();
    });
    expect(await hv.runAsync()).toBe("idle");
    expect(times.length).toBe(5);
    for (let i = 1; i < 5; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(10_000);
    expect(hv.list().map((d) => [d.name, d.state])).toEqual([
      ["a", "running"],
      ["b", "running"],
    ]);
  });

  it("pace keeps virtual time from running ahead of wall-clock time", async () => {
    const hv = new Hypervisor({ memoryFrames: 256 });
    const d = hv.createNativeDomain({ name: "d", memoryPages: 16 });
    let firedAt = -1;
    d.post(() => {
      d.onTimer(() => (firedAt = d.now()));
      d.setTimer(40_000_000); // 40 ms
    });
    const t0 = performance.now();
    expect(await hv.runAsync(Infinity, { pace: 1 })).toBe("idle");
    const wall = performance.now() - t0;
    expect(firedAt).toBe(40_000_000);
    expect(wall).toBeGreaterThanOrEqual(35);
    // Unpaced, the same wait is instant.
    const t1 = performance.now();
    d.post(() => d.setTimer(d.now() + 10_000_000_000)); // 10 s virtual
    await hv.runAsync();
    expect(performance.now() - t1).toBeLessThan(1000);
  });
});
