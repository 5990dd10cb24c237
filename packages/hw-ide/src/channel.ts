/**
 * An IDE channel: the command and control blocks shared by two device positions, INTRQ to the
 * channel's interrupt line, and its bus-master engine [ATA/ATAPI-6 §5-§7].
 */
import type { AccessSize, GuestMemory, IoDevice, IrqLine, TimerQueue } from "@paravirt/vm-interfaces";
import { AtaDisk, TaskFile, type AtaDiskState, type DriveHost, type TaskFileState } from "./ataDisk.ts";
import { BusMaster, type BusMasterState } from "./busMaster.ts";
import { ATA_CMD, ATA_DEVCTL, ATA_DEVICE, ATA_REG } from "./registers.ts";

/** Options of {@link IdeChannel}. */
export interface IdeChannelOptions {
  readonly timers: TimerQueue;
  readonly memory: GuestMemory;
  /** The channel's interrupt line (IRQ 14 primary, 15 secondary in legacy mode). */
  readonly irq: IrqLine;
  /** Device 0 ("master"). */
  readonly master?: AtaDisk | undefined;
  /** Device 1 ("slave"). */
  readonly slave?: AtaDisk | undefined;
  /** Whether the PCI function may master the bus (COMMAND.MASTER). Default: always. */
  readonly canMaster?: () => boolean;
  /** Called when DMA hits unmapped memory. */
  readonly masterAbort?: () => void;
}

/** Saved state of an {@link IdeChannel}. */
export interface IdeChannelState {
  devctl: number;
  selected: number;
  shadow: [TaskFileState, TaskFileState];
  drives: [AtaDiskState | undefined, AtaDiskState | undefined];
  busMaster: BusMasterState;
}

/**
 * Two device positions behind one command block (8 ports), one control block (1 port), one
 * interrupt line and one bus-master register block.
 *
 * **Guest-visible behaviour:**
 * - Writes to registers 1-6 go to both devices (the old byte becomes the HOB byte) and clear
 *   Device Control HOB; they are ignored while the selected device has BSY or DRQ set. A
 *   command goes to the selected device only, except EXECUTE DEVICE DIAGNOSTIC (both).
 * - Reads come from the selected device; Device reads with bits 7 and 5 set. With the
 *   selected device absent, Status, Alternate Status and Error read 0 and the other registers
 *   show what was written; with no device at all every register reads 0 (as QEMU).
 * - The interrupt line follows the selected device's INTRQ while nIEN is clear [ATA/ATAPI-6
 *   §7 Device Control: INTRQ is high impedance when nIEN is set or the device is not selected];
 *   a Status read (not Alternate Status) clears INTRQ. Each rising edge sets the bus master's
 *   INTERRUPT bit [BMIDE rev 1.0 Bus Master IDE Status Register].
 * - SRST: both devices BSY while asserted; after release each sets its signature and clears
 *   BSY after its reset time, without an interrupt.
 */
export class IdeChannel {
  readonly drives: readonly [AtaDisk | undefined, AtaDisk | undefined];
  readonly busMaster: BusMaster;
  /** Ports base+0..7 (0x1F0-0x1F7 / 0x170-0x177). */
  readonly commandBlock: IoDevice;
  /** Port base+0 (0x3F6 / 0x376): Alternate Status / Device Control. */
  readonly controlBlock: IoDevice;
  private readonly irq: IrqLine;
  private readonly shadow: [TaskFile, TaskFile] = [new TaskFile(), new TaskFile()];
  private devctl = 0;
  private selected = 0;
  private line = false;

  constructor(o: IdeChannelOptions) {
    this.irq = o.irq;
    this.drives = [o.master, o.slave];
    this.busMaster = new BusMaster(o.memory, o.canMaster ?? (() => true), o.masterAbort ?? (() => {}));
    this.busMaster.onStart = () => this.tryDma();
    this.busMaster.onStop = () => {
      for (const d of this.drives) d?.dmaCancel();
    };
    for (const t of this.shadow) t.signature();
    const host: DriveHost = {
      timers: o.timers,
      dma: this.busMaster,
      interruptChanged: () => this.updateLine(),
      dmaRequested: () => this.tryDma(),
    };
    for (const d of this.drives) d?.attach(host);
    this.commandBlock = {
      read: (offset, size) => this.readCommandBlock(offset, size),
      write: (offset, size, value) => this.writeCommandBlock(offset, size, value),
    };
    this.controlBlock = {
      read: () => this.readAltStatus(),
      write: (_offset, _size, value) => this.writeDeviceControl(value & 0xff),
      accessSizes: [1],
    };
  }

  /** The interrupt line's level. */
  get interruptLevel(): boolean {
    return this.line;
  }

  /** Which device position (0 or 1) the Device register selects. */
  get selectedDevice(): number {
    return this.selected;
  }

  /** Runs a waiting DMA transfer when the bus master is active and may master the bus. */
  tryDma(): void {
    if (!this.busMaster.running) return;
    for (const d of this.drives) if (d?.phase === "dma-wait") d.dmaStart();
  }

  /** Power-on reset of the channel and its drives. */
  reset(): void {
    this.devctl = 0;
    this.selected = 0;
    for (const t of this.shadow) {
      t.signature();
      t.features = t.hobFeatures = 0;
    }
    this.busMaster.reset();
    for (const d of this.drives) d?.hardReset();
    this.updateLine();
  }

  private tf(i: number): TaskFile {
    return this.drives[i]?.tf ?? this.shadow[i]!;
  }

  private readCommandBlock(offset: number, size: AccessSize): number {
    if (offset === ATA_REG.DATA) {
      const d = this.drives[this.selected];
      return d === undefined ? 0 : d.readData(size);
    }
    let v = 0;
    for (let i = 0; i < size && offset + i < 8; i++) v |= this.readRegister(offset + i) << (8 * i);
    return v >>> 0;
  }

  private writeCommandBlock(offset: number, size: AccessSize, value: number): void {
    if (offset === ATA_REG.DATA) {
      this.drives[this.selected]?.writeData(size, value);
      return;
    }
    for (let i = 0; i < size && offset + i < 8; i++) this.writeRegister(offset + i, (value >>> (8 * i)) & 0xff);
  }

  private readRegister(reg: number): number {
    if (this.drives[0] === undefined && this.drives[1] === undefined) return 0;
    const d = this.drives[this.selected];
    const t = this.tf(this.selected);
    const hob = (this.devctl & ATA_DEVCTL.HOB) !== 0;
    switch (reg) {
      case ATA_REG.ERROR:
        return d === undefined ? 0 : hob ? t.hobFeatures : d.error;
      case ATA_REG.SECTOR_COUNT:
        return hob ? t.hobCount : t.count;
      case ATA_REG.LBA_LOW:
        return hob ? t.hobLbaLow : t.lbaLow;
      case ATA_REG.LBA_MID:
        return hob ? t.hobLbaMid : t.lbaMid;
      case ATA_REG.LBA_HIGH:
        return hob ? t.hobLbaHigh : t.lbaHigh;
      case ATA_REG.DEVICE:
        return t.device | ATA_DEVICE.OBSOLETE;
      default: {
        // Status: reading it acknowledges the interrupt.
        if (d === undefined) return 0;
        const s = d.readStatus(true);
        this.updateLine();
        return s;
      }
    }
  }

  private writeRegister(reg: number, v: number): void {
    const d = this.drives[this.selected];
    if (reg === ATA_REG.COMMAND) return this.command(v);
    if (d?.busy) return;
    this.tf(0).hostWrite(reg, v);
    this.tf(1).hostWrite(reg, v);
    this.devctl &= ~ATA_DEVCTL.HOB;
    if (reg === ATA_REG.DEVICE) {
      this.selected = (v & ATA_DEVICE.DEV) !== 0 ? 1 : 0;
      this.updateLine();
    }
  }

  private command(v: number): void {
    const d = this.drives[this.selected];
    if (d?.busy) return;
    if (v === ATA_CMD.EXECUTE_DEVICE_DIAGNOSTIC) {
      // [ATA8-ACS EXECUTE DEVICE DIAGNOSTIC]: both devices run it, device 0 reports.
      if (d === undefined && this.drives[0] === undefined && this.drives[1] === undefined) return;
      this.selectDevice0();
      this.drives[0]?.diagnose(true);
      this.drives[1]?.diagnose(this.drives[0] === undefined);
      this.updateLine();
      return;
    }
    d?.command(v);
  }

  /** Reset and diagnostics leave device 0 selected at once (QEMU: select := A0h). */
  private selectDevice0(): void {
    this.selected = 0;
    for (const t of this.shadow) t.signature();
    for (const d of this.drives) if (d !== undefined) d.tf.device &= ~ATA_DEVICE.DEV;
  }

  private readAltStatus(): number {
    const d = this.drives[this.selected];
    return d === undefined ? 0 : d.readStatus(false);
  }

  private writeDeviceControl(v: number): void {
    const old = this.devctl;
    this.devctl = v;
    if ((old & ATA_DEVCTL.SRST) === 0 && (v & ATA_DEVCTL.SRST) !== 0) {
      this.selectDevice0();
      for (const d of this.drives) d?.resetAssert();
    } else if ((old & ATA_DEVCTL.SRST) !== 0 && (v & ATA_DEVCTL.SRST) === 0) {
      for (const d of this.drives) d?.resetRelease();
    }
    this.updateLine();
  }

  private updateLine(): void {
    const d = this.drives[this.selected];
    const level = d !== undefined && d.intrq && (this.devctl & ATA_DEVCTL.NIEN) === 0;
    if (level === this.line) return;
    this.line = level;
    this.irq.setLevel(level);
    if (level) this.busMaster.interruptEdge();
  }

  saveState(): IdeChannelState {
    return {
      devctl: this.devctl,
      selected: this.selected,
      shadow: [{ ...this.shadow[0] }, { ...this.shadow[1] }],
      drives: [this.drives[0]?.saveState(), this.drives[1]?.saveState()],
      busMaster: this.busMaster.saveState(),
    };
  }

  restoreState(s: IdeChannelState): void {
    if (typeof s?.devctl !== "number" || !Array.isArray(s.drives) || !Array.isArray(s.shadow)) {
      throw new TypeError("malformed IdeChannel state");
    }
    this.devctl = s.devctl & 0xff;
    this.selected = s.selected & 1;
    Object.assign(this.shadow[0], s.shadow[0]);
    Object.assign(this.shadow[1], s.shadow[1]);
    this.busMaster.restoreState(s.busMaster);
    // The line is recomputed from the restored drives; the BM INTERRUPT bit is restored as saved.
    this.line = false;
    this.irq.setLevel(false);
    const savedStatus = this.busMaster.status;
    this.drives.forEach((d, i) => {
      const ds = s.drives[i];
      if (d !== undefined && ds !== undefined) d.restoreState(ds);
    });
    this.updateLine();
    this.busMaster.status = savedStatus;
  }
}
