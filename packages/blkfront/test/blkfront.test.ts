import { Blkback } from "@paravirt/blkback";
import { XENBUS_STATE } from "@paravirt/device-channel";
import { BlockError, VirtualClock } from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { addDevice, InMemoryXen, removeDevice } from "@paravirt/xen-testing";
import { Blkfront } from "../src/index.ts";
import { describe, expect, it } from "vitest";
import { crashable, DEVID, GatedDevice, pattern, rig, same, settled } from "./harness.ts";

describe("handshake", () => {
  it("connects through xenstore as Linux does and describes the disk", async () => {
    const { dom0, domU, front, back, paths } = await rig();
    const xs = dom0.xenstore;
    const f = paths.frontendPath;
    const b = paths.backendPath;
    expect(await xs.read(`${f}/state`)).toBe("4");
    expect(await xs.read(`${b}/state`)).toBe("4");
    expect(await xs.read(`${f}/protocol`)).toBe("x86_64-abi");
    expect(await xs.read(`${f}/ring-page-order`)).toBe("4");
    for (let i = 0; i < 16; i++) expect(await xs.read(`${f}/ring-ref${i}`)).toMatch(/^\d+$/);
    expect(await xs.read(`${f}/event-channel`)).toMatch(/^\d+$/);
    expect(await xs.read(`${f}/feature-persistent`)).toBe("1");
    expect(await xs.read(`${b}/feature-persistent`)).toBe("1");
    expect(front.persistent).toBe(true);
    expect(await xs.read(`${b}/sectors`)).toBe("4096");
    expect(await xs.read(`${b}/sector-size`)).toBe("512");
    expect(await xs.read(`${b}/physical-sector-size`)).toBe("512");
    expect(await xs.read(`${b}/info`)).toBe("0");
    expect(await xs.read(`${b}/mode`)).toBe("w");
    expect(await xs.read(`${b}/feature-flush-cache`)).toBe("1");
    expect(await xs.read(`${b}/feature-barrier`)).toBe("1");
    expect(await xs.read(`${b}/feature-discard`)).toBe("1");
    expect(await xs.read(`${b}/discard-granularity`)).toBe("512");
    expect(await xs.read(`${b}/feature-max-indirect-segments`)).toBe("256");
    expect(await xs.read(`${b}/max-ring-page-order`)).toBe("4");
    expect(front.info).toEqual({ sectorSize: 512, sectors: 4096, physicalSectorSize: 512, readOnly: false, flush: true, discard: true });
    expect(front.state).toBe(XENBUS_STATE.Connected);
    expect(back.state).toBe(XENBUS_STATE.Connected);
    expect(front.ringPages).toBe(16);
    expect(domU.gnttab.grantsInUse).toBe(16);
    expect(dom0.gnttab.mappingsHeld).toBe(16);
  });

  it("uses a one-page ring with ring-ref when either side wants order 0", async () => {
    const { dom0, front, paths } = await rig({ back: { maxRingPageOrder: 0 } });
    expect(await dom0.xenstore.read(`${paths.frontendPath}/ring-ref`)).toMatch(/^\d+$/);
    expect(front.ringPages).toBe(1);
    const r2 = await rig({ front: { maxRingPageOrder: 0 } });
    expect(r2.front.ringPages).toBe(1);
  });

  it("reports a read-only disk and refuses writes locally", async () => {
    const { front } = await rig({ mode: "r" });
    expect(front.info.readOnly).toBe(true);
    expect(front.info.discard).toBe(false);
    await expect(front.write(0, new Uint8Array(512))).rejects.toMatchObject({ kind: "read-only" });
  });
});

describe("data", () => {
  for (const protocol of ["x86_64-abi", "x86_32-abi"] as const) {
    for (const order of [0, 2]) {
      it(`round-trips patterns at several offsets and sizes (${protocol}, ring order ${order})`, async () => {
        const { front, back: bb, disk, xen, dom0, domU } = await rig({ front: { protocol, maxRingPageOrder: order } });
        const cases: [number, number][] = [[0, 1], [1, 7], [8, 8], [13, 88], [100, 96], [333, 257], [4096 - 300, 300]];
        let seed = 1;
        for (const [sector, count] of cases) {
          const data = pattern(count * 512, seed++);
          await front.write(sector, data);
          expect(same(disk.data.subarray(sector * 512, (sector + count) * 512), data)).toBe(true);
          const back = new Uint8Array(count * 512);
          await front.read(sector, back);
          expect(same(back, data)).toBe(true);
        }
        // many at once
        const all = cases.map(([sector, count], i) => front.read(sector, new Uint8Array(count * 512)).then(() => i));
        expect(await Promise.all(all)).toHaveLength(cases.length);
        await xen.settle();
        expect(front.pending).toBe(0);
        // Only the ring and the persistent pool stay granted, and the backend maps exactly those.
        expect(front.persistentGrants).toBeGreaterThan(0);
        expect(bb.persistentGrants).toBe(front.persistentGrants);
        expect(domU.gnttab.grantsInUse).toBe(front.ringPages + front.persistentGrants);
        expect(dom0.gnttab.mappingsHeld).toBe(front.ringPages + front.persistentGrants);
        expect(xen.errors).toEqual([]);
      });
    }
  }

  it("uses indirect requests for large transfers and plain ones when indirect is off", async () => {
    const a = await rig();
    const data = pattern(64 * 4096, 9);
    await a.front.write(10, data);
    expect(a.back.stats.indirect).toBe(2);
    const out = new Uint8Array(data.length);
    await a.front.read(10, out);
    expect(same(out, data)).toBe(true);
    const b = await rig({ back: { maxIndirectSegments: 0 } });
    await b.front.write(10, data);
    expect(b.back.stats.indirect).toBe(0);
    expect(b.back.stats.writes).toBe(Math.ceil(64 / 11));
    expect(same(b.disk.data.subarray(10 * 512, 10 * 512 + data.length), data)).toBe(true);
  });

  it("hands the device views of the granted pages (zero copy, page runs merged)", async () => {
    const { front, back, disk } = await rig();
    await front.write(0, pattern(8 * 4096, 3));
    expect(back.stats.zeroCopyCalls).toBeGreaterThan(0);
    expect(back.stats.bounced).toBe(0);
    expect(disk.log.filter((l) => l.op === "write").length).toBeLessThanOrEqual(8);
  });

  it("works on a 4096-byte-sector disk", async () => {
    const disk = new MemoryBlockDevice(512, { sectorSize: 4096 });
    const { front } = await rig({ disk });
    expect(front.info.sectorSize).toBe(4096);
    expect(front.info.sectors).toBe(512);
    const data = pattern(3 * 4096, 5);
    await front.write(7, data);
    expect(same(disk.data.subarray(7 * 4096, 10 * 4096), data)).toBe(true);
    const out = new Uint8Array(data.length);
    await front.read(7, out);
    expect(same(out, data)).toBe(true);
  });

  it("discards", async () => {
    const { front, disk } = await rig();
    await front.write(0, pattern(16 * 512, 2));
    await front.discard(4, 8);
    expect(disk.data.subarray(4 * 512, 12 * 512).every((b) => b === 0)).toBe(true);
    expect(disk.data[3 * 512]).not.toBe(0);
    expect(disk.log.some((l) => l.op === "discard" && l.sector === 4 && l.bytes === 8 * 512)).toBe(true);
  });

  it("rejects out-of-range and misaligned requests without sending them", async () => {
    const { front, back } = await rig();
    await expect(front.read(4095, new Uint8Array(1024))).rejects.toMatchObject({ kind: "out-of-range" });
    await expect(front.read(0, new Uint8Array(100))).rejects.toMatchObject({ kind: "misaligned" });
    expect(back.stats.requests).toBe(0);
  });

  it("turns a device error into BlockError io", async () => {
    const { front, disk } = await rig();
    disk.failNext = true;
    await expect(front.read(0, new Uint8Array(512))).rejects.toMatchObject({ kind: "io" });
    await front.read(0, new Uint8Array(512));
  });
});

describe("guest pages", () => {
  it("grants the caller's own pages directly when it can name their frames", async () => {
    // Persistent grants copy through their pool instead; this is the path without them.
    const { front, disk, domU, xen } = await rig({ directPages: true, front: { persistent: false } });
    // Four consecutive guest pages, viewed as one 16 KiB buffer, plus a 512-byte tail elsewhere.
    const pages = [domU.pages.allocPage(), domU.pages.allocPage(), domU.pages.allocPage(), domU.pages.allocPage()];
    const buf = new Uint8Array(pages[0]!.bytes.buffer, pages[0]!.bytes.byteOffset, 4 * 4096);
    buf.set(pattern(buf.length, 21));
    await front.write(64, buf);
    expect(front.stats.directPages).toBe(4);
    expect(front.stats.bouncedPages).toBe(0);
    expect(same(disk.data.subarray(64 * 512, 64 * 512 + buf.length), buf)).toBe(true);
    buf.fill(0);
    await front.read(64, buf);
    expect(front.stats.directPages).toBe(8);
    expect(same(buf, pattern(buf.length, 21))).toBe(true);
    // A buffer that is not guest memory, or not whole pages, is copied.
    const plain = new Uint8Array(4096 + 512);
    await front.read(64, plain);
    expect(front.stats.bouncedPages).toBe(2);
    expect(same(plain.subarray(0, 4096), pattern(buf.length, 21).subarray(0, 4096))).toBe(true);
    await xen.settle();
    expect(domU.gnttab.grantsInUse).toBe(front.ringPages);
    for (const p of pages) domU.pages.freePage(p);
  });
});

describe("ordering", () => {
  it("completes requests out of order", async () => {
    const disk = new MemoryBlockDevice(1024);
    const gated = new GatedDevice(disk);
    gated.gated = false;
    const { front, xen } = await rig({ disk, device: gated });
    gated.gated = true;
    const done: number[] = [];
    const ps = [0, 1, 2, 3].map((i) => front.write(i * 8, pattern(4096, i)).then(() => done.push(i)));
    await xen.settle();
    expect(gated.held.map((h) => h.sector)).toEqual([0, 8, 16, 24]);
    for (const i of [2, 0, 3, 1]) {
      gated.held[i]!.release();
      await xen.settle();
    }
    await Promise.all(ps);
    expect(done).toEqual([2, 0, 3, 1]);
  });

  it("does not notify the backend while it has requests unanswered; it picks them up as it answers", async () => {
    const disk = new MemoryBlockDevice(1024);
    const gated = new GatedDevice(disk);
    gated.gated = false;
    const { front, back, xen } = await rig({ disk, device: gated });
    gated.gated = true;
    const a = front.read(0, new Uint8Array(4096));
    await xen.settle();
    const events = front.stats.notifications;
    expect(gated.held).toHaveLength(1);
    // The backend owes a response: req_event is not re-armed, so B goes without an event...
    const b = front.read(8, new Uint8Array(4096));
    const c = front.read(16, new Uint8Array(4096));
    await xen.settle();
    expect(front.stats.notifications).toBe(events);
    expect(gated.held).toHaveLength(1);
    expect(back.stats.requests).toBe(1);
    // ...and is taken from the ring when A is answered.
    gated.held.shift()!.release();
    await xen.settle();
    expect(back.stats.requests).toBe(3);
    await gated.releaseAll(xen);
    await Promise.all([a, b, c]);
    // Everything answered: the next request notifies again.
    gated.gated = false;
    await front.read(24, new Uint8Array(4096));
    expect(front.stats.notifications).toBe(events + 1);
  });

  it("flushes after the writes that completed before it, with FLUSH_DISKCACHE", async () => {
    const { front, disk, back } = await rig();
    await front.write(0, pattern(4096, 1));
    await front.write(8, pattern(4096, 2));
    await front.flush();
    expect(disk.log.map((l) => l.op)).toEqual(["write", "write", "flush"]);
    expect(back.stats.flushes).toBe(1);
  });

  it("falls back to WRITE_BARRIER, which drains the requests before it", async () => {
    const disk = new MemoryBlockDevice(1024);
    const gated = new GatedDevice(disk);
    gated.gated = false;
    // A backend that offers barriers but not cache flushes.
    const { front, xen, back } = await rig({
      disk, device: gated,
      beforeFront: async (x, p) => x.toolstackStore().write(`${p.backendPath}/feature-flush-cache`, "0"),
    });
    expect(front.info.flush).toBe(true);
    gated.gated = true;
    const w = front.write(0, pattern(4096, 7));
    await xen.settle();
    const fl = front.flush();
    await xen.settle();
    // the barrier waits for the write to finish before reaching the device
    expect(gated.held.map((h) => h.op)).toEqual(["write"]);
    await gated.releaseAll(xen);
    await Promise.all([w, fl]);
    expect(disk.log.map((l) => l.op)).toEqual(["write", "flush"]);
    expect(back.stats.barriers).toBe(1);
  });

  it("resolves flush at once when the disk has no write cache", async () => {
    const disk = new MemoryBlockDevice(64);
    (disk.info as { flush: boolean }).flush = false;
    const { front, back } = await rig({ disk });
    expect(front.info.flush).toBe(false);
    await front.flush();
    expect(back.stats.requests).toBe(0);
  });
});

describe("lifecycle", () => {
  it("reissues in-flight requests after the backend reconnects", async () => {
    const disk = new MemoryBlockDevice(1024);
    const gated = new GatedDevice(disk);
    gated.gated = false;
    const { front, back, xen, dom0, domU } = await rig({ disk, device: gated });
    await front.write(0, pattern(8 * 512, 1));
    gated.gated = true;
    const data = pattern(3 * 4096, 2);
    const w = front.write(100, data);
    const r = new Uint8Array(8 * 512);
    const rd = front.read(0, r);
    await xen.settle();
    expect(gated.held).toHaveLength(2);
    const reset = back.reset();
    await xen.settle();
    // The old requests finish at the device but are not answered; the ring is rebuilt.
    gated.gated = false;
    for (const h of gated.held.splice(0)) h.release();
    await reset;
    await Promise.all([w, rd]);
    expect(same(r, pattern(8 * 512, 1))).toBe(true);
    expect(same(disk.data.subarray(100 * 512, 100 * 512 + data.length), data)).toBe(true);
    expect(front.stats.reissued).toBe(2);
    expect(front.stats.connects).toBe(2);
    expect(back.stats.connects).toBe(2);
    expect(front.state).toBe(XENBUS_STATE.Connected);
    await xen.settle();
    // The old pool went with the old ring; the new one is granted and mapped afresh.
    expect(back.persistentGrants).toBe(front.persistentGrants);
    expect(domU.gnttab.grantsInUse).toBe(front.ringPages + front.persistentGrants);
    expect(dom0.gnttab.mappingsHeld).toBe(front.ringPages + front.persistentGrants);
    expect(front.deferredGrants).toBe(0);
    // and the device keeps working
    await front.write(200, pattern(512, 3));
    expect(xen.errors).toEqual([]);
  });

  it("reissues a full ring and the requests queued behind it, in order, after a reconnect", async () => {
    const disk = new MemoryBlockDevice(1024);
    for (let i = 0; i < 40; i++) disk.data.set(pattern(512, 100 + i), i * 8 * 512);
    const gated = new GatedDevice(disk);
    const { front, back, xen } = await rig({ disk, device: gated, front: { maxRingPageOrder: 0 } });
    const outs = Array.from({ length: 40 }, () => new Uint8Array(512));
    const reads = outs.map((o, i) => front.read(i * 8, o));
    await xen.settle();
    expect(front.pending).toBe(40);
    const reset = back.reset();
    await xen.settle();
    await gated.releaseAll(xen);
    await reset;
    await gated.releaseAll(xen);
    await Promise.all(reads);
    for (let i = 0; i < 40; i++) expect(same(outs[i]!, pattern(512, 100 + i))).toBe(true);
    expect(front.pending).toBe(0);
    expect(front.stats.reissued).toBeGreaterThan(0);
    expect(xen.errors).toEqual([]);
  });

  it("fails pending and later requests with closed when the backend goes away for good", async () => {
    const disk = new MemoryBlockDevice(1024);
    const gated = new GatedDevice(disk);
    gated.gated = false;
    const { front, back, xen, paths, dom0, domU } = await rig({ disk, device: gated });
    gated.gated = true;
    const rd = front.read(0, new Uint8Array(4096));
    const caught = rd.catch((e: unknown) => e);
    await xen.settle();
    await removeDevice(xen, paths);
    await xen.settle();
    const err = await caught;
    expect(err).toBeInstanceOf(BlockError);
    expect((err as BlockError).kind).toBe("closed");
    await expect(front.write(0, new Uint8Array(512))).rejects.toMatchObject({ kind: "closed" });
    gated.gated = false;
    for (const h of gated.held.splice(0)) h.release();
    await xen.settle();
    expect(front.state).toBe(XENBUS_STATE.Closed);
    expect(back.state).toBe(XENBUS_STATE.Closed);
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    expect(domU.gnttab.grantsInUse).toBe(0);
    expect(domU.memory.allocated).toBe(0);
    expect(dom0.evtchn.openPorts + domU.evtchn.openPorts).toBe(0);
  });

  it("fails pending requests with closed when the backend domain dies", async () => {
    const xen = new InMemoryXen();
    xen.createDomain(0);
    const driver = xen.createDomain(4);
    const domU = xen.createDomain(1);
    const disk = new MemoryBlockDevice(256);
    const gated = new GatedDevice(disk);
    gated.gated = false;
    await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 4, devid: DEVID });
    const back = new Blkback({ xen: driver, device: gated, frontendDomid: 1, devid: DEVID });
    await back.start();
    const front = new Blkfront({ xen: domU, devid: DEVID });
    await front.connect();
    gated.gated = true;
    const rd = front.read(0, new Uint8Array(8192)).catch((e: unknown) => e);
    await xen.settle();
    await xen.destroyDomain(4);
    await xen.settle();
    expect(await rd).toMatchObject({ kind: "closed" });
    expect(domU.gnttab.grantsInUse).toBe(0);
    expect(domU.memory.allocated).toBe(0);
    expect(domU.evtchn.openPorts).toBe(0);
    expect(xen.errors).toEqual([]);
  });

  it("closes from the guest side and the backend follows", async () => {
    const { front, back, xen, dom0, domU } = await rig();
    await front.write(0, pattern(512, 1));
    await front.close();
    await xen.settle();
    expect(front.state).toBe(XENBUS_STATE.Closed);
    expect(back.state).toBe(XENBUS_STATE.Closed);
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    expect(domU.gnttab.grantsInUse).toBe(0);
    await expect(front.read(0, new Uint8Array(512))).rejects.toMatchObject({ kind: "closed" });
  });

  it("a backend that dies is replaced by one that resumes the ring and serves what was unanswered", async () => {
    const disk = new MemoryBlockDevice(1024);
    const gated = new GatedDevice(disk);
    gated.gated = false;
    const { front, xen, dom0, domU, back } = await rig({ disk, device: gated });
    // Hand the device over to a backend running in a process that can die.
    await back.stop();
    await xen.settle();
    const proc = crashable(dom0);
    const old = new Blkback({ xen: proc.xen, device: gated, frontendDomid: 1, devid: DEVID });
    await old.start();
    await xen.settle();
    expect(old.state).toBe(XENBUS_STATE.Connected);
    await front.write(0, pattern(4096, 1));
    gated.gated = true;
    const data = pattern(2 * 4096, 2);
    const w = front.write(64, data);
    const out = new Uint8Array(4096);
    const rd = front.read(0, out);
    await xen.settle();
    expect(gated.held).toHaveLength(2);
    // The backend process dies with both requests consumed and unanswered.
    proc.crash();
    gated.held.length = 0; // the dead process's device requests never complete
    gated.gated = false;
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    const fresh = new Blkback({ xen: dom0, device: gated, frontendDomid: 1, devid: DEVID });
    await fresh.start();
    await settled(xen, Promise.all([w, rd]));
    expect(same(out, pattern(4096, 1))).toBe(true);
    expect(same(disk.data.subarray(64 * 512, 64 * 512 + data.length), data)).toBe(true);
    expect(fresh.state).toBe(XENBUS_STATE.Connected);
    expect(fresh.stats.requests).toBe(2);
    expect(front.stats.reissued).toBe(0);
    await front.write(8, pattern(512, 3));
    await xen.settle();
    // The pool survives the backend swap (same ring); the fresh backend maps what it was handed.
    expect(fresh.persistentGrants).toBeLessThanOrEqual(front.persistentGrants);
    expect(dom0.gnttab.mappingsHeld).toBe(front.ringPages + fresh.persistentGrants);
    expect(domU.gnttab.grantsInUse).toBe(front.ringPages + front.persistentGrants);
    expect(xen.errors).toEqual([]);
  });

  it("a second backend instance serves a re-initialised frontend", async () => {
    const { front, back, xen, dom0, disk } = await rig();
    await back.stop();
    await xen.settle();
    const back2 = new Blkback({ xen: dom0, device: disk, frontendDomid: 1, devid: DEVID });
    await back2.start();
    await xen.settle();
    expect(back2.state).toBe(XENBUS_STATE.Connected);
    await front.write(5, pattern(512, 4));
    expect(same(disk.data.subarray(5 * 512, 6 * 512), pattern(512, 4))).toBe(true);
  });
});

describe("resources", () => {
  it("queues many more requests than fit in memory, allocating pages only for ring slots", async () => {
    const { front, xen, domU } = await rig({ front: { maxRingPageOrder: 0 } });
    const before = domU.memory.allocated;
    const reads: Promise<void>[] = [];
    for (let i = 0; i < 3000; i++) reads.push(front.read(i % 4000, new Uint8Array(4096)));
    expect(domU.memory.allocated - before).toBeLessThanOrEqual(32);
    await Promise.all(reads);
    await xen.settle();
    // What stays is the persistent pool, at most one page per ring slot here.
    expect(front.persistentGrants).toBeLessThanOrEqual(32);
    expect(domU.memory.allocated).toBe(before + front.persistentGrants);
  });

  it("waits for pages when memory runs short, and fails a request that can never fit", async () => {
    const { front, domU } = await rig({ front: { maxRingPageOrder: 0, maxIndirectSegments: 0, persistent: false } });
    const hog = [];
    while (domU.memory.allocated < domU.memory.frames - 20) hog.push(domU.pages.allocPage());
    const reads = Array.from({ length: 10 }, (_, i) => front.read(i * 8, new Uint8Array(8 * 4096)));
    await Promise.all(reads);
    while (domU.memory.allocated < domU.memory.frames - 5) hog.push(domU.pages.allocPage());
    // An 11-page request with 5 pages left and nothing in flight to wait for.
    await expect(front.read(0, new Uint8Array(11 * 4096))).rejects.toMatchObject({ kind: "io" });
    for (const p of hog) domU.pages.freePage(p);
    await front.read(0, new Uint8Array(300 * 4096));
  });
});

describe("virtual time", () => {
  it("runs with events delivered through a VirtualClock", async () => {
    const clock = new VirtualClock();
    const { front, xen, disk } = await rig({ timers: clock });
    const data = pattern(5 * 4096, 11);
    await settled(xen, front.write(40, data));
    expect(same(disk.data.subarray(40 * 512, 40 * 512 + data.length), data)).toBe(true);
    const out = new Uint8Array(data.length);
    // Nothing moves while virtual time stands still and nobody runs the queue...
    const rd = front.read(40, out);
    let finished = false;
    void rd.then(() => (finished = true));
    await new Promise<void>((r) => setImmediate(r));
    expect(finished).toBe(false);
    expect(clock.pending).toBeGreaterThan(0);
    // ...and the request completes once the clock's queue runs.
    await settled(xen, rd);
    expect(same(out, data)).toBe(true);
  });
});
