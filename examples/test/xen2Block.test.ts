import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RawImageFile } from "@paravirt/disk-image";
import { bootXen2 } from "../src/xen2/system.ts";
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
});
