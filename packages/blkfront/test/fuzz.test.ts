import { Blkback } from "@paravirt/blkback";
import { RawBlkifFrontend } from "@paravirt/blkback/testing";
import { BLKIF_OP, XENBUS_STATE, type BlkifRequest } from "@paravirt/device-channel";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { addDevice, InMemoryXen } from "@paravirt/xen-testing";
import { describe, expect, it } from "vitest";
import { Blkfront } from "../src/index.ts";
import { pattern, same } from "./harness.ts";

/** xorshift32: seeded, deterministic. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const HOSTILE_REQUESTS = 100_000;
const DEVID = 51712;

describe("hostile frontend fuzz", () => {
  it("survives 100,000 malformed requests while a well-behaved domU keeps its data intact", { timeout: 120_000 }, async () => {
    const next = rng(0xb10c);
    const pick = (n: number) => next() % n;
    const xen = new InMemoryXen();
    const dom0 = xen.createDomain(0, { pages: 64 });
    const domU = xen.createDomain(1, { pages: 1024, grantFrames: 8 });
    const domH = xen.createDomain(2, { pages: 256 });
    const diskA = new MemoryBlockDevice(2048);
    const diskB = new MemoryBlockDevice(256);
    const pathsA = await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: DEVID, backend: { mode: "w" } });
    const pathsH = await addDevice(xen, { kind: "vbd", frontendDomid: 2, backendDomid: 0, devid: DEVID, backend: { mode: "w" } });
    const backA = new Blkback({ xen: dom0, device: diskA, frontendDomid: 1, devid: DEVID });
    // A small persistent-grant cache, so the hostile frontend keeps it full and forces evictions.
    const backH = new Blkback({ xen: dom0, device: diskB, frontendDomid: 2, devid: DEVID, maxRingPageOrder: 0, maxPersistentGrants: 2 });
    await backA.start();
    await backH.start();
    const front = new Blkfront({ xen: domU, devid: DEVID });
    await front.connect();

    // Well-behaved domU: up to 4 requests in flight on distinct regions, checked against a model.
    const model = new Uint8Array(diskA.data.length);
    const REGION = 32;
    const busy = new Set<number>();
    let goodOps = 0;
    let goodFailures = 0;
    const inflight = new Set<Promise<void>>();
    const startGoodOp = () => {
      let region = pick(2048 / REGION);
      while (busy.has(region)) region = (region + 1) % (2048 / REGION);
      busy.add(region);
      const count = 1 + pick(REGION);
      const sector = region * REGION + pick(REGION - count + 1);
      let p: Promise<void>;
      if (pick(2) === 0) {
        const data = pattern(count * 512, next());
        p = front.write(sector, data).then(() => model.set(data, sector * 512));
      } else {
        const dst = new Uint8Array(count * 512);
        p = front.read(sector, dst).then(() => {
          if (!same(dst, model.subarray(sector * 512, (sector + count) * 512))) goodFailures++;
        });
      }
      const q = p.catch(() => {
        goodFailures++;
      }).finally(() => {
        busy.delete(region);
        inflight.delete(q);
        goodOps++;
      });
      inflight.add(q);
    };

    // Hostile domain: its own ring to the same backend domain.
    const hostile = new RawBlkifFrontend({ xen: domH, devid: DEVID, persistent: true });
    await hostile.connect();
    await xen.settle();
    expect(backH.state).toBe(XENBUS_STATE.Connected);
    const own = [hostile.grantPage(false), hostile.grantPage(false), hostile.grantPage(true), hostile.grantPage(false)];
    const anyRef = () => {
      switch (pick(4)) {
        case 0: return own[pick(own.length)]!.ref;
        case 1: return 8 + pick(300); // numbers domU and others really use
        case 2: return pick(8); // reserved
        default: return next();
      }
    };
    const anySector = () => [0, pick(256), 250 + pick(10), next(), next() * 2 ** 20, 2 ** 53 + next()][pick(6)]!;
    const structured = (id: bigint): BlkifRequest => {
      const kind = pick(10);
      const handle = pick(4) === 0 ? next() & 0xffff : DEVID;
      if (kind === 0) return { operation: BLKIF_OP.DISCARD, flag: pick(3), handle, id, sectorNumber: anySector(), nrSectors: pick(2) ? pick(64) : next() };
      if (kind === 1) {
        const nrSegments = [0, 1, 12, 300, 600, next() & 0xffff][pick(6)]!;
        return { operation: BLKIF_OP.INDIRECT, indirectOp: pick(8), nrSegments, handle, id, sectorNumber: anySector(), indirectGrefs: Array.from({ length: 8 }, anyRef) };
      }
      let operation = [BLKIF_OP.READ, BLKIF_OP.WRITE, BLKIF_OP.FLUSH_DISKCACHE, BLKIF_OP.WRITE_BARRIER, BLKIF_OP.RESERVED_1, 7, next() & 0xff][pick(7)]!;
      if (operation === BLKIF_OP.DISCARD || operation === BLKIF_OP.INDIRECT) operation = 7; // those have their own layouts above
      const n = pick(12);
      const segments = Array.from({ length: n }, () => ({ gref: anyRef(), firstSect: pick(10), lastSect: pick(10) }));
      return { operation, nrSegments: pick(5) === 0 ? next() & 0xff : n, handle, id, sectorNumber: anySector(), segments };
    };
    const valid = (id: bigint): BlkifRequest => {
      const p = own[pick(2)]!;
      return { operation: pick(2) ? BLKIF_OP.READ : BLKIF_OP.WRITE, nrSegments: 1, handle: DEVID, id, sectorNumber: pick(248), segments: [{ gref: p.ref, firstSect: 0, lastSect: 7 }] };
    };

    let sent = 0;
    let answered = 0;
    let reconnects = 0;
    let lastEra = 0;
    const raw = new Uint8Array(hostile.layout.entrySize);
    const reconnect = async () => {
      reconnects++;
      await hostile.disconnect();
      await xen.settle();
      await domH.xenstore.write(`${pathsH.frontendPath}/state`, "1");
      await xen.settle();
      await hostile.connect();
      await xen.settle();
    };
    while (sent < HOSTILE_REQUESTS) {
      while (inflight.size < 4) startGoodOp();
      if (backH.state !== XENBUS_STATE.Connected || hostile.ring.freeRequests() === 0) {
        await reconnect();
        continue;
      }
      const k = 1 + pick(hostile.ring.freeRequests());
      for (let i = 0; i < k && sent < HOSTILE_REQUESTS; i++, sent++) {
        const mode = pick(10);
        if (mode < 4) {
          for (let j = 0; j < raw.length; j++) raw[j] = next() & 0xff;
          hostile.putRaw(raw);
        } else if (mode < 9) hostile.put(structured(BigInt(next())));
        else hostile.put(valid(BigInt(sent)));
      }
      const era = Math.floor(sent / 10_000);
      if (era !== lastEra) {
        // Once in a while, a garbage or backwards req_prod: the backend must shut the channel.
        lastEra = era;
        if (era % 2) hostile.setReqProd(hostile.ring.sharedRspProd + 33 + pick(1 << 30));
        else hostile.setReqProd(hostile.ring.sharedRspProd - 1 - pick(5));
      } else hostile.ring.pushRequests();
      if (pick(3) === 0) hostile.ring.view.setUint32(4, next(), true); // scribble req_event
      hostile.kick();
      // The hostile front also rewrites slots it already pushed, while they are being served.
      if (pick(4) === 0) {
        for (let j = 0; j < raw.length; j++) raw[j] = next() & 0xff;
        hostile.ring.bytes.set(raw, hostile.ring.slot(hostile.ring.reqProdPvt - 1));
      }
      await xen.settle();
      answered += hostile.responses().length;
    }
    while (inflight.size > 0) await Promise.all([...inflight]);
    await xen.settle();

    expect(xen.errors).toEqual([]);
    expect(goodFailures).toBe(0);
    expect(goodOps).toBeGreaterThan(1000);
    expect(same(diskA.data, model)).toBe(true);
    const all = new Uint8Array(diskA.data.length);
    await front.read(0, all);
    expect(same(all, model)).toBe(true);
    expect(backA.stats.errors + backA.stats.unsupported + backA.stats.protocolErrors).toBe(0);
    expect(backH.stats.requests).toBeGreaterThan(HOSTILE_REQUESTS * 0.9);
    expect(backH.stats.errors + backH.stats.unsupported).toBeGreaterThan(HOSTILE_REQUESTS * 0.7);
    expect(answered).toBeGreaterThan(HOSTILE_REQUESTS * 0.9);
    expect(backH.stats.zeroCopyCalls).toBeGreaterThan(1000);
    expect(reconnects).toBeGreaterThanOrEqual(9);
    expect(backH.stats.protocolErrors).toBeGreaterThanOrEqual(reconnects);
    // Only the two rings and the persistent grants stay mapped (the hostile ones within their
    // bound); nothing of domU's was ever mapped for the hostile backend.
    expect(backH.stats.persistentMaps).toBeGreaterThan(0);
    expect(backH.stats.persistentEvictions).toBeGreaterThan(0);
    expect(backH.persistentGrants).toBeLessThanOrEqual(2);
    expect(backA.persistentGrants).toBe(front.persistentGrants);
    expect(dom0.gnttab.mappingsHeld).toBe(front.ringPages + front.persistentGrants + (backH.connected ? 1 + backH.persistentGrants : 0));
    expect(domU.gnttab.entriesMapped).toBe(front.ringPages + front.persistentGrants);
    expect(domU.gnttab.grantsInUse).toBe(front.ringPages + front.persistentGrants);
    void pathsA;
  });
});
