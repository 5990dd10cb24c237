import { describe, expect, it } from "vitest";
import { XENBUS_STATE } from "@paravirt/device-channel";
import { readState, switchState, waitForState } from "../src/index.ts";
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
