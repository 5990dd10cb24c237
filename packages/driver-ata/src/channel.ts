/**
 * One IDE channel as a driver runs it: two drives behind one task file, one command at a
 * time, a queue of waiting requests, bus-master DMA through a PRD table [BMIDE §1-§3],
 * completion by interrupt, and recovery by soft reset when a command times out.
 */
import { BlockError, PAGE_SIZE, type DmaRegion, type DmaSegment, type DriverPlatform } from "@paravirt/vm-interfaces";
import { ATA_CMD, ATA_CTL, ATA_DC, ATA_DEV, ATA_ER, ATA_REG, ATA_SR, BM_CMD, BM_REG, BM_STATUS, PRD } from "./registers.ts";
import { parseIdentify, type AtaIdentity } from "./identify.ts";

export interface ChannelResources {
  name: string;
  /** Command block base port (0x1F0 / 0x170 in legacy mode). */
  command: number;
  /** Control block port (0x3F6 / 0x376): Alternate Status / Device Control. */
  control: number;
  irq: number;
  /** This channel's bus-master registers (BAR4, + 8 for the secondary), if any. */
  busMaster: number | undefined;
}

export interface ChannelOptions {
  /** Virtual time before a command is declared lost (default 30 s, as ATA recommends). */
  commandTimeoutNs?: number;
  /** Largest transfer per command in bytes (default 128 KiB). */
  maxTransferBytes?: number;
}

/** A transfer or a cache flush for one drive. */
export type AtaRequest =
  | { kind: "read" | "write"; drive: 0 | 1; lba: number; sectors: number; buffers: readonly Uint8Array[]; lba48: boolean }
  | { kind: "flush"; drive: 0 | 1; ext: boolean };

interface Queued {
  req: AtaRequest;
  resolve(): void;
  reject(e: Error): void;
  retried: boolean;
}

interface InFlight {
  q: Queued;
  bounce: DmaRegion | undefined;
  segments: DmaSegment[] | undefined;
  timer: number;
}

const POLL_NS = 1_000;

export class AtaChannel {
  readonly resources: ChannelResources;
  private readonly platform: DriverPlatform;
  private readonly timeoutNs: number;
  readonly maxTransferBytes: number;
  private readonly queue: Queued[] = [];
  private current: InFlight | undefined;
  private prdt: DmaRegion | undefined;
  private bounce: DmaRegion | undefined;
  private closed = false;
  /** Statistics for the narrative: commands issued, interrupts taken, resets done. */
  readonly stats = { commands: 0, interrupts: 0, resets: 0, bounced: 0, zeroCopy: 0 };

  constructor(platform: DriverPlatform, resources: ChannelResources, options: ChannelOptions = {}) {
    this.platform = platform;
    this.resources = resources;
    this.timeoutNs = options.commandTimeoutNs ?? 30e9;
    this.maxTransferBytes = options.maxTransferBytes ?? 128 * 1024;
  }

  private inb(reg: number): number {
    return this.platform.inb(this.resources.command + reg);
  }
  private outb(reg: number, v: number): void {
    this.platform.outb(this.resources.command + reg, v);
  }
  private altStatus(): number {
    return this.platform.inb(this.resources.control + ATA_CTL.ALT_STATUS);
  }
  private sleep(ns: number): Promise<void> {
    return new Promise((resolve) => this.platform.timers.schedule(this.platform.timers.now() + ns, resolve));
  }

  /** Polls Alternate Status until `ok(status)`; resolves with the status, or undefined on timeout. */
  private async poll(ok: (s: number) => boolean, timeoutNs: number): Promise<number | undefined> {
    const until = this.platform.timers.now() + timeoutNs;
    for (;;) {
      const s = this.altStatus();
      if (ok(s)) return s;
      if (this.platform.timers.now() >= until) return undefined;
      await this.sleep(POLL_NS);
    }
  }

  private select(drive: 0 | 1, extra = 0): void {
    this.outb(ATA_REG.DEVICE, ATA_DEV.OBS | (drive ? ATA_DEV.DEV1 : 0) | extra);
    for (let i = 0; i < 4; i++) this.altStatus(); // the 400 ns settle [ATA-6 §9.7]
  }

  /** Soft reset (SRST) of both drives [ATA-6 §9.2], interrupts left disabled. */
  async reset(): Promise<void> {
    this.stats.resets++;
    const ctl = this.resources.control;
    this.platform.outb(ctl, ATA_DC.SRST | ATA_DC.NIEN);
    await this.sleep(5_000);
    this.platform.outb(ctl, ATA_DC.NIEN);
    await this.sleep(2_000_000);
    await this.poll((s) => (s & ATA_SR.BSY) === 0, 31e9);
  }

  /** Resets the channel and identifies both drives by PIO polling. */
  async init(): Promise<(AtaIdentity | undefined)[]> {
    const bm = this.resources.busMaster;
    if (bm !== undefined) {
      this.prdt = this.platform.dmaAlloc(PAGE_SIZE);
      this.bounce = this.platform.dmaAlloc(this.maxTransferBytes);
      this.platform.outb(bm + BM_REG.COMMAND, 0);
      this.platform.outb(bm + BM_REG.STATUS, BM_STATUS.INTERRUPT | BM_STATUS.ERROR);
    }
    await this.reset();
    const found: (AtaIdentity | undefined)[] = [];
    for (const drive of [0, 1] as const) found.push(await this.identify(drive));
    this.platform.requestIrq(this.resources.irq, () => this.interrupt());
    this.platform.outb(this.resources.control, 0); // nIEN = 0: interrupts on
    return found;
  }

  private async identify(drive: 0 | 1): Promise<AtaIdentity | undefined> {
    this.select(drive);
    const s0 = this.altStatus();
    if (s0 === 0x00 || s0 === 0xff) return undefined; // nothing answers on this position
    // An ATA signature after reset: LBA mid/high 00/00 (ATAPI would be 14/EB) [ATA-6 §9.12].
    if (this.inb(ATA_REG.LBA_MID) !== 0 || this.inb(ATA_REG.LBA_HIGH) !== 0) return undefined;
    this.outb(ATA_REG.COMMAND, ATA_CMD.IDENTIFY_DEVICE);
    const s = await this.poll((v) => (v & ATA_SR.BSY) === 0 && (v & (ATA_SR.DRQ | ATA_SR.ERR)) !== 0, 1e9);
    if (s === undefined || (s & ATA_SR.ERR) !== 0) {
      this.inb(ATA_REG.STATUS);
      return undefined;
    }
    const words = new Uint16Array(256);
    for (let i = 0; i < 256; i++) words[i] = this.platform.inw(this.resources.command + ATA_REG.DATA);
    this.inb(ATA_REG.STATUS);
    return parseIdentify(words);
  }

  /** Queues a request; resolves when the drive has completed it. */
  submit(req: AtaRequest): Promise<void> {
    if (this.closed) return Promise.reject(new BlockError("closed", `${this.resources.name} is shut down`));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ req, resolve, reject, retried: false });
      if (this.current === undefined) this.startNext();
    });
  }

  /** Requests waiting or running. */
  get depth(): number {
    return this.queue.length + (this.current ? 1 : 0);
  }

  private startNext(): void {
    const q = this.queue.shift();
    if (q === undefined) return;
    try {
      this.issue(q);
    } catch (e) {
      q.reject(e instanceof Error ? e : new Error(String(e)));
      this.startNext();
    }
  }

  private issue(q: Queued): void {
    const r = q.req;
    this.stats.commands++;
    const timer = this.platform.timers.schedule(this.platform.timers.now() + this.timeoutNs, () => void this.timeout());
    if (r.kind === "flush") {
      this.current = { q, bounce: undefined, segments: undefined, timer };
      this.select(r.drive);
      this.outb(ATA_REG.COMMAND, r.ext ? ATA_CMD.FLUSH_CACHE_EXT : ATA_CMD.FLUSH_CACHE);
      return;
    }
    const bm = this.resources.busMaster;
    if (bm === undefined || this.prdt === undefined || this.bounce === undefined) {
      this.platform.timers.cancel(timer);
      throw new BlockError("unsupported", `${this.resources.name}: no bus-master DMA`);
    }
    // Zero copy when every buffer is DMA-able memory (one PRD list over all of them); else
    // the whole transfer goes through the bounce buffer.
    const dir = r.kind === "read" ? "from-device" : "to-device";
    let segments: DmaSegment[] | undefined = [];
    for (const b of r.buffers) {
      const m = this.platform.dmaMap(b, dir);
      if (m === undefined) {
        segments = undefined;
        break;
      }
      segments.push(...m);
    }
    let bounce: DmaRegion | undefined;
    if (segments === undefined) {
      bounce = this.bounce;
      const bytes = r.buffers.reduce((n, b) => n + b.length, 0);
      if (r.kind === "write") {
        let o = 0;
        for (const b of r.buffers) {
          bounce.bytes.set(b, o);
          o += b.length;
        }
      }
      segments = [{ busAddress: bounce.busAddress, length: bytes }];
      this.stats.bounced++;
    } else {
      this.stats.zeroCopy++;
    }
    this.current = { q, bounce, segments, timer };
    this.writePrdt(segments);
    this.platform.outl(bm + BM_REG.PRDT, this.prdt.busAddress);
    this.platform.outb(bm + BM_REG.STATUS, BM_STATUS.INTERRUPT | BM_STATUS.ERROR);
    const read = r.kind === "read";
    this.platform.outb(bm + BM_REG.COMMAND, read ? BM_CMD.READ : 0);
    this.select(r.drive, ATA_DEV.LBA | (r.lba48 ? 0 : (r.lba / 0x1000000) & 0x0f));
    const n = r.sectors;
    if (r.lba48) {
      // High-order bytes first, then low [ATA8-ACS §4.2.2 48-bit addressing].
      this.outb(ATA_REG.SECTOR_COUNT, (n >> 8) & 0xff);
      this.outb(ATA_REG.LBA_LOW, Math.floor(r.lba / 0x1000000) & 0xff);
      this.outb(ATA_REG.LBA_MID, Math.floor(r.lba / 0x100000000) & 0xff);
      this.outb(ATA_REG.LBA_HIGH, Math.floor(r.lba / 0x10000000000) & 0xff);
    }
    this.outb(ATA_REG.SECTOR_COUNT, n & 0xff);
    this.outb(ATA_REG.LBA_LOW, r.lba & 0xff);
    this.outb(ATA_REG.LBA_MID, (r.lba >>> 8) & 0xff);
    this.outb(ATA_REG.LBA_HIGH, (r.lba >>> 16) & 0xff);
    const cmd = r.lba48 ? (read ? ATA_CMD.READ_DMA_EXT : ATA_CMD.WRITE_DMA_EXT) : read ? ATA_CMD.READ_DMA : ATA_CMD.WRITE_DMA;
    this.outb(ATA_REG.COMMAND, cmd);
    this.platform.outb(bm + BM_REG.COMMAND, (read ? BM_CMD.READ : 0) | BM_CMD.START);
  }

  /** PRD entries: at most 64 KiB each, none crossing a 64 KiB boundary [BMIDE §1.2]. */
  private writePrdt(segments: DmaSegment[]): void {
    const prdt = this.prdt!;
    const dv = new DataView(prdt.bytes.buffer, prdt.bytes.byteOffset, prdt.bytes.byteLength);
    let i = 0;
    for (const seg of segments) {
      let addr = seg.busAddress;
      let left = seg.length;
      while (left > 0) {
        const toBoundary = PRD.MAX_BYTES - (addr % PRD.MAX_BYTES);
        const n = Math.min(left, toBoundary);
        if ((i + 1) * PRD.SIZE > dv.byteLength) throw new BlockError("unsupported", "transfer needs more PRD entries than one page holds");
        dv.setUint32(i * PRD.SIZE, addr >>> 0, true);
        dv.setUint16(i * PRD.SIZE + 4, n === PRD.MAX_BYTES ? 0 : n, true);
        dv.setUint16(i * PRD.SIZE + 6, 0, true);
        addr += n;
        left -= n;
        i++;
      }
    }
    if (i > 0) dv.setUint16((i - 1) * PRD.SIZE + 6, PRD.EOT, true);
  }

  private interrupt(): void {
    const cur = this.current;
    const bm = this.resources.busMaster;
    if (bm !== undefined) {
      const bms = this.platform.inb(bm + BM_REG.STATUS);
      if ((bms & BM_STATUS.INTERRUPT) === 0) return; // shared line, not us
      this.platform.outb(bm + BM_REG.COMMAND, 0);
      const status = this.inb(ATA_REG.STATUS); // reading Status acknowledges the device's INTRQ
      this.platform.outb(bm + BM_REG.STATUS, BM_STATUS.INTERRUPT | BM_STATUS.ERROR);
      this.stats.interrupts++;
      if (cur !== undefined) this.complete(cur, status, bms);
      return;
    }
    const status = this.inb(ATA_REG.STATUS);
    this.stats.interrupts++;
    if (cur !== undefined) this.complete(cur, status, 0);
  }

  private complete(cur: InFlight, status: number, bmStatus: number): void {
    if ((status & ATA_SR.BSY) !== 0) return; // not finished: a spurious edge
    this.platform.timers.cancel(cur.timer);
    this.current = undefined;
    const r = cur.q.req;
    if ((status & (ATA_SR.ERR | ATA_SR.DF)) !== 0 || (bmStatus & BM_STATUS.ERROR) !== 0) {
      const err = this.inb(ATA_REG.ERROR);
      const what = r.kind === "flush" ? "flush" : `${r.kind} of ${r.sectors} sectors at ${r.lba}`;
      const kind = (err & ATA_ER.IDNF) !== 0 ? "out-of-range" : "io";
      cur.q.reject(new BlockError(kind, `${this.resources.name}: ${what} failed (status 0x${status.toString(16)}, error 0x${err.toString(16)})`));
    } else {
      if (r.kind === "read" && cur.bounce !== undefined) {
        let o = 0;
        for (const b of r.buffers) {
          b.set(cur.bounce.bytes.subarray(o, o + b.length));
          o += b.length;
        }
      }
      cur.q.resolve();
    }
    this.startNext();
  }

  /** A command that never completed: stop the engine, reset the channel, retry once. */
  private async timeout(): Promise<void> {
    const cur = this.current;
    if (cur === undefined) return;
    this.current = undefined;
    const bm = this.resources.busMaster;
    if (bm !== undefined) this.platform.outb(bm + BM_REG.COMMAND, 0);
    this.platform.log(`${this.resources.name}: command timed out, resetting channel`);
    await this.reset();
    this.platform.outb(this.resources.control, 0);
    if (!cur.q.retried) {
      cur.q.retried = true;
      this.queue.unshift(cur.q);
    } else {
      cur.q.reject(new BlockError("io", `${this.resources.name}: command timed out twice`));
    }
    this.startNext();
  }

  /** Fails everything waiting; later submissions are refused. */
  shutdown(): void {
    this.closed = true;
    const err = new BlockError("closed", `${this.resources.name} is shut down`);
    if (this.current) {
      this.platform.timers.cancel(this.current.timer);
      this.current.q.reject(err);
      this.current = undefined;
    }
    for (const q of this.queue.splice(0)) q.reject(err);
  }
}
