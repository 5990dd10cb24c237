/**
 * One 82540EM as a running network interface: the init sequence of Linux's e1000
 * ([8254x SDM 14] general configuration, receive and transmit initialization), the
 * descriptor rings, the interrupt handler, link state and statistics. Written only against
 * {@link DriverPlatform}: the same code runs on bare metal, in dom0 and in a driver domain.
 */
import { Fifo } from "./fifo.ts";
import {
  PCI_COMMAND,
  PCI_CONFIG,
  formatMac,
  type DmaRegion,
  type DmaSegment,
  type DriverPlatform,
  type IrqRegistration,
  type MmioWindow,
  type NetDevice,
  type PciDeviceInfo,
  type TimerId,
} from "@paravirt/vm-interfaces";
import { macFromEeprom, readEeprom, type EepromAccess, type Sleep } from "./eeprom.ts";
import { checksumContext, contextKey, seedHeaders, type ChecksumContext } from "./offload.ts";
import { setupCopperPhy } from "./phy.ts";
import {
  CTRL,
  CTXD,
  DELAY_UNIT_NS,
  DESC_SIZE,
  DTYP,
  E1000_IO,
  E1000_MMIO_SIZE,
  E1000_REG,
  ICR,
  IMS_ENABLE,
  MTA_ENTRIES,
  POPTS,
  RAH_AV,
  RA_ENTRIES,
  RCTL,
  RING_ALIGN_DESCS,
  RING_MAX_DESCS,
  RXCSUM,
  RXD,
  RXD_ERR,
  RXD_ERR_FRAME,
  RXD_STA,
  STATS32,
  STATS64,
  STATUS,
  TCTL,
  TCTL_COLD_FD,
  TCTL_CT,
  TIPG_COPPER,
  TUCMD,
  TXD,
  TXD_CMD,
  TXD_STA_DD,
  VFTA_ENTRIES,
} from "./registers.ts";

/** Receive buffer size: RCTL.BSIZE 00 with BSEX 0 [8254x SDM 13.4.22]. */
const RX_BUFFER_SIZE = 2048;
/** Transmit bounce buffer per descriptor (a whole standard frame fits). */
const TX_BUFFER_SIZE = 2048;
/** The largest frame (no FCS) the driver sends is header + MTU, + 4 with an 802.1Q tag [IEEE 802.3 3.2, 802.1Q]. */
const ETH_HEADER = 14;
const VLAN_TAG = 4;
const DEFAULT_MTU = 1500;
/** Largest frame the receive path reassembles from several buffers (LPE is off: 1522 on the wire). */
const RX_MAX_FRAME = 16384;

/** Driver settings; defaults follow Linux's e1000 module parameters. */
export interface E1000Options {
  /** Transmit descriptors (multiple of 8, 8..4096; default 256). */
  txRingSize?: number;
  /** Receive descriptors (multiple of 8, 8..4096; default 256). */
  rxRingSize?: number;
  /** Frames held in software while the ring is full (default 1000, Linux's txqueuelen). */
  txQueueLength?: number;
  /** How to read the EEPROM: EERD with a Microwire fallback (default), or one path only. */
  eeprom?: "auto" | EepromAccess;
  /** Restart autonegotiation during init, as Linux does (default true). */
  restartAutoneg?: boolean;
  /** Wait at most this long (virtual ns) for link up before `attach` returns (default 3 s; 0: don't wait). */
  waitForLinkNs?: number;
  /** TIDV, TADV, RDTR, RADV in 1.024 µs units (Linux defaults 8, 32, 0, 8) [8254x SDM 13.4.30-13.4.44]. */
  txIntDelay?: number;
  txAbsIntDelay?: number;
  rxIntDelay?: number;
  rxAbsIntDelay?: number;
  /** Interrupts per second at most (ITR); 0 disables throttling (default 20000) [8254x SDM 13.4.18]. */
  interruptRate?: number;
  /**
   * Period of the watchdog (virtual ns; default 0 = off) that folds hardware statistics,
   * re-checks the link and resets the adapter when transmission hangs.
   */
  watchdogNs?: number;
  /** Outstanding descriptors without progress for this long count as a hang (default 5 s). */
  txTimeoutNs?: number;
  /** Issue the global reset through the I/O BAR when there is one, as Linux does for this MAC (default true). */
  resetThroughIoBar?: boolean;
}

/** Per-frame transmit options. */
export interface TxOptions {
  /**
   * Let the MAC compute the IPv4 header and TCP/UDP checksums (context descriptor +
   * data descriptor with IXSM|TXSM). Frames that are not IPv4 TCP/UDP go out unchanged.
   */
  checksumOffload?: boolean;
}

/** Counters kept by the driver itself. */
export interface E1000DriverCounters {
  txPackets: number;
  txBytes: number;
  /** Frames posted through the caller's own buffer (dmaMap). */
  txZeroCopy: number;
  /** Frames copied into the driver's transmit buffers. */
  txCopied: number;
  /** Frames that waited in the software queue because the ring was full. */
  txQueued: number;
  /** Frames dropped: queue full, link down, closed. */
  txDropped: number;
  /** Frames refused: too short or too long. */
  txInvalid: number;
  /** Frames sent with a checksum offload context. */
  txChecksumOffload: number;
  /** Context descriptors written. */
  txContextDescriptors: number;
  rxPackets: number;
  rxBytes: number;
  /** Frames dropped for receive errors (CRC, symbol, sequence, carrier extension, data). */
  rxErrors: number;
  /** Frames the MAC found a bad IP or TCP/UDP checksum in (delivered anyway). */
  rxChecksumErrors: number;
  /** Frames whose IP and TCP/UDP checksums the MAC verified. */
  rxChecksumOk: number;
  /** RXO causes: the receive FIFO overflowed for lack of descriptors. */
  rxOverruns: number;
  interrupts: number;
  /** Handler calls with ICR = 0 (a shared line; not ours). */
  spuriousInterrupts: number;
  linkChanges: number;
  /** Adapter resets (transmit timeouts, `reset()`). */
  resets: number;
}

/** Hardware statistics accumulated from the clear-on-read registers [8254x SDM 13.7]. */
export type E1000HardwareCounters = Record<keyof typeof STATS32 | keyof typeof STATS64, number>;

/** Everything {@link E1000Nic.statistics} reports. */
export interface E1000Statistics extends E1000DriverCounters {
  hw: E1000HardwareCounters;
}

/** What the MAC found about a received frame. */
export interface RxInfo {
  /**
   * Receive checksum offload: "verified" (IPv4 header and TCP/UDP checksums good),
   * "ip-verified" (IPv4 header good, no TCP/UDP checksum checked), "bad" (either was wrong;
   * the frame is delivered anyway), "none" (not checked: not IPv4, a fragment, ...).
   */
  readonly checksum: "verified" | "ip-verified" | "bad" | "none";
}

/** Why an attach failed. */
export type E1000AttachResult = { ok: true; nic: E1000Nic } | { ok: false; reason: string };

interface TxRequest {
  frame: Uint8Array;
  offload: boolean;
  /** The caller keeps the buffer intact until `done`; try dmaMap. */
  zeroCopy: boolean;
  /** Segments from dmaMap, kept across retries when the ring was full. */
  mapped?: DmaSegment[] | undefined;
  mappedTried?: boolean;
  done?: ((sent: boolean) => void) | undefined;
}

/** What {@link E1000Nic.send}'s request holds between frames. */
const NO_FRAME = new Uint8Array(0);

interface TxInFlight {
  last: number;
  descriptors: number;
  bytes: number;
  mapped: DmaSegment[] | undefined;
  done: ((sent: boolean) => void) | undefined;
}

function ringSize(n: number | undefined, fallback: number, what: string): number {
  const v = n ?? fallback;
  if (!Number.isInteger(v) || v < RING_ALIGN_DESCS || v > RING_MAX_DESCS || v % RING_ALIGN_DESCS !== 0) {
    throw new RangeError(`${what} must be a multiple of ${RING_ALIGN_DESCS} between ${RING_ALIGN_DESCS} and ${RING_MAX_DESCS}, not ${v}`);
  }
  return v;
}

function hex(v: number, width = 8): string {
  return `0x${(v >>> 0).toString(16).padStart(width, "0")}`;
}

/**
 * Quiesce and global reset [8254x SDM 13.4.1]: mask everything, stop Rx and Tx, let pending
 * DMA finish (Linux e1000_reset_hw: IMC, RCTL, TCTL.PSP, flush, 10 ms
 * [8254x SDM 13.4.21, 13.4.22, 13.4.33]); then CTRL.RST, which self-clears once registers are
 * back at power-on values and the MAC reloaded its address from the EEPROM. Linux writes it
 * through the I/O window (IOADDR/IODATA [8254x SDM 13.2.2]) because this MAC may not
 * acknowledge the memory write while resetting. Finally interrupts masked again and stale
 * causes read away [8254x SDM 13.4.17, 13.4.21]. False when RST never clears.
 */
async function globalReset(platform: DriverPlatform, regs: MmioWindow, ioBase: number | undefined, sleep: Sleep): Promise<boolean> {
  regs.writel(E1000_REG.IMC, 0xffffffff);
  regs.writel(E1000_REG.RCTL, 0);
  regs.writel(E1000_REG.TCTL, TCTL.PSP);
  regs.readl(E1000_REG.STATUS);
  await sleep(10_000_000);
  const ctrl = regs.readl(E1000_REG.CTRL);
  if (ioBase !== undefined) {
    platform.outl(ioBase + E1000_IO.IOADDR, E1000_REG.CTRL);
    platform.outl(ioBase + E1000_IO.IODATA, (ctrl | CTRL.RST) >>> 0);
  } else {
    regs.writel(E1000_REG.CTRL, (ctrl | CTRL.RST) >>> 0);
  }
  await sleep(5_000_000);
  let done = false;
  for (let i = 0; i < 10 && !done; i++) {
    done = (regs.readl(E1000_REG.CTRL) & CTRL.RST) === 0;
    if (!done) await sleep(1_000_000);
  }
  if (!done) return false;
  regs.writel(E1000_REG.IMC, 0xffffffff);
  regs.readl(E1000_REG.ICR);
  return true;
}

/** The MTA bit for a multicast address with RCTL.MO = 0: address bits 47:36 [8254x SDM 13.5.1]. */
export function mtaHash(mac: Uint8Array): number {
  return ((mac[4]! >> 4) | (mac[5]! << 4)) & 0xfff;
}

/** A running 82540EM. Create with {@link E1000Nic.attach} or `probeE1000`. */
export class E1000Nic implements NetDevice {
  /** The station address read from the EEPROM. */
  readonly mac: Uint8Array;
  readonly mtu = DEFAULT_MTU;
  /** The PCI function driven. */
  readonly pci: PciDeviceInfo;
  /** The EEPROM image as read during init, and how. */
  readonly eepromWords: Uint16Array;
  readonly eepromAccess: EepromAccess;
  private phyIdValue: number | undefined;
  /** Device name for logs (eth0-style names are the caller's business). */
  readonly name: string;

  private readonly platform: DriverPlatform;
  private readonly regs: MmioWindow;
  private readonly ioBase: number | undefined;
  private readonly options: E1000Options;
  private irq: IrqRegistration | undefined;
  private closed = false;

  private link = false;
  private speed = 0;
  private fullDuplex = false;
  private receiveHandler: ((frame: Uint8Array, info: RxInfo) => void) | undefined;
  private linkHandler: ((up: boolean) => void) | undefined;
  private linkWaiters: ((up: boolean) => void)[] = [];
  private watchdog: TimerId | undefined;
  private rctl = 0;
  private promiscuous = false;
  private readonly mta = new Uint32Array(MTA_ENTRIES);
  private resetting = false;
  /** When the transmit ring last made progress (or became busy), for the hang check. */
  private txProgressAt = 0;

  // Transmit ring [8254x SDM 3.4]: the driver owns [txNext, txClean) (mod N), the MAC the rest.
  private readonly txCount: number;
  private readonly txRing: DmaRegion;
  private readonly txDesc: DataView;
  private readonly txBuffers: DmaRegion;
  private txNext = 0;
  private txUsed = 0;
  private readonly txInFlight: TxInFlight[] = [];
  /** The request {@link send} posts a frame through when nothing is queued. */
  private readonly sendRequest: TxRequest = { frame: NO_FRAME, offload: false, zeroCopy: false };
  /** One packet's data pieces while {@link post} writes it: bus address (-1: the bounce buffer) and length. */
  private readonly pieceAddress: number[] = [];
  private readonly pieceLength: number[] = [];
  private readonly txQueue = new Fifo<TxRequest>();
  private readonly txQueueLength: number;
  private txContext: string | undefined;
  private readonly txCmdExtra: number;

  // Receive ring [8254x SDM 3.2.6]: the MAC owns [RDH, RDT); the driver cleans from rxClean.
  private readonly rxCount: number;
  private readonly rxRing: DmaRegion;
  private readonly rxDesc: DataView;
  private readonly rxBuffers: DmaRegion;
  private rxClean = 0;
  private rxPartial: Uint8Array[] = [];
  private rxPartialBytes = 0;

  private readonly counters: E1000DriverCounters = {
    txPackets: 0,
    txBytes: 0,
    txZeroCopy: 0,
    txCopied: 0,
    txQueued: 0,
    txDropped: 0,
    txInvalid: 0,
    txChecksumOffload: 0,
    txContextDescriptors: 0,
    rxPackets: 0,
    rxBytes: 0,
    rxErrors: 0,
    rxChecksumErrors: 0,
    rxChecksumOk: 0,
    rxOverruns: 0,
    interrupts: 0,
    spuriousInterrupts: 0,
    linkChanges: 0,
    resets: 0,
  };
  private readonly hw: E1000HardwareCounters;

  private constructor(init: {
    platform: DriverPlatform;
    pci: PciDeviceInfo;
    regs: MmioWindow;
    ioBase: number | undefined;
    options: E1000Options;
    mac: Uint8Array;
    eepromWords: Uint16Array;
    eepromAccess: EepromAccess;
    txCount: number;
    rxCount: number;
  }) {
    this.platform = init.platform;
    this.pci = init.pci;
    this.regs = init.regs;
    this.ioBase = init.ioBase;
    this.options = init.options;
    this.mac = init.mac;
    this.eepromWords = init.eepromWords;
    this.eepromAccess = init.eepromAccess;
    const a = init.pci.address;
    this.name = `e1000 ${a.bus.toString(16).padStart(2, "0")}:${a.device.toString(16).padStart(2, "0")}.${a.function}`;
    this.txCount = init.txCount;
    this.rxCount = init.rxCount;
    this.txQueueLength = init.options.txQueueLength ?? 1000;
    this.txCmdExtra = (init.options.txIntDelay ?? 8) !== 0 ? TXD_CMD.IDE : 0;
    this.hw = Object.fromEntries([...Object.keys(STATS32), ...Object.keys(STATS64)].map((k) => [k, 0])) as E1000HardwareCounters;
    // Descriptor rings: physically contiguous, 16-byte aligned (dmaAlloc gives pages) [8254x SDM 3.2.6, 3.4].
    const got: DmaRegion[] = [];
    const alloc = (n: number) => {
      try {
        const r = this.platform.dmaAlloc(n);
        got.push(r);
        return r;
      } catch (e) {
        for (const r of got) this.platform.dmaFree(r);
        throw e;
      }
    };
    this.txRing = alloc(this.txCount * DESC_SIZE);
    this.txDesc = new DataView(this.txRing.bytes.buffer, this.txRing.bytes.byteOffset, this.txRing.bytes.byteLength);
    this.txBuffers = alloc(this.txCount * TX_BUFFER_SIZE);
    this.rxRing = alloc(this.rxCount * DESC_SIZE);
    this.rxDesc = new DataView(this.rxRing.bytes.buffer, this.rxRing.bytes.byteOffset, this.rxRing.bytes.byteLength);
    this.rxBuffers = alloc(this.rxCount * RX_BUFFER_SIZE);
  }

  /**
   * Brings up the 82540EM at `pci`: enables the function, resets it, reads and checks the
   * EEPROM, programs the address filters, sets up the PHY, the rings and interrupts. Device
   * trouble (no response, bad EEPROM) is a `{ ok: false }` result, never an exception.
   */
  static async attach(platform: DriverPlatform, pci: PciDeviceInfo, options: E1000Options = {}): Promise<E1000AttachResult> {
    const txCount = ringSize(options.txRingSize, 256, "txRingSize");
    const rxCount = ringSize(options.rxRingSize, 256, "rxRingSize");
    const sleep: Sleep = (ns) => new Promise((resolve) => platform.timers.schedule(platform.timers.now() + ns, resolve));
    const fail = (reason: string): E1000AttachResult => {
      platform.log(`e1000: ${reason}`);
      return { ok: false, reason };
    };
    const bar0 = pci.bars[0];
    if (bar0 === undefined || bar0.kind !== "mem32" || bar0.size < E1000_MMIO_SIZE) return fail("BAR0 is not a 128 KiB memory BAR");
    if (pci.irq === undefined) return fail("no interrupt line routed to INTA#");
    const bar1 = pci.bars[1];
    const ioBase = bar1 !== undefined && bar1.kind === "io" && bar1.size >= 8 ? bar1.base : undefined;
    const useIo = ioBase !== undefined && (options.resetThroughIoBar ?? true);

    // Enable memory (and I/O) decoding and bus mastering, INTx on [PCI 3.0 §6.2.2].
    const cmd = platform.pciConfigRead(pci.address, PCI_CONFIG.COMMAND, 2);
    const want = ((cmd | PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER | (useIo ? PCI_COMMAND.IO : 0)) & ~PCI_COMMAND.INTX_DISABLE) & 0xffff;
    if (want !== cmd) platform.pciConfigWrite(pci.address, PCI_CONFIG.COMMAND, 2, want);

    let regs: MmioWindow;
    try {
      regs = platform.ioremap(bar0.base, E1000_MMIO_SIZE);
    } catch (e) {
      return fail(`cannot map BAR0 at ${hex(bar0.base)}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (regs.readl(E1000_REG.STATUS) >>> 0 === 0xffffffff) return fail("device does not respond (STATUS reads all ones)");

    if (!(await globalReset(platform, regs, useIo ? ioBase : undefined, sleep))) return fail("CTRL.RST did not clear after the global reset");

    const image = await readEeprom(regs, sleep, options.eeprom ?? "auto");
    if (image === undefined) return fail("EEPROM does not answer (neither EERD nor EECD)");
    if (!image.checksumValid) return fail(`EEPROM checksum invalid: words 0x00-0x3F sum to ${hex(image.sum, 4)}, not 0xbaba`);
    const mac = macFromEeprom(image.words);
    if ((mac[0]! & 1) !== 0 || mac.every((b) => b === 0)) return fail(`EEPROM holds an invalid MAC address ${formatMac(mac)}`);

    let nic: E1000Nic;
    try {
      nic = new E1000Nic({ platform, pci, regs, ioBase: useIo ? ioBase : undefined, options, mac, eepromWords: image.words, eepromAccess: image.access, txCount, rxCount });
    } catch (e) {
      return fail(`cannot allocate DMA memory: ${e instanceof Error ? e.message : String(e)}`);
    }
    let phy: number | undefined;
    try {
      phy = await nic.configure(sleep, true);
    } catch (e) {
      // requestIrq refused (the IRQ is not this domain's), or similar: undo and report.
      nic.close();
      return fail(`cannot configure: ${e instanceof Error ? e.message : String(e)}`);
    }
    nic.phyIdValue = phy;
    platform.log(
      `${nic.name}: Intel 82540EM, MAC ${formatMac(mac)} (EEPROM via ${image.access}), irq ${pci.irq}, ` +
        `${txCount} Tx / ${rxCount} Rx descriptors${phy !== undefined ? `, PHY ${hex(phy)}` : ", PHY silent"}`,
    );
    const wait = options.waitForLinkNs ?? 3_000_000_000;
    if (wait > 0) await nic.waitForLink(wait);
    return { ok: true, nic };
  }

  /** The init sequence after the EEPROM: filters, link, rings, interrupts [8254x SDM 14.3-14.5]. */
  private async configure(sleep: Sleep, first: boolean): Promise<number | undefined> {
    const r = this.regs;
    const o = this.options;
    // Receive address 0 = our MAC with AV, the other 15 cleared [8254x SDM 13.5.2, 13.5.3].
    const m = this.mac;
    r.writel(E1000_REG.RAL0, (m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0);
    r.writel(E1000_REG.RAH0, (m[4]! | (m[5]! << 8) | RAH_AV) >>> 0);
    for (let i = 1; i < RA_ENTRIES; i++) {
      r.writel(E1000_REG.RAH0 + i * 8, 0);
      r.writel(E1000_REG.RAL0 + i * 8, 0);
    }
    // Multicast table (cleared at first, the groups set since on a reset) and VLAN filter
    // cleared [8254x SDM 14.4: "zero the MTA"; 13.5.1, 13.5.4].
    for (let i = 0; i < MTA_ENTRIES; i++) r.writel(E1000_REG.MTA + i * 4, this.mta[i]! >>> 0);
    for (let i = 0; i < VFTA_ENTRIES; i++) r.writel(E1000_REG.VFTA + i * 4, 0);
    // No flow control: FCAL/FCAH/FCT/FCTTV zero [8254x SDM 14.3].
    r.writel(E1000_REG.FCAL, 0);
    r.writel(E1000_REG.FCAH, 0);
    r.writel(E1000_REG.FCT, 0);
    r.writel(E1000_REG.FCTTV, 0);

    // Link: let the MAC follow the PHY's resolved speed/duplex (ASDE, no forcing), set link
    // up, PHY out of reset [8254x SDM 14.3 "general configuration", 13.4.1].
    let ctrl = r.readl(E1000_REG.CTRL);
    ctrl = (ctrl | CTRL.SLU | CTRL.ASDE) & ~(CTRL.FRCSPD | CTRL.FRCDPLX | CTRL.LRST | CTRL.PHY_RST | CTRL.ILOS | CTRL.VME | CTRL.RFCE | CTRL.TFCE);
    r.writel(E1000_REG.CTRL, ctrl >>> 0);
    const phy = await setupCopperPhy(r, sleep, o.restartAutoneg ?? true);
    if (this.closed) return phy.id; // closed while the PHY was being set up

    // Statistics start from zero: they clear on read, so read them all once [8254x SDM 13.7].
    this.foldStatistics();
    if (first) for (const k of Object.keys(this.hw) as (keyof E1000HardwareCounters)[]) this.hw[k] = 0;

    this.txNext = 0;
    this.txUsed = 0;
    this.txContext = undefined;
    this.rxClean = 0;
    this.rxPartial = [];
    this.rxPartialBytes = 0;

    // Transmit [8254x SDM 14.5]: ring base/length, head = tail = 0, IPG, delays, TCTL.
    r.writel(E1000_REG.TDBAL, this.txRing.busAddress >>> 0);
    r.writel(E1000_REG.TDBAH, Math.floor(this.txRing.busAddress / 2 ** 32));
    r.writel(E1000_REG.TDLEN, this.txCount * DESC_SIZE);
    r.writel(E1000_REG.TDH, 0);
    r.writel(E1000_REG.TDT, 0);
    r.writel(E1000_REG.TIPG, TIPG_COPPER);
    r.writel(E1000_REG.TIDV, o.txIntDelay ?? 8);
    r.writel(E1000_REG.TADV, o.txAbsIntDelay ?? 32);
    r.writel(E1000_REG.TCTL, (TCTL.EN | TCTL.PSP | (TCTL_CT << TCTL.CT_SHIFT) | (TCTL_COLD_FD << TCTL.COLD_SHIFT) | TCTL.RTLC) >>> 0);

    // Receive [8254x SDM 14.4]: buffers pre-posted, ring registers with the receiver off,
    // delays and throttling, checksum offload, then RCTL.EN and the tail.
    for (let i = 0; i < this.rxCount; i++) this.postRxBuffer(i);
    r.writel(E1000_REG.RCTL, 0);
    r.writel(E1000_REG.RDBAL, this.rxRing.busAddress >>> 0);
    r.writel(E1000_REG.RDBAH, Math.floor(this.rxRing.busAddress / 2 ** 32));
    r.writel(E1000_REG.RDLEN, this.rxCount * DESC_SIZE);
    r.writel(E1000_REG.RDH, 0);
    r.writel(E1000_REG.RDT, 0);
    r.writel(E1000_REG.RDTR, o.rxIntDelay ?? 0);
    r.writel(E1000_REG.RADV, o.rxAbsIntDelay ?? 8);
    const rate = o.interruptRate ?? 20000;
    r.writel(E1000_REG.ITR, rate > 0 ? Math.min(0xffff, Math.round(1e9 / (rate * 256))) : 0);
    r.writel(E1000_REG.RXCSUM, RXCSUM.IPOFL | RXCSUM.TUOFL);
    this.rctl = RCTL.EN | RCTL.BAM | RCTL.RDMTS_HALF | RCTL.MO_0 | RCTL.BSIZE_2048 | RCTL.SECRC | (this.promiscuous ? RCTL.UPE | RCTL.MPE : 0);
    r.writel(E1000_REG.RCTL, this.rctl >>> 0);
    // All descriptors but one belong to the MAC (head == tail would mean "none") [8254x SDM 3.2.6].
    r.writel(E1000_REG.RDT, this.rxCount - 1);

    // Interrupts: handler first, then unmask [8254x SDM 13.4.20].
    this.irq ??= this.platform.requestIrq(this.pci.irq!, () => this.interrupt());
    r.readl(E1000_REG.ICR);
    r.writel(E1000_REG.IMS, IMS_ENABLE);
    this.updateLink(!first);
    const wd = o.watchdogNs ?? 0;
    if (first && wd > 0) this.armWatchdog(wd);
    return phy.id;
  }

  /**
   * Re-initialises the MAC (Linux's reset task, run on a transmit timeout): stop, fold the
   * statistics, drop what the rings held (pending `transmit`s resolve false), global reset,
   * then the whole configuration again with the filters set so far. The link goes down and
   * comes back through autonegotiation. Resolves false when the reset did not complete.
   */
  async reset(reason = "reset requested"): Promise<boolean> {
    if (this.closed || this.resetting) return false;
    this.resetting = true;
    this.counters.resets++;
    this.platform.log(`${this.name}: ${reason}, resetting the adapter`);
    const sleep: Sleep = (ns) => new Promise((resolve) => this.platform.timers.schedule(this.platform.timers.now() + ns, resolve));
    try {
      const r = this.regs;
      r.writel(E1000_REG.IMC, 0xffffffff);
      r.writel(E1000_REG.RCTL, 0);
      r.writel(E1000_REG.TCTL, TCTL.PSP);
      r.readl(E1000_REG.STATUS);
      this.reclaimTx();
      this.foldStatistics();
      for (const p of this.txInFlight.splice(0)) {
        if (p.mapped) this.platform.dmaUnmap(p.mapped);
        this.counters.txDropped++;
        p.done?.(false);
      }
      // Decoding and bus mastering back on, in case they were lost [PCI 3.0 §6.2.2].
      const cmd = this.platform.pciConfigRead(this.pci.address, PCI_CONFIG.COMMAND, 2);
      const want = (cmd | PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER | (this.ioBase !== undefined ? PCI_COMMAND.IO : 0)) & ~PCI_COMMAND.INTX_DISABLE & 0xffff;
      if (want !== cmd) this.platform.pciConfigWrite(this.pci.address, PCI_CONFIG.COMMAND, 2, want);
      if (!(await globalReset(this.platform, r, this.ioBase, sleep))) {
        this.platform.log(`${this.name}: CTRL.RST did not clear; adapter left stopped`);
        return false;
      }
      if (this.closed) return false;
      await this.configure(sleep, false);
      return !this.closed;
    } finally {
      this.resetting = false;
    }
  }

  // ----- NetDevice ---------------------------------------------------------------------

  /** PHY identifier (ID1 << 16 | ID2), if the PHY answered during init. */
  get phyId(): number | undefined {
    return this.phyIdValue;
  }

  get linkUp(): boolean {
    return this.link;
  }

  /** Negotiated speed in Mb/s (0 while the link is down) [8254x SDM 13.4.2 STATUS.SPEED]. */
  get speedMbps(): number {
    return this.link ? this.speed : 0;
  }

  get duplex(): "full" | "half" | undefined {
    return this.link ? (this.fullDuplex ? "full" : "half") : undefined;
  }

  /**
   * Sets the handler for received frames (a fresh copy each, FCS stripped). The optional
   * second argument says what the MAC's receive checksum offload found.
   */
  onReceive(handler: (frame: Uint8Array, info: RxInfo) => void): void {
    this.receiveHandler = handler;
  }

  onLinkChange(handler: (up: boolean) => void): void {
    this.linkHandler = handler;
  }

  /**
   * Sends a frame (destination MAC first, no FCS). The frame is copied into the driver's
   * transmit buffers before this returns (NetDevice: the callee must not keep it). While the
   * ring is full frames wait in a software queue; with the link down they are dropped.
   */
  send(frame: Uint8Array, options?: TxOptions): void {
    if (!this.admit(frame)) return;
    const offload = options?.checksumOffload === true;
    if (this.txQueue.length === 0 && !this.resetting) {
      // Posted at once through a request object kept for this (post keeps nothing of it).
      const req = this.sendRequest;
      req.frame = frame;
      req.offload = offload;
      const posted = this.post(req);
      req.frame = NO_FRAME;
      if (posted) {
        this.kick();
        return;
      }
    }
    this.enqueue({ frame: frame.slice(), offload, zeroCopy: false });
  }

  /**
   * Zero-copy transmit: the MAC reads the frame straight from `frame` when the platform can
   * map it for DMA (`dmaMap`; e.g. a page of RAM or a grant-mapped page), else it is copied.
   * The caller must leave `frame` unchanged until the promise settles: `true` when the MAC
   * reported the descriptor done, `false` when the frame was dropped.
   */
  transmit(frame: Uint8Array, options: TxOptions = {}): Promise<boolean> {
    if (!this.admit(frame)) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const req: TxRequest = { frame, offload: options.checksumOffload === true, zeroCopy: true, done: resolve };
      if (this.txQueue.length === 0 && !this.resetting && this.post(req)) {
        this.kick();
        return;
      }
      this.enqueue(req);
    });
  }

  /** Waits until the link is up; resolves false after `timeoutNs` of virtual time without link. */
  waitForLink(timeoutNs: number): Promise<boolean> {
    if (this.link) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      let timer: TimerId | undefined;
      const waiter = (up: boolean) => {
        if (timer !== undefined) this.platform.timers.cancel(timer);
        resolve(up);
      };
      this.linkWaiters.push(waiter);
      timer = this.platform.timers.schedule(this.platform.timers.now() + timeoutNs, () => {
        const i = this.linkWaiters.indexOf(waiter);
        if (i >= 0) this.linkWaiters.splice(i, 1);
        resolve(this.link);
      });
    });
  }

  /** Unicast and multicast promiscuous mode (RCTL.UPE|MPE), e.g. for a bridge [8254x SDM 13.4.22]. */
  setPromiscuous(on: boolean): void {
    if (this.closed) return;
    this.promiscuous = on;
    this.rctl = on ? this.rctl | RCTL.UPE | RCTL.MPE : this.rctl & ~(RCTL.UPE | RCTL.MPE);
    if (!this.resetting) this.regs.writel(E1000_REG.RCTL, this.rctl >>> 0);
  }

  /** Accepts exactly these multicast groups (MTA hash, RCTL.MO = 0) [8254x SDM 13.5.1]. */
  setMulticast(groups: readonly Uint8Array[]): void {
    if (this.closed) return;
    const mta = this.mta;
    mta.fill(0);
    for (const g of groups) {
      const h = mtaHash(g);
      mta[h >>> 5]! |= 1 << (h & 31);
    }
    if (this.resetting) return; // programmed when the reset reconfigures
    for (let i = 0; i < MTA_ENTRIES; i++) this.regs.writel(E1000_REG.MTA + i * 4, mta[i]! >>> 0);
  }

  /** Driver counters plus the hardware statistics registers, folded in now. */
  statistics(): E1000Statistics {
    if (!this.closed) this.foldStatistics();
    return { ...this.counters, hw: { ...this.hw } };
  }

  /** Frames waiting in the software queue, and descriptors the MAC still owns. */
  get txBacklog(): { queued: number; inFlight: number } {
    return { queued: this.txQueue.length, inFlight: this.txInFlight.length };
  }

  /**
   * Stops the interface (Linux's e1000_down + remove): interrupts masked, receiver and
   * transmitter off, bus mastering off, global reset, IRQ released, DMA memory freed. Pending
   * `transmit` promises resolve false; the link is reported down.
   */
  close(): void {
    if (this.closed) return;
    const r = this.regs;
    r.writel(E1000_REG.IMC, 0xffffffff);
    r.writel(E1000_REG.RCTL, 0);
    r.writel(E1000_REG.TCTL, TCTL.PSP);
    r.readl(E1000_REG.STATUS); // flush posted writes
    this.reclaimTx(); // frames the MAC already finished count as sent
    this.foldStatistics();
    this.closed = true;
    // No more DMA from here on: bus mastering off [PCI 3.0 §6.2.2], then reset [8254x SDM 13.4.1].
    const cmd = this.platform.pciConfigRead(this.pci.address, PCI_CONFIG.COMMAND, 2);
    this.platform.pciConfigWrite(this.pci.address, PCI_CONFIG.COMMAND, 2, cmd & ~PCI_COMMAND.MASTER & 0xffff);
    r.writel(E1000_REG.CTRL, (r.readl(E1000_REG.CTRL) | CTRL.RST) >>> 0);
    r.readl(E1000_REG.ICR);
    this.irq?.release();
    this.irq = undefined;
    if (this.watchdog !== undefined) this.platform.timers.cancel(this.watchdog);
    this.watchdog = undefined;
    for (const p of this.txInFlight.splice(0)) {
      if (p.mapped) this.platform.dmaUnmap(p.mapped);
      p.done?.(false);
    }
    this.dropQueue();
    this.platform.dmaFree(this.txRing);
    this.platform.dmaFree(this.txBuffers);
    this.platform.dmaFree(this.rxRing);
    this.platform.dmaFree(this.rxBuffers);
    if (this.link) {
      this.link = false;
      this.counters.linkChanges++;
      this.linkHandler?.(false);
    }
    for (const w of this.linkWaiters.splice(0)) w(false);
    this.platform.log(`${this.name}: closed`);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  // ----- transmit ----------------------------------------------------------------------

  private maxFrame(frame: Uint8Array): number {
    const tagged = frame.length >= 14 && frame[12] === 0x81 && frame[13] === 0x00;
    return ETH_HEADER + this.mtu + (tagged ? VLAN_TAG : 0);
  }

  /** Checks a frame handed to send/transmit; false (and counted) when it cannot go out. */
  private admit(frame: Uint8Array): boolean {
    if (frame.length < ETH_HEADER || frame.length > this.maxFrame(frame)) {
      this.counters.txInvalid++;
      return false;
    }
    if (this.closed || !this.link) {
      this.counters.txDropped++;
      return false;
    }
    return true;
  }

  private enqueue(req: TxRequest): void {
    if (this.txQueue.length >= this.txQueueLength) {
      this.counters.txDropped++;
      req.done?.(false);
      return;
    }
    this.counters.txQueued++;
    this.txQueue.push(req);
  }

  private dropQueue(): void {
    for (const q of this.txQueue.drain()) {
      if (q.mapped) this.platform.dmaUnmap(q.mapped);
      this.counters.txDropped++;
      q.done?.(false);
    }
  }

  /** Descriptors free for new packets: one stays unused so that tail never catches head. */
  private get txFree(): number {
    return this.txCount - 1 - this.txUsed;
  }

  /**
   * Writes one packet's descriptors at txNext (without the TDT doorbell); false when the ring
   * lacks room. Checksum offload: a context descriptor when the context changed, then data
   * descriptors whose first buffer is the driver's copy of the headers with the IP checksum
   * zeroed and the TCP/UDP field seeded [8254x SDM 3.3.6, 3.3.7]. Plain frames use legacy
   * descriptors [8254x SDM 3.3.2]. Every packet's last descriptor asks for status (RS).
   */
  private post(req: TxRequest): boolean {
    const frame = req.frame;
    const ctx: ChecksumContext | undefined = req.offload ? checksumContext(frame) : undefined;
    const key = ctx !== undefined ? contextKey(ctx) : undefined;
    const needContext = ctx !== undefined && key !== this.txContext;
    const headerLen = ctx !== undefined ? ctx.tucso + 2 : 0;
    if (req.zeroCopy && !req.mappedTried) {
      req.mappedTried = true;
      const rest = frame.subarray(headerLen);
      req.mapped = rest.length > 0 ? this.platform.dmaMap(rest, "to-device") : undefined;
    }
    const mapped = req.mapped;
    // Pieces: bus address and length per data descriptor.
    const pieceAddress = this.pieceAddress;
    const pieceLength = this.pieceLength;
    let pieces = 0;
    const first = this.txNext + (needContext ? 1 : 0);
    let copied = false;
    if (mapped !== undefined) {
      if (headerLen > 0) {
        // the seeded header copy
        pieceAddress[pieces] = -1;
        pieceLength[pieces++] = headerLen;
      }
      for (const s of mapped) {
        pieceAddress[pieces] = s.busAddress;
        pieceLength[pieces++] = s.length;
      }
    } else {
      // the whole frame copied
      pieceAddress[pieces] = -1;
      pieceLength[pieces++] = frame.length;
      copied = true;
    }
    const descriptors = pieces + (needContext ? 1 : 0);
    if (descriptors > this.txFree) return false;

    const dv = this.txDesc;
    let i = this.txNext;
    if (needContext) {
      const o = i * DESC_SIZE;
      dv.setUint8(o + CTXD.IPCSS, ctx!.ipcss);
      dv.setUint8(o + CTXD.IPCSO, ctx!.ipcso);
      dv.setUint16(o + CTXD.IPCSE, ctx!.ipcse, true);
      dv.setUint8(o + CTXD.TUCSS, ctx!.tucss);
      dv.setUint8(o + CTXD.TUCSO, ctx!.tucso);
      dv.setUint16(o + CTXD.TUCSE, ctx!.tucse, true);
      const tucmd = TUCMD.DEXT | TUCMD.IP | (ctx!.protocol === "tcp" ? TUCMD.TCP : 0);
      dv.setUint32(o + CTXD.LENGTH, ((DTYP.CONTEXT << 20) | (tucmd << 24)) >>> 0, true);
      dv.setUint8(o + CTXD.STA, 0);
      dv.setUint8(o + CTXD.HDRLEN, 0);
      dv.setUint16(o + CTXD.MSS, 0, true);
      this.txContext = key;
      this.counters.txContextDescriptors++;
      i = (i + 1) % this.txCount;
    }
    for (let p = 0; p < pieces; p++) {
      let addr = pieceAddress[p]!;
      const len = pieceLength[p]!;
      if (addr < 0) {
        // Copy into this descriptor's bounce buffer (views only when the copy is partial or seeded).
        const at = ((first + p) % this.txCount) * TX_BUFFER_SIZE;
        this.txBuffers.bytes.set(len === frame.length ? frame : frame.subarray(0, len), at);
        if (ctx !== undefined) seedHeaders(this.txBuffers.bytes.subarray(at, at + len), ctx);
        addr = this.txBuffers.busAddress + at;
      }
      const last = p === pieces - 1;
      const o = i * DESC_SIZE;
      dv.setUint32(o + TXD.ADDR, addr >>> 0, true);
      dv.setUint32(o + TXD.ADDR + 4, Math.floor(addr / 2 ** 32), true);
      const cmd = TXD_CMD.IFCS | (last ? TXD_CMD.EOP | TXD_CMD.RS | this.txCmdExtra : 0);
      if (ctx !== undefined) {
        // Data descriptor: length 19:0, DTYP 23:20, DCMD 31:24; POPTS in byte 13.
        dv.setUint32(o + TXD.LENGTH, (len | (DTYP.DATA << 20) | ((cmd | TXD_CMD.DEXT) << 24)) >>> 0, true);
        dv.setUint8(o + TXD.STATUS, 0);
        dv.setUint8(o + TXD.CSS, POPTS.IXSM | POPTS.TXSM);
      } else {
        dv.setUint16(o + TXD.LENGTH, len, true);
        dv.setUint8(o + TXD.CSO, 0);
        dv.setUint8(o + TXD.CMD, cmd);
        dv.setUint8(o + TXD.STATUS, 0);
        dv.setUint8(o + TXD.CSS, 0);
      }
      dv.setUint16(o + TXD.SPECIAL, 0, true);
      if (last) {
        if (this.txInFlight.length === 0) this.txProgressAt = this.platform.timers.now();
        this.txInFlight.push({ last: i, descriptors, bytes: frame.length, mapped, done: req.done });
      }
      i = (i + 1) % this.txCount;
    }
    this.txNext = i;
    this.txUsed += descriptors;
    if (copied) this.counters.txCopied++;
    else this.counters.txZeroCopy++;
    if (ctx !== undefined) this.counters.txChecksumOffload++;
    return true;
  }

  /** The doorbell: TDT = next free descriptor; the MAC sends up to it [8254x SDM 3.4, 13.4.41]. */
  private kick(): void {
    this.regs.writel(E1000_REG.TDT, this.txNext);
  }

  /** Frees descriptors the MAC wrote back with DD, oldest first [8254x SDM 3.3.3.2]. */
  private reclaimTx(): void {
    while (this.txInFlight.length > 0) {
      const p = this.txInFlight[0]!;
      if ((this.txDesc.getUint8(p.last * DESC_SIZE + TXD.STATUS) & TXD_STA_DD) === 0) break;
      this.txInFlight.shift();
      this.txProgressAt = this.platform.timers.now();
      this.txUsed -= p.descriptors;
      this.counters.txPackets++;
      this.counters.txBytes += p.bytes;
      if (p.mapped) this.platform.dmaUnmap(p.mapped);
      p.done?.(true);
    }
  }

  /** Reclaims, then moves queued frames into the freed descriptors. */
  private cleanTx(): void {
    this.reclaimTx();
    let posted = false;
    while (this.txQueue.length > 0 && !this.closed && !this.resetting) {
      if (!this.post(this.txQueue.peek()!)) break;
      this.txQueue.shift();
      posted = true;
    }
    if (posted) this.kick();
  }

  // ----- receive -----------------------------------------------------------------------

  private postRxBuffer(i: number): void {
    const o = i * DESC_SIZE;
    const addr = this.rxBuffers.busAddress + i * RX_BUFFER_SIZE;
    this.rxDesc.setUint32(o + RXD.ADDR, addr >>> 0, true);
    this.rxDesc.setUint32(o + RXD.ADDR + 4, Math.floor(addr / 2 ** 32), true);
    this.rxDesc.setUint32(o + RXD.LENGTH, 0, true); // length, checksum
    this.rxDesc.setUint32(o + RXD.STATUS, 0, true); // status, errors, special
  }

  /**
   * Takes every descriptor the MAC finished (DD), oldest first; frames spanning several
   * buffers are joined at EOP [8254x SDM 3.2.3]. Cleaned descriptors go straight back to the
   * MAC with one RDT write, then the frames are delivered.
   */
  private cleanRx(): void {
    const frames: [Uint8Array, RxInfo][] = [];
    let cleaned = 0;
    const dv = this.rxDesc;
    while (cleaned < this.rxCount) {
      const i = this.rxClean;
      const o = i * DESC_SIZE;
      const status = dv.getUint8(o + RXD.STATUS);
      if ((status & RXD_STA.DD) === 0) break;
      const errors = dv.getUint8(o + RXD.ERRORS);
      const length = Math.min(dv.getUint16(o + RXD.LENGTH, true), RX_BUFFER_SIZE);
      const data = this.rxBuffers.bytes.slice(i * RX_BUFFER_SIZE, i * RX_BUFFER_SIZE + length);
      this.postRxBuffer(i);
      this.rxClean = (i + 1) % this.rxCount;
      cleaned++;
      if ((status & RXD_STA.EOP) === 0) {
        if (this.rxPartialBytes + length <= RX_MAX_FRAME) {
          this.rxPartial.push(data);
          this.rxPartialBytes += length;
        }
        continue;
      }
      let frame = data;
      if (this.rxPartial.length > 0) {
        frame = new Uint8Array(this.rxPartialBytes + length);
        let at = 0;
        for (const part of this.rxPartial) {
          frame.set(part, at);
          at += part.length;
        }
        frame.set(data, at);
        this.rxPartial = [];
        this.rxPartialBytes = 0;
      }
      if ((errors & RXD_ERR_FRAME) !== 0 || frame.length < ETH_HEADER) {
        this.counters.rxErrors++;
        continue;
      }
      // Receive checksum offload result [8254x SDM 3.2.9; 3.2.3.1 IXSM/IPCS/TCPCS, 3.2.3.2 IPE/TCPE].
      let checksum: RxInfo["checksum"] = "none";
      if ((status & RXD_STA.IXSM) === 0 && (status & (RXD_STA.IPCS | RXD_STA.TCPCS)) !== 0) {
        const bad = ((status & RXD_STA.IPCS) !== 0 && (errors & RXD_ERR.IPE) !== 0) || ((status & RXD_STA.TCPCS) !== 0 && (errors & RXD_ERR.TCPE) !== 0);
        if (bad) {
          checksum = "bad";
          this.counters.rxChecksumErrors++;
        } else if ((status & RXD_STA.TCPCS) !== 0) {
          checksum = "verified";
          this.counters.rxChecksumOk++;
        } else {
          checksum = "ip-verified";
        }
      }
      this.counters.rxPackets++;
      this.counters.rxBytes += frame.length;
      frames.push([frame, { checksum }]);
    }
    if (cleaned > 0) {
      // RDT = the last descriptor cleaned: the MAC owns up to, not including, it [8254x SDM 3.2.6].
      this.regs.writel(E1000_REG.RDT, (this.rxClean - 1 + this.rxCount) % this.rxCount);
    }
    const h = this.receiveHandler;
    if (h === undefined) return;
    for (const [f, info] of frames) {
      try {
        h(f, info);
      } catch (e) {
        this.platform.log(`${this.name}: receive handler threw: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  // ----- interrupts, link, statistics ----------------------------------------------------

  /**
   * The interrupt handler: ICR read-to-clear acknowledges every cause and deasserts INTA#
   * [8254x SDM 13.4.17]; then link, receive and transmit work. ICR = 0 means the shared line
   * was raised by someone else; all ones means the device is gone (or access was refused).
   */
  private interrupt(): void {
    if (this.closed) return;
    const icr = this.regs.readl(E1000_REG.ICR) >>> 0;
    if (this.resetting) return; // acknowledged; the reset reconfigures everything
    if (icr === 0 || icr === 0xffffffff) {
      this.counters.spuriousInterrupts++;
      return;
    }
    this.counters.interrupts++;
    // RXSEQ (a sequence error on the link) also means: look at the link [8254x SDM 13.4.17].
    if ((icr & (ICR.LSC | ICR.RXSEQ)) !== 0) this.updateLink(true);
    if ((icr & ICR.RXO) !== 0) this.counters.rxOverruns++;
    this.cleanRx();
    if (this.closed) return; // a receive handler closed the interface
    this.cleanTx();
  }

  /** Reads STATUS.LU/FD/SPEED [8254x SDM 13.4.2] and reports a change. */
  private updateLink(notify: boolean): void {
    if (this.closed) return;
    const st = this.regs.readl(E1000_REG.STATUS) >>> 0;
    const up = st !== 0xffffffff && (st & STATUS.LU) !== 0; // all ones: the device is gone
    const sp = (st & STATUS.SPEED_MASK) >>> STATUS.SPEED_SHIFT;
    this.speed = sp === 0 ? 10 : sp === 1 ? 100 : 1000;
    this.fullDuplex = (st & STATUS.FD) !== 0;
    if (up === this.link) return;
    this.link = up;
    this.counters.linkChanges++;
    this.platform.log(up ? `${this.name}: link up, ${this.speed} Mb/s ${this.fullDuplex ? "full" : "half"} duplex` : `${this.name}: link down`);
    if (!up) this.dropQueue();
    for (const w of this.linkWaiters.splice(0)) w(up);
    if (notify) this.linkHandler?.(up);
  }

  /** Adds the clear-on-read statistics registers to the running totals [8254x SDM 13.7]. */
  private foldStatistics(): void {
    const r = this.regs;
    for (const [k, off] of Object.entries(STATS32) as [keyof typeof STATS32, number][]) this.hw[k] += r.readl(off) >>> 0;
    for (const [k, off] of Object.entries(STATS64) as [keyof typeof STATS64, number][]) {
      const lo = r.readl(off) >>> 0;
      const hi = r.readl(off + 4) >>> 0; // reading the high half clears both
      this.hw[k] += lo + hi * 2 ** 32;
    }
  }

  /** Linux's watchdog: statistics folded before they saturate, link re-checked. */
  private armWatchdog(period: number): void {
    this.watchdog = this.platform.timers.schedule(this.platform.timers.now() + period, () => {
      if (this.closed) return;
      this.armWatchdog(period);
      if (this.resetting) return;
      this.foldStatistics();
      this.updateLink(true);
      this.reclaimTx();
      // Transmit hang: descriptors outstanding with the link up and no progress for
      // txTimeoutNs (Linux's watchdog_timeo, 5 s) → reset the adapter.
      const timeout = this.options.txTimeoutNs ?? 5_000_000_000;
      if (this.link && this.txInFlight.length > 0 && this.platform.timers.now() - this.txProgressAt >= timeout) {
        void this.reset("transmit timeout");
      }
    });
  }
}

/** Interrupt-delay registers count in these units, for callers converting from time. */
export const E1000_DELAY_UNIT_NS = DELAY_UNIT_NS;
