import { BLKIF_X86_32, SRING, XENBUS_STATE, initSharedRing } from "@paravirt/device-channel";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { addDevice, InMemoryXen } from "@paravirt/xen-testing";
import { describe, expect, it } from "vitest";
import { Blkback } from "../src/index.ts";

/**
 * PV GRUB's blkfront (grub-core/disk/xen/xendisk.c, as /work/shared/reference/pv-grub.md §4
 * describes it): relative xenstore paths, one x86_32-abi request at a time, polling rsp_prod.
 */
describe("PV GRUB style frontend", () => {
  it("discovers the disk, reads sectors one request at a time, and hands over on fini", async () => {
    const xen = new InMemoryXen();
    const dom0 = xen.createDomain(0);
    const grub = xen.createDomain(3);
    const disk = new MemoryBlockDevice(2048);
    for (let s = 0; s < 2048; s++) disk.data.fill(s & 0xff, s * 512, s * 512 + 512);
    disk.data.set([0x55, 0xaa], 510);
    await addDevice(xen, { kind: "vbd", frontendDomid: 3, backendDomid: 0, devid: 51712, backend: { mode: "w", dev: "xvda" } });
    const back = new Blkback({ xen: dom0, device: disk, frontendDomid: 3, devid: 51712 });
    await back.start();
    await xen.settle();
    const xs = grub.xenstore;

    // 1-2: XS_DIRECTORY device/vbd (twice), then per numeric id: backend, <backend>/dev, backend-id.
    expect(await xs.directory("device/vbd")).toEqual(["51712"]);
    const ids = (await xs.directory("device/vbd")).filter((n) => /^\d+$/.test(n));
    const id = ids[0]!;
    const backend = await xs.read(`device/vbd/${id}/backend`);
    expect(backend).toBe("/local/domain/0/backend/vbd/3/51712");
    expect(await xs.read(`${backend}/dev`)).toBe("xvda");
    const backendId = Number(await xs.read(`device/vbd/${id}/backend-id`));
    expect(backendId).toBe(0);

    // 4: two pages (ring, data), both granted read/write; an unbound port.
    const ringPage = grub.pages.allocPage();
    const dataPage = grub.pages.allocPage();
    const ringRef = grub.gnttab.grantAccess(backendId, ringPage.frame, false);
    const dataRef = grub.gnttab.grantAccess(backendId, dataPage.frame, false);
    const port = grub.evtchn.allocUnbound(backendId);
    // 5: SHARED_RING_INIT + FRONT_RING_INIT on one page.
    initSharedRing(ringPage.bytes);
    const ring = new DataView(ringPage.bytes.buffer, ringPage.bytes.byteOffset, 4096);
    // 6-7: ring-ref, event-channel, protocol, then state 3.
    await xs.write(`device/vbd/${id}/ring-ref`, String(ringRef));
    await xs.write(`device/vbd/${id}/event-channel`, String(port));
    await xs.write(`device/vbd/${id}/protocol`, "x86_32-abi");
    await xs.write(`device/vbd/${id}/state`, "3");
    // 8: poll the backend state while it is 2 (InitWait), yielding.
    let polls = 0;
    while ((await xs.read(`${backend}/state`)) === "2") {
      polls++;
      await xen.settle();
    }
    expect(await xs.read(`${backend}/state`)).toBe("4");
    expect(polls).toBeLessThan(5);

    // 3 (at open): sectors in 512-byte units and the sector size.
    const sectors = Number(await xs.read(`${backend}/sectors`));
    const sectorSize = Number(await xs.read(`${backend}/sector-size`));
    expect(sectors).toBe(2048);
    expect(sectorSize).toBe(512);

    // The x86_32 layout: entries at 64 with a 108-byte stride (sizeof the i386 request), 32 slots.
    const L = BLKIF_X86_32;
    expect([L.request.OPERATION, L.request.NR_SEGMENTS, L.request.HANDLE, L.request.ID, L.request.SECTOR_NUMBER, L.request.SEG]).toEqual([0, 1, 2, 4, 12, 20]);
    expect([L.response.ID, L.response.OPERATION, L.response.STATUS]).toEqual([0, 8, 10]);
    let reqProd = 0;
    let rspCons = 0;
    const readSectors = async (sector: number, count: number): Promise<Uint8Array> => {
      const slot = SRING.HEADER_SIZE + (reqProd & 31) * L.entrySize;
      ring.setUint8(slot + 0, 0); // READ
      ring.setUint8(slot + 1, 1); // nr_segments
      ring.setUint16(slot + 2, Number(id) & 0xffff, true); // handle = <id>
      ring.setUint32(slot + 4, 0, true); // id = 0 (u64, 4-byte aligned)
      ring.setUint32(slot + 8, 0, true);
      ring.setUint32(slot + 12, sector, true); // sector_number (u64)
      ring.setUint32(slot + 16, 0, true);
      ring.setUint32(slot + 20, dataRef, true); // seg[0].gref
      ring.setUint8(slot + 24, 0); // first_sect
      ring.setUint8(slot + 25, count - 1); // last_sect
      reqProd++;
      ring.setUint32(SRING.REQ_PROD, reqProd, true);
      grub.evtchn.notify(port); // unconditionally
      let yields = 0;
      while (ring.getUint32(SRING.RSP_PROD, true) === rspCons) {
        yields++;
        if (yields > 100) throw new Error("no response");
        await xen.settle(); // SCHEDOP_yield
      }
      const rsp = SRING.HEADER_SIZE + (rspCons & 31) * L.entrySize;
      expect(ring.getUint32(rsp + 0, true)).toBe(0);
      expect(ring.getUint8(rsp + 8)).toBe(0);
      expect(ring.getInt16(rsp + 10, true)).toBe(0);
      rspCons++;
      ring.setUint32(SRING.RSP_EVENT, rspCons + 1, true);
      return dataPage.bytes.slice(0, count * 512);
    };
    const mbr = await readSectors(0, 1);
    expect([mbr[510], mbr[511]]).toEqual([0x55, 0xaa]);
    for (const [s, n] of [[1, 8], [63, 8], [2040, 8], [1000, 3], [5, 1]] as const) {
      const d = await readSectors(s, n);
      for (let i = 0; i < n; i++) expect(d[i * 512 + 100]).toBe((s + i) & 0xff);
    }
    // 40 single requests cycle through the 32 slots.
    for (let i = 0; i < 40; i++) expect((await readSectors(i, 1))[7]).toBe(i === 0 ? 0 : i & 0xff);
    expect(back.stats.reads).toBe(46);
    expect(dom0.gnttab.mappingsHeld).toBe(1);

    // 5 (fini): state 6, wait for backend 6, empty ring-ref and event-channel, close the port, state 1.
    await xs.write(`device/vbd/${id}/state`, "6");
    let waits = 0;
    while ((await xs.read(`${backend}/state`)) !== "6") {
      if (++waits > 100) throw new Error("backend never closed");
      await xen.settle();
    }
    expect(dom0.gnttab.mappingsHeld).toBe(0);
    await xs.write(`device/vbd/${id}/ring-ref`, "");
    await xs.write(`device/vbd/${id}/event-channel`, "");
    grub.evtchn.close(port);
    await xs.write(`device/vbd/${id}/state`, "1");
    await xen.settle();
    // The backend is ready for the kernel's frontend.
    expect(back.state).toBe(XENBUS_STATE.InitWait);
    expect(grub.gnttab.endAccess(ringRef)).toBe(true);
    expect(grub.gnttab.endAccess(dataRef)).toBe(true);
    expect(xen.errors).toEqual([]);
  });
});
