/** A tiny PC for register-level tests: port bus, flat memory, IRQ 14/15, virtual clock. */
import { IoBus, PCI_COMMAND, PCI_CONFIG, VirtualClock, type BlockDevice } from "@paravirt/vm-interfaces";
import { FlatMemory, RecordingIrqLine, type MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { AtaDisk, ATA_STATUS, BM_CMD, PRD, PiixIde, type AtaDiskOptions } from "../src/index.ts";

export const BMIBA = 0xc000;
export const P = { DATA: 0x1f0, ERR: 0x1f1, FEAT: 0x1f1, COUNT: 0x1f2, LBAL: 0x1f3, LBAM: 0x1f4, LBAH: 0x1f5, DEV: 0x1f6, STATUS: 0x1f7, CMD: 0x1f7, CTL: 0x3f6 } as const;
export const S = { DATA: 0x170, ERR: 0x171, COUNT: 0x172, LBAL: 0x173, LBAM: 0x174, LBAH: 0x175, DEV: 0x176, STATUS: 0x177, CMD: 0x177, CTL: 0x376 } as const;
export const BM = { CMD: BMIBA, STATUS: BMIBA + 2, PRDT: BMIBA + 4 } as const;

export interface MachineOptions {
  master?: BlockDevice | undefined;
  slave?: BlockDevice | undefined;
  secondaryMaster?: BlockDevice | undefined;
  disk?: AtaDiskOptions;
  /** Options of device 1 (default: `disk` with serial PV00002). */
  slaveDisk?: AtaDiskOptions;
  variant?: "piix3" | "piix4";
  /** PCI COMMAND value programmed at start (default IO | MASTER). */
  command?: number;
  memory?: number;
}

export function machine(o: MachineOptions = {}) {
  const clock = new VirtualClock();
  const mem = new FlatMemory(o.memory ?? 1 << 22);
  const irq14 = new RecordingIrqLine();
  const irq15 = new RecordingIrqLine();
  const disks = {
    master: o.master ? new AtaDisk(o.master, o.disk) : undefined,
    slave: o.slave ? new AtaDisk(o.slave, o.slaveDisk ?? { ...o.disk, serial: "PV00002" }) : undefined,
    secondaryMaster: o.secondaryMaster ? new AtaDisk(o.secondaryMaster, o.disk) : undefined,
  };
  const ide = new PiixIde({
    variant: o.variant ?? "piix3",
    memory: mem,
    timers: clock,
    irq14,
    irq15,
    primary: { ...(disks.master ? { master: disks.master } : {}), ...(disks.slave ? { slave: disks.slave } : {}) },
    secondary: disks.secondaryMaster ? { master: disks.secondaryMaster } : {},
  });
  const io = new IoBus();
  ide.registerLegacyPorts(io);
  ide.configWrite(PCI_CONFIG.BAR0 + 16, 4, BMIBA);
  ide.configWrite(PCI_CONFIG.COMMAND, 2, o.command ?? PCI_COMMAND.IO | PCI_COMMAND.MASTER);
  io.register({ base: BMIBA, length: 16 }, ide.busMasterBlock, "bmide");

  const inb = (port: number) => io.read(port, 1);
  const inw = (port: number) => io.read(port, 2);
  const inl = (port: number) => io.read(port, 4);
  const outb = (port: number, v: number) => io.write(port, 1, v);
  const outw = (port: number, v: number) => io.write(port, 2, v);
  const outl = (port: number, v: number) => io.write(port, 4, v);

  /** Lets promises settle (block I/O) without moving virtual time. */
  const drain = async () => {
    for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
  };
  /** Runs timers and block I/O until nothing is left to do. */
  const settle = async (maxSteps = 100_000) => {
    for (let i = 0; i < maxSteps; i++) {
      await drain();
      if (!clock.runNext()) {
        await drain();
        if (clock.pending === 0) return;
      }
    }
    throw new Error("machine did not settle");
  };
  /** Steps until the alternate status of `ctl` shows BSY clear (the way a driver polls). */
  const waitNotBusy = async (ctl: number = P.CTL) => {
    for (let i = 0; i < 100_000; i++) {
      if ((inb(ctl) & ATA_STATUS.BSY) === 0) return inb(ctl);
      await drain();
      if ((inb(ctl) & ATA_STATUS.BSY) === 0) return inb(ctl);
      clock.runNext();
    }
    throw new Error("still busy");
  };

  /** Selects device `dev` with LBA addressing and programs a 28-bit address and count. */
  const lba28 = (lba: number, count: number, dev = 0) => {
    outb(P.DEV, 0xe0 | (dev << 4) | ((lba >>> 24) & 0xf));
    outb(P.COUNT, count & 0xff);
    outb(P.LBAL, lba & 0xff);
    outb(P.LBAM, (lba >>> 8) & 0xff);
    outb(P.LBAH, (lba >>> 16) & 0xff);
  };
  /** Programs a 48-bit address and count (high bytes first). */
  const lba48 = (lba: number, count: number, dev = 0) => {
    outb(P.DEV, 0x40 | (dev << 4));
    const hi = Math.floor(lba / 2 ** 24);
    outb(P.COUNT, (count >> 8) & 0xff);
    outb(P.LBAL, hi & 0xff);
    outb(P.LBAM, (hi >>> 8) & 0xff);
    outb(P.LBAH, (hi >>> 16) & 0xff);
    outb(P.COUNT, count & 0xff);
    outb(P.LBAL, lba & 0xff);
    outb(P.LBAM, (lba >>> 8) & 0xff);
    outb(P.LBAH, (lba >>> 16) & 0xff);
  };

  /** Writes a PRD table at `table` for `regions` and points the primary BM at it. */
  const prdTable = (table: number, regions: readonly { addr: number; bytes: number; eot?: boolean }[], bm = BM.PRDT) => {
    regions.forEach((r, i) => {
      mem.writeU32(table + i * 8, r.addr);
      mem.writeU16(table + i * 8 + 4, r.bytes & 0xffff);
      mem.writeU16(table + i * 8 + 6, (r.eot ?? i === regions.length - 1) ? PRD.EOT : 0);
    });
    outl(bm, table);
  };

  /** Reads `words` 16-bit words from the primary data port. */
  const readWords = (words: number, port: number = P.DATA) => {
    const out = new Uint16Array(words);
    for (let i = 0; i < words; i++) out[i] = inw(port);
    return out;
  };
  const readBytes = (bytes: number, port: number = P.DATA) => new Uint8Array(readWords(bytes / 2, port).buffer);
  const writeBytes = (src: Uint8Array, port: number = P.DATA) => {
    for (let i = 0; i < src.length; i += 2) outw(port, src[i]! | (src[i + 1]! << 8));
  };

  return {
    clock, mem, irq14, irq15, ide, io, disks,
    inb, inw, inl, outb, outw, outl,
    drain, settle, waitNotBusy, lba28, lba48, prdTable, readWords, readBytes, writeBytes,
    startBm: (read: boolean, bm = BM.CMD) => outb(bm, BM_CMD.START | (read ? BM_CMD.READ : 0)),
    stopBm: (bm = BM.CMD) => outb(bm, 0),
  };
}

export type Machine = ReturnType<typeof machine>;

/** Bytes where byte i of sector s is (s * 31 + i * 7 + seed) & 0xff. */
export function pattern(sector: number, count: number, seed = 0): Uint8Array {
  const b = new Uint8Array(count * 512);
  for (let s = 0; s < count; s++) for (let i = 0; i < 512; i++) b[s * 512 + i] = ((sector + s) * 31 + i * 7 + seed) & 0xff;
  return b;
}

/** A device whose requests wait until the test releases (or fails) them, in any order. */
export function held(inner: MemoryBlockDevice) {
  const waiting: { go: () => void; fail: (e: unknown) => void }[] = [];
  const gate = () => new Promise<void>((go, fail) => waiting.push({ go, fail }));
  const dev: BlockDevice = {
    info: inner.info,
    read: async (s, b) => {
      await gate();
      return inner.read(s, b);
    },
    write: async (s, b) => {
      await gate();
      return inner.write(s, b);
    },
    flush: async () => {
      await gate();
      return inner.flush();
    },
  };
  return {
    dev,
    waiting,
    releaseAll: () => waiting.splice(0).forEach((w) => w.go()),
    failAll: (e: unknown) => waiting.splice(0).forEach((w) => w.fail(e)),
  };
}
