import { describe, expect, it } from "vitest";
import { VirtualClock } from "../src/index.ts";

describe("VirtualClock", () => {
  it("fires timers in time order, ties in schedule order", () => {
    const c = new VirtualClock();
    const fired: string[] = [];
    c.schedule(30, () => fired.push("c"));
    c.schedule(10, () => fired.push("a"));
    c.schedule(10, () => fired.push("b"));
    c.advanceTo(100);
    expect(fired).toEqual(["a", "b", "c"]);
    expect(c.now()).toBe(100);
  });

  it("shows each callback the time it was due", () => {
    const c = new VirtualClock();
    const seen: number[] = [];
    c.schedule(5, () => seen.push(c.now()));
    c.schedule(7, () => seen.push(c.now()));
    c.advanceTo(50);
    expect(seen).toEqual([5, 7]);
  });

  it("runs timers scheduled by timers when they fall inside the advance", () => {
    const c = new VirtualClock();
    const seen: number[] = [];
    c.schedule(10, () => c.after(5, () => seen.push(c.now())));
    c.advanceTo(20);
    expect(seen).toEqual([15]);
  });

  it("never fires a cancelled timer", () => {
    const c = new VirtualClock();
    let n = 0;
    const id = c.schedule(10, () => n++);
    c.cancel(id);
    c.advanceTo(20);
    expect(n).toBe(0);
    expect(c.pending).toBe(0);
    expect(c.runNext()).toBe(false);
  });

  it("jumps to the next deadline with runNext", () => {
    const c = new VirtualClock();
    c.schedule(1234, () => {});
    expect(c.nextDeadline()).toBe(1234);
    expect(c.runNext()).toBe(true);
    expect(c.now()).toBe(1234);
  });
});
