import { describe, expect, it } from "vitest";
import { XENSTORE_DOMAIN_INTERFACE as XDI, XS, parseXsStrings, xsStrings, xsText } from "@paravirt/device-channel";
import { XEN_ERRNO } from "@paravirt/vm-interfaces";
import { XenstoreClient, XenstoreServer, createLocalChannel, type XenstorePort } from "../src/index.ts";
import { errnoOf, rawDomain, settle, world } from "./harness.ts";

const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
const u32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

describe("xs_wire bytes on the page (io/xs_wire.h)", () => {
  it("puts a client's request at REQ[0..] as xsd_sockmsg + payload and advances req_prod", () => {
    const { guest } = createLocalChannel();
    const c = new XenstoreClient(guest);
    c.write("/a", "b").catch(() => {});
    // struct xsd_sockmsg { uint32_t type, req_id, tx_id, len; } then "/a\0b" (no trailing NUL on the value)
    expect(Array.from(guest.page.subarray(0, 20))).toEqual([...u32(XS.WRITE), ...u32(1), ...u32(0), ...u32(4), ...ascii("/a\0b")]);
    const dv = new DataView(guest.page.buffer);
    expect(dv.getUint32(XDI.REQ_PROD, true)).toBe(20);
    expect(dv.getUint32(XDI.REQ_CONS, true)).toBe(0);
    c.read("/a").catch(() => {});
    expect(Array.from(guest.page.subarray(20, 39))).toEqual([...u32(XS.READ), ...u32(2), ...u32(0), ...u32(3), ...ascii("/a\0")]);
    c.close();
  });

  it("answers with byte-exact replies: OK, raw READ values, errno names, watch events", async () => {
    const server = new XenstoreServer();
    const d1 = rawDomain(server, 1);
    rawDomain(server, 2);
    expect(d1.dv.getUint32(XDI.SERVER_FEATURES, true)).toBe(3); // RECONNECTION | ERROR
    const id = 0x11223344;
    d1.request(XS.WRITE, Uint8Array.from(ascii("name\0guest")), id);
    await settle();
    d1.request(XS.READ, Uint8Array.from(ascii("name\0")), id + 1);
    await settle();
    d1.request(XS.READ, Uint8Array.from(ascii("/local/domain/2/x\0")), 7);
    await settle();
    d1.request(XS.WATCH, Uint8Array.from(ascii("name\0tk\0")), 8);
    await settle();
    d1.request(XS.TRANSACTION_START, Uint8Array.from([0]), 9);
    await settle();
    expect(d1.rawBytes).toEqual([
      ...u32(11), ...u32(0x11223344), ...u32(0), ...u32(3), ...ascii("OK\0"),
      ...u32(2), ...u32(0x11223345), ...u32(0), ...u32(5), ...ascii("guest"),
      ...u32(16), ...u32(7), ...u32(0), ...u32(7), ...ascii("EACCES\0"),
      ...u32(4), ...u32(8), ...u32(0), ...u32(3), ...ascii("OK\0"),
      ...u32(15), ...u32(0), ...u32(0), ...u32(8), ...ascii("name\0tk\0"),
      ...u32(6), ...u32(9), ...u32(0), ...u32(2), ...ascii("1\0"),
    ]);
    expect(d1.dv.getUint32(XDI.RSP_PROD, true)).toBe(d1.rawBytes.length);
    expect(d1.dv.getUint32(XDI.RSP_CONS, true)).toBe(d1.rawBytes.length);
    expect(d1.dv.getUint32(XDI.ERROR, true)).toBe(0);
  });

  it("formats GET_PERMS, DIRECTORY, GET_DOMAIN_PATH and IS_DOMAIN_INTRODUCED replies as NUL-terminated strings", async () => {
    const { dom0, domU } = world();
    domU(3);
    await dom0.write("/local/domain/3/x", "1");
    await dom0.setPermissions("/local/domain/3/x", [{ domid: 3, access: "n" }, { domid: 0, access: "r" }, { domid: 7, access: "b" }]);
    expect(Array.from(await dom0.request(XS.GET_PERMS, xsStrings("/local/domain/3/x")))).toEqual(ascii("n3\0r0\0b7\0"));
    expect(Array.from(await dom0.request(XS.DIRECTORY, xsStrings("/local/domain/3")))).toEqual(ascii("x\0"));
    expect(Array.from(await dom0.request(XS.GET_DOMAIN_PATH, xsStrings("3")))).toEqual(ascii("/local/domain/3\0"));
    expect(Array.from(await dom0.request(XS.IS_DOMAIN_INTRODUCED, xsStrings("3")))).toEqual(ascii("T\0"));
    expect(Array.from(await dom0.request(XS.IS_DOMAIN_INTRODUCED, xsStrings("9")))).toEqual(ascii("F\0"));
    expect(await errnoOf(dom0.request(XS.GET_DOMAIN_PATH, xsStrings("x1")))).toBe(XEN_ERRNO.EINVAL);
  });

  it("pages through big directories with XS_DIRECTORY_PART", async () => {
    const { dom0 } = world();
    const names = Array.from({ length: 300 }, (_, i) => `a-rather-long-child-name-${i}`);
    for (const n of names) await dom0.mkdir(`/d/${n}`);
    expect(await errnoOf(dom0.directory("/d"))).toBe(XEN_ERRNO.E2BIG);
    const got: string[] = [];
    let offset = 0;
    let gen: string | undefined;
    for (let i = 0; i < 10; i++) {
      const reply = await dom0.request(XS.DIRECTORY_PART, xsStrings("/d", String(offset)));
      const parts = new TextDecoder().decode(reply).split("\0");
      gen ??= parts[0];
      expect(parts[0]).toBe(gen);
      const end = reply[reply.length - 1] === 0 && reply[reply.length - 2] === 0;
      const chunk = parts.slice(1).filter((s) => s !== "");
      got.push(...chunk);
      offset += chunk.reduce((n, s) => n + s.length + 1, 0);
      if (end) break;
    }
    expect(got).toEqual(names);
  });

  it("refuses privileged operations from a domU with EACCES, unknown operations with ENOSYS", async () => {
    const { domU } = world();
    const d1 = domU(1);
    expect(await errnoOf(d1.introduceDomain(5, 1, 1))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.releaseDomain(1))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.isDomainIntroduced(1))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.request(XS.SET_TARGET, xsStrings("1", "2")))).toBe(XEN_ERRNO.EACCES);
    expect(await errnoOf(d1.request(XS.CONTROL, xsStrings("print", "x")))).toBe(XEN_ERRNO.ENOSYS);
    expect(await errnoOf(d1.request(20, xsStrings("x")))).toBe(XEN_ERRNO.ENOSYS);
    expect(await errnoOf(d1.request(XS.WATCH_EVENT, xsStrings("x", "y")))).toBe(XEN_ERRNO.ENOSYS);
    await d1.write("still", "works");
  });
});

describe("domain introduction over the wire", () => {
  it("maps and serves a domain introduced by XS_INTRODUCE, then releases it", async () => {
    const pages = new Map<number, { guest: XenstorePort; server: XenstorePort }>();
    const calls: number[][] = [];
    const server = new XenstoreServer({
      mapDomain: (domid, gfn, evtchn) => {
        calls.push([domid, gfn, evtchn]);
        return pages.get(gfn)?.server;
      },
    });
    const dom0 = new XenstoreClient(server.connectLocal());
    const events: string[] = [];
    await dom0.watch("@introduceDomain", (p) => events.push(p));
    pages.set(0x1234, createLocalChannel());
    await dom0.introduceDomain(5, 0x1234, 7);
    expect(calls).toEqual([[5, 0x1234, 7]]);
    expect(await dom0.isDomainIntroduced(5)).toBe(true);
    expect(await dom0.getPermissions("/local/domain/5")).toEqual([{ domid: 5, access: "n" }]);
    const d5 = new XenstoreClient(pages.get(0x1234)!.guest);
    await d5.write("data/x", "1");
    expect(await dom0.read("/local/domain/5/data/x")).toBe("1");
    expect(await errnoOf(dom0.introduceDomain(5, 0x1234, 7))).toBe(XEN_ERRNO.EEXIST);
    expect(await errnoOf(dom0.introduceDomain(6, 0x9999, 7))).toBe(XEN_ERRNO.EINVAL);
    expect(await errnoOf(dom0.request(XS.INTRODUCE, xsStrings("6", "x", "7")))).toBe(XEN_ERRNO.EINVAL);
    expect(await errnoOf(dom0.introduceDomain(0x7ff2, 0x1234, 7))).toBe(XEN_ERRNO.EINVAL);
    expect(await errnoOf(dom0.introduceDomain(70000, 0x1234, 7))).toBe(XEN_ERRNO.EINVAL);
    await dom0.releaseDomain(5);
    expect(await dom0.isDomainIntroduced(5)).toBe(false);
    expect(await errnoOf(dom0.releaseDomain(5))).toBe(XEN_ERRNO.ENOENT);
    await settle();
    expect(events).toEqual(["@introduceDomain", "@introduceDomain"]);
    // A released domain is not served any more.
    const pending = d5.read("data/x");
    await settle();
    expect(d5.outstanding).toBe(1);
    void pending;
  });

  it("answers ENOSYS to XS_INTRODUCE without a mapDomain hook", async () => {
    const { dom0 } = world();
    expect(await errnoOf(dom0.introduceDomain(5, 1, 1))).toBe(XEN_ERRNO.ENOSYS);
  });

  it("lets a domain with a target (XS_SET_TARGET) act on its target's nodes", async () => {
    const { dom0, domU } = world();
    const d1 = domU(1);
    const stub = domU(9);
    await d1.write("device-model/state", "x");
    expect(await errnoOf(stub.read("/local/domain/1/device-model/state"))).toBe(XEN_ERRNO.EACCES);
    await dom0.request(XS.SET_TARGET, xsStrings("9", "1"));
    expect(await stub.read("/local/domain/1/device-model/state")).toBe("x");
    await stub.write("/local/domain/1/device-model/state", "running");
    expect(await d1.read("device-model/state")).toBe("running");
  });

  it("lists GET_PERMS replies parseable by device-channel helpers", async () => {
    const { dom0 } = world();
    expect(parseXsStrings(await dom0.request(XS.GET_PERMS, xsStrings("/")))).toEqual(["n0"]);
    expect(xsText(await dom0.request(XS.GET_DOMAIN_PATH, xsStrings("0")))).toBe("/local/domain/0");
  });
});
