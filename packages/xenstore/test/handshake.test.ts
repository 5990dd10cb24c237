import { describe, expect, it } from "vitest";
import { XENBUS_STATE } from "@paravirt/device-channel";
import { XenbusStateKeeper, readState, switchState, waitForState } from "../src/index.ts";
import { settle, world } from "./harness.ts";

describe("xenbus handshake helpers", () => {
  it("waits for the peer's state through a watch and removes the watch afterwards", async () => {
    const { dom0, domU } = world();
    const fe = domU(1);
    const fePath = "/local/domain/1/device/vbd/51712";
    await switchState(fe, "device/vbd/51712", XENBUS_STATE.Initialising);
    let resolved: number | undefined;
    const wait = waitForState(dom0, fePath, [XENBUS_STATE.Initialised, XENBUS_STATE.Connected]).then((s) => (resolved = s));
    await settle();
    expect(resolved).toBeUndefined();
    await switchState(fe, "device/vbd/51712", XENBUS_STATE.InitWait);
    await settle();
    expect(resolved).toBeUndefined();
    await switchState(fe, "device/vbd/51712", XENBUS_STATE.Initialised);
    expect(await wait).toBe(XENBUS_STATE.Initialised);
    expect(await readState(dom0, fePath)).toBe(XENBUS_STATE.Initialised);
  });

  it("resolves at once when the state already matches; reads missing or garbage state as Unknown", async () => {
    const { dom0 } = world();
    await switchState(dom0, "/be/x", XENBUS_STATE.Connected);
    expect(await waitForState(dom0, "/be/x", [XENBUS_STATE.Connected])).toBe(XENBUS_STATE.Connected);
    expect(await readState(dom0, "/be/none")).toBe(XENBUS_STATE.Unknown);
    await dom0.write("/be/x/state", "banana");
    expect(await readState(dom0, "/be/x")).toBe(XENBUS_STATE.Unknown);
  });

  it("rejects when the state cannot be read", async () => {
    const { domU } = world();
    const d1 = domU(1);
    domU(2);
    await expect(waitForState(d1, "/local/domain/2/device/vif/0", [XENBUS_STATE.Connected])).rejects.toMatchObject({ errno: 13 });
  });
});

describe("XenbusStateKeeper: one end's own state", () => {
  it("publishes each switch, skips a switch to the state it is in, and wakes the waiters the new state satisfies", async () => {
    const { dom0, domU } = world();
    const fe = domU(1);
    const lines: string[] = [];
    const keeper = new XenbusStateKeeper({ xen: { xenstore: fe }, devicePath: "device/vbd/51712", log: (l) => lines.push(l) });
    expect(keeper.state).toBe(XENBUS_STATE.Initialising);
    let connected = false;
    let closing = false;
    void keeper.waitFor((s) => s === XENBUS_STATE.Connected).then(() => (connected = true));
    void keeper.waitFor((s) => s >= XENBUS_STATE.Closing).then(() => (closing = true));
    await keeper.switchTo(XENBUS_STATE.Initialised);
    expect(await readState(dom0, "/local/domain/1/device/vbd/51712")).toBe(XENBUS_STATE.Initialised);
    await keeper.switchTo(XENBUS_STATE.Connected);
    await settle();
    expect([connected, closing]).toEqual([true, false]);
    // Already Connected: nothing is written (the peer's watch does not fire), nothing is logged.
    let fired = 0;
    const unwatch = await dom0.watch("/local/domain/1/device/vbd/51712/state", () => fired++);
    await settle();
    fired = 0;
    await keeper.switchTo(XENBUS_STATE.Connected);
    await settle();
    expect(fired).toBe(0);
    await keeper.switchTo(XENBUS_STATE.Closed);
    await settle();
    expect(closing).toBe(true);
    expect(fired).toBe(1);
    await unwatch();
    expect(lines).toEqual(["state Initialised", "state Connected", "state Closed"]);
    // A state already reached resolves at once.
    await keeper.waitFor((s) => s === XENBUS_STATE.Closed);
  });

  it("goes on in the new state when the write is refused, and says why", async () => {
    const { domU } = world();
    const d1 = domU(1);
    domU(2);
    const lines: string[] = [];
    const keeper = new XenbusStateKeeper({ xen: { xenstore: d1 }, devicePath: "/local/domain/2/device/vif/0", log: (l) => lines.push(l) });
    await keeper.switchTo(XENBUS_STATE.InitWait);
    expect(keeper.state).toBe(XENBUS_STATE.InitWait);
    expect(lines[0]).toBe("state InitWait");
    expect(lines[1]).toMatch(/^cannot write state: /);
    await keeper.waitFor((s) => s === XENBUS_STATE.InitWait);
  });
});
