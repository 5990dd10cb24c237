import { describe, expect, it } from "vitest";
import { XEN_ERRNO, XenError } from "@paravirt/vm-interfaces";
import { XS, xsStrings, xsText } from "@paravirt/device-channel";
import { errnoOf, world } from "./harness.ts";

describe("transactions", () => {
  it("isolates a transaction's writes until it commits, and lets it read its own", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    await d1.write("a", "0");
    let inside: string[] = [];
    let outsideDuring: string | undefined;
    await d1.transaction(async (tx) => {
      await tx.write("a", "1");
      await tx.write("b/c", "2");
      inside = [await tx.read("a"), await tx.read("b/c"), (await tx.directory("/local/domain/1")).join(",")];
      outsideDuring = await dom0.read("/local/domain/1/a");
      expect(await errnoOf(dom0.read("/local/domain/1/b/c"))).toBe(XEN_ERRNO.ENOENT);
    });
    expect(inside).toEqual(["1", "2", "a,b"]);
    expect(outsideDuring).toBe("0");
    expect(await dom0.read("/local/domain/1/a")).toBe("1");
    expect(await dom0.read("/local/domain/1/b/c")).toBe("2");
  });

  it("discards an aborted transaction (the body threw)", async () => {
    const { dom0 } = world();
    await expect(
      dom0.transaction(async (tx) => {
        await tx.write("/t/x", "1");
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await errnoOf(dom0.read("/t/x"))).toBe(XEN_ERRNO.ENOENT);
  });

  it("answers EAGAIN when something the transaction read changed, and nothing of it lands", async () => {
    const { dom0 } = world();
    await dom0.write("/c", "0");
    const start = await dom0.request(XS.TRANSACTION_START, xsStrings(""));
    const tx = Number(xsText(start));
    expect(tx).toBeGreaterThan(0);
    expect(xsText(await dom0.request(XS.READ, xsStrings("/c"), tx))).toBe("0");
    await dom0.request(XS.WRITE, new TextEncoder().encode("/other\0z"), tx);
    await dom0.write("/c", "5"); // outside the transaction
    const end = dom0.request(XS.TRANSACTION_END, xsStrings("T"), tx);
    expect(await errnoOf(end)).toBe(XEN_ERRNO.EAGAIN);
    expect(await errnoOf(dom0.read("/other"))).toBe(XEN_ERRNO.ENOENT);
    // The transaction is gone after its end.
    expect(await errnoOf(dom0.request(XS.READ, xsStrings("/c"), tx))).toBe(XEN_ERRNO.ENOENT);
  });

  it("conflicts when a node the transaction created appeared meanwhile", async () => {
    const { dom0 } = world();
    const tx = Number(xsText(await dom0.request(XS.TRANSACTION_START, xsStrings(""))));
    await dom0.request(XS.WRITE, new TextEncoder().encode("/n/x\0a"), tx);
    await dom0.write("/n/y", "b");
    expect(await errnoOf(dom0.request(XS.TRANSACTION_END, xsStrings("T"), tx))).toBe(XEN_ERRNO.EAGAIN);
    expect(await dom0.directory("/n")).toEqual(["y"]);
  });

  it("does not conflict on unrelated changes", async () => {
    const { dom0 } = world();
    await dom0.write("/p/a", "1");
    const tx = Number(xsText(await dom0.request(XS.TRANSACTION_START, xsStrings(""))));
    await dom0.request(XS.WRITE, new TextEncoder().encode("/p/a\0" + "2"), tx);
    await dom0.write("/q", "unrelated");
    await dom0.request(XS.TRANSACTION_END, xsStrings("T"), tx);
    expect(await dom0.read("/p/a")).toBe("2");
  });

  it("retries on EAGAIN: concurrent increments from two domains all land", async () => {
    const { dom0, domU } = world();
    await dom0.write("/counter", "0");
    await dom0.setPermissions("/counter", [{ domid: 0, access: "b" }]);
    const d1 = domU(1);
    const d2 = domU(2);
    let attempts = 0;
    const incr = (c: typeof d1) =>
      c.transaction(async (tx) => {
        attempts++;
        const v = Number(await tx.read("/counter"));
        await tx.write("/counter", String(v + 1));
        return v;
      });
    const all = [];
    for (let i = 0; i < 10; i++) all.push(incr(d1), incr(d2), incr(dom0));
    await Promise.all(all);
    expect(await dom0.read("/counter")).toBe("30");
    expect(attempts).toBeGreaterThan(30); // some really conflicted and were retried
  });

  it("refuses unknown transactions, bad END arguments, nesting and too many open", async () => {
    const { dom0, domU } = world();
    expect(await errnoOf(dom0.request(XS.READ, xsStrings("/local"), 12345))).toBe(XEN_ERRNO.ENOENT);
    expect(await errnoOf(dom0.request(XS.TRANSACTION_END, xsStrings("T"), 999))).toBe(XEN_ERRNO.ENOENT);
    const tx = Number(xsText(await dom0.request(XS.TRANSACTION_START, xsStrings(""))));
    expect(await errnoOf(dom0.request(XS.TRANSACTION_END, xsStrings("X"), tx))).toBe(XEN_ERRNO.EINVAL);
    expect(await errnoOf(dom0.request(XS.TRANSACTION_START, xsStrings(""), tx))).toBe(XEN_ERRNO.EBUSY);
    const d1 = domU(1);
    for (let i = 0; i < 10; i++) await d1.request(XS.TRANSACTION_START, xsStrings(""));
    expect(await errnoOf(d1.request(XS.TRANSACTION_START, xsStrings("")))).toBe(XEN_ERRNO.ENOSPC);
  });

  it("conflicts when the subtree holding a node it wrote was removed, or a node it found absent appeared", async () => {
    const { dom0 } = world();
    await dom0.write("/s/a/b", "1");
    const t1 = Number(xsText(await dom0.request(XS.TRANSACTION_START, xsStrings(""))));
    await dom0.request(XS.WRITE, new TextEncoder().encode("/s/a/b\0two"), t1);
    await dom0.rm("/s/a");
    expect(await errnoOf(dom0.request(XS.TRANSACTION_END, xsStrings("T"), t1))).toBe(XEN_ERRNO.EAGAIN);
    expect(await errnoOf(dom0.read("/s/a/b"))).toBe(XEN_ERRNO.ENOENT);
    const t2 = Number(xsText(await dom0.request(XS.TRANSACTION_START, xsStrings(""))));
    expect(await errnoOf(dom0.request(XS.READ, xsStrings("/s/flag"), t2))).toBe(XEN_ERRNO.ENOENT);
    await dom0.request(XS.WRITE, new TextEncoder().encode("/s/other\0x"), t2);
    await dom0.write("/s/flag", "set");
    expect(await errnoOf(dom0.request(XS.TRANSACTION_END, xsStrings("T"), t2))).toBe(XEN_ERRNO.EAGAIN);
  });

  it("limits the nodes one unprivileged transaction may touch (ENOSPC)", async () => {
    const { dom0, domU } = world({ quota: { maxNodesPerTransaction: 8 } });
    const d1 = domU(1);
    const err = await d1
      .transaction(async (tx) => {
        for (let i = 0; i < 20; i++) await tx.write(`n${i}`, "x");
      })
      .catch((e: unknown) => e);
    expect((err as XenError).errno).toBe(XEN_ERRNO.ENOSPC);
    expect(await dom0.directory("/local/domain/1")).toEqual([]);
    await dom0.transaction(async (tx) => {
      for (let i = 0; i < 20; i++) await tx.write(`/big/n${i}`, "x");
    });
    expect((await dom0.directory("/big")).length).toBe(20);
  });

  it("applies permission checks inside transactions", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    domU(2);
    const err = await d1.transaction((tx) => tx.write("/local/domain/2/x", "1")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(XenError);
    expect((err as XenError).errno).toBe(XEN_ERRNO.EACCES);
    expect(await dom0.directory("/local/domain/2")).toEqual([]);
  });
});
