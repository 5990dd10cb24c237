import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RamDisk, RawImageFile } from "@paravirt/disk-image";
import type { BlockDevice } from "@paravirt/vm-interfaces";
import { bootXen2, type Xen2System } from "../src/xen2/system.ts";
import { runDiskWorkload } from "../src/workload.ts";

describe("Xen 2.0 block path: domU blkfront -> dom0 blkback -> dom0 ATA driver -> hw-ide -> image file", () => {
  it("writes patterns from the domU that the image file holds afterwards, checked from outside", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xen2-"));
    const path = join(dir, "disk.img");
    const image = await RawImageFile.open(path, { create: 32 << 20 });
    const lines: string[] = [];
    const sys = await bootXen2({ disk: image, narrate: (_t, who, l) => lines.push(`${who}: ${l}`) });
    const result = await sys.run(runDiskWorkload(sys.domU.xvda));
    await image.close();
    expect(result.verified).toBe(true);
    const file = readFileSync(path);
    for (const w of result.writes) {
      const got = createHash("sha256").update(file.subarray(w.offset, w.offset + w.length)).digest("hex");
      expect(got).toBe(w.sha256);
    }
    // The path really went through the hardware: the driver issued DMA commands and took IRQs.
    expect(sys.dom0.disk.channel.stats.commands).toBeGreaterThan(result.writes.length);
    expect(sys.dom0.disk.channel.stats.interrupts).toBeGreaterThan(0);
    expect(sys.dom0.blkback.stats.requests).toBeGreaterThan(0);
    // dom0's driver touched nothing outside its I/O space.
    expect(lines.filter((l) => l.includes("refused"))).toEqual([]);
  });

  it("dom0's driver DMAs into a domU's pages only while it maps every one of them, writable when the device writes", async () => {
    const sys = await bootXen2({ disk: new RamDisk(2048) });
    const d0 = sys.dom0.domain;
    const dU = sys.domU.domain;
    const platform = sys.dom0.kernel.platform!;
    // Three consecutive pages of the domU (machine-contiguous: consecutive frames of a fresh
    // domain), granted to dom0: the first two read-write, the third read-only.
    const granted = await sys.run(
      new Promise<{ refs: number[]; mfns: number[] }>((resolve) =>
        dU.post(() => {
          const refs: number[] = [];
          const mfns: number[] = [];
          for (let i = 0; i < 3; i++) {
            const p = dU.pages.allocPage();
            mfns.push(dU.record.p2m[p.frame]!);
            refs.push(dU.gnttab.grantAccess(d0.domid, p.frame, i === 2));
          }
          resolve({ refs, mfns });
        }),
      ),
    );
    const [mfn0] = granted.mfns as [number];
    expect(granted.mfns).toEqual([mfn0, mfn0 + 1, mfn0 + 2]);
    const range = sys.hv.memory.bytes.subarray(mfn0 * 4096, (mfn0 + 3) * 4096);
    const m0 = d0.gnttab.map(dU.domid, granted.refs[0]!, true);
    const m1 = d0.gnttab.map(dU.domid, granted.refs[1]!, true);
    // The third page is not mapped yet: the whole range is refused both ways, the first two pages are not.
    expect(platform.dmaMap(range, "to-device")).toBeUndefined();
    expect(platform.dmaMap(range, "from-device")).toBeUndefined();
    expect(platform.dmaMap(range.subarray(0, 8192), "from-device")).toEqual([{ busAddress: m0.machineAddress, length: 8192 }]);
    const m2 = d0.gnttab.map(dU.domid, granted.refs[2]!, false);
    expect(platform.dmaMap(range, "to-device")).toEqual([{ busAddress: m0.machineAddress, length: 3 * 4096 }]);
    // The device may not write into the read-only mapping.
    expect(platform.dmaMap(range, "from-device")).toBeUndefined();
    expect(platform.dmaMap(range.subarray(100, 8000), "from-device")).toEqual([{ busAddress: m0.machineAddress + 100, length: 7900 }]);
    // A page unmapped again is refused.
    d0.gnttab.unmap(m1);
    expect(platform.dmaMap(range.subarray(0, 8192), "to-device")).toBeUndefined();
    expect(platform.dmaMap(range.subarray(0, 4096), "from-device")).toEqual([{ busAddress: m0.machineAddress, length: 4096 }]);
    d0.gnttab.unmap(m0);
    d0.gnttab.unmap(m2);
  });
  it("holds virtual time still while the host's disk is busy: a slow host disk costs the machine no virtual time", async () => {
    // The same RAM disk, answering at once or 5 ms of wall-clock time later (a slow host disk).
    const slow = (d: BlockDevice): BlockDevice => {
      const later = <T>(p: Promise<T>) => new Promise<T>((resolve, reject) => setTimeout(() => p.then(resolve, reject), 5));
      return { info: d.info, read: (s, b) => later(d.read(s, b)), write: (s, b) => later(d.write(s, b)), flush: () => later(d.flush()) };
    };
    const quick = await bootXen2({ disk: new RamDisk(2048) });
    const lagging = await bootXen2({ disk: slow(new RamDisk(2048)) });
    // Virtual ns one 64 KiB read takes, measured when it completes.
    const cost = (sys: Xen2System, dev: BlockDevice) =>
      sys.run(
        (async () => {
          const t0 = sys.clock.now();
          await dev.read(64, new Uint8Array(65536));
          return sys.clock.now() - t0;
        })(),
      );
    for (const path of [(s: Xen2System) => s.dom0.disk, (s: Xen2System) => s.domU.xvda]) {
      const expected = await cost(quick, path(quick));
      expect(expected).toBeLessThan(1_000_000);
      expect(await cost(lagging, path(lagging))).toBe(expected);
    }
  });
});
