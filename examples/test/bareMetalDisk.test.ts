import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RawImageFile } from "@paravirt/disk-image";
import { bootBareMetalDisk } from "../src/bareMetalDisk.ts";
import { runDiskWorkload } from "../src/workload.ts";

describe("the same ATA driver on bare metal", () => {
  it("drives the same disk model with no hypervisor, and the image holds the workload's bytes", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "bare-")), "disk.img");
    const image = await RawImageFile.open(path, { create: 32 << 20 });
    const m = await bootBareMetalDisk(image);
    expect(m.platform.name).toBe("bare metal");
    const result = await m.run(runDiskWorkload(m.disk));
    await image.close();
    const file = readFileSync(path);
    for (const w of result.writes) expect(createHash("sha256").update(file.subarray(w.offset, w.offset + w.length)).digest("hex")).toBe(w.sha256);
    expect(m.disk.channel.stats.interrupts).toBeGreaterThan(0);
  });
});
