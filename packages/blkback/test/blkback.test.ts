import {
  BLKIF_DISCARD_SECURE, BLKIF_OP, BLKIF_RSP, XENBUS_STATE,
  type BlkifRequest, type BlkifResponse,
} from "@paravirt/device-channel";
import type { BlockDevice } from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { addDevice, InMemoryXen } from "@paravirt/xen-testing";
import { describe, expect, it } from "vitest";
import { Blkback, type BlkbackOptions } from "../src/index.ts";
import { RawBlkifFrontend } from "../src/testing/index.ts";

const DEVID = 51712;
const HANDLE = DEVID & 0xffff;

async function setup(o: { device?: BlockDevice; disk?: MemoryBlockDevice; mode?: string; protocol?: "x86_32-abi" | "x86_64-abi"; order?: number; persistent?: boolean; back?: Partial<BlkbackOptions> } = {}) {
  const xen = new InMemoryXen();
  const dom0 = xen.createDomain(0);
  const domU = xen.createDomain(1);
  const domV = xen.createDomain(2);
  const disk = o.disk ?? new MemoryBlockDevice(256);
  const paths = await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: DEVID, backend: { mode: o.mode ?? "w" } });
  const back = new Blkback({ xen: dom0, device: o.device ?? disk, frontendDomid: 1, devid: DEVID, ...o.back });
  await back.start();
  const front = new RawBlkifFrontend({ xen: domU, devid: DEVID, protocol: o.protocol, ringPageOrder: o.order, persistent: o.persistent });
  await front.connect();
  await back.waitForState((s) => s === XENBUS_STATE.Connected);
  await xen.settle();
  /** Sends requests, waits, returns the responses by id. */
  const send = async (reqs: BlkifRequest[]): Promise<Map<bigint, BlkifResponse>> => {
    for (const r of reqs) front.put(r);
    front.push();
    await xen.settle();
    return new Map(front.responses().map((r) => [r.id, r]));
  };
  return { xen, dom0, domU, domV, disk, back, front, paths, send };
}

const rw = (operation: number, id: bigint, sectorNumber: number, segments: { gref: number; firstSect: number; lastSect: number }[], extra: Partial<{ nrSegments: number; handle: number }> = {}): BlkifRequest => ({
  operation, nrSegments: extra.nrSegments ?? segments.length, handle: extra.handle ?? HANDLE, id, sectorNumber, segments,
});

describe("blkback handshake", () => {
  it("writes its features, waits in InitWait and connects on Initialised", async () => {
    const xen = new InMemoryXen();
    const dom0 = xen.createDomain(0);
    xen.createDomain(1);
    const paths = await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: DEVID });
    const back = new Blkback({ xen: dom0, device: new MemoryBlockDevice(64, { readOnly: true }), frontendDomid: 1, devid: DEVID });
    await back.start();
    await xen.settle();
    expect(back.state).toBe(XENBUS_STATE.InitWait);
    const xs = dom0.xenstore;
    expect(await xs.read(`${paths.backendPath}/state`)).toBe("2");
    expect(await xs.read(`${paths.backendPath}/mode`)).toBe("r");
    expect(await xs.read(`${paths.backendPath}/feature-discard`)).toBe("0");
    expect(await xs.read(`${paths.backendPath}/feature-persistent`)).toBe("1");
    expect(await xs.read(`${paths.backendPath}/max-ring-page-order`)).toBe("4");
  });

  it("maps a multi-page ring and serves both ABIs", async () => {
    for (const protocol of ["x86_32-abi", "x86_64-abi"] as const) {
      const { front, send, dom0, disk, back } = await setup({ protocol, order: 3 });
      expect(back.protocol).toBe(protocol);
      expect(dom0.gnttab.mappingsHeld).toBe(8);
      disk.data.fill(0x5a, 0, 512);
      const buf = front.grantPage(false);
      const reqs: BlkifRequest[] = [];
      for (let i = 0; i < 40; i++) reqs.push(rw(BLKIF_OP.READ, BigInt(i) + 0xfffffffffffff00n, 0, [{ gref: buf.ref, firstSect: 0, lastSect: 0 }]));
      const rsp = await send(reqs);
      expect(rsp.size).toBe(40);
      for (const r of rsp.values()) expect(r).toMatchObject({ operation: BLKIF_OP.READ, status: BLKIF_RSP.OKAY });
      expect(buf.page.bytes[511]).toBe(0x5a);
      expect(dom0.gnttab.mappingsHeld).toBe(8);
      // The negotiated ABI outlives the connection (what a toolstack reports afterwards).
      await back.stop();
      expect(back.connected).toBe(false);
      expect(back.protocol).toBe(protocol);
    }
  });

  it("has no protocol before a frontend connects", async () => {
    const xen = new InMemoryXen();
    const dom0 = xen.createDomain(0);
    xen.createDomain(1);
    await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: DEVID });
    const back = new Blkback({ xen: dom0, device: new MemoryBlockDevice(8), frontendDomid: 1, devid: DEVID });
    await back.start();
    expect(back.state).toBe(XENBUS_STATE.InitWait);
    expect(back.protocol).toBeUndefined();
  });

  it("refuses a ring-page-order above what it offered", async () => {
    const xen = new InMemoryXen();
    const dom0 = xen.createDomain(0);
    const domU = xen.createDomain(1);
    await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: DEVID });
    const back = new Blkback({ xen: dom0, device: new MemoryBlockDevice(64), frontendDomid: 1, devid: DEVID, maxRingPageOrder: 1 });
    await back.start();
    const front = new RawBlkifFrontend({ xen: domU, devid: DEVID, ringPageOrder: 2 });
    await front.connect();
    await xen.settle();
    expect(back.state).toBe(XENBUS_STATE.Closing);
    expect(await dom0.xenstore.read("error/backend/vbd/1/51712/error")).toMatch(/ring-page-order/);
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    expect(dom0.evtchn.openPorts).toBe(0);
  });
});

describe("blkback ring attach", () => {
  it("refuses a ring whose indexes no frontend could have produced", async () => {
    const xen = new InMemoryXen();
    const dom0 = xen.createDomain(0);
    const domU = xen.createDomain(1);
    await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: DEVID });
    const back = new Blkback({ xen: dom0, device: new MemoryBlockDevice(64), frontendDomid: 1, devid: DEVID });
    await back.start();
    const front = new RawBlkifFrontend({ xen: domU, devid: DEVID });
    await front.connect({ reqProd: 1000 });
    await xen.settle();
    expect(back.state).toBe(XENBUS_STATE.Closing);
    expect(await dom0.xenstore.read("error/backend/vbd/1/51712/error")).toMatch(/inconsistent/);
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    expect(dom0.evtchn.openPorts).toBe(0);
  });
});

describe("blkback hostile handshake", () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ["ring-ref not a number", { "ring-ref": "abc" }, /ring-ref/],
    ["ring-ref never granted", { "ring-ref": "4000" }, /mapping ring-ref/],
    ["ring-ref negative", { "ring-ref": "-1" }, /ring-ref/],
    ["event-channel missing", { "event-channel": "" }, /event-channel/],
    ["event-channel not unbound for us", { "event-channel": "77" }, /binding event channel/],
    ["unknown protocol", { protocol: "arm-abi" }, /protocol/],
    ["ring-page-order garbage", { "ring-page-order": "x" }, /ring-page-order/],
    ["ring-page-order without refs", { "ring-page-order": "1" }, /ring-ref0/],
  ];
  for (const [name, keys, why] of cases) {
    it(`refuses ${name} without leaking mappings or ports, and can connect afterwards`, async () => {
      const xen = new InMemoryXen();
      const dom0 = xen.createDomain(0);
      const domU = xen.createDomain(1);
      const paths = await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: DEVID });
      const back = new Blkback({ xen: dom0, device: new MemoryBlockDevice(64), frontendDomid: 1, devid: DEVID });
      await back.start();
      const f = paths.frontendPath;
      const page = domU.pages.allocPage();
      const ref = domU.gnttab.grantAccess(0, page.frame, false);
      const port = domU.evtchn.allocUnbound(0);
      const base: Record<string, string> = { "ring-ref": String(ref), "event-channel": String(port), protocol: "x86_64-abi" };
      for (const [k, v] of Object.entries({ ...base, ...keys })) await domU.xenstore.write(`${f}/${k}`, v);
      await domU.xenstore.write(`${f}/state`, "3");
      await xen.settle();
      expect(back.state).toBe(XENBUS_STATE.Closing);
      expect(await dom0.xenstore.read("error/backend/vbd/1/51712/error")).toMatch(why);
      expect(dom0.gnttab.mappingsHeld).toBe(0);
      expect(dom0.evtchn.openPorts).toBe(0);
      expect(xen.errors).toEqual([]);
      // The frontend closes and starts over properly.
      await domU.xenstore.write(`${f}/state`, "6");
      await xen.settle();
      expect(back.state).toBe(XENBUS_STATE.Closed);
      await domU.xenstore.write(`${f}/state`, "1");
      await xen.settle();
      const front = new RawBlkifFrontend({ xen: domU, devid: DEVID });
      await domU.xenstore.rm(`${f}/ring-page-order`);
      await front.connect();
      await xen.settle();
      expect(back.state).toBe(XENBUS_STATE.Connected);
    });
  }
});

describe("blkback validation", () => {
  it("answers every malformed request with ERROR or EOPNOTSUPP and keeps serving", async () => {
    const disk = new MemoryBlockDevice(256, { discard: true });
    const { front, send, dom0, domU, domV, back, xen } = await setup({ disk });
    const good = front.grantPage(false);
    const ro = front.grantPage(true);
    const otherDomain = domU.gnttab.grantAccess(2, good.page.frame, false);
    const vPage = domV.pages.allocPage();
    const vRef = domV.gnttab.grantAccess(0, vPage.frame, false);
    const seg = (gref = good.ref, firstSect = 0, lastSect = 7) => [{ gref, firstSect, lastSect }];
    const cases: [string, BlkifRequest, number][] = [
      ["reserved op", { ...rw(BLKIF_OP.RESERVED_1, 1n, 0, seg()) }, BLKIF_RSP.EOPNOTSUPP],
      ["op 200", { ...rw(200, 2n, 0, seg()) }, BLKIF_RSP.EOPNOTSUPP],
      ["no segments", rw(BLKIF_OP.READ, 3n, 0, [], { nrSegments: 0 }), BLKIF_RSP.ERROR],
      ["12 segments", rw(BLKIF_OP.READ, 4n, 0, seg(), { nrSegments: 12 }), BLKIF_RSP.ERROR],
      ["255 segments", rw(BLKIF_OP.WRITE, 5n, 0, seg(), { nrSegments: 255 }), BLKIF_RSP.ERROR],
      ["first > last", rw(BLKIF_OP.READ, 6n, 0, seg(good.ref, 5, 4)), BLKIF_RSP.ERROR],
      ["last_sect 8", rw(BLKIF_OP.READ, 7n, 0, seg(good.ref, 0, 8)), BLKIF_RSP.ERROR],
      ["beyond the disk", rw(BLKIF_OP.READ, 8n, 250, seg()), BLKIF_RSP.ERROR],
      ["huge sector", rw(BLKIF_OP.WRITE, 9n, 2 ** 60, seg()), BLKIF_RSP.ERROR],
      ["bogus gref", rw(BLKIF_OP.READ, 10n, 0, seg(0xdeadbeef)), BLKIF_RSP.ERROR],
      ["reserved gref", rw(BLKIF_OP.READ, 11n, 0, seg(2)), BLKIF_RSP.ERROR],
      ["grant for another domain", rw(BLKIF_OP.READ, 12n, 0, seg(otherDomain)), BLKIF_RSP.ERROR],
      ["read into a read-only grant", rw(BLKIF_OP.READ, 13n, 0, seg(ro.ref)), BLKIF_RSP.ERROR],
      ["a ref only the third domain granted", rw(BLKIF_OP.WRITE, 14n, 0, seg(vRef + 100)), BLKIF_RSP.ERROR],
      ["wrong handle", rw(BLKIF_OP.READ, 15n, 0, seg(), { handle: 7 }), BLKIF_RSP.ERROR],
      ["good then bad segment", rw(BLKIF_OP.WRITE, 16n, 0, [...seg(), ...seg(0xbad)]), BLKIF_RSP.ERROR],
      ["secure discard", { operation: BLKIF_OP.DISCARD, flag: BLKIF_DISCARD_SECURE, handle: HANDLE, id: 17n, sectorNumber: 0, nrSectors: 8 }, BLKIF_RSP.EOPNOTSUPP],
      ["discard beyond", { operation: BLKIF_OP.DISCARD, flag: 0, handle: HANDLE, id: 18n, sectorNumber: 200, nrSectors: 100 }, BLKIF_RSP.ERROR],
      ["indirect flush", { operation: BLKIF_OP.INDIRECT, indirectOp: BLKIF_OP.FLUSH_DISKCACHE, nrSegments: 1, handle: HANDLE, id: 19n, sectorNumber: 0, indirectGrefs: [good.ref] }, BLKIF_RSP.ERROR],
      ["indirect 0 segments", { operation: BLKIF_OP.INDIRECT, indirectOp: BLKIF_OP.READ, nrSegments: 0, handle: HANDLE, id: 20n, sectorNumber: 0, indirectGrefs: [] }, BLKIF_RSP.ERROR],
      ["indirect too many", { operation: BLKIF_OP.INDIRECT, indirectOp: BLKIF_OP.READ, nrSegments: 257, handle: HANDLE, id: 21n, sectorNumber: 0, indirectGrefs: [good.ref] }, BLKIF_RSP.ERROR],
      ["indirect bogus page", { operation: BLKIF_OP.INDIRECT, indirectOp: BLKIF_OP.READ, nrSegments: 12, handle: HANDLE, id: 22n, sectorNumber: 0, indirectGrefs: [0x7777] }, BLKIF_RSP.ERROR],
    ];
    const rsp = await send(cases.map((c) => c[1]));
    for (const [name, req, status] of cases) {
      const got = rsp.get(req.id);
      expect(got, name).toBeDefined();
      expect(got!.status, name).toBe(status);
    }
    expect(back.stats.requests).toBe(cases.length);
    // Nothing of the third domain's page was touched; every data grant was unmapped.
    expect(vPage.bytes.every((b) => b === 0)).toBe(true);
    expect(dom0.gnttab.mappingsHeld).toBe(1);
    expect(domU.gnttab.entriesMapped).toBe(1);
    expect(disk.data.every((b) => b === 0)).toBe(true);
    // An indirect request whose descriptors are bad (last_sect 9).
    const ind = front.grantPage(true);
    const dv = new DataView(ind.page.bytes.buffer, ind.page.bytes.byteOffset, 4096);
    for (let i = 0; i < 12; i++) {
      dv.setUint32(i * 8, good.ref, true);
      dv.setUint8(i * 8 + 4, 0);
      dv.setUint8(i * 8 + 5, i === 11 ? 9 : 7);
    }
    const r2 = await send([{ operation: BLKIF_OP.INDIRECT, indirectOp: BLKIF_OP.WRITE, nrSegments: 12, handle: HANDLE, id: 30n, sectorNumber: 0, indirectGrefs: [ind.ref] }]);
    expect(r2.get(30n)).toMatchObject({ status: BLKIF_RSP.ERROR, operation: BLKIF_OP.WRITE });
    // Still serving.
    good.page.bytes.fill(0x11);
    const r3 = await send([rw(BLKIF_OP.WRITE, 40n, 8, seg())]);
    expect(r3.get(40n)!.status).toBe(BLKIF_RSP.OKAY);
    expect(disk.data[8 * 512]).toBe(0x11);
    expect(dom0.gnttab.mappingsHeld).toBe(1);
    expect(xen.errors).toEqual([]);
  });

  it("refuses writes and discards to a read-only disk, and flush where the disk has none", async () => {
    const disk = new MemoryBlockDevice(64);
    (disk.info as { flush: boolean }).flush = false;
    const { front, send } = await setup({ disk, mode: "r" });
    const p = front.grantPage(true);
    const rsp = await send([
      rw(BLKIF_OP.WRITE, 1n, 0, [{ gref: p.ref, firstSect: 0, lastSect: 0 }]),
      { operation: BLKIF_OP.DISCARD, flag: 0, handle: HANDLE, id: 2n, sectorNumber: 0, nrSectors: 8 },
      rw(BLKIF_OP.FLUSH_DISKCACHE, 3n, 0, [], { nrSegments: 0 }),
      rw(BLKIF_OP.WRITE_BARRIER, 4n, 0, [], { nrSegments: 0 }),
    ]);
    expect([...rsp.values()].map((r) => [r.id, r.status]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([
      [1n, BLKIF_RSP.ERROR], [2n, BLKIF_RSP.ERROR], [3n, BLKIF_RSP.EOPNOTSUPP], [4n, BLKIF_RSP.EOPNOTSUPP],
    ]);
  });

  it("answers discard on a disk without discard with EOPNOTSUPP", async () => {
    const { send } = await setup({ disk: new MemoryBlockDevice(64, { discard: false }) });
    const rsp = await send([{ operation: BLKIF_OP.DISCARD, flag: 0, handle: HANDLE, id: 9n, sectorNumber: 0, nrSectors: 8 }]);
    expect(rsp.get(9n)!.status).toBe(BLKIF_RSP.EOPNOTSUPP);
  });

  it("shuts the channel down on a bogus req_prod", async () => {
    const { front, back, xen, dom0, domU, paths } = await setup();
    front.setReqProd(1000);
    front.kick();
    await xen.settle();
    expect(back.stats.protocolErrors).toBe(1);
    expect(back.connected).toBe(false);
    expect(back.state).toBe(XENBUS_STATE.Closing);
    expect(await dom0.xenstore.read("error/backend/vbd/1/51712/error")).toMatch(/bogus/);
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    expect(dom0.evtchn.openPorts).toBe(0);
    expect(back.stats.requests).toBe(0);
    // The frontend may start again: Closed, Initialising, then a fresh ring.
    expect(await front.disconnect()).toBe(true);
    await xen.settle();
    expect(back.state).toBe(XENBUS_STATE.Closed);
    await domU.xenstore.write(`${paths.frontendPath}/state`, "1");
    await xen.settle();
    expect(back.state).toBe(XENBUS_STATE.InitWait);
    await front.connect();
    await xen.settle();
    expect(back.state).toBe(XENBUS_STATE.Connected);
    expect(xen.errors).toEqual([]);
  });
});

describe("blkback when the frontend domain dies", () => {
  it("finishes in-flight work, unmaps everything and closes", async () => {
    const disk = new MemoryBlockDevice(256);
    let release: () => void = () => {};
    const slow: BlockDevice = {
      info: disk.info,
      read: (s, d) => new Promise<void>((r) => (release = r)).then(() => disk.read(s, d)),
      write: (s, d) => disk.write(s, d),
      flush: () => disk.flush(),
    };
    const { front, back, xen, dom0 } = await setup({ device: slow });
    const p = front.grantPage(false);
    front.put(rw(BLKIF_OP.READ, 1n, 0, [{ gref: p.ref, firstSect: 0, lastSect: 7 }]));
    front.push();
    await xen.settle();
    expect(dom0.gnttab.mappingsHeld).toBe(2);
    await xen.destroyDomain(1);
    await xen.settle();
    release();
    await xen.settle();
    expect(back.connected).toBe(false);
    expect(back.state).toBe(XENBUS_STATE.Closed);
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    expect(dom0.evtchn.openPorts).toBe(0);
    expect(xen.errors).toEqual([]);
  });
});

describe("blkback data path", () => {
  it("hands the device views of the frontend's pages, merging contiguous segments", async () => {
    const disk = new MemoryBlockDevice(256);
    const calls: { buffer: ArrayBufferLike; bytes: number }[] = [];
    const spy: BlockDevice = {
      info: disk.info,
      read: (s, d) => (calls.push({ buffer: d.buffer, bytes: d.length }), disk.read(s, d)),
      write: (s, d) => (calls.push({ buffer: d.buffer, bytes: d.length }), disk.write(s, d)),
      flush: () => disk.flush(),
    };
    const { front, send, domU, back } = await setup({ device: spy });
    const a = front.grantPage(false);
    const b = front.grantPage(false);
    expect(b.page.frame).toBe(a.page.frame + 1);
    const rsp = await send([rw(BLKIF_OP.READ, 1n, 0, [
      { gref: a.ref, firstSect: 4, lastSect: 7 }, { gref: b.ref, firstSect: 0, lastSect: 3 }, { gref: a.ref, firstSect: 0, lastSect: 1 },
    ])]);
    expect(rsp.get(1n)!.status).toBe(BLKIF_RSP.OKAY);
    expect(calls).toEqual([{ buffer: domU.memory.buffer, bytes: 4096 }, { buffer: domU.memory.buffer, bytes: 1024 }]);
    expect(back.stats.bounced).toBe(0);
  });

  it("bounces sub-sector segments on a 4 KiB-sector disk and refuses misaligned ranges", async () => {
    const disk = new MemoryBlockDevice(16, { sectorSize: 4096 });
    for (let i = 0; i < disk.data.length; i++) disk.data[i] = i % 251;
    const { front, send, back } = await setup({ disk });
    const a = front.grantPage(false);
    const b = front.grantPage(false);
    const rsp = await send([
      rw(BLKIF_OP.READ, 1n, 8, [{ gref: a.ref, firstSect: 0, lastSect: 3 }, { gref: b.ref, firstSect: 4, lastSect: 7 }]),
      rw(BLKIF_OP.READ, 2n, 1, [{ gref: a.ref, firstSect: 0, lastSect: 7 }]),
      rw(BLKIF_OP.READ, 3n, 8, [{ gref: a.ref, firstSect: 0, lastSect: 3 }]),
    ]);
    expect(rsp.get(1n)!.status).toBe(BLKIF_RSP.OKAY);
    expect(rsp.get(2n)!.status).toBe(BLKIF_RSP.ERROR);
    expect(rsp.get(3n)!.status).toBe(BLKIF_RSP.ERROR);
    expect(back.stats.bounced).toBe(1);
    expect(Array.from(a.page.bytes.subarray(0, 4))).toEqual([4096 % 251, 4097 % 251, 4098 % 251, 4099 % 251]);
    expect(b.page.bytes[2048]).toBe((4096 + 2048) % 251);
  });

  it("serves indirect requests and echoes the indirect operation", async () => {
    const { front, send, disk } = await setup();
    const pages = Array.from({ length: 20 }, () => front.grantPage(false));
    pages.forEach((p, i) => p.page.bytes.fill(i + 1));
    const ind = front.grantPage(true);
    const dv = new DataView(ind.page.bytes.buffer, ind.page.bytes.byteOffset, 4096);
    pages.forEach((p, i) => {
      dv.setUint32(i * 8, p.ref, true);
      dv.setUint8(i * 8 + 4, 0);
      dv.setUint8(i * 8 + 5, 7);
    });
    const rsp = await send([{ operation: BLKIF_OP.INDIRECT, indirectOp: BLKIF_OP.WRITE, nrSegments: 20, handle: HANDLE, id: 5n, sectorNumber: 16, indirectGrefs: [ind.ref] }]);
    expect(rsp.get(5n)).toMatchObject({ status: BLKIF_RSP.OKAY, operation: BLKIF_OP.WRITE });
    for (let i = 0; i < 20; i++) expect(disk.data[(16 + i * 8) * 512]).toBe(i + 1);
  });

  it("works through bounded passes (batch 2) with a full ring", async () => {
    const { front, send, back } = await setup({ back: { batch: 2 } });
    const p = front.grantPage(false);
    const rsp = await send(Array.from({ length: 32 }, (_, i) => rw(BLKIF_OP.READ, BigInt(i), i, [{ gref: p.ref, firstSect: 0, lastSect: 0 }])));
    expect(rsp.size).toBe(32);
    expect(back.stats.reads).toBe(32);
  });
});

describe("blkback persistent grants", () => {
  const seg = (gref: number) => [{ gref, firstSect: 0, lastSect: 7 }];

  it("is used only when both ends offer it", async () => {
    for (const [frontOffers, backOffers] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const { front, send, dom0, back, disk, paths } = await setup({ persistent: frontOffers, back: { persistent: backOffers } });
      expect(await dom0.xenstore.read(`${paths.backendPath}/feature-persistent`)).toBe(backOffers ? "1" : "0");
      const p = front.grantPage(false);
      disk.data.fill(0x3c, 0, 4096);
      const maps = dom0.gnttab.stats.maps;
      const rsp = await send(Array.from({ length: 10 }, (_, i) => rw(BLKIF_OP.READ, BigInt(i), 0, seg(p.ref))));
      expect([...rsp.values()].every((r) => r.status === BLKIF_RSP.OKAY)).toBe(true);
      expect(p.page.bytes[4095]).toBe(0x3c);
      const both = frontOffers && backOffers;
      expect(dom0.gnttab.stats.maps - maps, `${frontOffers}/${backOffers}`).toBe(both ? 1 : 10);
      expect(back.persistentGrants).toBe(both ? 1 : 0);
      expect(back.mappedGrants).toBe(1 + (both ? 1 : 0));
      expect(back.stats.persistentHits).toBe(both ? 9 : 0);
    }
  });

  it("keeps a grant mapped across reads and writes and unmaps everything on disconnect", async () => {
    const { front, send, dom0, domU, back, disk, xen } = await setup({ persistent: true });
    const a = front.grantPage(false);
    const b = front.grantPage(false);
    a.page.bytes.fill(0xa1);
    b.page.bytes.fill(0xb2);
    let r = await send([rw(BLKIF_OP.WRITE, 1n, 0, [...seg(a.ref), ...seg(b.ref)])]);
    expect(r.get(1n)!.status).toBe(BLKIF_RSP.OKAY);
    expect(disk.data[0]).toBe(0xa1);
    expect(disk.data[4096]).toBe(0xb2);
    a.page.bytes.fill(0);
    r = await send([rw(BLKIF_OP.READ, 2n, 8, seg(a.ref))]);
    expect(r.get(2n)!.status).toBe(BLKIF_RSP.OKAY);
    expect(a.page.bytes[0]).toBe(0xb2);
    expect(back.persistentGrants).toBe(2);
    expect(dom0.gnttab.mappingsHeld).toBe(3);
    // The frontend cannot revoke a grant the backend keeps mapped.
    expect(domU.gnttab.endAccess(a.ref)).toBe(false);
    await domU.xenstore.write(`${front.frontendPath}/state`, String(XENBUS_STATE.Closing));
    await xen.settle();
    expect(await front.disconnect()).toBe(true);
    await xen.settle();
    expect(back.connected).toBe(false);
    expect(back.persistentGrants).toBe(0);
    expect(back.mappedGrants).toBe(0);
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    expect(domU.gnttab.endAccess(a.ref)).toBe(true);
    expect(domU.gnttab.endAccess(b.ref)).toBe(true);
    expect(xen.errors).toEqual([]);
  });

  it("bounds the grants it keeps mapped, evicting the least recently used", async () => {
    const { front, send, dom0, back, disk } = await setup({ persistent: true, disk: new MemoryBlockDevice(512), back: { maxPersistentGrants: 4 } });
    const pages = Array.from({ length: 40 }, () => front.grantPage(false));
    pages.forEach((p, i) => p.page.bytes.fill(i + 1));
    // One at a time, every gref distinct: the cache never holds more than 4.
    for (let i = 0; i < 40; i++) {
      const r = await send([rw(BLKIF_OP.WRITE, BigInt(i), i * 8, seg(pages[i]!.ref))]);
      expect(r.get(BigInt(i))!.status).toBe(BLKIF_RSP.OKAY);
      expect(back.persistentGrants).toBeLessThanOrEqual(4);
      expect(dom0.gnttab.mappingsHeld).toBeLessThanOrEqual(1 + 4);
    }
    for (let i = 0; i < 40; i++) expect(disk.data[i * 4096]).toBe(i + 1);
    expect(back.stats.persistentEvictions).toBeGreaterThanOrEqual(36);
    // A request with more distinct grefs than the limit, and a full ring of them at once.
    const many = pages.slice(0, 11);
    const reqs = Array.from({ length: 32 }, (_, k) => rw(BLKIF_OP.READ, 100n + BigInt(k), 0, many.map((p) => seg(p.ref)[0]!)));
    const r = await send(reqs);
    expect([...r.values()].every((x) => x.status === BLKIF_RSP.OKAY)).toBe(true);
    expect(back.persistentGrants).toBeLessThanOrEqual(4);
    expect(dom0.gnttab.mappingsHeld).toBe(1 + back.persistentGrants);
    expect(many[10]!.page.bytes[0]).toBe(11);
    // Least recently used goes first: fill with 20..23, touch 20, bring in 24 (evicts 21).
    let id = 200n;
    const use = async (i: number) => {
      const maps = dom0.gnttab.stats.maps;
      expect((await send([rw(BLKIF_OP.READ, id, 0, seg(pages[i]!.ref))])).get(id++)!.status).toBe(BLKIF_RSP.OKAY);
      return dom0.gnttab.stats.maps - maps;
    };
    for (const i of [20, 21, 22, 23]) await use(i);
    expect(await use(20)).toBe(0);
    expect(await use(24)).toBe(1);
    expect(await use(20)).toBe(0);
    expect(await use(22)).toBe(0);
    expect(await use(21)).toBe(1);
  });

  it("maps the grants beyond the limit of a request for that request only, without evicting its own", async () => {
    const { front, send, dom0, back } = await setup({ persistent: true, back: { maxPersistentGrants: 4 } });
    const pages = Array.from({ length: 11 }, () => front.grantPage(false));
    const r = await send([rw(BLKIF_OP.READ, 1n, 0, pages.map((p) => seg(p.ref)[0]!))]);
    expect(r.get(1n)!.status).toBe(BLKIF_RSP.OKAY);
    expect(back.persistentGrants).toBe(4);
    expect(back.stats.persistentEvictions).toBe(0);
    expect(back.stats.persistentMaps).toBe(4);
    expect(dom0.gnttab.mappingsHeld).toBe(1 + 4);
    // Idle now: the next miss evicts the least recently used one.
    const extra = front.grantPage(false);
    expect((await send([rw(BLKIF_OP.READ, 2n, 0, seg(extra.ref))])).get(2n)!.status).toBe(BLKIF_RSP.OKAY);
    expect(back.stats.persistentEvictions).toBe(1);
    expect(back.persistentGrants).toBe(4);
  });

  it("answers a gref that was revoked or re-granted after eviction with errors, never touching the old page", async () => {
    const { front, send, dom0, domU, back, disk } = await setup({ persistent: true, back: { maxPersistentGrants: 1 } });
    disk.data.fill(0x77, 0, 4096);
    const a = front.grantPage(false);
    const b = front.grantPage(false);
    expect((await send([rw(BLKIF_OP.READ, 1n, 0, seg(a.ref))])).get(1n)!.status).toBe(BLKIF_RSP.OKAY);
    // b evicts a, so the frontend can end a now.
    expect((await send([rw(BLKIF_OP.READ, 2n, 0, seg(b.ref))])).get(2n)!.status).toBe(BLKIF_RSP.OKAY);
    expect(back.persistentGrants).toBe(1);
    expect(domU.gnttab.endAccess(a.ref)).toBe(true);
    a.page.bytes.fill(0xee);
    // Revoked: an error, and a's page is left alone.
    expect((await send([rw(BLKIF_OP.READ, 3n, 0, seg(a.ref))])).get(3n)!.status).toBe(BLKIF_RSP.ERROR);
    expect(a.page.bytes.every((x) => x === 0xee)).toBe(true);
    // The same ref number re-granted read-only for another page: a read into it is an error
    // (neither page written), a write from it reads the page it names now.
    const c = domU.pages.allocPage();
    c.bytes.fill(0x5c);
    const cref = domU.gnttab.grantAccess(0, c.frame, true);
    expect(cref).toBe(a.ref);
    expect((await send([rw(BLKIF_OP.READ, 4n, 0, seg(cref))])).get(4n)!.status).toBe(BLKIF_RSP.ERROR);
    expect(c.bytes.every((x) => x === 0x5c)).toBe(true);
    expect(a.page.bytes.every((x) => x === 0xee)).toBe(true);
    expect((await send([rw(BLKIF_OP.WRITE, 5n, 16, seg(cref))])).get(5n)!.status).toBe(BLKIF_RSP.OKAY);
    expect(disk.data[16 * 512]).toBe(0x5c);
    // Read-only grants are mapped per request, never kept.
    expect(domU.gnttab.endAccess(cref)).toBe(true);
    expect(dom0.gnttab.mappingsHeld).toBe(1 + back.persistentGrants);
    expect(back.stats.errors).toBe(2);
  });

  it("serves indirect requests through persistent grants, read-only indirect pages per request", async () => {
    const { front, send, disk, dom0, back } = await setup({ persistent: true });
    const pages = Array.from({ length: 20 }, () => front.grantPage(false));
    pages.forEach((p, i) => p.page.bytes.fill(i + 1));
    for (const readonly of [false, true]) {
      const ind = front.grantPage(readonly);
      const dv = new DataView(ind.page.bytes.buffer, ind.page.bytes.byteOffset, 4096);
      pages.forEach((p, i) => {
        dv.setUint32(i * 8, p.ref, true);
        dv.setUint8(i * 8 + 4, 0);
        dv.setUint8(i * 8 + 5, 7);
      });
      const id = readonly ? 6n : 5n;
      const rsp = await send([{ operation: BLKIF_OP.INDIRECT, indirectOp: BLKIF_OP.WRITE, nrSegments: 20, handle: HANDLE, id, sectorNumber: 16, indirectGrefs: [ind.ref] }]);
      expect(rsp.get(id)).toMatchObject({ status: BLKIF_RSP.OKAY, operation: BLKIF_OP.WRITE });
      for (let i = 0; i < 20; i++) expect(disk.data[(16 + i * 8) * 512]).toBe(i + 1);
    }
    expect(back.persistentGrants).toBe(21);
    expect(dom0.gnttab.mappingsHeld).toBe(1 + 21);
  });
});
