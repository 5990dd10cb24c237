import { describe, expect, it } from "vitest";
import { XENBUS_STATE } from "@paravirt/device-channel";
import { XEN_ERRNO } from "@paravirt/vm-interfaces";
import { addXenbusDevice, removeXenbusDevice, switchState, waitForState, xenbusDevicePaths } from "../src/index.ts";
import { errnoOf, world } from "./harness.ts";

describe("toolstack device plumbing (libxl layout)", () => {
  it("creates cross-readable frontend and backend directories a driver domain and a guest can handshake over", async () => {
    const { dom0, domU } = world();
    const guest = domU(1);
    const driver = domU(2);
    const other = domU(3);
    const spec = { kind: "vbd", frontendDomid: 1, backendDomid: 2, devid: 51712, frontend: { "virtual-device": "51712" }, backend: { params: "disk.img", mode: "w" } };
    const paths = await addXenbusDevice(dom0, spec);
    expect(paths).toEqual({ frontend: "/local/domain/1/device/vbd/51712", backend: "/local/domain/2/backend/vbd/1/51712" });
    expect(await dom0.getPermissions(paths.frontend)).toEqual([{ domid: 1, access: "n" }, { domid: 2, access: "r" }]);
    expect(await dom0.getPermissions(`${paths.backend}/state`)).toEqual([{ domid: 2, access: "n" }, { domid: 1, access: "r" }]);
    // The frontend finds its backend from its own directory, and may read but not write there.
    const backend = await guest.read("device/vbd/51712/backend");
    expect(backend).toBe(paths.backend);
    expect(await guest.read(`${backend}/params`)).toBe("disk.img");
    expect(await errnoOf(guest.write(`${backend}/state`, "4"))).toBe(XEN_ERRNO.EACCES);
    expect(await driver.read(`${paths.frontend}/virtual-device`)).toBe("51712");
    expect(await driver.read("backend/vbd/1/51712/frontend-id")).toBe("1");
    expect(await errnoOf(other.read(`${paths.frontend}/state`))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(other.read(`${paths.backend}/state`))).toBe(XEN_ERRNO.EACCES);
    // The handshake.
    const backendSawFront = waitForState(driver, paths.frontend, [XENBUS_STATE.Initialised]);
    await switchState(driver, paths.backend, XENBUS_STATE.InitWait);
    expect(await waitForState(guest, backend, [XENBUS_STATE.InitWait])).toBe(XENBUS_STATE.InitWait);
    await guest.write("device/vbd/51712/ring-ref", "8");
    await switchState(guest, "device/vbd/51712", XENBUS_STATE.Initialised);
    expect(await backendSawFront).toBe(XENBUS_STATE.Initialised);
    expect(await driver.read(`${paths.frontend}/ring-ref`)).toBe("8");
    await switchState(driver, paths.backend, XENBUS_STATE.Connected);
    expect(await waitForState(guest, backend, [XENBUS_STATE.Connected])).toBe(XENBUS_STATE.Connected);
    await removeXenbusDevice(dom0, spec);
    expect(await errnoOf(dom0.read(paths.frontend))).toBe(XEN_ERRNO.ENOENT);
    expect(await errnoOf(dom0.read(paths.backend))).toBe(XEN_ERRNO.ENOENT);
  });

  it("replaces leftovers and is refused to an unprivileged caller", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    const spec = { kind: "vif", frontendDomid: 1, backendDomid: 0, devid: 0 };
    const { frontend } = xenbusDevicePaths(spec);
    await dom0.write(`${frontend}/stale`, "x");
    await addXenbusDevice(dom0, spec);
    expect((await dom0.directory(frontend)).sort()).toEqual(["backend", "backend-id", "state"]);
    expect(await errnoOf(addXenbusDevice(d1, { kind: "vif", frontendDomid: 1, backendDomid: 0, devid: 1 }))).toBe(XEN_ERRNO.EACCES);
  });
});
