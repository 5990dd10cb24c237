import { describe, expect, it } from "vitest";
import { PCI_COMMAND, PCI_CONFIG, PCI_STATUS } from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { ATA_CMD, ATA_ERROR, ATA_STATUS, BM_STATUS } from "../src/index.ts";
import { BM, machine, P, pattern, type Machine } from "./harness.ts";

const TABLE = 0x1000;
const BUF = 0x10000;

/** ide-test's send_dma_request: stop BM, clear INT, PRDs, task file, command, START; poll; status read acks. */
async function dmaRequest(m: Machine, cmd: number, lba: number, count: number, prds: { addr: number; bytes: number; eot?: boolean }[], opts: { startFirst?: boolean; abort?: boolean } = {}) {
  const read = cmd === ATA_CMD.READ_DMA || cmd === ATA_CMD.READ_DMA_EXT;
  m.stopBm();
  m.outb(BM.STATUS, BM_STATUS.INTERRUPT | BM_STATUS.ERROR);
  m.prdTable(TABLE, prds);
  if (opts.startFirst) m.startBm(read);
  m.lba28(lba, count);
  m.outb(P.CMD, cmd);
  if (!opts.startFirst) m.startBm(read);
  if (opts.abort) m.stopBm();
  await m.settle();
  const bm = m.inb(BM.STATUS);
  const irq = m.irq14.level;
  const status = m.inb(P.STATUS);
  expect(m.irq14.level).toBe(false); // the status read lowered IRQ14
  m.stopBm();
  return { bm, irq, status, error: m.inb(P.ERR) };
}

describe("READ/WRITE DMA through the PRD table", () => {
  it("ide-test simple_rw: 0x55 to LBA 0, 0xAA to LBA 1, read both back", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    m.mem.bytes.fill(0x55, BUF, BUF + 512);
    m.mem.bytes.fill(0xaa, BUF + 512, BUF + 1024);
    let r = await dmaRequest(m, ATA_CMD.WRITE_DMA, 0, 1, [{ addr: BUF, bytes: 512 }]);
    expect(r).toMatchObject({ bm: BM_STATUS.INTERRUPT, irq: true, status: 0x50 });
    r = await dmaRequest(m, ATA_CMD.WRITE_DMA, 1, 1, [{ addr: BUF + 512, bytes: 512 }]);
    expect(r.bm).toBe(BM_STATUS.INTERRUPT);
    m.mem.bytes.fill(0, BUF, BUF + 1024);
    r = await dmaRequest(m, ATA_CMD.READ_DMA, 0, 2, [{ addr: BUF + 4096, bytes: 1024 }]);
    expect(r).toMatchObject({ bm: BM_STATUS.INTERRUPT, irq: true, status: 0x50 });
    expect(m.mem.bytes.subarray(BUF + 4096, BUF + 4608).every((b) => b === 0x55)).toBe(true);
    expect(m.mem.bytes.subarray(BUF + 4608, BUF + 5120).every((b) => b === 0xaa)).toBe(true);
    expect(d.data.subarray(0, 512).every((b) => b === 0x55)).toBe(true);
  });

  it("DRQ is shown before START; the transfer waits for START and completes in virtual time", async () => {
    const d = new MemoryBlockDevice(64);
    d.data.set(pattern(3, 2), 3 * 512);
    const m = machine({ master: d });
    m.prdTable(TABLE, [{ addr: BUF, bytes: 1024 }]);
    m.lba28(3, 2);
    m.outb(P.CMD, ATA_CMD.READ_DMA);
    await m.settle();
    expect(m.inb(P.CTL)).toBe(0x58);
    expect(m.irq14.raised).toBe(0);
    expect(d.log).toEqual([]);
    m.startBm(true);
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.ACTIVE);
    expect(m.inb(BM.CMD)).toBe(0x09);
    m.clock.advanceBy(10_000);
    await m.drain();
    expect(m.irq14.level).toBe(false);
    await m.settle();
    expect(m.irq14.level).toBe(true);
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(m.mem.bytes.subarray(BUF, BUF + 1024)).toEqual(pattern(3, 2));
  });

  it("START before the command works too (either order)", async () => {
    const d = new MemoryBlockDevice(64);
    d.data.set(pattern(0, 4));
    const m = machine({ master: d });
    const r = await dmaRequest(m, ATA_CMD.READ_DMA, 0, 4, [{ addr: BUF, bytes: 2048 }], { startFirst: true });
    expect(r.bm).toBe(BM_STATUS.INTERRUPT);
    expect(m.mem.bytes.subarray(BUF, BUF + 2048)).toEqual(pattern(0, 4));
  });

  it("scatters and gathers over several PRDs, odd sizes and a 0 = 64 KiB entry", async () => {
    const d = new MemoryBlockDevice(512);
    d.data.set(pattern(0, 200));
    const m = machine({ master: d });
    const prds = [
      { addr: 0x20000, bytes: 1000 },
      { addr: 0x40000, bytes: 0 }, // 64 KiB
      { addr: 0x60000, bytes: 200 * 512 - 1000 - 65536 },
    ];
    const r = await dmaRequest(m, ATA_CMD.READ_DMA, 0, 200, prds);
    expect(r.bm).toBe(BM_STATUS.INTERRUPT);
    const all = pattern(0, 200);
    expect(m.mem.bytes.subarray(0x20000, 0x20000 + 1000)).toEqual(all.subarray(0, 1000));
    expect(m.mem.bytes.subarray(0x40000, 0x50000)).toEqual(all.subarray(1000, 1000 + 65536));
    expect(m.mem.bytes.subarray(0x60000, 0x60000 + prds[2]!.bytes)).toEqual(all.subarray(66536));
    // And back the other way, to other sectors.
    const w = await dmaRequest(m, ATA_CMD.WRITE_DMA, 300, 200, prds);
    expect(w.bm).toBe(BM_STATUS.INTERRUPT);
    expect(d.data.subarray(300 * 512, 500 * 512)).toEqual(all);
  });

  it("READ/WRITE DMA EXT use the 48-bit address", async () => {
    const d = new MemoryBlockDevice(1024);
    const m = machine({ master: d });
    m.mem.bytes.set(pattern(0, 2, 5), BUF);
    m.prdTable(TABLE, [{ addr: BUF, bytes: 1024 }]);
    m.lba48(700, 2);
    m.outb(P.CMD, ATA_CMD.WRITE_DMA_EXT);
    m.startBm(false);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(d.data.subarray(700 * 512, 702 * 512)).toEqual(pattern(0, 2, 5));
    m.stopBm();
    m.prdTable(TABLE, [{ addr: BUF + 4096, bytes: 1024 }]);
    m.lba48(700, 2);
    m.outb(P.CMD, ATA_CMD.READ_DMA_EXT);
    m.startBm(true);
    await m.settle();
    expect(m.mem.bytes.subarray(BUF + 4096, BUF + 5120)).toEqual(pattern(0, 2, 5));
  });
});

describe("PRD table size vs transfer size (ide-test various_prdts, BMIDE rev 1.0 status table)", () => {
  const cases: [number, number][] = [];
  for (const sectors of [1, 2, 4, 8, 64, 128]) {
    for (const prd of [256, 512, 1024, 4096, 32768, 65280, 0]) cases.push([sectors, prd]);
  }
  it.each(cases)("%i sectors with a %i-byte PRD", async (sectors, prdBytes) => {
    const d = new MemoryBlockDevice(256);
    const m = machine({ master: d });
    const size = prdBytes === 0 ? 65536 : prdBytes;
    const need = sectors * 512;
    const r = await dmaRequest(m, ATA_CMD.READ_DMA, 0, sectors, [{ addr: BUF, bytes: prdBytes }]);
    expect(r.error & ATA_STATUS.ERR).toBe(0);
    if (size < need) {
      // Shorter: ACTIVE and INTERRUPT both clear, no IRQ, no error.
      expect(r).toMatchObject({ bm: 0, irq: false, status: 0x50 });
    } else if (size === need) {
      expect(r).toMatchObject({ bm: BM_STATUS.INTERRUPT, irq: true, status: 0x50 });
    } else {
      expect(r).toMatchObject({ bm: BM_STATUS.INTERRUPT | BM_STATUS.ACTIVE, irq: true, status: 0x50 });
    }
  });

  it("a table without EOT is walked until the transfer is covered (PRDs longer)", async () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    const r = await dmaRequest(m, ATA_CMD.READ_DMA, 0, 2, [
      { addr: BUF, bytes: 512, eot: false },
      { addr: BUF + 512, bytes: 512, eot: false },
    ]);
    expect(r.bm).toBe(BM_STATUS.INTERRUPT | BM_STATUS.ACTIVE);
  });

  it("a short WRITE DMA writes only the whole sectors the PRDs covered", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    m.mem.bytes.fill(0x77, BUF, BUF + 4096);
    const r = await dmaRequest(m, ATA_CMD.WRITE_DMA, 0, 4, [{ addr: BUF, bytes: 1536 }]);
    expect(r).toMatchObject({ bm: 0, irq: false });
    expect(d.data.subarray(0, 1536).every((b) => b === 0x77)).toBe(true);
    expect(d.data.subarray(1536, 2048).every((b) => b === 0)).toBe(true);
  });
});

describe("bus mastering and faults", () => {
  it("waits while PCI COMMAND.MASTER is clear and runs when it is set", async () => {
    const d = new MemoryBlockDevice(64);
    d.data.set(pattern(0, 1));
    const m = machine({ master: d, command: PCI_COMMAND.IO });
    m.prdTable(TABLE, [{ addr: BUF, bytes: 512 }]);
    m.lba28(0, 1);
    m.outb(P.CMD, ATA_CMD.READ_DMA);
    m.startBm(true);
    await m.settle();
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.ACTIVE);
    expect(m.inb(P.CTL)).toBe(0x58);
    expect(d.log).toEqual([]);
    m.ide.configWrite(PCI_CONFIG.COMMAND, 2, PCI_COMMAND.IO | PCI_COMMAND.MASTER);
    await m.settle();
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
    expect(m.mem.bytes.subarray(BUF, BUF + 512)).toEqual(pattern(0, 1));
  });

  it("no_busmaster: 4096 zeroed PRDs without EOT and 512 sectors never hang or throw", async () => {
    const m = machine({ master: new MemoryBlockDevice(1024), command: PCI_COMMAND.IO });
    m.mem.bytes.fill(0, TABLE, TABLE + 4096 * 8);
    m.outl(BM.PRDT, TABLE);
    m.lba28(0, 0);
    m.outw(P.COUNT - 0, 0); // count 0 = 256 in LBA28; use EXT for 512
    m.lba48(0, 512);
    m.outb(P.CMD, ATA_CMD.READ_DMA_EXT);
    m.startBm(true);
    await m.settle();
    expect(m.inb(BM.STATUS) & BM_STATUS.ERROR).toBe(0);
    expect(m.inb(P.CTL) & (ATA_STATUS.DF | ATA_STATUS.ERR)).toBe(0);
    // Grant mastership: every zero entry is 64 KiB at address 0, covering the transfer.
    m.ide.configWrite(PCI_CONFIG.COMMAND, 2, PCI_COMMAND.IO | PCI_COMMAND.MASTER);
    await m.settle();
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT | BM_STATUS.ACTIVE);
    expect(m.inb(P.STATUS)).toBe(0x50);
  });

  it("DMA to unmapped memory: BM ERROR, ACTIVE clear, ATA ERR/ABRT with IRQ, PCI received master abort", async () => {
    const m = machine({ master: new MemoryBlockDevice(64), memory: 1 << 20 });
    const r = await dmaRequest(m, ATA_CMD.READ_DMA, 0, 1, [{ addr: 0x7000_0000, bytes: 512 }]);
    expect(r.bm).toBe(BM_STATUS.ERROR | BM_STATUS.INTERRUPT);
    expect(r.irq).toBe(true);
    expect(r.status).toBe(0x41);
    expect(r.error).toBe(ATA_ERROR.ABRT);
    expect(m.ide.configRead(PCI_CONFIG.STATUS, 2) & PCI_STATUS.REC_MASTER_ABORT).toBe(PCI_STATUS.REC_MASTER_ABORT);
    m.ide.configWrite(PCI_CONFIG.STATUS, 2, PCI_STATUS.REC_MASTER_ABORT);
    expect(m.ide.configRead(PCI_CONFIG.STATUS, 2) & PCI_STATUS.REC_MASTER_ABORT).toBe(0);
  });

  it("a PRD table in unmapped memory faults the same way, and nothing is written", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d, memory: 1 << 20 });
    m.outl(BM.PRDT, 0x8000_0000);
    m.lba28(0, 1);
    m.outb(P.CMD, ATA_CMD.WRITE_DMA);
    m.startBm(false);
    await m.settle();
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.ERROR | BM_STATUS.INTERRUPT);
    expect(m.inb(P.STATUS)).toBe(0x41);
    expect(d.log).toEqual([]);
  });

  it("stopping the engine mid-transfer leaves the drive waiting; restarting completes it", async () => {
    const d = new MemoryBlockDevice(64);
    d.data.set(pattern(0, 8));
    const m = machine({ master: d });
    m.prdTable(TABLE, [{ addr: BUF, bytes: 4096 }]);
    m.lba28(0, 8);
    m.outb(P.CMD, ATA_CMD.READ_DMA);
    m.startBm(true);
    m.stopBm();
    await m.settle();
    expect(m.irq14.raised).toBe(0);
    expect(m.inb(BM.STATUS)).toBe(0);
    expect(m.inb(P.CTL)).toBe(0x58);
    m.startBm(true);
    await m.settle();
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
    expect(m.mem.bytes.subarray(BUF, BUF + 4096)).toEqual(pattern(0, 8));
  });

  it("an out-of-range DMA command fails with IDNF before any transfer", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    const r = await dmaRequest(m, ATA_CMD.WRITE_DMA, 60, 8, [{ addr: BUF, bytes: 4096 }]);
    expect(r.status).toBe(0x41);
    expect(r.error).toBe(ATA_ERROR.IDNF);
    expect(r.irq).toBe(true);
    expect(d.log).toEqual([]);
  });

  it("a block I/O error during READ DMA is UNC, during WRITE DMA ABRT", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    d.failNext = true;
    let r = await dmaRequest(m, ATA_CMD.READ_DMA, 0, 1, [{ addr: BUF, bytes: 512 }]);
    expect(r).toMatchObject({ status: 0x41, error: ATA_ERROR.UNC, irq: true, bm: BM_STATUS.INTERRUPT });
    d.failNext = true;
    r = await dmaRequest(m, ATA_CMD.WRITE_DMA, 0, 1, [{ addr: BUF, bytes: 512 }]);
    expect(r).toMatchObject({ status: 0x41, error: ATA_ERROR.ABRT, irq: true });
  });
});

describe("DATA SET MANAGEMENT (TRIM) by DMA (ide-test bmdma/trim)", () => {
  function trimPayload(ranges: [number, number][]): Uint8Array {
    const b = new Uint8Array(512);
    const dv = new DataView(b.buffer);
    ranges.forEach(([lba, count], i) => {
      dv.setUint32(i * 8, lba % 2 ** 32, true);
      dv.setUint16(i * 8 + 4, Math.floor(lba / 2 ** 32), true);
      dv.setUint16(i * 8 + 6, count, true);
    });
    return b;
  }

  async function trim(m: Machine, payload: Uint8Array, features = 1) {
    m.stopBm();
    m.outb(BM.STATUS, BM_STATUS.INTERRUPT | BM_STATUS.ERROR);
    m.mem.bytes.set(payload, BUF);
    m.prdTable(TABLE, [{ addr: BUF, bytes: payload.length }]);
    m.outb(P.DEV, 0x40);
    m.outb(P.FEAT, 0);
    m.outb(P.FEAT, features);
    m.outb(P.COUNT, 0);
    m.outb(P.COUNT, payload.length / 512);
    m.outb(P.CMD, 0x06);
    m.startBm(false);
    await m.settle();
    const r = { bm: m.inb(BM.STATUS), irq: m.irq14.level, status: m.inb(P.STATUS), error: m.inb(P.ERR) };
    m.stopBm();
    return r;
  }

  it("discards the listed ranges (zero-length entries ignored) and completes with INTERRUPT", async () => {
    const d = new MemoryBlockDevice(64);
    d.data.fill(0xee);
    const m = machine({ master: d });
    const w = m.disks.master!.identify();
    expect(w[169]! & 1).toBe(1);
    expect(w[105]).toBe(8);
    const r = await trim(m, trimPayload([[2, 3], [0, 0], [40, 1]]));
    expect(r).toMatchObject({ bm: BM_STATUS.INTERRUPT, irq: true, status: 0x50, error: 0 });
    expect(d.log.filter((l) => l.op === "discard")).toEqual([
      { op: "discard", sector: 2, bytes: 1536 },
      { op: "discard", sector: 40, bytes: 512 },
    ]);
    expect(d.data.subarray(2 * 512, 5 * 512).every((b) => b === 0)).toBe(true);
    expect(d.data[5 * 512]).toBe(0xee);
  });

  it("a range past the end aborts before anything is discarded", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    const r = await trim(m, trimPayload([[0, 1], [63, 2]]));
    expect(r).toMatchObject({ bm: BM_STATUS.INTERRUPT, irq: true, status: 0x41, error: ATA_ERROR.ABRT });
    expect(d.log.filter((l) => l.op === "discard")).toEqual([]);
  });

  it("without the TRIM bit, or on a device that cannot discard, the command aborts and word 169 says so", async () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    expect(await trim(m, trimPayload([[0, 1]]), 0)).toMatchObject({ status: 0x41, error: ATA_ERROR.ABRT });
    const n = machine({ master: new MemoryBlockDevice(64, { discard: false }) });
    expect(n.disks.master!.identify()[169]).toBe(0);
    expect(await trim(n, trimPayload([[0, 1]]))).toMatchObject({ status: 0x41, error: ATA_ERROR.ABRT });
  });
});
