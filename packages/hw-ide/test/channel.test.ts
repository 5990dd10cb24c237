import { describe, expect, it } from "vitest";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { ATA_CMD, ATA_ERROR, ATA_STATUS, BM_STATUS } from "../src/index.ts";
import { BM, machine, P, pattern, S } from "./harness.ts";

describe("signature, SRST and EXECUTE DEVICE DIAGNOSTIC", () => {
  it("power-on signature: count 1, LBA low 1, cylinder 0/0, error 01h, status 50h", () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    expect([m.inb(P.COUNT), m.inb(P.LBAL), m.inb(P.LBAM), m.inb(P.LBAH), m.inb(P.DEV)]).toEqual([1, 1, 0, 0, 0xa0]);
    expect(m.inb(P.ERR)).toBe(0x01);
    expect(m.inb(P.STATUS)).toBe(0x50);
  });

  it("SRST: BSY while asserted, signature and 50h after release + reset time, no IRQ", async () => {
    const m = machine({ master: new MemoryBlockDevice(64), slave: new MemoryBlockDevice(64) });
    m.outb(P.DEV, 0xf0); // device 1
    m.outb(P.COUNT, 9);
    m.outb(P.LBAL, 9);
    m.outb(P.CTL, 0x04);
    expect(m.inb(P.CTL)).toBe(ATA_STATUS.BSY);
    m.outb(P.LBAL, 0x33); // ignored while BSY
    await m.settle();
    expect(m.inb(P.CTL)).toBe(ATA_STATUS.BSY); // still held in reset
    m.outb(P.CTL, 0x00);
    expect(m.inb(P.CTL) & ATA_STATUS.BSY).toBe(ATA_STATUS.BSY);
    m.clock.advanceBy(99_000);
    expect(m.inb(P.CTL) & ATA_STATUS.BSY).toBe(ATA_STATUS.BSY);
    m.clock.advanceBy(1_000);
    expect(m.inb(P.CTL)).toBe(0x50);
    expect([m.inb(P.ERR), m.inb(P.COUNT), m.inb(P.LBAL), m.inb(P.LBAM), m.inb(P.LBAH), m.inb(P.DEV)]).toEqual([1, 1, 1, 0, 0, 0xa0]);
    m.outb(P.DEV, 0xb0);
    expect(m.inb(P.STATUS)).toBe(0x50); // device 1 has its signature too
    expect(m.inb(P.COUNT)).toBe(1);
    expect(m.irq14.raised).toBe(0);
  });

  it("SRST abandons a command whose block I/O settles later", async () => {
    let release!: () => void;
    const d = new MemoryBlockDevice(64);
    const slow = {
      info: d.info,
      read: async (s: number, b: Uint8Array) => {
        await new Promise<void>((r) => (release = r));
        return d.read(s, b);
      },
      write: (s: number, b: Uint8Array) => d.write(s, b),
      flush: () => d.flush(),
    };
    const m = machine({ master: slow });
    m.lba28(0, 1);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    m.clock.advanceBy(1_000_000);
    await m.drain();
    expect(m.inb(P.CTL) & ATA_STATUS.BSY).toBe(ATA_STATUS.BSY); // the block read has not settled
    m.outb(P.CTL, 0x04);
    m.outb(P.CTL, 0x00);
    await m.settle();
    expect(m.inb(P.CTL)).toBe(0x50);
    release(); // the stale read completes now
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(m.irq14.raised).toBe(0);
    expect(m.inw(P.DATA)).toBe(0);
  });

  it("ide-test diagnostic: select device 1, EXECUTE DEVICE DIAGNOSTIC leaves device 0 selected", async () => {
    const m = machine({ master: new MemoryBlockDevice(64), slave: new MemoryBlockDevice(64) });
    m.outb(P.DEV, 0x10);
    expect(m.inb(P.DEV) & 0x10).toBe(0x10);
    m.outb(P.CMD, ATA_CMD.EXECUTE_DEVICE_DIAGNOSTIC);
    expect(m.inb(P.DEV) & 0x10).toBe(0);
    await m.waitNotBusy();
    expect(m.irq14.level).toBe(true);
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(m.inb(P.ERR)).toBe(0x01);
    expect([m.inb(P.COUNT), m.inb(P.LBAL), m.inb(P.LBAM), m.inb(P.LBAH)]).toEqual([1, 1, 0, 0]);
  });
});

describe("device selection", () => {
  it("absent device 1: status, alternate status and error read 0; commands are ignored; other registers show what was written", async () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    m.outb(P.DEV, 0xb0);
    expect(m.inb(P.STATUS)).toBe(0);
    expect(m.inb(P.CTL)).toBe(0);
    expect(m.inb(P.ERR)).toBe(0);
    m.outb(P.LBAL, 0x5a);
    expect(m.inb(P.LBAL)).toBe(0x5a);
    expect(m.inb(P.DEV)).toBe(0xb0);
    m.outb(P.CMD, ATA_CMD.IDENTIFY_DEVICE);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0);
    expect(m.irq14.raised).toBe(0);
    m.outb(P.DEV, 0xa0);
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect(m.inb(P.LBAL)).toBe(0x5a); // the write reached device 0 as well
  });

  it("an empty channel reads 0 everywhere and does not crash on FLUSH CACHE (ide-test flush/nodev)", async () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    for (const port of [S.DATA, S.ERR, S.COUNT, S.LBAL, S.LBAM, S.LBAH, S.DEV, S.STATUS, S.CTL]) expect(m.inb(port)).toBe(0);
    m.outb(S.DEV, 0xa0);
    m.outb(S.CMD, ATA_CMD.FLUSH_CACHE);
    await m.settle();
    expect(m.inb(S.STATUS)).toBe(0);
    expect(m.irq15.raised).toBe(0);
  });

  it("two disks are independent: data goes to the selected one", async () => {
    const d0 = new MemoryBlockDevice(64);
    const d1 = new MemoryBlockDevice(64);
    d1.data.set(pattern(0, 4, 7));
    const m = machine({ master: d0, slave: d1 });
    m.lba28(2, 1, 1);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    await m.waitNotBusy();
    expect(m.readBytes(512)).toEqual(pattern(2, 1, 7));
    expect(d0.log).toEqual([]);
  });

  it("the secondary channel uses 0x170-0x177/0x376 and IRQ 15", async () => {
    const m = machine({ master: new MemoryBlockDevice(64), secondaryMaster: new MemoryBlockDevice(64) });
    m.outb(S.DEV, 0xa0);
    m.outb(S.CMD, ATA_CMD.IDENTIFY_DEVICE);
    await m.settle();
    expect(m.irq15.level).toBe(true);
    expect(m.irq14.raised).toBe(0);
    expect(m.inb(BM.STATUS + 8)).toBe(BM_STATUS.INTERRUPT);
    expect(m.inb(BM.STATUS)).toBe(0);
    expect(m.inb(S.STATUS)).toBe(0x58);
    expect(m.irq15.level).toBe(false);
  });
});

describe("interrupt line (INTRQ, nIEN, selection)", () => {
  it("nIEN keeps the line low; clearing it asserts a pending interrupt; a Status read clears it", async () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    m.outb(P.CTL, 0x02);
    m.outb(P.CMD, ATA_CMD.CHECK_POWER_MODE);
    await m.settle();
    expect(m.irq14.raised).toBe(0);
    expect(m.inb(BM.STATUS)).toBe(0); // no rising edge, no BM INTERRUPT
    m.outb(P.CTL, 0x00);
    expect(m.irq14.level).toBe(true);
    expect(m.inb(BM.STATUS)).toBe(BM_STATUS.INTERRUPT);
    m.outb(P.CTL, 0x02); // INTRQ goes high impedance [ATA/ATAPI-6] (QEMU would keep it asserted)
    expect(m.irq14.level).toBe(false);
    m.outb(P.CTL, 0x00);
    expect(m.irq14.level).toBe(true);
    m.inb(P.STATUS);
    expect(m.irq14.level).toBe(false);
    m.outb(P.CTL, 0x02);
    m.outb(P.CTL, 0x00);
    expect(m.irq14.level).toBe(false);
  });

  it("only the selected device drives INTRQ", async () => {
    const m = machine({ master: new MemoryBlockDevice(64), slave: new MemoryBlockDevice(64) });
    m.outb(P.CMD, ATA_CMD.IDLE_IMMEDIATE);
    await m.settle();
    expect(m.irq14.level).toBe(true);
    m.outb(P.DEV, 0xb0);
    expect(m.irq14.level).toBe(false);
    m.outb(P.DEV, 0xa0);
    expect(m.irq14.level).toBe(true);
  });

  it("writing a command clears a pending interrupt", async () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    m.outb(P.CMD, ATA_CMD.IDLE_IMMEDIATE);
    await m.settle();
    expect(m.irq14.level).toBe(true);
    m.outb(P.CMD, ATA_CMD.CHECK_POWER_MODE);
    expect(m.irq14.level).toBe(false);
    await m.settle();
    expect(m.irq14.level).toBe(true);
  });
});

describe("non-data commands and errors", () => {
  // The power family ends without DSC, as QEMU (40h); the others with DRDY|DSC (50h).
  const simple: [string, number, number][] = [
    ["RECALIBRATE", 0x10, 0x50],
    ["RECALIBRATE (0x1F)", 0x1f, 0x50],
    ["IDLE IMMEDIATE", ATA_CMD.IDLE_IMMEDIATE, 0x40],
    ["IDLE", ATA_CMD.IDLE, 0x40],
    ["STANDBY IMMEDIATE", ATA_CMD.STANDBY_IMMEDIATE, 0x40],
    ["STANDBY", ATA_CMD.STANDBY, 0x40],
    ["old IDLE IMMEDIATE", 0x95, 0x40],
    ["CHECK POWER MODE", ATA_CMD.CHECK_POWER_MODE, 0x50],
    ["READ VERIFY SECTORS", ATA_CMD.READ_VERIFY_SECTORS, 0x50],
    ["READ VERIFY SECTORS EXT", ATA_CMD.READ_VERIFY_SECTORS_EXT, 0x50],
    ["FLUSH CACHE", ATA_CMD.FLUSH_CACHE, 0x50],
    ["FLUSH CACHE EXT", ATA_CMD.FLUSH_CACHE_EXT, 0x50],
    ["SEEK", 0x70, 0x50],
  ];
  it.each(simple)("%s (opcode %i) ends with status %i and an IRQ after the command delay", async (name, cmd, status) => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    if (name.endsWith("EXT")) m.lba48(0, 1);
    else m.lba28(0, 1);
    m.outb(P.CMD, cmd);
    expect(m.inb(P.CTL) & ATA_STATUS.BSY).toBe(ATA_STATUS.BSY);
    expect(m.irq14.level).toBe(false);
    await m.settle();
    expect(m.irq14.level).toBe(true);
    expect(m.inb(P.STATUS)).toBe(status);
    expect(m.inb(P.ERR)).toBe(0);
  });

  const aborted: [string, number][] = [
    ["NOP", 0x00],
    ["DEVICE RESET (packet only)", 0x08],
    ["PACKET", 0xa0],
    ["IDENTIFY PACKET DEVICE", 0xa1],
    ["SMART", 0xb0],
    ["DATA SET MANAGEMENT", 0x06],
    ["READ BUFFER", 0xe4],
    ["SET MAX ADDRESS", 0xf9],
    ["security", 0xf1],
    ["0x50", 0x50],
    ["0xFF", 0xff],
  ];
  it.each(aborted)("%s aborts: 41h, error ABRT, IRQ", async (_name, cmd) => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    m.outb(P.CMD, cmd);
    await m.settle();
    expect(m.irq14.level).toBe(true);
    expect(m.inb(P.STATUS)).toBe(0x41);
    expect(m.inb(P.ERR)).toBe(ATA_ERROR.ABRT);
  });

  it("SET FEATURES: unknown subcommand and unsupported transfer modes abort", async () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    for (const [feat, count, status] of [
      [0x00, 0, 0x41],
      [0x03, 0x0c, 0x50], // PIO 4
      [0x03, 0x0d, 0x41], // PIO 5
      [0x03, 0x23, 0x41], // MWDMA 3
      [0x03, 0x46, 0x41], // UDMA 6
      [0x03, 0x10, 0x41], // single-word DMA: not offered
      [0x03, 0x01, 0x50],
      [0xaa, 0, 0x50],
      [0x55, 0, 0x50],
      [0xcc, 0, 0x50],
      [0x66, 0, 0x50],
    ] as const) {
      m.outb(P.FEAT, feat);
      m.outb(P.COUNT, count);
      m.outb(P.CMD, ATA_CMD.SET_FEATURES);
      await m.settle();
      expect([feat, count, m.inb(P.STATUS)]).toEqual([feat, count, status]);
    }
  });

  it("CHECK POWER MODE reports standby after STANDBY IMMEDIATE and active after a media access", async () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    const check = async () => {
      m.outb(P.COUNT, 0x12);
      m.outb(P.CMD, ATA_CMD.CHECK_POWER_MODE);
      await m.settle();
      m.inb(P.STATUS);
      return m.inb(P.COUNT);
    };
    expect(await check()).toBe(0xff);
    m.outb(P.CMD, ATA_CMD.STANDBY_IMMEDIATE);
    await m.settle();
    expect(await check()).toBe(0x00);
    m.lba28(0, 1);
    m.outb(P.CMD, ATA_CMD.READ_VERIFY_SECTORS);
    await m.settle();
    expect(await check()).toBe(0xff);
  });

  it("READ VERIFY and SEEK out of range: IDNF", async () => {
    const m = machine({ master: new MemoryBlockDevice(64) });
    m.lba28(60, 8);
    m.outb(P.CMD, ATA_CMD.READ_VERIFY_SECTORS);
    await m.settle();
    expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.IDNF]);
    m.lba28(64, 1);
    m.outb(P.CMD, 0x70);
    await m.settle();
    expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.IDNF]);
  });

  it("READ NATIVE MAX ADDRESS (EXT) returns the last LBA", async () => {
    const m = machine({ master: new MemoryBlockDevice(0x12345) });
    m.outb(P.DEV, 0xe0);
    m.outb(P.CMD, ATA_CMD.READ_NATIVE_MAX_ADDRESS);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x50);
    expect([m.inb(P.LBAL), m.inb(P.LBAM), m.inb(P.LBAH), m.inb(P.DEV) & 0xf]).toEqual([0x44, 0x23, 0x01, 0]);
    m.outb(P.DEV, 0x40);
    m.outb(P.CMD, ATA_CMD.READ_NATIVE_MAX_ADDRESS_EXT);
    await m.settle();
    expect([m.inb(P.LBAL), m.inb(P.LBAM), m.inb(P.LBAH)]).toEqual([0x44, 0x23, 0x01]);
    m.outb(P.CTL, 0x80);
    expect([m.inb(P.LBAL), m.inb(P.LBAM), m.inb(P.LBAH)]).toEqual([0, 0, 0]);
  });

  it("INITIALIZE DEVICE PARAMETERS: 0 sectors per track aborts (QEMU 7.2 crashes later); a valid translation changes CHS", async () => {
    const m = machine({ master: new MemoryBlockDevice(8000) });
    m.outb(P.DEV, 0xa0 | 15);
    m.outb(P.COUNT, 0);
    m.outb(P.CMD, ATA_CMD.INITIALIZE_DEVICE_PARAMETERS);
    await m.settle();
    expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.ABRT]);
    m.outb(P.DEV, 0xa0);
    m.outb(P.CMD, ATA_CMD.READ_NATIVE_MAX_ADDRESS);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x50);
    // 4 heads, 17 sectors per track: the last LBA of the CHS-addressable area.
    m.outb(P.DEV, 0xa0 | 3);
    m.outb(P.COUNT, 17);
    m.outb(P.CMD, ATA_CMD.INITIALIZE_DEVICE_PARAMETERS);
    await m.settle();
    expect(m.inb(P.STATUS)).toBe(0x50);
    m.outb(P.DEV, 0xa0);
    m.outb(P.CMD, ATA_CMD.READ_NATIVE_MAX_ADDRESS);
    await m.settle();
    // 8000 sectors / 68 per cylinder = 117 cylinders -> last sector 7955 = C116 H3 S17.
    expect([m.inb(P.LBAH) * 256 + m.inb(P.LBAM), m.inb(P.DEV) & 0xf, m.inb(P.LBAL)]).toEqual([116, 3, 17]);
    const w = m.disks.master!.identify();
    expect([w[54], w[55], w[56]]).toEqual([117, 4, 17]);
  });

  it("out-of-range PIO reads and writes: IDNF, nothing transferred or written", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    m.lba28(63, 2);
    m.outb(P.CMD, ATA_CMD.WRITE_SECTORS);
    expect(m.inb(P.CTL) & ATA_STATUS.DRQ).toBe(0);
    await m.settle();
    expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.IDNF]);
    m.lba28(64, 1);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    await m.settle();
    expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.IDNF]);
    expect(d.log).toEqual([]);
  });

  it("block I/O errors: UNC for a read, ABRT for a write, ABRT for a flush; the LBA registers name the failing block", async () => {
    const d = new MemoryBlockDevice(64);
    const m = machine({ master: d });
    m.lba28(7, 2);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    await m.waitNotBusy();
    m.inb(P.STATUS);
    m.readBytes(512);
    d.failNext = true;
    await m.settle();
    expect([m.inb(P.STATUS), m.inb(P.ERR), m.inb(P.LBAL), m.inb(P.COUNT)]).toEqual([0x41, ATA_ERROR.UNC, 8, 1]);
    expect(m.irq14.raised).toBe(2);
    d.failNext = true;
    m.lba28(3, 1);
    m.outb(P.CMD, ATA_CMD.WRITE_SECTORS);
    m.writeBytes(pattern(0, 1));
    await m.settle();
    expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.ABRT]);
    d.failNext = true;
    m.outb(P.CMD, ATA_CMD.FLUSH_CACHE);
    await m.settle();
    expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.ABRT]);
    // The drive still works afterwards.
    m.lba28(0, 1);
    m.outb(P.CMD, ATA_CMD.READ_SECTORS);
    await m.waitNotBusy();
    expect(m.inb(P.STATUS)).toBe(0x58);
  });

  it("writes to a read-only BlockDevice abort before DRQ", async () => {
    const d = new MemoryBlockDevice(64, { readOnly: true });
    const m = machine({ master: d });
    m.lba28(0, 1);
    m.outb(P.CMD, ATA_CMD.WRITE_SECTORS);
    expect(m.inb(P.CTL) & ATA_STATUS.DRQ).toBe(0);
    await m.settle();
    expect([m.inb(P.STATUS), m.inb(P.ERR)]).toEqual([0x41, ATA_ERROR.ABRT]);
  });

  it("ide-test flush: BSY|DRDY while the BlockDevice flush is pending, then DRDY and an IRQ", async () => {
    const d = new MemoryBlockDevice(64);
    let release!: () => void;
    const held = { info: d.info, read: d.read.bind(d), write: d.write.bind(d), flush: () => new Promise<void>((r) => (release = r)) };
    const m = machine({ master: held });
    m.outb(P.CMD, ATA_CMD.FLUSH_CACHE);
    await m.settle();
    const st = m.inb(P.CTL);
    expect(st & (ATA_STATUS.BSY | ATA_STATUS.DRDY)).toBe(ATA_STATUS.BSY | ATA_STATUS.DRDY);
    expect(st & (ATA_STATUS.DF | ATA_STATUS.ERR | ATA_STATUS.DRQ)).toBe(0);
    expect(m.irq14.level).toBe(false);
    release();
    await m.settle();
    expect(m.irq14.level).toBe(true);
    expect(m.inb(P.STATUS)).toBe(0x50);
  });
});
