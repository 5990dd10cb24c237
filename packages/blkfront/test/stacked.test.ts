import { Blkback } from "@paravirt/blkback";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { addDevice, InMemoryXen } from "@paravirt/xen-testing";
import { describe, expect, it } from "vitest";
import { Blkfront } from "../src/index.ts";
import { pattern, same } from "./harness.ts";

describe("stacked driver domains", () => {
  it("a blkfront is a BlockDevice a blkback can serve on to another domain", async () => {
    const xen = new InMemoryXen();
    const dom0 = xen.createDomain(0);
    const driver = xen.createDomain(5, { pages: 512 });
    const guest = xen.createDomain(7, { pages: 512 });
    const disk = new MemoryBlockDevice(1024);
    await addDevice(xen, { kind: "vbd", frontendDomid: 5, backendDomid: 0, devid: 51712 });
    await addDevice(xen, { kind: "vbd", frontendDomid: 7, backendDomid: 5, devid: 51728 });
    const back0 = new Blkback({ xen: dom0, device: disk, frontendDomid: 5, devid: 51712 });
    await back0.start();
    const frontD = new Blkfront({ xen: driver, devid: 51712 });
    await frontD.connect();
    const backD = new Blkback({ xen: driver, device: frontD, frontendDomid: 7, devid: 51728 });
    await backD.start();
    const frontU = new Blkfront({ xen: guest, devid: 51728, protocol: "x86_32-abi" });
    await frontU.connect();
    expect(frontU.info.sectors).toBe(1024);
    const data = pattern(20 * 4096, 77);
    await frontU.write(16, data);
    expect(same(disk.data.subarray(16 * 512, 16 * 512 + data.length), data)).toBe(true);
    const out = new Uint8Array(data.length);
    await frontU.read(16, out);
    expect(same(out, data)).toBe(true);
    await frontU.flush();
    expect(disk.log.at(-1)?.op).toBe("flush");
    await frontU.discard(16, 8);
    expect(disk.data.subarray(16 * 512, 24 * 512).every((b) => b === 0)).toBe(true);
    await xen.settle();
    expect(xen.errors).toEqual([]);
  });
});
