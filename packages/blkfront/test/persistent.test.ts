import { Blkback } from "@paravirt/blkback";
import { XENBUS_STATE } from "@paravirt/device-channel";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { describe, expect, it } from "vitest";
import { Blkfront } from "../src/index.ts";
import { DEVID, GatedDevice, pattern, rig, same, settled } from "./harness.ts";

/** Writes and reads back transfers of many shapes (partial pages, 11+ pages: indirect), several at once. */
async function roundTrips(front: Blkfront, disk: MemoryBlockDevice, seed: number): Promise<void> {
  const cases: [number, number][] = [[0, 1], [3, 9], [16, 8], [40, 88], [200, 96], [400, 257], [1000, 8 * 64]];
  const datas = cases.map(([, count], i) => pattern(count * 512, seed + i));
  await Promise.all(cases.map(([sector], i) => front.write(sector, datas[i]!)));
  for (const [i, [sector, count]] of cases.entries()) expect(same(disk.data.subarray(sector * 512, (sector + count) * 512), datas[i]!)).toBe(true);
  const outs = cases.map(([, count]) => new Uint8Array(count * 512));
  await Promise.all(cases.map(([sector], i) => front.read(sector, outs[i]!)));
  for (const [i, out] of outs.entries()) expect(same(out, datas[i]!)).toBe(true);
}

describe("persistent grants", () => {
  for (const frontOffers of [true, false]) {
    for (const backOffers of [true, false]) {
      it(`negotiates: frontend ${frontOffers ? "offers" : "does not"}, backend ${backOffers ? "offers" : "does not"}`, async () => {
        const { front, back, disk, xen, dom0, domU, paths } = await rig({ front: { persistent: frontOffers }, back: { persistent: backOffers } });
        const both = frontOffers && backOffers;
        expect(await dom0.xenstore.read(`${paths.frontendPath}/feature-persistent`)).toBe(frontOffers ? "1" : "0");
        expect(await dom0.xenstore.read(`${paths.backendPath}/feature-persistent`)).toBe(backOffers ? "1" : "0");
        expect(front.persistent).toBe(both);
        await roundTrips(front, disk, 1);
        await xen.settle();
        const maps = dom0.gnttab.stats.maps;
        const grants = domU.gnttab.grantsInUse;
        await roundTrips(front, disk, 50);
        await xen.settle();
        if (both) {
          // Warm: the second round maps nothing new and grants nothing new.
          expect(dom0.gnttab.stats.maps).toBe(maps);
          expect(back.stats.persistentHits).toBeGreaterThan(0);
          expect(front.persistentGrants).toBeGreaterThan(0);
        } else {
          expect(dom0.gnttab.stats.maps).toBeGreaterThan(maps);
          expect(back.stats.persistentMaps).toBe(0);
          expect(front.persistentGrants).toBe(0);
        }
        expect(domU.gnttab.grantsInUse).toBe(grants);
        expect(back.persistentGrants).toBe(front.persistentGrants);
        expect(domU.gnttab.grantsInUse).toBe(front.ringPages + front.persistentGrants);
        expect(dom0.gnttab.mappingsHeld).toBe(front.ringPages + front.persistentGrants);
        // Disconnecting unmaps every persistent mapping and ends every grant.
        await front.close();
        await xen.settle();
        expect(back.mappedGrants).toBe(0);
        expect(dom0.gnttab.mappingsHeld).toBe(0);
        expect(domU.gnttab.grantsInUse).toBe(0);
        expect(domU.memory.allocated).toBe(0);
        expect(xen.errors).toEqual([]);
      });
    }
  }

  it("keeps its pool within maxPersistentGrants, queueing requests that find it exhausted", async () => {
    const { front, back, disk, xen, domU } = await rig({ front: { maxIndirectSegments: 0, maxPersistentGrants: 11 } });
    const datas = Array.from({ length: 40 }, (_, i) => pattern(3 * 4096, i + 7));
    await Promise.all(datas.map((d, i) => front.write(i * 24, d)));
    const outs = datas.map(() => new Uint8Array(3 * 4096));
    await Promise.all(outs.map((o, i) => front.read(i * 24, o)));
    for (let i = 0; i < 40; i++) {
      expect(same(outs[i]!, datas[i]!)).toBe(true);
      expect(same(disk.data.subarray(i * 24 * 512, i * 24 * 512 + 3 * 4096), datas[i]!)).toBe(true);
    }
    await xen.settle();
    expect(front.persistentGrants).toBeLessThanOrEqual(11);
    // (Pages a request took and gave back when the pool ran out may never have reached the backend.)
    expect(back.persistentGrants).toBeLessThanOrEqual(front.persistentGrants);
    expect(domU.gnttab.grantsInUse).toBe(front.ringPages + front.persistentGrants);
    expect(() => new Blkfront({ xen: domU, devid: DEVID, maxIndirectSegments: 32, maxPersistentGrants: 32 })).toThrow(RangeError);
  });

  it("works against a backend whose cache is smaller than the frontend's pool", async () => {
    const { front, back, disk, xen, dom0 } = await rig({ back: { maxPersistentGrants: 8 } });
    await roundTrips(front, disk, 3);
    await roundTrips(front, disk, 30);
    await xen.settle();
    expect(front.persistentGrants).toBeGreaterThan(8);
    expect(back.persistentGrants).toBeLessThanOrEqual(8);
    expect(back.stats.persistentEvictions).toBeGreaterThan(0);
    expect(dom0.gnttab.mappingsHeld).toBe(front.ringPages + back.persistentGrants);
  });

  it("drops its pool on reconnect and follows a backend that no longer offers persistent grants", async () => {
    const { front, back, disk, xen, dom0, domU } = await rig();
    await roundTrips(front, disk, 5);
    expect(front.persistent).toBe(true);
    await back.stop();
    await xen.settle();
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    const plain = new Blkback({ xen: dom0, device: disk, frontendDomid: 1, devid: DEVID, persistent: false });
    await plain.start();
    await xen.settle();
    expect(plain.state).toBe(XENBUS_STATE.Connected);
    expect(front.persistent).toBe(false);
    expect(front.persistentGrants).toBe(0);
    await roundTrips(front, disk, 9);
    await xen.settle();
    expect(domU.gnttab.grantsInUse).toBe(front.ringPages);
    expect(dom0.gnttab.mappingsHeld).toBe(front.ringPages);
    expect(xen.errors).toEqual([]);
  });
});

describe("persistent grants across reconnects", () => {
  it("reissues a request placed without persistent grants through a persistent backend's pool, freeing its old pages", async () => {
    const disk = new MemoryBlockDevice(1024);
    const gated = new GatedDevice(disk);
    gated.gated = false;
    const { front, back, xen, dom0, domU } = await rig({ disk, device: gated, back: { persistent: false } });
    expect(front.persistent).toBe(false);
    gated.gated = true;
    const data = pattern(3 * 4096, 77);
    const w = front.write(64, data);
    await xen.settle();
    expect(gated.held).toHaveLength(1);
    const stopped = back.stop();
    await xen.settle();
    // The old backend finishes the write at the device but never answers it.
    await gated.releaseAll(xen);
    await stopped;
    gated.gated = false;
    disk.data.fill(0, 64 * 512, 64 * 512 + data.length);
    const fresh = new Blkback({ xen: dom0, device: gated, frontendDomid: 1, devid: DEVID });
    await fresh.start();
    await settled(xen, w);
    expect(front.persistent).toBe(true);
    expect(front.stats.reissued).toBe(1);
    expect(same(disk.data.subarray(64 * 512, 64 * 512 + data.length), data)).toBe(true);
    await xen.settle();
    expect(domU.memory.allocated).toBe(front.ringPages + front.persistentGrants);
    await front.close();
    await xen.settle();
    expect(domU.memory.allocated).toBe(0);
    expect(domU.gnttab.grantsInUse).toBe(0);
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    expect(xen.errors).toEqual([]);
  });
});
