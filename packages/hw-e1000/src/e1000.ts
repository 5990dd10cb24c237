/**
 * The 82540EM MAC: register file, interrupts and moderation timers, the transmit and receive
 * descriptor rings, statistics, link state. The PCI glue is in `pciFunction.ts`.
 *
 * References: [8254x SDM 13] registers, [8254x SDM 3.2] receive and [3.3] transmit
 * descriptor rings (head/tail semantics), [8254x SDM 3.2.7, 3.4] interrupt delay timers
 * (RDTR/RADV, TIDV/TADV), [8254x SDM 13.4.18] ITR, [8254x SDM 13.7] statistics,
 * QEMU 7.2's e1000 as the behavioural reference where the manual leaves room (devices.md §1).
 *
 * Guest-visible deviations from QEMU (following the manual): CTRL.RST resets the MAC, the I/O
 * BAR's IOADDR/IODATA window works, legacy CSO/CSS checksum insertion and TCTL.PSP padding are
 * done, the FCS is written into the Rx buffer unless SECRC, Rx checksum offload is reported,
 * all statistics clear on read, ITR is a minimum inter-interrupt interval, no 1 s Rx pause
 * after RCTL writes.
 */
import { GuestMemoryError, type EthernetPort, type GuestMemory, type IoDevice, type IrqLine, type Snapshottable, type TimerId, type TimerQueue } from "@paravirt/vm-interfaces";
import { DESC_SIZE, RXD, RXD_STA, TXD, TXD_STA, crc32 } from "./descriptors.ts";
import { Eeprom, buildEepromImage, type EepromState } from "./eeprom.ts";
import { PHY_ADDRESS, Phy, type PhyState } from "./phy.ts";
import {
  CTRL,
  CTRL_RESET,
  DELAY,
  ICR,
  ICR_VALID,
  IO_BAR,
  ITR_UNIT_NS,
  LEDCTL_RESET,
  MANC_RESET,
  MDIC,
  MMIO_SIZE,
  PBA_RESET,
  RAH,
  RCTL,
  REG,
  RXCSUM_RESET,
  STAT,
  STATUS,
  STATUS_BASE,
  STAT_FIRST,
  STAT_LAST,
  STORAGE_RANGES,
  TCTL,
  VET_RESET,
} from "./registers.ts";
import { addressFilter, rxBufferSize, rxChecksum, rxMaxFrame, vlanFilter } from "./rx.ts";
import { TxEngine, type TxEngineState, type TxSink } from "./tx.ts";

/** Default MAC address (QEMU's first NIC). */
export const DEFAULT_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);

/** Time autonegotiation takes after a restart [QEMU e1000: 500 ms]. */
export const DEFAULT_AUTONEG_NS = 500_000_000;

/** What the core needs from the board (or the PCI glue). */
export interface E1000Options {
  /** Guest memory for descriptor and buffer DMA. */
  memory: GuestMemory;
  /** Interrupt output (INTA#; the PCI glue masks it with COMMAND.INTX_DISABLE). */
  irq: IrqLine;
  /** Virtual time for ITR, the delay timers and autonegotiation. */
  clock: TimerQueue;
  /** Station address stored in the EEPROM (default 52:54:00:12:34:56). */
  mac?: Uint8Array;
  /** The wire. Without one the link is down until {@link E1000.connect}. */
  port?: EthernetPort;
  /** Whether DMA is allowed (PCI COMMAND.MASTER). Default: always. */
  busMaster?: () => boolean;
  /** Called on a DMA access to an address nobody answers (the PCI glue records a master abort). */
  onDmaError?: () => void;
  /** Autonegotiation time after a restart, ns (default {@link DEFAULT_AUTONEG_NS}). */
  autonegNs?: number;
}

/** Saved guest-visible state (JSON-able). */
export interface E1000State {
  regs: [number, number][];
  eeprom: EepromState;
  phy: PhyState;
  tx: TxEngineState;
  eerd: number;
  ioaddr: number;
  irqAsserted: boolean;
  lastIrqAt: number | null;
  rxFifo: number[][];
  timers: { itr: number | null; rdtr: number | null; radv: number | null; tidv: number | null; tadv: number | null; autoneg: number | null };
  linkUp: boolean;
}

type TimerName = "itr" | "rdtr" | "radv" | "tidv" | "tadv" | "autoneg";

/** An 82540EM's MAC and its BAR register files. */
export class E1000 implements Snapshottable<E1000State> {
  /** BAR0: the 128 KiB memory-mapped register file (32-bit accesses). */
  readonly mmio: IoDevice;
  /** BAR1: the I/O window (IOADDR at 0, IODATA at 4). */
  readonly io: IoDevice;
  /** The EEPROM (its words are the image software reads). */
  readonly eeprom: Eeprom;
  /** The internal PHY. */
  readonly phy: Phy;

  private readonly regs = new Uint32Array(MMIO_SIZE / 4);
  private readonly storage = new Uint8Array(MMIO_SIZE / 4);
  /** The TX descriptor being processed, as fetched by DMA, and its status byte written back. */
  private readonly txDescriptor = new Uint8Array(DESC_SIZE);
  private readonly txStatus = new Uint8Array(1);
  private readonly memory: GuestMemory;
  private readonly irq: IrqLine;
  private readonly clock: TimerQueue;
  private readonly busMasterFn: () => boolean;
  private readonly dmaErrorFn: () => void;
  private readonly autonegNs: number;
  private readonly tx = new TxEngine();
  private readonly txSink: TxSink;
  private port: EthernetPort | undefined;
  private eerd = 0;
  private ioaddr = 0;
  private irqAsserted = false;
  private lastIrqAt: number | undefined;
  private linkUpState = false;
  private txRunning = false;
  private rxFifo: Uint8Array[] = [];
  private rxFifoBytes = 0;
  private readonly timers: Record<TimerName, { id: TimerId; at: number } | undefined> = {
    itr: undefined,
    rdtr: undefined,
    radv: undefined,
    tidv: undefined,
    tadv: undefined,
    autoneg: undefined,
  };

  constructor(options: E1000Options) {
    this.memory = options.memory;
    this.irq = options.irq;
    this.clock = options.clock;
    this.busMasterFn = options.busMaster ?? (() => true);
    this.dmaErrorFn = options.onDmaError ?? (() => {});
    this.autonegNs = options.autonegNs ?? DEFAULT_AUTONEG_NS;
    this.eeprom = new Eeprom(buildEepromImage(options.mac ?? DEFAULT_MAC));
    this.phy = new Phy(() => this.restartAutoneg());
    for (const [start, end] of STORAGE_RANGES) this.storage.fill(1, start >> 2, end >> 2);
    const self = this;
    this.txSink = {
      dma: (address, dst, offset, length) => this.dmaRead(address, dst.subarray(offset, offset + length)),
      emit: (frame) => this.transmitFrame(frame),
      get padShort() {
        return (self.regs[REG.TCTL >> 2]! & TCTL.PSP) !== 0;
      },
      get vlanMode() {
        return (self.regs[REG.CTRL >> 2]! & CTRL.VME) !== 0;
      },
      get vlanEtherType() {
        return self.regs[REG.VET >> 2]! & 0xffff;
      },
      tsoDone: (ok) => this.count(ok ? STAT.TSCTC : STAT.TSCTFC),
    };
    this.mmio = {
      read: (offset) => this.readRegister(offset & ~3),
      write: (offset, _size, value) => this.writeRegister(offset & ~3, value >>> 0),
      accessSizes: [4],
    };
    this.io = {
      read: (offset) => {
        if (offset === IO_BAR.IOADDR) return this.ioaddr;
        if (offset === IO_BAR.IODATA) return this.ioaddr < MMIO_SIZE ? this.readRegister(this.ioaddr & ~3) : 0;
        return 0; // [8254x SDM 13.2.2] offsets 8 and up are reserved
      },
      write: (offset, _size, value) => {
        if (offset === IO_BAR.IOADDR) this.ioaddr = value & 0x1fffc;
        else if (offset === IO_BAR.IODATA && this.ioaddr < MMIO_SIZE) this.writeRegister(this.ioaddr & ~3, value >>> 0);
      },
      accessSizes: [4],
    };
    this.resetMac();
    // Powered on with a cable: the PHY negotiated before software looked [8254x SDM 8].
    this.phy.autonegDone = true;
    if (options.port) this.attach(options.port, false);
    else this.updateLink(false);
  }

  /** The station address currently in the EEPROM. */
  get mac(): Uint8Array {
    const m = new Uint8Array(6);
    for (let i = 0; i < 3; i++) {
      const w = this.eeprom.word(i);
      m[2 * i] = w & 0xff;
      m[2 * i + 1] = w >> 8;
    }
    return m;
  }

  /** Whether the MAC reports link up (STATUS.LU). */
  get linkUp(): boolean {
    return this.linkUpState;
  }

  /**
   * Plugs the wire in: frames arriving at `port` are received, transmitted frames go out of
   * it, and the link comes up (autonegotiation completes at once, LSC is raised).
   */
  connect(port: EthernetPort): void {
    this.attach(port, true);
  }

  private attach(port: EthernetPort, signal: boolean): void {
    this.port = port;
    port.onReceive((frame) => {
      if (this.port === port) this.receive(frame);
    });
    this.phy.autonegDone = true;
    this.updateLink(signal);
  }

  /** Unplugs the wire: the link goes down (LSC) and frames are no longer sent or heard. */
  disconnect(): void {
    this.port = undefined;
    this.cancelTimer("autoneg");
    this.updateLink(true);
  }

  /** Hardware reset (power-on or PCI reset): MAC, EEPROM shift logic and PHY. */
  reset(): void {
    this.resetMac();
    this.eeprom.reset();
    this.phy.reset();
    this.phy.autonegDone = this.port !== undefined;
    this.updateLink(false);
  }

  /** Called by the PCI glue when COMMAND changed: DMA may have become possible. */
  busMasterChanged(): void {
    if (!this.busMasterFn()) return;
    this.drainRxFifo();
    this.startTx();
  }

  // ----- registers ---------------------------------------------------------------------

  private r(offset: number): number {
    return this.regs[offset >> 2]!;
  }

  private set(offset: number, value: number): void {
    this.regs[offset >> 2] = value >>> 0;
  }

  private readRegister(offset: number): number {
    if (offset < 0 || offset >= MMIO_SIZE) return 0;
    switch (offset) {
      case REG.CTRL:
        return this.r(REG.CTRL);
      case REG.STATUS:
        return this.status();
      case REG.EECD:
        return this.eeprom.readEecd();
      case REG.EERD:
        return this.eeprom.eerdRead(this.eerd);
      case REG.ICR: {
        // Read-to-clear [8254x SDM 13.4.17].
        const v = this.r(REG.ICR);
        this.set(REG.ICR, 0);
        this.updateIrq();
        return v;
      }
      case REG.ICS:
        return this.r(REG.ICR); // write-only in the manual; QEMU returns ICR (devices.md §1.2)
      case REG.IMC:
        return 0; // write-only
      case REG.MDIC:
      case REG.ITR:
      case REG.IMS:
      case REG.RCTL:
      case REG.TCTL:
      case REG.RDLEN:
      case REG.RDH:
      case REG.RDT:
      case REG.RDTR:
      case REG.RADV:
      case REG.TDLEN:
      case REG.TDH:
      case REG.TDT:
      case REG.TIDV:
      case REG.TADV:
        return this.r(offset);
      default:
        break;
    }
    if (offset >= STAT_FIRST && offset <= STAT_LAST) return this.readStat(offset);
    return this.storage[offset >> 2] ? this.r(offset) : 0;
  }

  private writeRegister(offset: number, value: number): void {
    if (offset < 0 || offset >= MMIO_SIZE) return;
    switch (offset) {
      case REG.CTRL:
        this.writeCtrl(value);
        return;
      case REG.STATUS:
        return; // read-only
      case REG.EECD:
        this.eeprom.writeEecd(value);
        return;
      case REG.EERD:
        this.eerd = value;
        return;
      case REG.MDIC:
        this.writeMdic(value);
        return;
      case REG.ICR:
        this.set(REG.ICR, this.r(REG.ICR) & ~value); // write 1 to clear
        this.updateIrq();
        return;
      case REG.ICS:
        this.raise(value & ICR_VALID);
        return;
      case REG.IMS:
        this.set(REG.IMS, (this.r(REG.IMS) | value) & ICR_VALID);
        this.updateIrq();
        return;
      case REG.IMC:
        this.set(REG.IMS, this.r(REG.IMS) & ~value);
        this.updateIrq();
        return;
      case REG.ITR:
        this.set(REG.ITR, value & 0xffff);
        this.updateIrq();
        return;
      case REG.RCTL: {
        const was = this.r(REG.RCTL);
        this.set(REG.RCTL, value & ~RCTL.RST);
        if ((value & RCTL.EN) === 0) this.clearRxFifo();
        else if ((was & RCTL.EN) === 0) this.drainRxFifo();
        return;
      }
      case REG.TCTL:
        this.set(REG.TCTL, value & ~TCTL.RST);
        this.startTx();
        return;
      case REG.RDLEN:
      case REG.TDLEN:
        this.set(offset, value & 0x000fff80); // multiple of 128 bytes [8254x SDM 13.4.27]
        return;
      case REG.RDH:
      case REG.TDH:
        this.set(offset, value & 0xffff);
        return;
      case REG.RDT:
        this.set(REG.RDT, value & 0xffff);
        this.drainRxFifo();
        return;
      case REG.TDT:
        this.set(REG.TDT, value & 0xffff);
        this.startTx(); // the tail write is the doorbell [8254x SDM 3.4]
        return;
      case REG.RDTR:
        this.set(REG.RDTR, value & DELAY.VALUE_MASK);
        if ((value & DELAY.RDTR_FPD) !== 0) this.fireRxTimer();
        return;
      case REG.RADV:
      case REG.TIDV:
      case REG.TADV:
        this.set(offset, value & DELAY.VALUE_MASK);
        return;
      default:
        break;
    }
    if (offset >= STAT_FIRST && offset <= STAT_LAST) return; // statistics are read-only
    if (this.storage[offset >> 2]) {
      this.set(offset, value);
      if (offset === REG.RAH0) this.set(offset, value & (RAH.AV | RAH.ASEL_MASK | 0xffff));
    }
  }

  private status(): number {
    let s = STATUS_BASE & ~STATUS.LU;
    if (this.linkUpState) s |= STATUS.LU;
    return s >>> 0;
  }

  private writeCtrl(value: number): void {
    if ((value & CTRL.RST) !== 0) {
      // Device reset: everything but the PHY and PCI configuration returns to power-on
      // values and the EEPROM is read again; RST self-clears [8254x SDM 13.4.1].
      this.resetMac();
      this.updateLink(false);
      return;
    }
    const was = this.r(REG.CTRL);
    this.set(REG.CTRL, value);
    if ((value & CTRL.PHY_RST) !== 0 && (was & CTRL.PHY_RST) === 0) {
      // PHY held in reset while the bit is set [8254x SDM 13.4.1].
      this.phy.reset();
      this.cancelTimer("autoneg");
    } else if ((value & CTRL.PHY_RST) === 0 && (was & CTRL.PHY_RST) !== 0) {
      this.restartAutoneg();
    }
    this.updateLink(true);
  }

  private writeMdic(value: number): void {
    const reg = (value & MDIC.REG_MASK) >>> MDIC.REG_SHIFT;
    const phyAddr = (value & MDIC.PHY_MASK) >>> MDIC.PHY_SHIFT;
    const op = value & MDIC.OP_MASK;
    let result = (value & ~(MDIC.READY | MDIC.ERROR)) >>> 0;
    if (phyAddr !== PHY_ADDRESS) {
      // Nobody answers: the previous MDIC contents stay, with ERROR (QEMU, devices.md §1.4).
      result = (this.r(REG.MDIC) | MDIC.ERROR) >>> 0;
    } else if (op === MDIC.OP_READ) {
      const v = this.phy.read(reg);
      if (v === undefined) result |= MDIC.ERROR;
      else result = (result & ~MDIC.DATA_MASK) | v;
    } else if (op === MDIC.OP_WRITE) {
      if (!this.phy.write(reg, value & MDIC.DATA_MASK)) result |= MDIC.ERROR;
      this.updateLink(true);
    } else {
      result |= MDIC.ERROR; // reserved opcode
    }
    this.set(REG.MDIC, (result | MDIC.READY) >>> 0);
    if ((value & MDIC.INT_EN) !== 0) this.raise(ICR.MDAC);
  }

  private readStat(offset: number): number {
    const v = this.r(offset);
    // All statistics clear on read; a 64-bit counter clears when its high half is read
    // [8254x SDM 13.7].
    switch (offset) {
      case STAT.GORCL:
      case STAT.GOTCL:
      case STAT.TORL:
      case STAT.TOTL:
        return v;
      case STAT.GORCH:
      case STAT.GOTCH:
      case STAT.TORH:
      case STAT.TOTH:
        this.set(offset, 0);
        this.set(offset - 4, 0);
        return v;
      default:
        this.set(offset, 0);
        return v;
    }
  }

  private count(offset: number, by = 1): void {
    const v = this.r(offset) + by;
    this.set(offset, v > 0xffffffff ? 0xffffffff : v); // counters stick at all ones
  }

  private count64(low: number, by: number): void {
    const v = this.r(low) + this.r(low + 4) * 2 ** 32 + by;
    this.set(low, v % 2 ** 32);
    this.set(low + 4, Math.floor(v / 2 ** 32) % 2 ** 32);
  }

  private resetMac(): void {
    this.regs.fill(0);
    for (const t of Object.keys(this.timers) as TimerName[]) if (t !== "autoneg") this.cancelTimer(t);
    this.set(REG.CTRL, CTRL_RESET);
    this.set(REG.LEDCTL, LEDCTL_RESET);
    this.set(REG.PBA, PBA_RESET);
    this.set(REG.MANC, MANC_RESET);
    this.set(REG.VET, VET_RESET);
    this.set(REG.RXCSUM, RXCSUM_RESET);
    // RAL0/RAH0 are loaded from the EEPROM's station address [8254x SDM 5.2].
    const mac = this.mac;
    this.set(REG.RAL0, (mac[0]! | (mac[1]! << 8) | (mac[2]! << 16) | (mac[3]! << 24)) >>> 0);
    this.set(REG.RAH0, (mac[4]! | (mac[5]! << 8) | RAH.AV) >>> 0);
    this.tx.reset();
    this.clearRxFifo();
    this.eerd = 0;
    this.ioaddr = 0;
    this.lastIrqAt = undefined;
    this.updateIrq();
  }

  // ----- interrupts --------------------------------------------------------------------

  private raise(causes: number): void {
    if (causes === 0) return;
    this.set(REG.ICR, this.r(REG.ICR) | causes);
    this.updateIrq();
  }

  /**
   * INTA# follows (ICR & IMS) != 0, except that ITR enforces a minimum interval between
   * assertions [8254x SDM 13.4.18]: a cause arriving too soon is held until the interval ends.
   */
  private updateIrq(): void {
    const pending = (this.r(REG.ICR) & this.r(REG.IMS)) !== 0;
    if (!pending) {
      if (this.irqAsserted) {
        this.irqAsserted = false;
        this.irq.setLevel(false);
      }
      this.cancelTimer("itr");
      return;
    }
    if (this.irqAsserted) return;
    const interval = (this.r(REG.ITR) & 0xffff) * ITR_UNIT_NS;
    const now = this.clock.now();
    if (interval !== 0 && this.lastIrqAt !== undefined && now < this.lastIrqAt + interval) {
      if (this.timers.itr === undefined) this.startTimer("itr", this.lastIrqAt + interval, () => this.updateIrq());
      return;
    }
    this.cancelTimer("itr");
    this.irqAsserted = true;
    this.lastIrqAt = now;
    this.irq.setLevel(true);
  }

  private startTimer(name: TimerName, at: number, fn: () => void): void {
    this.cancelTimer(name);
    const id = this.clock.schedule(at, () => {
      if (this.timers[name]?.id !== id) return;
      this.timers[name] = undefined;
      fn();
    });
    this.timers[name] = { id, at };
  }

  private cancelTimer(name: TimerName): void {
    const t = this.timers[name];
    if (t === undefined) return;
    this.clock.cancel(t.id);
    this.timers[name] = undefined;
  }

  private timerCallback(name: TimerName): () => void {
    switch (name) {
      case "itr":
        return () => this.updateIrq();
      case "rdtr":
      case "radv":
        return () => this.fireRxTimer();
      case "tidv":
      case "tadv":
        return () => this.fireTxTimer();
      case "autoneg":
        return () => this.autonegComplete();
    }
  }

  /** RXT0 after a stored packet: at once, or after RDTR (restarted per packet) / RADV [8254x SDM 3.2.7]. */
  private rxInterrupt(): void {
    const rdtr = this.r(REG.RDTR) & DELAY.VALUE_MASK;
    if (rdtr === 0) {
      this.fireRxTimer();
      return;
    }
    const now = this.clock.now();
    this.startTimer("rdtr", now + rdtr * DELAY.UNIT_NS, this.timerCallback("rdtr"));
    const radv = this.r(REG.RADV) & DELAY.VALUE_MASK;
    if (radv !== 0 && this.timers.radv === undefined) this.startTimer("radv", now + radv * DELAY.UNIT_NS, this.timerCallback("radv"));
  }

  private fireRxTimer(): void {
    this.cancelTimer("rdtr");
    this.cancelTimer("radv");
    this.raise(ICR.RXT0);
  }

  /** TXDW for a reported descriptor: at once, or after TIDV (restarted) / TADV when IDE [8254x SDM 3.4]. */
  private txInterrupt(delay: boolean): void {
    const tidv = this.r(REG.TIDV) & DELAY.VALUE_MASK;
    if (!delay || tidv === 0) {
      this.fireTxTimer();
      return;
    }
    const now = this.clock.now();
    this.startTimer("tidv", now + tidv * DELAY.UNIT_NS, this.timerCallback("tidv"));
    const tadv = this.r(REG.TADV) & DELAY.VALUE_MASK;
    if (tadv !== 0 && this.timers.tadv === undefined) this.startTimer("tadv", now + tadv * DELAY.UNIT_NS, this.timerCallback("tadv"));
  }

  private fireTxTimer(): void {
    this.cancelTimer("tidv");
    this.cancelTimer("tadv");
    this.raise(ICR.TXDW);
  }

  // ----- link ---------------------------------------------------------------------------

  private restartAutoneg(): void {
    this.phy.autonegDone = false;
    this.cancelTimer("autoneg");
    if (this.port !== undefined) this.startTimer("autoneg", this.clock.now() + this.autonegNs, this.timerCallback("autoneg"));
    this.updateLink(true);
  }

  private autonegComplete(): void {
    this.phy.autonegDone = this.port !== undefined;
    this.updateLink(true);
  }

  /** Recomputes PHY and MAC link state; LSC on a change when `signal` [8254x SDM 13.4.17]. */
  private updateLink(signal: boolean): void {
    const ctrl = this.r(REG.CTRL);
    const phyUp = this.port !== undefined && !this.phy.poweredDown && (ctrl & CTRL.PHY_RST) === 0 && this.phy.negotiated;
    this.phy.setLink(phyUp);
    const up = phyUp && (ctrl & CTRL.SLU) !== 0;
    if (up === this.linkUpState) return;
    this.linkUpState = up;
    if (signal) this.raise(ICR.LSC);
    if (up) this.drainRxFifo();
  }

  // ----- DMA ----------------------------------------------------------------------------

  private dmaRead(address: number, dst: Uint8Array): boolean {
    try {
      this.memory.read(address, dst);
      return true;
    } catch (e) {
      if (!(e instanceof GuestMemoryError)) throw e;
      this.dmaErrorFn();
      return false;
    }
  }

  private dmaWrite(address: number, src: Uint8Array): boolean {
    try {
      this.memory.write(address, src);
      return true;
    } catch (e) {
      if (!(e instanceof GuestMemoryError)) throw e;
      this.dmaErrorFn();
      return false;
    }
  }

  private ringBase(low: number): number {
    return ((this.r(low) & ~0xf) >>> 0) + this.r(low + 4) * 2 ** 32;
  }

  // ----- transmit -----------------------------------------------------------------------

  /** Processes descriptors from TDH up to TDT [8254x SDM 3.4]. */
  private startTx(): void {
    if (this.txRunning) return;
    if ((this.r(REG.TCTL) & TCTL.EN) === 0 || !this.busMasterFn()) return;
    const count = this.r(REG.TDLEN) / DESC_SIZE;
    const base = this.ringBase(REG.TDBAL);
    this.txRunning = true;
    try {
      const desc = this.txDescriptor;
      let reported = false;
      let delayed = true;
      for (let n = 0; n < count; n++) {
        const head = this.r(REG.TDH);
        const tail = this.r(REG.TDT);
        if (head === tail || head >= count || base + head * DESC_SIZE >= 2 ** 32) break;
        const at = base + head * DESC_SIZE;
        if (!this.dmaRead(at, desc)) break;
        const res = this.tx.process(desc, this.txSink);
        if (res.reportStatus) {
          // Write back DD in the status byte; the rest of the descriptor is untouched [8254x SDM 3.3.3.2].
          const st = this.txStatus;
          st[0] = (desc[TXD.STATUS]! & 0xf0) | TXD_STA.DD;
          if (!this.dmaWrite(at + TXD.STATUS, st)) break;
          reported = true;
          if (!res.delayInterrupt) delayed = false;
        }
        this.set(REG.TDH, (head + 1) % count);
        if ((this.r(REG.TCTL) & TCTL.EN) === 0 || !this.busMasterFn()) break;
      }
      if (reported) this.txInterrupt(delayed);
      if (this.r(REG.TDH) === this.r(REG.TDT)) this.raise(ICR.TXQE);
    } finally {
      this.txRunning = false;
    }
  }

  private transmitFrame(frame: Uint8Array): void {
    const len = frame.length;
    const onWire = len + 4; // FCS
    this.count(STAT.TPT);
    this.count(STAT.GPTC);
    this.count64(STAT.TOTL, onWire);
    this.count64(STAT.GOTCL, onWire);
    const ptc = sizeBucket(onWire, STAT.PTC64);
    if (ptc !== undefined) this.count(ptc);
    if ((frame[0]! & 1) !== 0) {
      const bcast = frame[0] === 0xff && frame[1] === 0xff && frame[2] === 0xff && frame[3] === 0xff && frame[4] === 0xff && frame[5] === 0xff;
      this.count(bcast ? STAT.BPTC : STAT.MPTC);
    }
    const loopback = this.phy.loopback || (this.r(REG.RCTL) & RCTL.LBM_MASK) !== 0;
    if (loopback) {
      this.receive(frame.slice());
      return;
    }
    if (this.linkUpState) this.port?.send(frame);
  }

  // ----- receive ------------------------------------------------------------------------

  /** A frame arriving from the wire (destination MAC first, no FCS). */
  private receive(input: Uint8Array): void {
    if (input.length < 14) return; // not an Ethernet frame
    const rctl = this.r(REG.RCTL);
    if ((rctl & RCTL.EN) === 0 || (!this.linkUpState && !this.phy.loopback)) return;
    let frame = input;
    if (frame.length < 60) {
      // Runts are padded to the minimum, as the wire would have them (QEMU does the same).
      frame = new Uint8Array(60);
      frame.set(input);
    }
    const onWire = frame.length + 4;
    // Frames the address/VLAN filters reject are not received at all (QEMU counts nothing either).
    const vet = this.r(REG.VET) & 0xffff;
    if (!vlanFilter((o) => this.r(o), frame, vet)) return;
    const match = addressFilter((o) => this.r(o), frame);
    if (match === undefined) return;
    this.count(STAT.TPR);
    this.count64(STAT.TORL, onWire);
    if (onWire > rxMaxFrame(rctl)) {
      this.count(STAT.ROC); // oversize [8254x SDM 13.7]
      return;
    }
    this.count(STAT.GPRC);
    this.count64(STAT.GORCL, onWire);
    const prc = sizeBucket(onWire, STAT.PRC64);
    if (prc !== undefined) this.count(prc);
    if (match === "broadcast") this.count(STAT.BPRC);
    else if (match === "multicast") this.count(STAT.MPRC);
    this.enqueueRx(frame === input ? input.slice() : frame);
  }

  /** Holds frames in the receive packet buffer (PBA Rx KiB) until descriptors are available. */
  private enqueueRx(frame: Uint8Array): void {
    if (this.rxFifo.length === 0 && this.tryStore(frame)) return;
    const capacity = (this.r(REG.PBA) & 0xffff) * 1024;
    this.count(STAT.RNBC); // no buffers available at arrival [8254x SDM 13.7]
    if (this.rxFifoBytes + frame.length + 4 > capacity) {
      this.count(STAT.MPC);
      this.raise(ICR.RXO); // receiver overrun: the packet buffer is full
      return;
    }
    this.rxFifo.push(frame);
    this.rxFifoBytes += frame.length + 4;
  }

  private drainRxFifo(): void {
    while (this.rxFifo.length > 0) {
      if ((this.r(REG.RCTL) & RCTL.EN) === 0) return;
      if (!this.tryStore(this.rxFifo[0]!)) return;
      const f = this.rxFifo.shift()!;
      this.rxFifoBytes -= f.length + 4;
    }
  }

  private clearRxFifo(): void {
    this.rxFifo = [];
    this.rxFifoBytes = 0;
  }

  /** Writes one frame into the ring if enough descriptors lie between RDH and RDT. */
  private tryStore(frame: Uint8Array): boolean {
    if (!this.busMasterFn()) return false;
    const rctl = this.r(REG.RCTL);
    const count = this.r(REG.RDLEN) / DESC_SIZE;
    let head = this.r(REG.RDH);
    const tail = this.r(REG.RDT);
    if (count === 0 || head >= count || tail >= count) return false;
    const base = this.ringBase(REG.RDBAL);
    let data = frame;
    let special = 0;
    let status = RXD_STA.EOP;
    let errors = 0;
    const vet = this.r(REG.VET) & 0xffff;
    if ((this.r(REG.CTRL) & CTRL.VME) !== 0 && data.length >= 18 && ((data[12]! << 8) | data[13]!) === vet) {
      // Strip the 802.1Q tag into the descriptor's special field [8254x SDM 3.2.3, 13.4.1].
      special = (data[14]! << 8) | data[15]!;
      const untagged = new Uint8Array(data.length - 4);
      untagged.set(data.subarray(0, 12));
      untagged.set(data.subarray(16), 12);
      data = untagged;
      status |= RXD_STA.VP;
    }
    const cs = rxChecksum(this.r(REG.RXCSUM), data);
    status |= cs.status;
    errors |= cs.errors;
    let payload: Uint8Array;
    if ((rctl & RCTL.SECRC) !== 0) payload = data;
    else {
      payload = new Uint8Array(data.length + 4);
      payload.set(data);
      new DataView(payload.buffer).setUint32(data.length, crc32(data), true);
    }
    const bufSize = rxBufferSize(rctl);
    const needed = Math.max(1, Math.ceil(payload.length / bufSize));
    if (needed > count - 1) {
      // Can never fit, however many buffers software gives back: lost (avoids a stuck FIFO).
      this.count(STAT.MPC);
      return true;
    }
    const available = (tail - head + count) % count;
    if (available < needed) return false;
    const desc = new Uint8Array(DESC_SIZE);
    const dv = new DataView(desc.buffer);
    for (let i = 0; i < needed; i++) {
      const at = base + head * DESC_SIZE;
      if (at >= 2 ** 32 || !this.dmaRead(at, desc)) return true; // DMA error: the frame is lost
      const addr = dv.getUint32(RXD.ADDR, true) + dv.getUint32(RXD.ADDR + 4, true) * 2 ** 32;
      const chunk = payload.subarray(i * bufSize, Math.min(payload.length, (i + 1) * bufSize));
      if (addr !== 0 && (addr + chunk.length > 2 ** 32 || !this.dmaWrite(addr, chunk))) return true;
      const last = i === needed - 1;
      dv.setUint16(RXD.LENGTH, chunk.length, true);
      dv.setUint16(RXD.CSUM, last ? cs.csum : 0, true);
      desc[RXD.STATUS] = RXD_STA.DD | (last ? status : 0);
      desc[RXD.ERRORS] = last ? errors : 0;
      dv.setUint16(RXD.SPECIAL, last ? special : 0, true);
      if (!this.dmaWrite(at + 8, desc.subarray(8))) return true;
      head = (head + 1) % count;
      this.set(REG.RDH, head);
    }
    let causes = 0;
    // RXDMT0 when the free descriptors fall to the RCTL.RDMTS fraction of the ring [8254x SDM 13.4.22].
    const free = (this.r(REG.RDT) - head + count) % count;
    const rdmts = (rctl & RCTL.RDMTS_MASK) >>> RCTL.RDMTS_SHIFT;
    if (free * DESC_SIZE <= this.r(REG.RDLEN) >>> (rdmts + 1)) causes |= ICR.RXDMT0;
    this.raise(causes);
    this.rxInterrupt();
    return true;
  }

  // ----- snapshot -----------------------------------------------------------------------

  saveState(): E1000State {
    const regs: [number, number][] = [];
    for (let i = 0; i < this.regs.length; i++) if (this.regs[i] !== 0) regs.push([i * 4, this.regs[i]!]);
    const t = (n: TimerName) => this.timers[n]?.at ?? null;
    return {
      regs,
      eeprom: this.eeprom.saveState(),
      phy: this.phy.saveState(),
      tx: this.tx.saveState(),
      eerd: this.eerd,
      ioaddr: this.ioaddr,
      irqAsserted: this.irqAsserted,
      lastIrqAt: this.lastIrqAt ?? null,
      rxFifo: this.rxFifo.map((f) => Array.from(f)),
      timers: { itr: t("itr"), rdtr: t("rdtr"), radv: t("radv"), tidv: t("tidv"), tadv: t("tadv"), autoneg: t("autoneg") },
      linkUp: this.linkUpState,
    };
  }

  restoreState(s: E1000State): void {
    if (s === null || typeof s !== "object" || !Array.isArray(s.regs) || !Array.isArray(s.rxFifo) || typeof s.timers !== "object") {
      throw new TypeError("malformed E1000 state");
    }
    this.regs.fill(0);
    for (const [off, v] of s.regs) {
      if (typeof off !== "number" || off < 0 || off >= MMIO_SIZE || (off & 3) !== 0) throw new TypeError("malformed E1000 register");
      this.regs[off >> 2] = v >>> 0;
    }
    this.eeprom.restoreState(s.eeprom);
    this.phy.restoreState(s.phy);
    this.tx.restoreState(s.tx);
    this.eerd = s.eerd >>> 0;
    this.ioaddr = (s.ioaddr ?? 0) & 0x1fffc;
    this.lastIrqAt = s.lastIrqAt ?? undefined;
    this.rxFifo = s.rxFifo.map((f) => Uint8Array.from(f));
    this.rxFifoBytes = this.rxFifo.reduce((n, f) => n + f.length + 4, 0);
    for (const name of Object.keys(this.timers) as TimerName[]) {
      this.cancelTimer(name);
      const at = s.timers[name];
      if (typeof at === "number") this.startTimer(name, at, this.timerCallback(name));
    }
    this.linkUpState = s.linkUp;
    this.irqAsserted = s.irqAsserted;
    this.irq.setLevel(this.irqAsserted);
  }
}

/** PRC64/PTC64-based size bucket: 64, 65-127, 128-255, 256-511, 512-1023, 1024-1522 bytes. */
function sizeBucket(onWire: number, first: number): number | undefined {
  if (onWire > 1522) return undefined;
  const i = onWire <= 64 ? 0 : onWire <= 127 ? 1 : onWire <= 255 ? 2 : onWire <= 511 ? 3 : onWire <= 1023 ? 4 : 5;
  return first + i * 4;
}
