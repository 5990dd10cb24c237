import { describe, expect, it } from "vitest";
import { XEN_ERRNO } from "@paravirt/vm-interfaces";
import { XS, xsStrings } from "@paravirt/device-channel";
import { errnoOf, settle, world } from "./harness.ts";

describe("watches", () => {
  it("fires once when set, then for every change at or below the path", async () => {
    const { dom0 } = world();
    const seen: string[] = [];
    const unwatch = await dom0.watch("/local/domain/1/device", (p) => seen.push(p));
    await settle();
    expect(seen).toEqual(["/local/domain/1/device"]);
    await dom0.write("/local/domain/1/device/vbd/51712/state", "1");
    await dom0.write("/local/domain/1/devicex", "not below");
    await dom0.write("/local/domain/1", "above");
    await dom0.mkdir("/local/domain/1/device/vif");
    await dom0.setPermissions("/local/domain/1/device/vif", [{ domid: 0, access: "r" }]);
    await dom0.rm("/local/domain/1/device/vbd");
    await settle();
    expect(seen).toEqual([
      "/local/domain/1/device",
      "/local/domain/1/device/vbd/51712/state",
      "/local/domain/1/device/vif",
      "/local/domain/1/device/vif",
      "/local/domain/1/device/vbd",
    ]);
    await unwatch();
    await dom0.write("/local/domain/1/device/x", "1");
    await settle();
    expect(seen.length).toBe(5);
  });

  it("fires a watch on a node removed together with its ancestor, with the node's path", async () => {
    const { dom0 } = world();
    await dom0.write("/be/vbd/1/state", "4");
    const seen: string[] = [];
    await dom0.watch("/be/vbd/1/state", (p) => seen.push(p));
    await dom0.rm("/be/vbd");
    await settle();
    expect(seen).toEqual(["/be/vbd/1/state", "/be/vbd/1/state"]);
  });

  it("reports relative paths to relative watches, and carries each watch's own token", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    const a: string[] = [];
    const b: string[] = [];
    await d1.watch("control", (p) => a.push(p));
    await d1.watch("/local/domain/1/control", (p) => b.push(p));
    await dom0.write("/local/domain/1/control/shutdown", "poweroff");
    await settle();
    expect(a).toEqual(["control", "control/shutdown"]);
    expect(b).toEqual(["/local/domain/1/control", "/local/domain/1/control/shutdown"]);
  });

  it("does not tell a domain about changes to nodes it may not read", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    domU(2);
    const seen: string[] = [];
    await d1.watch("/local/domain/2", (p) => seen.push(p));
    await dom0.write("/local/domain/2/secret", "x");
    await dom0.write("/local/domain/2/public", "y");
    await dom0.setPermissions("/local/domain/2/public", [{ domid: 2, access: "r" }]);
    await settle();
    expect(seen).toEqual(["/local/domain/2", "/local/domain/2/public"]);
  });

  it("fires on transaction commit only", async () => {
    const { dom0 } = world();
    const seen: string[] = [];
    await dom0.watch("/t", (p) => seen.push(p));
    await dom0.transaction(async (tx) => {
      await tx.write("/t/a", "1");
      await settle();
      expect(seen).toEqual(["/t"]);
    });
    await dom0.transaction(async (tx) => tx.write("/t/b", "1")).catch(() => {});
    await expect(dom0.transaction(async (tx) => {
      await tx.write("/t/c", "1");
      throw new Error("abort");
    })).rejects.toThrow();
    await settle();
    expect(seen).toEqual(["/t", "/t/a", "/t/b"]);
  });

  it("fires @introduceDomain and @releaseDomain", async () => {
    const { server, dom0, domU } = world();
    const seen: string[] = [];
    await dom0.watch("@introduceDomain", (p) => seen.push(p));
    await dom0.watch("@releaseDomain", (p) => seen.push(p));
    domU(4);
    expect(server.isIntroduced(4)).toBe(true);
    expect(await dom0.isDomainIntroduced(4)).toBe(true);
    expect(server.release(4)).toBe(true);
    expect(await dom0.isDomainIntroduced(4)).toBe(false);
    await settle();
    expect(seen).toEqual(["@introduceDomain", "@releaseDomain", "@introduceDomain", "@releaseDomain"]);
  });

  it("sends special events to unprivileged domains only when SET_PERMS on the special path allows", async () => {
    const { server, dom0, domU } = world();
    const d1 = domU(1);
    const seen: string[] = [];
    await d1.watch("@releaseDomain", (p) => seen.push(p)); // the initial event always fires
    domU(2);
    server.release(2);
    await settle();
    expect(seen).toEqual(["@releaseDomain"]);
    expect(await errnoOf(d1.getPermissions("@releaseDomain"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.setPermissions("@releaseDomain", [{ domid: 1, access: "r" }]))).toBe(XEN_ERRNO.EACCES);
    await dom0.setPermissions("@releaseDomain", [{ domid: 0, access: "n" }, { domid: 1, access: "r" }]);
    expect(await d1.getPermissions("@releaseDomain")).toEqual([{ domid: 0, access: "n" }, { domid: 1, access: "r" }]);
    domU(3);
    server.release(3);
    await settle();
    expect(seen).toEqual(["@releaseDomain", "@releaseDomain"]);
  });

  it("refuses duplicate watches, unknown unwatches and more than the quota", async () => {
    const { domU } = world({ quota: { maxWatchesPerConnection: 3 } });
    const dom0 = domU(1); // quotas bind unprivileged domains
    await dom0.request(XS.WATCH, xsStrings("/a", "tok"));
    expect(await errnoOf(dom0.request(XS.WATCH, xsStrings("/a", "tok")))).toBe(XEN_ERRNO.EEXIST);
    expect(await errnoOf(dom0.request(XS.UNWATCH, xsStrings("/a", "other")))).toBe(XEN_ERRNO.ENOENT);
    await dom0.request(XS.WATCH, xsStrings("/a", "t2"));
    await dom0.request(XS.WATCH, xsStrings("/b", "t3"));
    expect(await errnoOf(dom0.request(XS.WATCH, xsStrings("/c", "t4")))).toBe(XEN_ERRNO.ENOSPC);
    await dom0.resetWatches();
    await dom0.request(XS.WATCH, xsStrings("/c", "t4"));
    expect(await errnoOf(dom0.request(XS.WATCH, xsStrings("/a//b", "t5")))).toBe(XEN_ERRNO.EINVAL);
    // Identified by canonical path: the relative and absolute forms are one watch.
    await dom0.resetWatches();
    await dom0.request(XS.WATCH, xsStrings("x", "t"));
    expect(await errnoOf(dom0.request(XS.WATCH, xsStrings("/local/domain/1/x", "t")))).toBe(XEN_ERRNO.EEXIST);
    await dom0.request(XS.UNWATCH, xsStrings("/local/domain/1/x", "t"));
    expect(await errnoOf(dom0.request(XS.UNWATCH, xsStrings("x", "t")))).toBe(XEN_ERRNO.ENOENT);
  });

  it("keeps dispatching when a handler throws", async () => {
    const { dom0 } = world();
    const errors: unknown[] = [];
    const seen: string[] = [];
    const { XenstoreClient, XenstoreServer } = await import("../src/index.ts");
    const server = new XenstoreServer();
    const c = new XenstoreClient(server.connectLocal(), { onHandlerError: (e) => errors.push(e) });
    await c.watch("/x", () => {
      throw new Error("handler");
    });
    await c.watch("/x", (p) => seen.push(p));
    await c.write("/x", "1");
    await settle();
    expect(errors.length).toBe(2);
    expect(seen).toEqual(["/x", "/x"]);
    void dom0;
  });
});
