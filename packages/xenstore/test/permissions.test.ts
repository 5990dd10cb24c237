import { describe, expect, it } from "vitest";
import { XEN_ERRNO } from "@paravirt/vm-interfaces";
import { errnoOf, world } from "./harness.ts";

describe("permissions", () => {
  it("gives an introduced domain its own home, owned by it", async () => {
    const { dom0, domU } = world();
    domU(3);
    expect(await dom0.getPermissions("/local/domain/3")).toEqual([{ domid: 3, access: "n" }]);
  });

  it("refuses a domU access to another domain's nodes with EACCES and changes nothing", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    const d2 = domU(2);
    await d2.write("secret", "s2");
    expect(await errnoOf(d1.read("/local/domain/2/secret"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.write("/local/domain/2/secret", "pwned"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.write("/local/domain/2/new", "x"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.mkdir("/local/domain/2/dir"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.rm("/local/domain/2/secret"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.directory("/local/domain/2"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.getPermissions("/local/domain/2/secret"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.setPermissions("/local/domain/2/secret", [{ domid: 1, access: "b" }]))).toBe(XEN_ERRNO.EACCES);
    // A missing node under an unreadable parent is EACCES too, not ENOENT (no probing).
    expect(await errnoOf(d1.read("/local/domain/2/missing"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.read("/tool/x"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.write("/tool/x", "1"))).toBe(XEN_ERRNO.EACCES);
    // Nothing changed.
    expect(await dom0.read("/local/domain/2/secret")).toBe("s2");
    expect(await dom0.directory("/local/domain/2")).toEqual(["secret"]);
    expect(await errnoOf(dom0.read("/tool/x"))).toBe(XEN_ERRNO.ENOENT);
    expect(await d2.read("secret")).toBe("s2");
  });

  it("applies n/r/w/b ACL entries, the owner's entry being the default for others", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    const d2 = domU(2);
    const d3 = domU(3);
    await dom0.write("/shared/x", "v");
    await dom0.setPermissions("/shared/x", [{ domid: 0, access: "n" }, { domid: 1, access: "r" }, { domid: 2, access: "w" }, { domid: 3, access: "b" }]);
    const matrix: Record<number, [boolean, boolean]> = {};
    for (const [id, c] of [[1, d1], [2, d2], [3, d3]] as const) {
      const canRead = await c.read("/shared/x").then(() => true, () => false);
      const canWrite = await c.write("/shared/x", `by${id}`).then(() => true, () => false);
      matrix[id] = [canRead, canWrite];
    }
    expect(matrix).toEqual({ 1: [true, false], 2: [false, true], 3: [true, true] });
    expect(await dom0.read("/shared/x")).toBe("by3");
    // Owner's access letter is the default for unlisted domains.
    await dom0.setPermissions("/shared/x", [{ domid: 0, access: "r" }, { domid: 2, access: "n" }]);
    expect(await d1.read("/shared/x")).toBe("by3");
    expect(await errnoOf(d2.read("/shared/x"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.write("/shared/x", "no"))).toBe(XEN_ERRNO.EACCES);
  });

  it("answers ENOENT for a missing node only when the caller has the access it asked for on the nearest ancestor", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    await dom0.mkdir("/pub");
    await dom0.setPermissions("/pub", [{ domid: 0, access: "r" }]);
    expect(await errnoOf(d1.read("/pub/missing"))).toBe(XEN_ERRNO.ENOENT);
    expect(await errnoOf(d1.write("/pub/mine", "x"))).toBe(XEN_ERRNO.EACCES); // readable is not writable
    expect(await errnoOf(d1.rm("/pub/missing"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.rm("/pub/x/y"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.setPermissions("/pub/missing", [{ domid: 1, access: "n" }]))).toBe(XEN_ERRNO.EACCES);
    await d1.rm("gone"); // missing under its own home: fine
    expect(await errnoOf(d1.rm("gone/deeper"))).toBe(XEN_ERRNO.ENOENT);
  });

  it("makes an unprivileged creator the owner of what it creates, inheriting the ACL", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    await dom0.mkdir("/backend/vbd/1");
    await dom0.setPermissions("/backend/vbd/1", [{ domid: 0, access: "n" }, { domid: 1, access: "w" }, { domid: 5, access: "r" }]);
    await d1.write("/backend/vbd/1/51712/ring-ref", "8");
    expect(await dom0.getPermissions("/backend/vbd/1/51712")).toEqual([{ domid: 1, access: "n" }, { domid: 1, access: "w" }, { domid: 5, access: "r" }]);
    expect(await d1.read("/backend/vbd/1/51712/ring-ref")).toBe("8");
    // dom0 creating keeps the inherited owner.
    await dom0.write("/local/domain/1/control/shutdown", "");
    expect((await dom0.getPermissions("/local/domain/1/control/shutdown"))[0]).toEqual({ domid: 1, access: "n" });
  });

  it("lets only the owner set permissions, and only a privileged domain change the owner", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    const d2 = domU(2);
    await d1.write("device/vif/0/state", "1");
    await d1.setPermissions("device/vif/0/state", [{ domid: 1, access: "n" }, { domid: 2, access: "r" }]);
    expect(await d2.read("/local/domain/1/device/vif/0/state")).toBe("1");
    expect(await errnoOf(d2.setPermissions("/local/domain/1/device/vif/0/state", [{ domid: 2, access: "n" }]))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.setPermissions("device/vif/0/state", [{ domid: 2, access: "n" }]))).toBe(XEN_ERRNO.EPERM);
    await dom0.setPermissions("/local/domain/1/device/vif/0/state", [{ domid: 2, access: "n" }]);
    expect(await d2.read("/local/domain/1/device/vif/0/state")).toBe("1");
    expect(await errnoOf(d1.read("device/vif/0/state"))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.setPermissions("device/vif/0", [{ domid: 1, access: "n" }, { domid: 70000, access: "r" }]))).toBe(XEN_ERRNO.EINVAL);
  });

  it("enforces node, value-size and ACL-length quotas on unprivileged domains", async () => {
    const { dom0, domU } = world({ quota: { maxNodesPerDomain: 10 } });
    const d1 = domU(1);
    // Home counts as one node owned by domain 1.
    for (let i = 0; i < 9; i++) await d1.write(`n${i}`, "x");
    expect(await errnoOf(d1.write("n9", "x"))).toBe(XEN_ERRNO.ENOSPC);
    await d1.rm("n0");
    await d1.write("n9", "x");
    expect(await errnoOf(d1.write("n8", "y".repeat(2049)))).toBe(XEN_ERRNO.ENOSPC);
    expect(await d1.read("n8")).toBe("x");
    const perms = Array.from({ length: 6 }, (_, i) => ({ domid: i === 0 ? 1 : i + 10, access: "r" as const }));
    expect(await errnoOf(d1.setPermissions("n8", perms))).toBe(XEN_ERRNO.ENOSPC);
    await dom0.write("/local/domain/1/big", "y".repeat(3000)); // dom0 is not limited
  });
});
