/**
 * One ATA disk: its task file, status, and the command state machine, on a vm-interfaces
 * `BlockDevice`.
 *
 * Protocols follow [ATA/ATAPI-6 §9] (non-data, PIO data-in, PIO data-out, DMA, software
 * reset); commands [ATA8-ACS §7]. Where ATA leaves room, QEMU 7.2 is the reference (docs
 * devices.md §2); where QEMU deviates from the specs in a way no real driver relies on, the
 * spec wins (see README "Differences from QEMU").
 *
 * Time is virtual: every command completes after a delay scheduled on the channel's
 * `TimerQueue`, and block I/O completes when its promise settles. A generation counter makes
 * results that arrive after a reset or a cancelled DMA harmless.
 */
import { BlockError, GuestMemoryError, writeVectored, type BlockDevice, type TimerId, type TimerQueue } from "@paravirt/vm-interfaces";
import { ATA_CMD, ATA_DEVICE, ATA_ERROR, ATA_POWER, ATA_SETFEATURES, ATA_STATUS, ATA_XFER } from "./registers.ts";
import { defaultChs, identifyBytes, identifyDevice, translatedChs, type Chs, type TransferMode } from "./identify.ts";

/** Delays of the disk's operations in virtual nanoseconds. */
export interface AtaTiming {
  /** Command overhead: from the Command register write to the first data or completion. */
  readonly commandNs: number;
  /** Media time per sector moved. */
  readonly sectorNs: number;
  /** From the release of SRST until BSY clears. */
  readonly resetNs: number;
}

/** Defaults: a fast disk (20 µs per command, 1 µs per sector, 100 µs reset). */
export const DEFAULT_ATA_TIMING: AtaTiming = { commandNs: 20_000, sectorNs: 1_000, resetNs: 100_000 };

/** Options of {@link AtaDisk}. */
export interface AtaDiskOptions {
  /** Model string, IDENTIFY words 27-46 (max 40 characters). Default "PARAVIRT HARDDISK". */
  model?: string;
  /** Serial number, IDENTIFY words 10-19 (max 20 characters). Default "PV00001". */
  serial?: string;
  /** Firmware revision, IDENTIFY words 23-26 (max 8 characters). Default "1.0". */
  firmware?: string;
  timing?: Partial<AtaTiming>;
  /**
   * Host I/O that runs while the machine goes on. A DMA command's host read or write starts
   * when its data phase starts (bus master started, PRD table read), as QEMU's ide/dma submits
   * its AIO then; the machine needs it done only when the modelled transfer time is over.
   * `block` is the drive's medium without the machine's host-I/O accounting; `wait(p)` holds
   * the machine still until `p` settles (a HostIoTracker's `track`) and is called only when the
   * modelled end comes before the host has finished. Without it, DMA host I/O still starts at
   * the data phase, on the drive's own `BlockDevice`.
   */
  overlap?: HostOverlap;
}

/** See {@link AtaDiskOptions.overlap}. */
export interface HostOverlap {
  readonly block: BlockDevice;
  wait(p: Promise<void>): Promise<void>;
}

/**
 * A DMA command's host I/O, started with the data phase. Reads land in a bounce buffer and
 * reach guest memory only when the command completes, so a read still in flight after the
 * guest stopped the engine or reset the drive never writes guest memory.
 */
interface DmaIo {
  readonly plan: DmaPlan;
  readonly short: boolean;
  /** Whole sectors the PRDs cover. */
  readonly sectors: number;
  /** Read data staged until completion. */
  readonly bounce: Uint8Array | undefined;
  state: "pending" | "ok" | "failed";
  error: unknown;
  /** Resolves (never rejects) once `state` is no longer "pending". */
  readonly settled: Promise<void>;
}

/** Host-side view of what a drive is doing (for tests, tracing and save/restore). */
export type AtaPhase = "idle" | "busy" | "pio-in" | "pio-out" | "dma-wait" | "dma-run" | "reset";

/** The result of walking a PRD table for a transfer of `bytes` (see BusMaster). */
export interface DmaPlan {
  readonly segments: readonly { readonly address: number; readonly length: number }[];
  /** Bytes the PRDs cover, at most the transfer size. */
  readonly total: number;
  /** Whether the last PRD used ended exactly at an EOT entry's end (the table is exhausted). */
  readonly exhausted: boolean;
}

/** The bus-master engine as a drive sees it. Memory methods throw GuestMemoryError. */
export interface DmaEngine {
  plan(bytes: number): DmaPlan;
  /** A single live view of guest memory covering the whole plan, when there is one. */
  view(plan: DmaPlan, writable: boolean): Uint8Array | undefined;
  /** Live views of every segment of the plan, in order, when all of them are plain RAM. */
  views?(plan: DmaPlan, writable: boolean): Uint8Array[] | undefined;
  scatter(plan: DmaPlan, src: Uint8Array): void;
  gather(plan: DmaPlan, dst: Uint8Array): void;
  /** The drive's side of the transfer is over; `clearActive` when the PRD table is done with. */
  endTransfer(clearActive: boolean): void;
  /** A memory access failed (master abort): ERROR set, ACTIVE cleared. */
  fault(): void;
}

/** What a drive needs from the channel it sits on. */
export interface DriveHost {
  readonly timers: TimerQueue;
  readonly dma: DmaEngine;
  /** The drive's INTRQ pending state changed. */
  interruptChanged(): void;
  /** The drive is ready for the DMA data phase (asserts DMARQ). */
  dmaRequested(): void;
}

/** Task-file register contents of one device, with the previous ("HOB") bytes [ATA/ATAPI-6 §7]. */
export class TaskFile {
  features = 0;
  count = 0;
  lbaLow = 0;
  lbaMid = 0;
  lbaHigh = 0;
  device = 0;
  hobFeatures = 0;
  hobCount = 0;
  hobLbaLow = 0;
  hobLbaMid = 0;
  hobLbaHigh = 0;

  /** A host write of register 1-6: the old byte moves to the HOB copy (a two-deep FIFO for LBA48). */
  hostWrite(reg: number, v: number): void {
    switch (reg) {
      case 1:
        this.hobFeatures = this.features;
        this.features = v;
        break;
      case 2:
        this.hobCount = this.count;
        this.count = v;
        break;
      case 3:
        this.hobLbaLow = this.lbaLow;
        this.lbaLow = v;
        break;
      case 4:
        this.hobLbaMid = this.lbaMid;
        this.lbaMid = v;
        break;
      case 5:
        this.hobLbaHigh = this.lbaHigh;
        this.lbaHigh = v;
        break;
      case 6:
        this.device = v;
        break;
    }
  }

  /** The reset/diagnostic signature of an ATA (non-packet) device [ATA8-ACS signature and persistence: device signatures]. */
  signature(): void {
    this.count = 1;
    this.lbaLow = 1;
    this.lbaMid = 0;
    this.lbaHigh = 0;
    this.device = 0;
    this.hobCount = this.hobLbaLow = this.hobLbaMid = this.hobLbaHigh = this.hobFeatures = 0;
  }

  copyFrom(t: TaskFile): void {
    Object.assign(this, t);
  }
}

type Op = "read" | "write" | "trim";

interface Transfer {
  readonly op: Op;
  readonly dma: boolean;
  readonly ext: boolean;
  readonly chs: boolean;
  /** Sectors per DRQ block (PIO). */
  readonly block: number;
  lba: number;
  remaining: number;
}

const MAX_MULTIPLE = 16;
/** Largest DATA SET MANAGEMENT payload in 512-byte blocks (IDENTIFY word 105). */
const MAX_DSM_BLOCKS = 8;

/**
 * An ATA disk on a {@link BlockDevice}, to be attached to an IDE channel (`PiixIde` options).
 * One instance serves one device position.
 *
 * **Guest-visible behaviour:** see the package README (commands, status/IRQ protocol, errors).
 * Guest input never throws; host misuse (attaching twice) does.
 */
export class AtaDisk {
  readonly block: BlockDevice;
  readonly tf = new TaskFile();
  /** Status register [ATA/ATAPI-6 §7]. */
  status: number = ATA_STATUS.DRDY | ATA_STATUS.DSC;
  /** Error register [ATA8-ACS Error field description]. */
  error: number = ATA_ERROR.DIAG_PASSED;
  /** INTRQ pending: set when the device requests an interrupt, cleared by a Status read, a command write or a reset. */
  intrq = false;

  readonly model: string;
  readonly serial: string;
  readonly firmware: string;
  readonly timing: AtaTiming;
  private readonly ss: number;
  private readonly overlap: HostOverlap | undefined;
  /** A bounce buffer free for the next DMA read (one in flight when a command was abandoned is not reused). */
  private spare: Uint8Array | undefined;

  private host: DriveHost | undefined;
  private phaseValue: AtaPhase = "idle";
  private gen = 0;
  private timer: TimerId | undefined;
  private xfer: Transfer | undefined;
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  /** What to do when the host has moved the whole PIO buffer. */
  private drained: (() => void) | undefined;

  // Settings (SET FEATURES, SET MULTIPLE MODE, INITIALIZE DEVICE PARAMETERS).
  private multiple = MAX_MULTIPLE;
  private chs: Chs;
  private writeCache = true;
  private lookAhead = true;
  private revertOnReset = false;
  private transferMode: TransferMode = { kind: "udma", mode: 5 };
  private power: "active" | "idle" | "standby" = "active";

  constructor(block: BlockDevice, options: AtaDiskOptions = {}) {
    this.block = block;
    this.ss = block.info.sectorSize;
    if (this.ss < 512 || this.ss % 512 !== 0) throw new RangeError(`sector size ${this.ss} is not a multiple of 512`);
    this.model = options.model ?? "PARAVIRT HARDDISK";
    this.serial = options.serial ?? "PV00001";
    this.firmware = options.firmware ?? "1.0";
    this.timing = { ...DEFAULT_ATA_TIMING, ...options.timing };
    this.overlap = options.overlap;
    this.chs = defaultChs(block.info.sectors);
    this.tf.signature();
  }

  /** Called by the channel once. */
  attach(host: DriveHost): void {
    if (this.host !== undefined) throw new Error("AtaDisk is already attached to a channel");
    this.host = host;
  }

  /** What the drive is doing. */
  get phase(): AtaPhase {
    return this.phaseValue;
  }

  /** The 256 IDENTIFY DEVICE words as the drive would report them now. */
  identify(): Uint16Array {
    const info = this.block.info;
    return identifyDevice({
      model: this.model,
      serial: this.serial,
      firmware: this.firmware,
      sectors: info.sectors,
      sectorSize: this.ss,
      physicalSectorSize: info.physicalSectorSize ?? this.ss,
      defaultChs: defaultChs(info.sectors),
      currentChs: this.chs,
      maxMultiple: MAX_MULTIPLE,
      multiple: this.multiple,
      writeCache: this.writeCache,
      lookAhead: this.lookAhead,
      transferMode: this.transferMode,
      trimBlocks: this.canTrim ? MAX_DSM_BLOCKS : 0,
    });
  }

  // ---- host register interface (called by the channel) ----

  /** Reads the Status register; `ack` (a Status, not Alternate Status, read) clears INTRQ. */
  readStatus(ack: boolean): number {
    if (ack && this.intrq) this.setIntrq(false);
    return this.status;
  }

  /** Reads `size` bytes (1, 2 or 4) of PIO data; 0 when no data phase is under way. */
  readData(size: 1 | 2 | 4): number {
    if (this.phaseValue !== "pio-in") return 0;
    if (size === 4) {
      const lo = this.readWord();
      const hi = this.phaseValue === "pio-in" ? this.readWord() : 0;
      return (lo | (hi << 16)) >>> 0;
    }
    const w = this.readWord();
    return size === 1 ? w & 0xff : w;
  }

  /** Writes `size` bytes (1, 2 or 4) of PIO data; dropped when no data-out phase is under way. */
  writeData(size: 1 | 2 | 4, value: number): void {
    if (this.phaseValue !== "pio-out") return;
    if (size === 4) {
      this.writeWord(value & 0xffff);
      if (this.phaseValue === "pio-out") this.writeWord(value >>> 16);
      return;
    }
    this.writeWord(size === 1 ? value & 0xff : value & 0xffff);
  }

  /** Whether register writes and commands are refused now (BSY or DRQ set). */
  get busy(): boolean {
    return (this.status & (ATA_STATUS.BSY | ATA_STATUS.DRQ)) !== 0;
  }

  /** A Command register write addressed to this device. Ignored while BSY or DRQ. */
  command(opcode: number): void {
    if (this.busy) return;
    this.setIntrq(false);
    this.error = 0;
    this.execute(opcode & 0xff);
  }

  /** SRST asserted: BSY, everything in flight abandoned [ATA/ATAPI-6 §9]. */
  resetAssert(): void {
    this.abandon();
    this.setIntrq(false);
    this.status = ATA_STATUS.BSY;
    this.phaseValue = "reset";
  }

  /** SRST released: after `resetNs` the signature is set and BSY clears (no interrupt). */
  resetRelease(): void {
    if (this.phaseValue !== "reset") return;
    const g = this.gen;
    this.schedule(this.timing.resetNs, () => {
      if (g !== this.gen) return;
      if (this.revertOnReset) this.defaults();
      this.tf.signature();
      this.error = ATA_ERROR.DIAG_PASSED;
      this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC;
      this.phaseValue = "idle";
    });
  }

  /** Power-on / hardware reset: settings back to defaults, signature at once. */
  hardReset(): void {
    this.abandon();
    this.defaults();
    this.tf.signature();
    this.tf.features = this.tf.hobFeatures = 0;
    this.error = ATA_ERROR.DIAG_PASSED;
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC;
    this.phaseValue = "idle";
    this.setIntrq(false);
  }

  /**
   * EXECUTE DEVICE DIAGNOSTIC [ATA8-ACS]: run by both devices whichever is selected; device 0
   * reports the result and interrupts. Called by the channel.
   */
  diagnose(reportsInterrupt: boolean): void {
    this.abandon();
    this.setIntrq(false);
    this.status = ATA_STATUS.BSY;
    this.phaseValue = "busy";
    this.after(this.timing.commandNs, () => {
      this.tf.signature();
      this.error = ATA_ERROR.DIAG_PASSED;
      this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC;
      this.phaseValue = "idle";
      if (reportsInterrupt) this.setIntrq(true);
    });
  }

  /** The bus master is active and the drive requested DMA: run the data phase. */
  dmaStart(): void {
    if (this.phaseValue !== "dma-wait" || this.xfer === undefined) return;
    this.phaseValue = "dma-run";
    const x = this.xfer;
    const delay = this.timing.commandNs + this.timing.sectorNs * x.remaining;
    if (x.op === "trim") {
      this.after(delay, () => this.dmaTrim(x));
      return;
    }
    // The host I/O starts with the data phase; status and INTRQ come at the later of the
    // modelled end and the host's completion.
    let io: DmaIo | GuestMemoryError;
    try {
      io = this.submitDma(x);
    } catch (e) {
      if (!(e instanceof GuestMemoryError)) throw e;
      io = e;
    }
    this.after(delay, () => (io instanceof GuestMemoryError ? this.dmaFault(io) : this.dmaEnd(x, io)));
  }

  /** The bus master was stopped during the data phase: the drive keeps waiting for DMA. */
  dmaCancel(): void {
    if (this.phaseValue !== "dma-run") return;
    const x = this.xfer;
    this.abandon();
    this.xfer = x;
    this.phaseValue = "dma-wait";
  }

  // ---- command dispatch ----

  private execute(cmd: number): void {
    const C = ATA_CMD;
    if (cmd >= 0x10 && cmd <= 0x1f) return this.nonData(() => 0); // RECALIBRATE
    if (cmd >= 0x70 && cmd <= 0x7f) return this.nonData(() => this.seek()); // SEEK
    switch (cmd) {
      case C.READ_SECTORS:
      case C.READ_SECTORS_NORETRY:
        return this.startTransfer("read", false, false, 1);
      case C.READ_SECTORS_EXT:
        return this.startTransfer("read", true, false, 1);
      case C.READ_MULTIPLE:
      case C.READ_MULTIPLE_EXT:
        if (this.multiple === 0) return this.nonData(() => ATA_ERROR.ABRT);
        return this.startTransfer("read", cmd === C.READ_MULTIPLE_EXT, false, this.multiple);
      case C.WRITE_SECTORS:
      case C.WRITE_SECTORS_NORETRY:
      case C.WRITE_VERIFY:
        return this.startTransfer("write", false, false, 1);
      case C.WRITE_SECTORS_EXT:
        return this.startTransfer("write", true, false, 1);
      case C.WRITE_MULTIPLE:
      case C.WRITE_MULTIPLE_EXT:
        if (this.multiple === 0) return this.nonData(() => ATA_ERROR.ABRT);
        return this.startTransfer("write", cmd === C.WRITE_MULTIPLE_EXT, false, this.multiple);
      case C.READ_DMA:
      case C.READ_DMA_NORETRY:
        return this.startTransfer("read", false, true, 0);
      case C.READ_DMA_EXT:
        return this.startTransfer("read", true, true, 0);
      case C.WRITE_DMA:
      case C.WRITE_DMA_NORETRY:
        return this.startTransfer("write", false, true, 0);
      case C.WRITE_DMA_EXT:
        return this.startTransfer("write", true, true, 0);
      case C.READ_VERIFY_SECTORS:
      case C.READ_VERIFY_SECTORS_NORETRY:
        return this.nonData(() => this.verify(false));
      case C.READ_VERIFY_SECTORS_EXT:
        return this.nonData(() => this.verify(true));
      case C.IDENTIFY_DEVICE:
        return this.identifyCommand();
      case C.DATA_SET_MANAGEMENT:
        return this.startTrim();
      case C.SET_MULTIPLE_MODE:
        return this.nonData(() => this.setMultiple());
      case C.SET_FEATURES:
        return this.setFeatures();
      case C.FLUSH_CACHE:
      case C.FLUSH_CACHE_EXT:
        return this.flushCommand();
      case C.READ_NATIVE_MAX_ADDRESS:
        return this.nonData(() => this.readNativeMax(false));
      case C.READ_NATIVE_MAX_ADDRESS_EXT:
        return this.nonData(() => this.readNativeMax(true));
      case C.INITIALIZE_DEVICE_PARAMETERS:
        return this.nonData(() => this.initializeDeviceParameters());
      // The power family completes without DSC, as QEMU (DSC is obsolete since ATA/ATAPI-6).
      case C.IDLE_IMMEDIATE:
      case C.IDLE_IMMEDIATE_OLD:
      case C.IDLE:
      case C.IDLE_OLD:
        return this.nonData(() => ((this.power = "idle"), 0), false);
      case C.STANDBY_IMMEDIATE:
      case C.STANDBY_IMMEDIATE_OLD:
      case C.STANDBY:
      case C.STANDBY_OLD:
      case C.SLEEP:
      case C.SLEEP_OLD:
        return this.nonData(() => ((this.power = "standby"), 0), false);
      case C.CHECK_POWER_MODE:
      case C.CHECK_POWER_MODE_OLD:
        return this.nonData(() => {
          this.tf.count = this.power === "standby" ? ATA_POWER.STANDBY : ATA_POWER.ACTIVE_OR_IDLE;
          return 0;
        });
      default:
        // NOP, DEVICE RESET, PACKET, IDENTIFY PACKET DEVICE, SMART, DSM and anything unknown.
        return this.nonData(() => ATA_ERROR.ABRT);
    }
  }

  /** A non-data command: BSY, then after the command delay `run` gives the error bits (0 = success). */
  private nonData(run: () => number, dsc = true): void {
    this.begin();
    this.after(this.timing.commandNs, () => this.finish(run(), dsc));
  }

  private begin(): void {
    this.status = ATA_STATUS.BSY | ATA_STATUS.DRDY;
    this.phaseValue = "busy";
  }

  /** Ends the command: status, error and the interrupt [ATA/ATAPI-6 §9 non-data and PIO protocols]. */
  private finish(err: number, dsc = true): void {
    this.xfer = undefined;
    this.drained = undefined;
    this.phaseValue = "idle";
    this.error = err;
    this.status = err !== 0 ? ATA_STATUS.DRDY | ATA_STATUS.ERR : dsc ? ATA_STATUS.DRDY | ATA_STATUS.DSC : ATA_STATUS.DRDY;
    this.setIntrq(true);
  }

  // ---- addressing ----

  private sectorCount(ext: boolean): number {
    if (ext) return (this.tf.hobCount << 8) | this.tf.count || 65536;
    return this.tf.count || 256;
  }

  /** The starting address from the task file, or -1 for a CHS address outside the translation. */
  private startLba(ext: boolean): number {
    const t = this.tf;
    if (ext) {
      return (t.hobLbaHigh * 2 ** 40 + t.hobLbaMid * 2 ** 32 + t.hobLbaLow * 2 ** 24 + ((t.lbaHigh << 16) | (t.lbaMid << 8) | t.lbaLow));
    }
    if ((t.device & ATA_DEVICE.LBA) !== 0) {
      return (((t.device & ATA_DEVICE.HEAD) << 24) | (t.lbaHigh << 16) | (t.lbaMid << 8) | t.lbaLow) >>> 0;
    }
    const cyl = (t.lbaHigh << 8) | t.lbaMid;
    const head = t.device & ATA_DEVICE.HEAD;
    const sec = t.lbaLow;
    const g = this.chs;
    if (sec === 0 || sec > g.sectorsPerTrack || head >= g.heads || cyl >= g.cylinders) return -1;
    return (cyl * g.heads + head) * g.sectorsPerTrack + sec - 1;
  }

  /** Writes an address back into the task file in the command's addressing mode. */
  private putAddress(lba: number, ext: boolean, chs: boolean): void {
    const t = this.tf;
    if (ext) {
      t.lbaLow = lba & 0xff;
      t.lbaMid = (lba >>> 8) & 0xff;
      t.lbaHigh = (lba >>> 16) & 0xff;
      const hi = Math.floor(lba / 2 ** 24);
      t.hobLbaLow = hi & 0xff;
      t.hobLbaMid = (hi >>> 8) & 0xff;
      t.hobLbaHigh = (hi >>> 16) & 0xff;
    } else if (!chs) {
      t.lbaLow = lba & 0xff;
      t.lbaMid = (lba >>> 8) & 0xff;
      t.lbaHigh = (lba >>> 16) & 0xff;
      t.device = (t.device & ~ATA_DEVICE.HEAD) | ((lba >>> 24) & ATA_DEVICE.HEAD);
    } else {
      const g = this.chs;
      const sec = (lba % g.sectorsPerTrack) + 1;
      const track = Math.floor(lba / g.sectorsPerTrack);
      const head = track % g.heads;
      const cyl = Math.floor(track / g.heads);
      t.lbaLow = sec & 0xff;
      t.lbaMid = cyl & 0xff;
      t.lbaHigh = (cyl >> 8) & 0xff;
      t.device = (t.device & ~ATA_DEVICE.HEAD) | head;
    }
  }

  private putCount(n: number, ext: boolean): void {
    this.tf.count = n & 0xff;
    if (ext) this.tf.hobCount = (n >> 8) & 0xff;
  }

  // ---- data transfer commands ----

  private startTransfer(op: Op, ext: boolean, dma: boolean, block: number): void {
    const chs = !ext && (this.tf.device & ATA_DEVICE.LBA) === 0;
    const lba = this.startLba(ext);
    const count = this.sectorCount(ext);
    if (lba < 0 || lba + count > this.block.info.sectors) return this.nonData(() => ATA_ERROR.IDNF);
    if (op === "write" && this.block.info.readOnly) return this.nonData(() => ATA_ERROR.ABRT);
    this.power = "active";
    const x: Transfer = { op, dma, ext, chs, block, lba, remaining: count };
    this.xfer = x;
    if (dma) {
      // [ATA/ATAPI-6 §9] DMA: the device is ready for the data phase; QEMU reports DRQ here.
      this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC | ATA_STATUS.DRQ;
      this.phaseValue = "dma-wait";
      this.host?.dmaRequested();
      return;
    }
    if (op === "read") {
      this.begin();
      this.after(this.timing.commandNs, () => this.readBlock(x));
    } else {
      // [ATA/ATAPI-6 §9 PIO data-out]: DRQ for the first block without an interrupt.
      this.pioOutBlock(x);
    }
  }

  /** Whether the drive offers TRIM: the BlockDevice discards and is writable. */
  private get canTrim(): boolean {
    return this.block.info.discard && this.block.discard !== undefined && !this.block.info.readOnly;
  }

  /**
   * DATA SET MANAGEMENT with the TRIM bit [ATA8-ACS DATA SET MANAGEMENT]: a DMA data-out
   * command whose payload is 512-byte blocks of 8-byte LBA range entries (LBA in bits 47:0,
   * length in bits 63:48, length 0 = unused).
   */
  private startTrim(): void {
    const t = this.tf;
    const blocks = (t.hobCount << 8) | t.count;
    if ((t.features & 1) === 0 || !this.canTrim || blocks === 0 || blocks > MAX_DSM_BLOCKS) return this.nonData(() => ATA_ERROR.ABRT);
    this.power = "active";
    this.xfer = { op: "trim", dma: true, ext: true, chs: false, block: 0, lba: 0, remaining: blocks };
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC | ATA_STATUS.DRQ;
    this.phaseValue = "dma-wait";
    this.host?.dmaRequested();
  }

  /** The TRIM payload has arrived: check every range first, then discard them all. */
  private trim(payload: Uint8Array, plan: DmaPlan): void {
    const dma = this.host!.dma;
    const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
    const ranges: [number, number][] = [];
    for (let at = 0; at + 8 <= payload.length; at += 8) {
      const lba = dv.getUint32(at, true) + dv.getUint16(at + 4, true) * 2 ** 32;
      const count = dv.getUint16(at + 6, true);
      if (count === 0) continue;
      // A range leaving the device aborts the command before anything is discarded (as QEMU).
      if (lba + count > this.block.info.sectors) {
        dma.endTransfer(true);
        return this.finish(ATA_ERROR.ABRT);
      }
      ranges.push([lba, count]);
    }
    const discard = this.block.discard!.bind(this.block);
    this.io(
      () => Promise.all(ranges.map(([lba, count]) => discard(lba, count))).then(() => undefined),
      () => {
        dma.endTransfer(plan.exhausted);
        this.finish(0);
      },
      () => {
        dma.endTransfer(true);
        this.finish(ATA_ERROR.ABRT);
      },
    );
  }

  /** PIO data-in: fetch the next block, then DRQ and INTRQ. */
  private readBlock(x: Transfer): void {
    const n = Math.min(x.block, x.remaining);
    const data = new Uint8Array(n * this.ss);
    this.io(
      () => this.block.read(x.lba, data),
      () => {
        x.lba += n;
        x.remaining -= n;
        this.putAddress(x.lba, x.ext, x.chs);
        this.putCount(x.remaining, x.ext);
        this.pioIn(data, () => {
          if (x.remaining === 0) return this.endData();
          this.begin();
          this.after(this.timing.sectorNs * Math.min(x.block, x.remaining), () => this.readBlock(x));
        });
        this.setIntrq(true);
      },
      (e) => this.failTransfer(x, e),
    );
  }

  /** Offers `data` to the host through the data port. */
  private pioIn(data: Uint8Array, drained: () => void): void {
    this.buf = data;
    this.pos = 0;
    this.drained = drained;
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC | ATA_STATUS.DRQ;
    this.phaseValue = "pio-in";
  }

  private pioOutBlock(x: Transfer): void {
    const n = Math.min(x.block, x.remaining);
    this.buf = new Uint8Array(n * this.ss);
    this.pos = 0;
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC | ATA_STATUS.DRQ;
    this.phaseValue = "pio-out";
    this.drained = () => {
      const data = this.buf;
      this.begin();
      this.after(this.timing.sectorNs * n, () =>
        this.io(
          () => this.writeThrough(this.block, x.lba, data),
          () => {
            x.lba += n;
            x.remaining -= n;
            this.putAddress(x.lba, x.ext, x.chs);
            this.putCount(x.remaining, x.ext);
            if (x.remaining === 0) return this.finish(0);
            this.pioOutBlock(x);
            this.setIntrq(true);
          },
          (e) => this.failTransfer(x, e),
        ),
      );
    };
  }

  /** The end of a PIO data-in command: no interrupt after the last block [ATA/ATAPI-6 §9]. */
  private endData(): void {
    this.xfer = undefined;
    this.drained = undefined;
    this.phaseValue = "idle";
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC;
  }

  private readWord(): number {
    const b = this.buf;
    const p = this.pos;
    const w = b[p]! | (b[p + 1]! << 8);
    this.pos = p + 2;
    if (this.pos >= b.length) this.drain();
    return w;
  }

  private writeWord(w: number): void {
    const p = this.pos;
    this.buf[p] = w & 0xff;
    this.buf[p + 1] = w >> 8;
    this.pos = p + 2;
    if (this.pos >= this.buf.length) this.drain();
  }

  private drain(): void {
    const d = this.drained;
    this.drained = undefined;
    this.status &= ~ATA_STATUS.DRQ;
    if (d) d();
  }

  /**
   * Reads the PRD table and starts the host I/O of a DMA read or write. Writes take the data
   * from guest memory now (live views where the segments are plain RAM holding whole sectors,
   * as a bus master reads memory during the transfer); reads go to a bounce buffer.
   * Throws GuestMemoryError when the PRD table or a write's data is outside RAM.
   */
  private submitDma(x: Transfer): DmaIo {
    const dma = this.host!.dma;
    const bytes = x.remaining * this.ss;
    const plan = dma.plan(bytes);
    const short = plan.total < bytes;
    const sectors = Math.floor(plan.total / this.ss);
    const dev = this.overlap?.block ?? this.block;
    let bounce: Uint8Array | undefined;
    let start: () => Promise<void>;
    if (x.op === "read") {
      // The whole transfer is read (a range error is IDNF however short the PRDs are).
      const b = this.takeBounce(bytes);
      bounce = b;
      start = () => dev.read(x.lba, b);
    } else {
      const segs = short || plan.segments.length < 2 ? undefined : dma.views?.(plan, false);
      if (segs !== undefined && segs.every((v) => v.length % this.ss === 0)) {
        start = () => writeVectored(dev, x.lba, segs).then(() => this.flushIfWriteThrough(dev));
      } else {
        let data = short ? undefined : dma.view(plan, false);
        if (data === undefined) {
          data = new Uint8Array(plan.total);
          dma.gather(plan, data);
        }
        const whole = data.subarray(0, sectors * this.ss);
        start = sectors === 0 ? () => Promise.resolve() : () => this.writeThrough(dev, x.lba, whole);
      }
    }
    let p: Promise<void>;
    try {
      p = start();
    } catch (e) {
      p = Promise.reject(e);
    }
    const io: DmaIo = {
      plan,
      short,
      sectors,
      bounce,
      state: "pending",
      error: undefined,
      settled: p.then(
        () => {
          io.state = "ok";
        },
        (e: unknown) => {
          io.state = "failed";
          io.error = e;
        },
      ),
    };
    return io;
  }

  /** The modelled transfer time is over: complete now, or when the host I/O settles. */
  private dmaEnd(x: Transfer, io: DmaIo): void {
    if (io.state !== "pending") return this.dmaComplete(x, io);
    const g = this.gen;
    const wait = this.overlap !== undefined ? this.overlap.wait(io.settled) : io.settled;
    void wait.then(() => {
      if (g === this.gen) this.dmaComplete(x, io);
    });
  }

  /** Status and INTRQ of a DMA read or write whose host I/O has settled; read data reaches guest memory now. */
  private dmaComplete(x: Transfer, io: DmaIo): void {
    const dma = this.host!.dma;
    const bounce = io.bounce;
    if (bounce !== undefined) this.spare = bounce;
    if (io.state === "failed") return this.failTransfer(x, io.error);
    if (bounce !== undefined) {
      try {
        dma.scatter(io.plan, bounce.subarray(0, io.plan.total));
      } catch (e) {
        return this.dmaFault(e);
      }
    }
    x.lba += io.sectors;
    x.remaining -= io.sectors;
    this.putAddress(x.lba, x.ext, x.chs);
    this.putCount(x.remaining, x.ext);
    dma.endTransfer(io.short || io.plan.exhausted);
    if (io.short) {
      // QEMU 7.2 and [BMIDE rev 1.0 Bus Master IDE Status Register]: PRDs shorter than the transfer end it with
      // neither interrupt nor error; the driver finds ACTIVE and INTERRUPT both clear.
      this.endData();
    } else {
      this.finish(0);
    }
  }

  /** A bounce buffer of `bytes`: the spare one when it is large enough. */
  private takeBounce(bytes: number): Uint8Array {
    const s = this.spare;
    if (s !== undefined && s.length === bytes) {
      this.spare = undefined;
      return s;
    }
    return new Uint8Array(bytes);
  }

  /** The DATA SET MANAGEMENT data phase, once the bus master runs and the transfer time has passed. */
  private dmaTrim(x: Transfer): void {
    const dma = this.host!.dma;
    const bytes = x.remaining * 512;
    let plan: DmaPlan;
    try {
      plan = dma.plan(bytes);
    } catch (e) {
      return this.dmaFault(e);
    }
    const payload = new Uint8Array(plan.total);
    try {
      dma.gather(plan, payload);
    } catch (e) {
      return this.dmaFault(e);
    }
    if (plan.total >= bytes) return this.trim(payload, plan);
    dma.endTransfer(true);
    return this.endData();
  }

  private dmaFault(e: unknown): void {
    if (!(e instanceof GuestMemoryError)) throw e;
    this.host!.dma.fault();
    this.finish(ATA_ERROR.ABRT);
  }

  /** A block I/O error during a transfer: ERR with UNC (reads) or ABRT (writes), IDNF for range. */
  private failTransfer(x: Transfer, e: unknown): void {
    this.putAddress(x.lba, x.ext, x.chs);
    this.putCount(x.remaining, x.ext);
    if (x.dma) this.host!.dma.endTransfer(true);
    this.finish(errorBits(e, x.op === "write"));
  }

  /** Writes, then flushes when the write cache is disabled (write-through). */
  private async writeThrough(dev: BlockDevice, lba: number, data: Uint8Array): Promise<void> {
    await dev.write(lba, data);
    await this.flushIfWriteThrough(dev);
  }

  private async flushIfWriteThrough(dev: BlockDevice): Promise<void> {
    if (!this.writeCache) await dev.flush();
  }

  // ---- other commands ----

  private identifyCommand(): void {
    this.begin();
    this.after(this.timing.commandNs, () => {
      this.pioIn(identifyBytes(this.identify()), () => this.endData());
      this.setIntrq(true);
    });
  }

  private flushCommand(): void {
    this.begin();
    this.after(this.timing.commandNs, () =>
      this.io(
        () => this.block.flush(),
        () => this.finish(0),
        () => this.finish(ATA_ERROR.ABRT),
      ),
    );
  }

  private setFeatures(): void {
    const F = ATA_SETFEATURES;
    const sub = this.tf.features;
    if (sub === F.DISABLE_WRITE_CACHE) {
      // Disabling the cache makes what it holds durable first.
      this.begin();
      this.after(this.timing.commandNs, () =>
        this.io(
          () => this.block.flush(),
          () => ((this.writeCache = false), this.finish(0)),
          () => this.finish(ATA_ERROR.ABRT),
        ),
      );
      return;
    }
    this.nonData(() => {
      switch (sub) {
        case F.ENABLE_WRITE_CACHE:
          this.writeCache = true;
          return 0;
        case F.ENABLE_READ_LOOK_AHEAD:
          this.lookAhead = true;
          return 0;
        case F.DISABLE_READ_LOOK_AHEAD:
          this.lookAhead = false;
          return 0;
        case F.ENABLE_REVERT_TO_DEFAULTS:
          this.revertOnReset = true;
          return 0;
        case F.DISABLE_REVERT_TO_DEFAULTS:
          this.revertOnReset = false;
          return 0;
        case F.SET_TRANSFER_MODE: {
          const mode = parseTransferMode(this.tf.count);
          if (mode === undefined) return ATA_ERROR.ABRT;
          // A PIO mode leaves the selected DMA mode alone, as on real drives.
          if (mode.kind !== "pio") this.transferMode = mode;
          return 0;
        }
        default:
          return ATA_ERROR.ABRT;
      }
    });
  }

  private setMultiple(): number {
    const n = this.tf.count;
    if (n > MAX_MULTIPLE || (n & (n - 1)) !== 0) return ATA_ERROR.ABRT;
    this.multiple = n;
    return 0;
  }

  private verify(ext: boolean): number {
    const lba = this.startLba(ext);
    const count = this.sectorCount(ext);
    if (lba < 0 || lba + count > this.block.info.sectors) return ATA_ERROR.IDNF;
    this.power = "active";
    return 0;
  }

  private seek(): number {
    const lba = this.startLba(false);
    if (lba < 0 || lba >= this.block.info.sectors) return ATA_ERROR.IDNF;
    return 0;
  }

  private readNativeMax(ext: boolean): number {
    const sectors = this.block.info.sectors;
    if (ext) {
      this.putAddress(sectors - 1, true, false);
      return 0;
    }
    if ((this.tf.device & ATA_DEVICE.LBA) !== 0) {
      this.putAddress(Math.min(sectors, 0x10000000) - 1, false, false);
    } else {
      const g = this.chs;
      this.putAddress(Math.min(sectors, g.cylinders * g.heads * g.sectorsPerTrack) - 1, false, true);
    }
    return 0;
  }

  private initializeDeviceParameters(): number {
    const spt = this.tf.count;
    const heads = (this.tf.device & ATA_DEVICE.HEAD) + 1;
    // QEMU 7.2 accepts 0 sectors per track and later divides by it; a drive refuses it.
    if (spt === 0) return ATA_ERROR.ABRT;
    this.chs = translatedChs(this.block.info.sectors, heads, spt);
    return 0;
  }

  // ---- plumbing ----

  private defaults(): void {
    this.multiple = MAX_MULTIPLE;
    this.chs = defaultChs(this.block.info.sectors);
    this.writeCache = true;
    this.lookAhead = true;
    this.revertOnReset = false;
    this.transferMode = { kind: "udma", mode: 5 };
    this.power = "active";
  }

  private setIntrq(v: boolean): void {
    if (this.intrq === v) return;
    this.intrq = v;
    this.host?.interruptChanged();
  }

  /** Forgets the operation under way: its timer and any block I/O that settles later. */
  private abandon(): void {
    this.gen++;
    if (this.timer !== undefined) this.host?.timers.cancel(this.timer);
    this.timer = undefined;
    this.xfer = undefined;
    this.drained = undefined;
    this.buf = new Uint8Array(0);
    this.pos = 0;
  }

  private schedule(delay: number, fn: () => void): void {
    const timers = this.host?.timers;
    if (timers === undefined) throw new Error("AtaDisk is not attached to a channel");
    this.timer = timers.schedule(timers.now() + delay, () => {
      this.timer = undefined;
      fn();
    });
  }

  /** Runs `fn` after `delay` unless the drive was reset or the operation abandoned meanwhile. */
  private after(delay: number, fn: () => void): void {
    const g = this.gen;
    this.schedule(delay, () => {
      if (g === this.gen) fn();
    });
  }

  /** Starts block I/O; exactly one of `ok`/`fail` runs later, unless the operation was abandoned. */
  private io(start: () => Promise<void>, ok: () => void, fail: (e: unknown) => void): void {
    const g = this.gen;
    let p: Promise<void>;
    try {
      p = start();
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      () => {
        if (g === this.gen) ok();
      },
      (e: unknown) => {
        if (g === this.gen) fail(e);
      },
    );
  }

  // ---- save / restore ----

  /** The drive's guest-visible state. Operations in flight are saved as the command to redo. */
  saveState(): AtaDiskState {
    return {
      tf: { ...this.tf },
      status: this.status,
      error: this.error,
      intrq: this.intrq,
      phase: this.phaseValue,
      buf: this.phaseValue === "pio-in" || this.phaseValue === "pio-out" ? Array.from(this.buf) : [],
      pos: this.pos,
      xfer: this.xfer ? { ...this.xfer } : undefined,
      multiple: this.multiple,
      chs: { ...this.chs },
      writeCache: this.writeCache,
      lookAhead: this.lookAhead,
      revertOnReset: this.revertOnReset,
      transferMode: { ...this.transferMode },
      power: this.power,
    };
  }

  /**
   * Restores a state from {@link saveState}. A drive saved in the middle of a PIO block keeps
   * its buffer; one saved while BSY (a timer or block I/O under way) is restored idle with
   * the command aborted (ERR, ABRT and an interrupt), as a disk reports an interrupted command.
   * Throws on a malformed state.
   */
  restoreState(s: AtaDiskState): void {
    if (typeof s !== "object" || s === null || typeof s.status !== "number" || !Array.isArray(s.buf)) {
      throw new TypeError("malformed AtaDisk state");
    }
    this.abandon();
    Object.assign(this.tf, s.tf);
    this.status = s.status;
    this.error = s.error;
    this.multiple = s.multiple;
    this.chs = { ...s.chs };
    this.writeCache = s.writeCache;
    this.lookAhead = s.lookAhead;
    this.revertOnReset = s.revertOnReset;
    this.transferMode = { ...s.transferMode };
    this.power = s.power;
    this.intrq = s.intrq;
    this.phaseValue = "idle";
    const x = s.xfer ? { ...s.xfer } : undefined;
    if (s.phase === "idle") {
      this.host?.interruptChanged();
      return;
    }
    if ((s.phase === "pio-in" || s.phase === "pio-out") && (x !== undefined || s.phase === "pio-in")) {
      this.buf = Uint8Array.from(s.buf);
      this.pos = s.pos;
      this.xfer = x;
      this.phaseValue = s.phase;
      if (s.phase === "pio-in") {
        this.drained = () => {
          if (x === undefined || x.remaining === 0) return this.endData();
          this.begin();
          this.after(this.timing.sectorNs, () => this.readBlock(x));
        };
      } else if (x !== undefined) {
        const saved = this.buf;
        this.pioOutBlock(x);
        this.buf = saved;
        this.pos = s.pos;
      }
      this.host?.interruptChanged();
      return;
    }
    if (s.phase === "dma-wait" && x !== undefined) {
      this.xfer = x;
      this.phaseValue = "dma-wait";
      this.host?.interruptChanged();
      this.host?.dmaRequested();
      return;
    }
    if (s.phase === "reset") {
      this.status = ATA_STATUS.BSY;
      this.phaseValue = "reset";
      this.host?.interruptChanged();
      return;
    }
    // busy or dma-run: the work in flight is lost with the host that ran it.
    this.host?.interruptChanged();
    if (s.phase === "dma-run" && x !== undefined) {
      this.xfer = x;
      this.phaseValue = "dma-wait";
      this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC | ATA_STATUS.DRQ;
      this.host?.dmaRequested();
      return;
    }
    this.finish(ATA_ERROR.ABRT);
  }
}

/** The registers of a {@link TaskFile}, as saved. */
export type TaskFileState = Omit<TaskFile, "hostWrite" | "signature" | "copyFrom">;

/** Saved state of an {@link AtaDisk} (JSON-able). */
export interface AtaDiskState {
  tf: TaskFileState;
  status: number;
  error: number;
  intrq: boolean;
  phase: AtaPhase;
  buf: number[];
  pos: number;
  xfer: { op: Op; dma: boolean; ext: boolean; chs: boolean; block: number; lba: number; remaining: number } | undefined;
  multiple: number;
  chs: Chs;
  writeCache: boolean;
  lookAhead: boolean;
  revertOnReset: boolean;
  transferMode: TransferMode;
  power: "active" | "idle" | "standby";
}

/** SET TRANSFER MODE's count value as a mode, or undefined when the drive lacks it [ATA8-ACS SET FEATURES, transfer mode values]. */
function parseTransferMode(v: number): TransferMode | undefined {
  if (v === ATA_XFER.PIO_DEFAULT || v === ATA_XFER.PIO_DEFAULT_NO_IORDY) return { kind: "pio", mode: 0 };
  const n = v & 7;
  switch (v & 0xf8) {
    case ATA_XFER.PIO_FLOW:
      return n <= 4 ? { kind: "pio", mode: n } : undefined;
    case ATA_XFER.MWDMA:
      return n <= 2 ? { kind: "mwdma", mode: n } : undefined;
    case ATA_XFER.UDMA:
      return n <= 5 ? { kind: "udma", mode: n } : undefined;
    default:
      return undefined;
  }
}

/** Error register bits for a failed block request [ATA8-ACS READ/WRITE SECTORS error outputs]. */
function errorBits(e: unknown, write: boolean): number {
  if (e instanceof BlockError) {
    switch (e.kind) {
      case "out-of-range":
        return ATA_ERROR.IDNF;
      case "io":
        return write ? ATA_ERROR.ABRT : ATA_ERROR.UNC;
      default:
        return ATA_ERROR.ABRT;
    }
  }
  return write ? ATA_ERROR.ABRT : ATA_ERROR.UNC;
}
