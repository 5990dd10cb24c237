import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { RawImageFile } from "@paravirt/disk-image";
import { ATA_CMD, ATA_ERROR, ATA_STATUS, BM_STATUS } from "../src/index.ts";
import { BM, machine, P, pattern, type Machine } from "./harness.ts";

describe("saveState / restoreState", () => {
  it("a PIO read saved mid-sector continues on a fresh machine (through JSON)", async () => {
    const d = new MemoryBlockDevice(64);
    d.data.set(pattern(0, 64));
    const a = machine({ master: d });
    a.lba28(4, 3);
    a.outb(P.CMD, ATA_CMD.READ_SECTORS);
    await a.waitNotBusy();
    a.inb(P.STATUS);
    const first = a.readBytes(200);
    const saved = JSON.parse(JSON.stringify(a.ide.saveState()));
    const b = machine({ master: d });
    b.ide.restoreState(saved);
    expect(b.inb(P.CTL)).toBe(0x58);
    const rest = b.readBytes(512 - 200);
    expect(Buffer.concat([first, rest])).toEqual(Buffer.from(pattern(4, 1)));
    for (const s of [5, 6]) {
      await b.waitNotBusy();
      expect(b.inb(P.STATUS)).toBe(0x58);
      expect(b.readBytes(512)).toEqual(pattern(s, 1));
    }
    expect(b.inb(P.STATUS)).toBe(0x50);
  });

  it("a PIO write saved mid-block is finished after restore", async () => {
    const d = new MemoryBlockDevice(64);
    const a = machine({ master: d });
    a.lba28(9, 1);
    a.outb(P.CMD, ATA_CMD.WRITE_SECTORS);
    const src = pattern(9, 1, 4);
    a.writeBytes(src.subarray(0, 100));
    const saved = JSON.parse(JSON.stringify(a.ide.saveState()));
    const b = machine({ master: d });
    b.ide.restoreState(saved);
    b.writeBytes(src.subarray(100));
    await b.waitNotBusy();
    expect(b.inb(P.STATUS)).toBe(0x50);
    expect(d.data.subarray(9 * 512, 10 * 512)).toEqual(src);
  });

  it("a pending interrupt, the BM registers and the configuration survive", async () => {
    const a = machine({ master: new MemoryBlockDevice(64) });
    a.outb(P.CMD, ATA_CMD.IDLE_IMMEDIATE);
    await a.settle();
    a.outl(BM.PRDT, 0x4560);
    a.ide.configWrite(0x40, 2, 0xa307);
    const saved = JSON.parse(JSON.stringify(a.ide.saveState()));
    const b = machine({ master: new MemoryBlockDevice(64) });
    b.ide.restoreState(saved);
    expect(b.irq14.level).toBe(true);
    expect(b.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
    expect(b.inl(BM.PRDT)).toBe(0x4560);
    expect(b.ide.configRead(0x40, 2)).toBe(0xa307);
    expect(b.inb(P.STATUS)).toBe(0x40);
    expect(b.irq14.level).toBe(false);
  });

  it("a DMA command waiting for START is restored waiting", async () => {
    const d = new MemoryBlockDevice(64);
    d.data.set(pattern(0, 2));
    const a = machine({ master: d });
    a.prdTable(0x1000, [{ addr: 0x8000, bytes: 1024 }]);
    a.lba28(0, 2);
    a.outb(P.CMD, ATA_CMD.READ_DMA);
    const saved = JSON.parse(JSON.stringify(a.ide.saveState()));
    const b = machine({ master: d });
    b.mem.bytes.set(a.mem.bytes);
    b.ide.restoreState(saved);
    b.startBm(true);
    await b.settle();
    expect(b.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
    expect(b.mem.bytes.subarray(0x8000, 0x8400)).toEqual(pattern(0, 2));
  });

  it("a command saved while BSY is reported aborted after restore", async () => {
    const a = machine({ master: new MemoryBlockDevice(64) });
    a.outb(P.CMD, ATA_CMD.FLUSH_CACHE);
    const saved = JSON.parse(JSON.stringify(a.ide.saveState()));
    const b = machine({ master: new MemoryBlockDevice(64) });
    b.ide.restoreState(saved);
    expect(b.irq14.level).toBe(true);
    expect([b.inb(P.STATUS), b.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.ABRT]);
  });

  it("a malformed state throws", () => {
    const a = machine({ master: new MemoryBlockDevice(64) });
    expect(() => a.ide.restoreState({} as never)).toThrow(TypeError);
  });
});

describe("with a real image file (block I/O settling in real time)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "hw-ide-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function until(m: Machine, pred: () => boolean): Promise<void> {
    for (let i = 0; i < 200_000; i++) {
      if (pred()) return;
      await new Promise<void>((r) => setImmediate(r));
      m.clock.runNext();
    }
    throw new Error("timed out");
  }

  it("DMA write then PIO read, and the file holds the data after close", async () => {
    const path = join(dir, "disk.img");
    const img = await RawImageFile.open(path, { create: 2048 * 512 });
    const m = machine({ master: img });
    m.mem.bytes.set(pattern(0, 16, 3), 0x20000);
    m.prdTable(0x1000, [{ addr: 0x20000, bytes: 8192 }]);
    m.lba28(100, 16);
    m.outb(P.CMD, ATA_CMD.WRITE_DMA);
    m.startBm(false);
    await until(m, () => m.irq14.level);
    expect(m.inb(P.STATUS)).toBe(0x50);
    m.stopBm();
    m.lba28(107, 2);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    await until(m, () => (m.inb(P.CTL) & ATA_STATUS.BSY) === 0);
    expect(m.readBytes(512)).toEqual(pattern(7, 1, 3));
    await until(m, () => (m.inb(P.CTL) & ATA_STATUS.BSY) === 0);
    expect(m.readBytes(512)).toEqual(pattern(8, 1, 3));
    m.outb(P.CMD, ATA_CMD.FLUSH_CACHE);
    await until(m, () => (m.inb(P.CTL) & ATA_STATUS.BSY) === 0);
    expect(m.inb(P.STATUS)).toBe(0x50);
    await img.close();
    const file = new Uint8Array(await readFile(path));
    expect(file.subarray(100 * 512, 116 * 512)).toEqual(pattern(0, 16, 3));
    expect(file.subarray(0, 100 * 512).every((b) => b === 0)).toBe(true);
  });
});

describe("random PIO and DMA traffic matches a shadow copy of the disk", () => {
  it("property", async () => {
    const SECTORS = 96;
    const op = fc.record({
      kind: fc.constantFrom("pio-read", "pio-write", "dma-read", "dma-write", "mult-read", "mult-write"),
      lba: fc.integer({ min: 0, max: SECTORS + 4 }),
      count: fc.integer({ min: 1, max: 12 }),
      seed: fc.integer({ min: 0, max: 255 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 8 }), async (ops) => {
        const d = new MemoryBlockDevice(SECTORS);
        const shadow = new Uint8Array(SECTORS * 512);
        const m = machine({ master: d });
        m.outb(P.COUNT, 4);
        m.outb(P.CMD, ATA_CMD.SET_MULTIPLE_MODE);
        await m.settle();
        m.inb(P.STATUS);
        for (const o of ops) {
          const inRange = o.lba + o.count <= SECTORS;
          const data = pattern(o.lba, o.count, o.seed);
          const block = o.kind.startsWith("mult") ? 4 : 1;
          m.stopBm();
          m.outb(BM.STATUS, 6);
          if (o.kind.startsWith("dma")) {
            const read = o.kind === "dma-read";
            if (!read) m.mem.bytes.set(data, 0x40000);
            m.prdTable(0x1000, [{ addr: 0x40000, bytes: o.count * 512 }]);
            m.lba28(o.lba, o.count);
            m.outb(P.CMD, read ? ATA_CMD.READ_DMA : ATA_CMD.WRITE_DMA);
            m.startBm(read);
            await m.settle();
            if (!inRange) {
              expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.IDNF]);
              continue;
            }
            expect(m.inb(P.STATUS)).toBe(0x50);
            if (read) expect(Buffer.from(m.mem.bytes.subarray(0x40000, 0x40000 + o.count * 512)).equals(Buffer.from(shadow.subarray(o.lba * 512, (o.lba + o.count) * 512)))).toBe(true);
            else shadow.set(data, o.lba * 512);
          } else {
            const read = o.kind.endsWith("read");
            m.lba28(o.lba, o.count);
            m.outb(P.CMD, read ? (block === 4 ? ATA_CMD.READ_MULTIPLE : ATA_CMD.READ_SECTORS) : block === 4 ? ATA_CMD.WRITE_MULTIPLE : ATA_CMD.WRITE_SECTORS);
            if (!inRange) {
              await m.settle();
              expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.IDNF]);
              continue;
            }
            for (let s = 0; s < o.count; s += block) {
              const n = Math.min(block, o.count - s);
              await m.waitNotBusy();
              expect(m.inb(P.STATUS)).toBe(0x58);
              if (read) {
                const got = m.readBytes(n * 512);
                expect(Buffer.from(got).equals(Buffer.from(shadow.subarray((o.lba + s) * 512, (o.lba + s + n) * 512)))).toBe(true);
              } else {
                m.writeBytes(data.subarray(s * 512, (s + n) * 512));
              }
            }
            await m.waitNotBusy();
            expect(m.inb(P.STATUS)).toBe(0x50);
            if (!read) shadow.set(data, o.lba * 512);
          }
        }
        expect(Buffer.from(d.data).equals(Buffer.from(shadow))).toBe(true);
      }),
      { numRuns: 40 },
    );
  });
});
