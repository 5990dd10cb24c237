/**
 * The PIIX3/PIIX4 IDE PCI function: two legacy-mode channels and the bus-master block behind
 * BAR4 [PIIX datasheets; BMIDE rev 1.0], as QEMU 7.2's `piix3-ide`/`piix4-ide` (docs devices.md §2.1).
 */
import {
  PCI_CONFIG,
  PCI_STATUS,
  PciConfigSpace,
  type AccessSize,
  type GuestMemory,
  type IoBus,
  type IoDevice,
  type IrqLine,
  type PciBar,
  type PciFunction,
  type Snapshottable,
  type TimerQueue,
} from "@paravirt/vm-interfaces";
import type { AtaDisk } from "./ataDisk.ts";
import { IdeChannel, type IdeChannelState } from "./channel.ts";
import { BM_REG, LEGACY, PIIX } from "./registers.ts";

/** The drives of one channel. */
export interface IdeDrives {
  /** Device 0. */
  readonly master?: AtaDisk;
  /** Device 1. */
  readonly slave?: AtaDisk;
}

/** Options of {@link PiixIde}. */
export interface PiixIdeOptions {
  /** "piix3" (8086:7010, default) or "piix4" (8086:7111). */
  readonly variant?: "piix3" | "piix4";
  /** Guest memory bus-master DMA reads and writes. */
  readonly memory: GuestMemory;
  /** Virtual time for command completion. */
  readonly timers: TimerQueue;
  /** The primary channel's line (ISA IRQ 14). */
  readonly irq14: IrqLine;
  /** The secondary channel's line (ISA IRQ 15). */
  readonly irq15: IrqLine;
  readonly primary?: IdeDrives;
  readonly secondary?: IdeDrives;
}

/** A fixed legacy port range for the board to claim on its port bus. */
export interface LegacyPortRange {
  readonly base: number;
  readonly length: number;
  readonly device: IoDevice;
  readonly name: string;
}

/** Saved state of a {@link PiixIde}. */
export interface PiixIdeState {
  config: number[];
  primary: IdeChannelState;
  secondary: IdeChannelState;
}

/**
 * A PIIX IDE function: class 01/01/80 (legacy channels, bus master), BAR4 = 16 I/O ports of
 * bus-master registers (primary at +0, secondary at +8), configuration bytes 0x40-0xFF plain
 * read/write storage (IDETIM, SIDETIM, UDMA timing: no effect), subsystem IDs 0.
 *
 * **Guest-visible behaviour:** the legacy ports ({@link legacyPorts}) decode whatever PCI
 * COMMAND.IO says (as QEMU; a real PIIX gates them with IDETIM.IDE); BAR4 decodes with
 * COMMAND.IO (the board follows {@link onDecodeChange}); DMA waits while COMMAND.MASTER is
 * clear and runs once it is set; a DMA access to unmapped memory sets the bus master's ERROR
 * bit and PCI STATUS "received master abort".
 */
export class PiixIde implements PciFunction, Snapshottable<PiixIdeState> {
  /** The configuration space (BAR4 set up). */
  readonly config: PciConfigSpace;
  readonly primary: IdeChannel;
  readonly secondary: IdeChannel;
  /** The bus-master registers of both channels, as BAR4's device. */
  readonly busMasterBlock: IoDevice;
  /** 0x1F0-0x1F7, 0x3F6, 0x170-0x177, 0x376: what the board registers on its port bus. */
  readonly legacyPorts: readonly LegacyPortRange[];

  constructor(o: PiixIdeOptions) {
    const deviceId = (o.variant ?? "piix3") === "piix4" ? PIIX.DEVICE_PIIX4_IDE : PIIX.DEVICE_PIIX3_IDE;
    this.config = new PciConfigSpace({ vendorId: PIIX.VENDOR_INTEL, deviceId, classCode: PIIX.CLASS_CODE, revision: 0, interruptPin: 0 });
    this.initConfig();
    const canMaster = () => this.config.busMaster;
    const masterAbort = () => {
      const st = this.config.configRead(PCI_CONFIG.STATUS, 2);
      this.config.setU16(PCI_CONFIG.STATUS, st | PCI_STATUS.REC_MASTER_ABORT);
    };
    const common = { timers: o.timers, memory: o.memory, canMaster, masterAbort };
    this.primary = new IdeChannel({ ...common, irq: o.irq14, master: o.primary?.master, slave: o.primary?.slave });
    this.secondary = new IdeChannel({ ...common, irq: o.irq15, master: o.secondary?.master, slave: o.secondary?.slave });
    const channelOf = (offset: number) => (offset >= BM_REG.SECONDARY ? this.secondary : this.primary);
    this.busMasterBlock = {
      read: (offset: number, size: AccessSize) => channelOf(offset).busMaster.read(offset & 7, size),
      write: (offset: number, size: AccessSize, value: number) => channelOf(offset).busMaster.write(offset & 7, size, value),
    };
    const bar: PciBar = { kind: "io", size: PIIX.BMIBA_SIZE, device: this.busMasterBlock };
    this.config.setBar(PIIX.BMIBA_BAR, bar);
    this.config.onDecodeChange(() => {
      // Bus mastership may just have been granted: run waiting transfers.
      this.primary.tryDma();
      this.secondary.tryDma();
    });
    this.legacyPorts = [
      { base: LEGACY.PRIMARY_CMD, length: LEGACY.CMD_LENGTH, device: this.primary.commandBlock, name: "ide0 command block" },
      { base: LEGACY.PRIMARY_CTL, length: LEGACY.CTL_LENGTH, device: this.primary.controlBlock, name: "ide0 control block" },
      { base: LEGACY.SECONDARY_CMD, length: LEGACY.CMD_LENGTH, device: this.secondary.commandBlock, name: "ide1 command block" },
      { base: LEGACY.SECONDARY_CTL, length: LEGACY.CTL_LENGTH, device: this.secondary.controlBlock, name: "ide1 control block" },
    ];
  }

  private initConfig(): void {
    const c = this.config;
    // [QEMU piix_ide_reset] COMMAND 0, STATUS fast back-to-back + DEVSEL medium.
    c.setU16(PCI_CONFIG.COMMAND, 0);
    c.setU16(PCI_CONFIG.STATUS, PCI_STATUS.FAST_BACK | PCI_STATUS.DEVSEL_MEDIUM);
    for (let i = PIIX.TIMING_REGS; i < 256; i++) {
      c.bytes[i] = 0;
      c.wmask[i] = 0xff;
    }
  }

  /** Claims the legacy port ranges on `bus` (throws IoBusError on overlap, host misuse). */
  registerLegacyPorts(bus: IoBus): void {
    for (const r of this.legacyPorts) bus.register({ base: r.base, length: r.length }, r.device, r.name);
  }

  /** Power-on / hardware reset of the function, both channels and their drives. */
  reset(): void {
    // Through the masks, so that decode listeners (the board) see BAR4 and COMMAND go away.
    this.config.configWrite(PCI_CONFIG.COMMAND, 2, 0);
    this.config.configWrite(PCI_CONFIG.BAR0 + PIIX.BMIBA_BAR * 4, 4, 0);
    this.initConfig();
    this.primary.reset();
    this.secondary.reset();
  }

  // PciFunction, delegated to the configuration space.
  get bars(): readonly (PciBar | undefined)[] {
    return this.config.bars;
  }
  configRead(offset: number, size: AccessSize): number {
    return this.config.configRead(offset, size);
  }
  configWrite(offset: number, size: AccessSize, value: number): void {
    this.config.configWrite(offset, size, value);
  }
  barAddress(index: number): number | undefined {
    return this.config.barAddress(index);
  }
  onDecodeChange(fn: () => void): void {
    this.config.onDecodeChange(fn);
  }

  saveState(): PiixIdeState {
    return { config: Array.from(this.config.bytes), primary: this.primary.saveState(), secondary: this.secondary.saveState() };
  }

  restoreState(s: PiixIdeState): void {
    if (!Array.isArray(s?.config) || s.config.length !== 256) throw new TypeError("malformed PiixIde state");
    this.config.bytes.set(s.config);
    this.primary.restoreState(s.primary);
    this.secondary.restoreState(s.secondary);
  }
}
