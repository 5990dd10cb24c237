/**
 * The 82540EM as a PCI function: type-0 configuration header, BAR0 (128 KiB memory, the
 * registers), BAR1 (64-byte I/O window, IOADDR/IODATA), INTA#, bus mastering.
 *
 * References: [8254x SDM 4.1] PCI configuration registers (table 4-2: 8086:100E, class
 * 02 00 00, BAR0 memory 128 KiB non-prefetchable, BAR1 I/O), [PCI 3.0 §6.2.2] COMMAND
 * (bus master gates DMA, INTx disable), [PCI 3.0 §6.2.3] STATUS.INTERRUPT and
 * RECEIVED_MASTER_ABORT. Reset values of the header as QEMU shows them (devices.md §1.1),
 * except the subsystem ids, which come from the EEPROM image (8086:100E) as on hardware.
 */
import { PCI_CONFIG, PCI_STATUS, PciConfigSpace, type AccessSize, type EthernetPort, type GuestMemory, type IrqLine, type PciBar, type PciFunction, type Snapshottable, type TimerQueue } from "@paravirt/vm-interfaces";
import { E1000, type E1000State } from "./e1000.ts";
import { EEPROM_WORD } from "./eeprom.ts";
import { IO_BAR, MMIO_SIZE, PCI_ID } from "./registers.ts";

/** Options for {@link E1000PciFunction}. */
export interface E1000PciOptions {
  memory: GuestMemory;
  /** The INTA# line as routed by the board. */
  irq: IrqLine;
  clock: TimerQueue;
  mac?: Uint8Array;
  port?: EthernetPort;
  autonegNs?: number;
}

/** Saved state: configuration space and the MAC. */
export interface E1000PciState {
  config: number[];
  intx: boolean;
  device: E1000State;
}

/** An 82540EM PCI function; `device` is the MAC behind the BARs. */
export class E1000PciFunction implements PciFunction, Snapshottable<E1000PciState> {
  readonly config: PciConfigSpace;
  readonly device: E1000;
  private readonly line: IrqLine;
  private deviceIrq = false;
  private intxLevel = false;

  constructor(options: E1000PciOptions) {
    this.line = options.irq;
    const config = new PciConfigSpace({
      vendorId: PCI_ID.VENDOR,
      deviceId: PCI_ID.DEVICE,
      classCode: PCI_ID.CLASS,
      revision: PCI_ID.REVISION,
      interruptPin: 1,
    });
    this.config = config;
    this.device = new E1000({
      memory: options.memory,
      clock: options.clock,
      ...(options.mac ? { mac: options.mac } : {}),
      ...(options.port ? { port: options.port } : {}),
      ...(options.autonegNs !== undefined ? { autonegNs: options.autonegNs } : {}),
      irq: {
        setLevel: (asserted) => {
          this.deviceIrq = asserted;
          this.updateIntx();
        },
      },
      busMaster: () => config.busMaster,
      onDmaError: () => {
        // [PCI 3.0 §6.2.3] Received Master Abort.
        config.setU16(PCI_CONFIG.STATUS, config.configRead(PCI_CONFIG.STATUS, 2) | PCI_STATUS.REC_MASTER_ABORT);
      },
    });
    const words = this.device.eeprom;
    config.setU16(PCI_CONFIG.SUBSYSTEM_ID, words.word(EEPROM_WORD.SUBSYSTEM_ID));
    config.setU16(PCI_CONFIG.SUBSYSTEM_VENDOR_ID, words.word(EEPROM_WORD.SUBSYSTEM_VENDOR));
    const mem: PciBar = { kind: "mem32", size: MMIO_SIZE, device: this.device.mmio };
    const io: PciBar = { kind: "io", size: IO_BAR.SIZE, device: this.device.io };
    config.setBar(0, mem);
    config.setBar(1, io);
    config.onDecodeChange(() => {
      this.updateIntx();
      this.device.busMasterChanged();
    });
  }

  get bars(): readonly (PciBar | undefined)[] {
    return this.config.bars;
  }

  configRead(offset: number, size: AccessSize): number {
    return this.config.configRead(offset, size);
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    this.config.configWrite(offset, size, value);
    // PciConfigSpace signals decode changes for COMMAND's low byte only; INTX_DISABLE is bit 10.
    if (offset <= PCI_CONFIG.COMMAND + 1 && offset + size > PCI_CONFIG.COMMAND + 1) this.updateIntx();
  }

  barAddress(index: number): number | undefined {
    return this.config.barAddress(index);
  }

  onDecodeChange(fn: () => void): void {
    this.config.onDecodeChange(fn);
  }

  /** PCI reset (RST#): configuration header back to power-on values and a device reset. */
  reset(): void {
    this.config.configWrite(PCI_CONFIG.COMMAND, 2, 0);
    for (let i = 0; i < 6; i++) if (this.config.bars[i]) this.config.configWrite(PCI_CONFIG.BAR0 + 4 * i, 4, 0);
    this.config.configWrite(PCI_CONFIG.STATUS, 2, 0xffff);
    this.config.configWrite(PCI_CONFIG.CACHE_LINE_SIZE, 1, 0);
    this.config.configWrite(PCI_CONFIG.LATENCY_TIMER, 1, 0);
    this.config.configWrite(PCI_CONFIG.INTERRUPT_LINE, 1, 0);
    this.device.reset();
  }

  saveState(): E1000PciState {
    return { config: Array.from(this.config.bytes), intx: this.intxLevel, device: this.device.saveState() };
  }

  restoreState(s: E1000PciState): void {
    if (!Array.isArray(s.config) || s.config.length !== 256) throw new TypeError("malformed E1000 PCI state");
    this.config.bytes.set(s.config);
    this.device.restoreState(s.device); // re-drives deviceIrq through the callback
    const level = this.deviceIrq && !this.config.intxDisabled;
    this.intxLevel = level;
    this.line.setLevel(level);
  }

  /** INTA# = device interrupt unless COMMAND.INTX_DISABLE; STATUS.INTERRUPT shows the device's [PCI 3.0 §6.2.3]. */
  private updateIntx(): void {
    const st = this.config.configRead(PCI_CONFIG.STATUS, 2);
    this.config.setU16(PCI_CONFIG.STATUS, this.deviceIrq ? st | PCI_STATUS.INTERRUPT : st & ~PCI_STATUS.INTERRUPT);
    const level = this.deviceIrq && !this.config.intxDisabled;
    if (level === this.intxLevel) return;
    this.intxLevel = level;
    this.line.setLevel(level);
  }
}
