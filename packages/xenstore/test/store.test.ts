import { describe, expect, it } from "vitest";
import { XEN_ERRNO, xsReadOptional } from "@paravirt/vm-interfaces";
import { errnoOf, world } from "./harness.ts";

describe("store operations", () => {
  it("writes, reads, lists, makes and removes nodes, creating missing parents", async () => {
    const { dom0 } = world();
    await dom0.write("/tool/a/b/c", "hello");
    expect(await dom0.read("/tool/a/b/c")).toBe("hello");
    expect(await dom0.read("/tool/a")).toBe("");
    expect(await dom0.directory("/tool/a")).toEqual(["b"]);
    await dom0.mkdir("/tool/a/d");
    await dom0.mkdir("/tool/a/d"); // existing: fine, untouched
    await dom0.write("/tool/a/e", "");
    expect(await dom0.directory("/tool/a")).toEqual(["b", "d", "e"]);
    await dom0.rm("/tool/a/b");
    expect(await dom0.directory("/tool/a")).toEqual(["d", "e"]);
    expect(await errnoOf(dom0.read("/tool/a/b/c"))).toBe(XEN_ERRNO.ENOENT);
    await dom0.rm("/tool/a/nothing"); // parent exists: fine
    expect(await errnoOf(dom0.rm("/tool/x/y"))).toBe(XEN_ERRNO.ENOENT);
    expect(await errnoOf(dom0.rm("/"))).toBe(XEN_ERRNO.EINVAL);
    expect(await errnoOf(dom0.directory("/nope"))).toBe(XEN_ERRNO.ENOENT);
    expect(await xsReadOptional(dom0, "/nope")).toBeUndefined();
  });

  it("keeps values byte-exact, UTF-8 and empty included", async () => {
    const { dom0 } = world();
    for (const v of ["", "0", "αβγ ✓", "a\nb", "x".repeat(4000)]) {
      await dom0.write("/v", v);
      expect(await dom0.read("/v")).toBe(v);
    }
  });

  it("resolves relative paths against the domain's home", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    await d1.write("device/vbd/51712/state", "1");
    expect(await dom0.read("/local/domain/1/device/vbd/51712/state")).toBe("1");
    expect(await d1.read("/local/domain/1/device/vbd/51712/state")).toBe("1");
    expect(await d1.getDomainPath(1)).toBe("/local/domain/1");
    expect(await dom0.getDomainPath(7)).toBe("/local/domain/7");
    await dom0.write("name", "Domain-0");
    expect(await dom0.read("/local/domain/0/name")).toBe("Domain-0");
  });

  it("refuses malformed paths with EINVAL", async () => {
    const { dom0 } = world();
    for (const p of ["", "/a//b", "/a/", "/a b", "/a\u00e9", "/" + "a".repeat(3100), "b".repeat(2049)]) {
      expect(await errnoOf(dom0.write(p, "x")), p.slice(0, 20)).toBe(XEN_ERRNO.EINVAL);
    }
    await dom0.write("/ok-_@9/Z", "1");
    expect(await dom0.read("/ok-_@9/Z")).toBe("1");
  });

  it("answers many outstanding requests, matched by req_id, with messages larger than the ring", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    const big = "v".repeat(2000); // header + path + value: > 1024-byte ring, written in pieces
    const writes = Array.from({ length: 40 }, (_, i) => d1.write(`k${i}`, `${i}:${big}`));
    expect(d1.outstanding).toBe(40);
    await Promise.all(writes);
    const reads = await Promise.all(Array.from({ length: 40 }, (_, i) => dom0.read(`/local/domain/1/k${i}`)));
    expect(reads).toEqual(Array.from({ length: 40 }, (_, i) => `${i}:${big}`));
    const list = await d1.directory("/local/domain/1");
    expect(list.length).toBe(40);
  });

  it("lists large directories whole, and refuses a reply over XENSTORE_PAYLOAD_MAX with E2BIG", async () => {
    const { dom0 } = world();
    const names = Array.from({ length: 200 }, (_, i) => `node-number-${i}`);
    for (const n of names) await dom0.mkdir(`/big/${n}`);
    expect(await dom0.directory("/big")).toEqual(names);
    for (let i = 200; i < 400; i++) await dom0.mkdir(`/big/node-number-${i}`);
    expect(await errnoOf(dom0.directory("/big"))).toBe(XEN_ERRNO.E2BIG);
  });
});
