/**
 * PCI functions and a type-0 configuration space helper.
 *
 * Layout and semantics: PCI Local Bus Specification 3.0, §6.1 (configuration header),
 * §6.2.5 (base address registers). Write masks follow QEMU's `PCIDevice` (`wmask` for R/W
 * bytes, `w1cmask` for write-1-to-clear bytes); every other byte is read-only.
 */
import type { AccessSize, IoDevice } from "./io.ts";

/** Type-0 configuration header offsets [PCI 3.0 §6.1]. */
export const PCI_CONFIG = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  PROG_IF: 0x09,
  SUBCLASS: 0x0a,
  CLASS: 0x0b,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  EXPANSION_ROM: 0x30,
  CAPABILITIES: 0x34,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
} as const;

/** COMMAND register bits [PCI 3.0 §6.2.2]. */
export const PCI_COMMAND = {
  IO: 1 << 0,
  MEMORY: 1 << 1,
  MASTER: 1 << 2,
  PARITY: 1 << 6,
  SERR: 1 << 8,
  INTX_DISABLE: 1 << 10,
} as const;

/** STATUS register bits [PCI 3.0 §6.2.3]; the error bits are RW1C. */
export const PCI_STATUS = {
  INTERRUPT: 1 << 3,
  CAP_LIST: 1 << 4,
  FAST_BACK: 1 << 7,
  DEVSEL_MEDIUM: 1 << 9,
  SIG_TARGET_ABORT: 1 << 11,
  REC_TARGET_ABORT: 1 << 12,
  REC_MASTER_ABORT: 1 << 13,
  SIG_SYSTEM_ERROR: 1 << 14,
  DETECTED_PARITY: 1 << 15,
} as const;

/** A base address register's kind [PCI 3.0 §6.2.5.1]. */
export type PciBarKind = "io" | "mem32";

/** A BAR the function implements. `size` is a power of two (>= 4 for I/O, >= 16 for memory). */
export interface PciBar {
  readonly kind: PciBarKind;
  readonly size: number;
  readonly prefetchable?: boolean;
  /** The registers behind the BAR, addressed by offset from the BAR's base. */
  readonly device: IoDevice;
}

/** A bus/device/function address. */
export interface PciAddress {
  readonly bus: number;
  readonly device: number;
  readonly function: number;
}

/** One PCI function as the host bridge and the probing code see it. */
export interface PciFunction {
  /** Reads `size` bytes of configuration space at `offset` (0-255, naturally aligned). */
  configRead(offset: number, size: AccessSize): number;
  /** Writes configuration space; read-only bits keep their value. */
  configWrite(offset: number, size: AccessSize, value: number): void;
  /** BAR0..BAR5 (`undefined` where unimplemented). */
  readonly bars: readonly (PciBar | undefined)[];
  /** Where each BAR currently decodes, or `undefined` when unassigned or decoding is off. */
  barAddress(index: number): number | undefined;
  /** Calls `fn` whenever a BAR or the COMMAND register changes what the function decodes. */
  onDecodeChange(fn: () => void): void;
}

/** Identity of a function, written into its configuration header. */
export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  classCode: number; // class << 16 | subclass << 8 | prog-if
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** 1 = INTA# .. 4 = INTD#, 0 = none. */
  interruptPin?: number;
  headerType?: number;
}

/**
 * A 256-byte type-0 configuration space with QEMU-style masks and BAR sizing.
 * Implements {@link PciFunction}; a device model composes one and adds its BARs.
 */
export class PciConfigSpace implements PciFunction {
  readonly bytes = new Uint8Array(256);
  /** Bits the guest may write. */
  readonly wmask = new Uint8Array(256);
  /** Bits the guest clears by writing 1. */
  readonly w1cmask = new Uint8Array(256);
  readonly bars: (PciBar | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  private readonly listeners: (() => void)[] = [];

  constructor(id: PciIdentity) {
    this.setU16(PCI_CONFIG.VENDOR_ID, id.vendorId);
    this.setU16(PCI_CONFIG.DEVICE_ID, id.deviceId);
    this.bytes[PCI_CONFIG.REVISION_ID] = id.revision ?? 0;
    this.bytes[PCI_CONFIG.PROG_IF] = id.classCode & 0xff;
    this.bytes[PCI_CONFIG.SUBCLASS] = (id.classCode >> 8) & 0xff;
    this.bytes[PCI_CONFIG.CLASS] = (id.classCode >> 16) & 0xff;
    this.bytes[PCI_CONFIG.HEADER_TYPE] = id.headerType ?? 0;
    this.setU16(PCI_CONFIG.SUBSYSTEM_VENDOR_ID, id.subsystemVendorId ?? 0);
    this.setU16(PCI_CONFIG.SUBSYSTEM_ID, id.subsystemId ?? 0);
    this.bytes[PCI_CONFIG.INTERRUPT_PIN] = id.interruptPin ?? 0;
    // COMMAND: I/O, memory, bus master, parity, SERR, INTx disable are writable.
    const cmd = PCI_COMMAND.IO | PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER | PCI_COMMAND.PARITY | PCI_COMMAND.SERR | PCI_COMMAND.INTX_DISABLE;
    this.wmask[PCI_CONFIG.COMMAND] = cmd & 0xff;
    this.wmask[PCI_CONFIG.COMMAND + 1] = cmd >> 8;
    // STATUS error bits are RW1C.
    const w1c = PCI_STATUS.SIG_TARGET_ABORT | PCI_STATUS.REC_TARGET_ABORT | PCI_STATUS.REC_MASTER_ABORT | PCI_STATUS.SIG_SYSTEM_ERROR | PCI_STATUS.DETECTED_PARITY;
    this.w1cmask[PCI_CONFIG.STATUS + 1] = w1c >> 8;
    this.wmask[PCI_CONFIG.CACHE_LINE_SIZE] = 0xff;
    this.wmask[PCI_CONFIG.LATENCY_TIMER] = 0xff;
    this.wmask[PCI_CONFIG.INTERRUPT_LINE] = 0xff;
  }

  /** Implements BAR `index` (0-5): its low bits become read-only type bits, its size bits read as zero. */
  setBar(index: number, bar: PciBar): void {
    if (index < 0 || index > 5) throw new RangeError(`BAR index ${index} out of range`);
    const min = bar.kind === "io" ? 4 : 16;
    if (bar.size < min || (bar.size & (bar.size - 1)) !== 0) {
      throw new RangeError(`BAR${index} size ${bar.size} must be a power of two >= ${min}`);
    }
    this.bars[index] = bar;
    const off = PCI_CONFIG.BAR0 + index * 4;
    const type = bar.kind === "io" ? 0x1 : bar.prefetchable ? 0x8 : 0x0;
    this.setU32(off, type);
    const mask = (~(bar.size - 1) & (bar.kind === "io" ? 0xfffffffc : 0xfffffff0)) >>> 0;
    for (let i = 0; i < 4; i++) this.wmask[off + i] = (mask >>> (i * 8)) & 0xff;
  }

  /** Adds a capability list entry: sets STATUS.CAP_LIST and links it at the list head. */
  addCapability(offset: number, id: number, body: Uint8Array, writable?: Uint8Array): void {
    this.bytes[offset] = id;
    this.bytes[offset + 1] = this.bytes[PCI_CONFIG.CAPABILITIES]!;
    this.bytes.set(body, offset + 2);
    if (writable) this.wmask.set(writable, offset + 2);
    this.bytes[PCI_CONFIG.CAPABILITIES] = offset;
    this.bytes[PCI_CONFIG.STATUS] = this.bytes[PCI_CONFIG.STATUS]! | PCI_STATUS.CAP_LIST;
  }

  configRead(offset: number, size: AccessSize): number {
    if (offset < 0 || offset + size > 256) return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.bytes[offset + i]!;
    return v >>> 0;
  }

  configWrite(offset: number, size: AccessSize, value: number): void {
    if (offset < 0 || offset + size > 256) return;
    let decode = false;
    for (let i = 0; i < size; i++) {
      const at = offset + i;
      const b = (value >>> (i * 8)) & 0xff;
      const w = this.wmask[at]!;
      const c = this.w1cmask[at]!;
      const before = this.bytes[at]!;
      const after = ((before & ~w) | (b & w)) & ~(b & c) & 0xff;
      this.bytes[at] = after;
      const isCommand = at === PCI_CONFIG.COMMAND || at === PCI_CONFIG.COMMAND + 1;
      if (before !== after && (isCommand || (at >= PCI_CONFIG.BAR0 && at < PCI_CONFIG.BAR0 + 24))) decode = true;
    }
    if (decode) for (const fn of this.listeners) fn();
  }

  barAddress(index: number): number | undefined {
    const bar = this.bars[index];
    if (bar === undefined) return undefined;
    const cmd = this.bytes[PCI_CONFIG.COMMAND]!;
    if (bar.kind === "io" && (cmd & PCI_COMMAND.IO) === 0) return undefined;
    if (bar.kind === "mem32" && (cmd & PCI_COMMAND.MEMORY) === 0) return undefined;
    const raw = this.configRead(PCI_CONFIG.BAR0 + index * 4, 4);
    const base = (raw & (bar.kind === "io" ? 0xfffffffc : 0xfffffff0)) >>> 0;
    return base === 0 ? undefined : base;
  }

  onDecodeChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Whether the function may master the bus (COMMAND.MASTER): DMA is refused otherwise. */
  get busMaster(): boolean {
    return (this.bytes[PCI_CONFIG.COMMAND]! & PCI_COMMAND.MASTER) !== 0;
  }

  /** Whether INTx is disabled (COMMAND.INTX_DISABLE). */
  get intxDisabled(): boolean {
    return (this.bytes[PCI_CONFIG.COMMAND + 1]! & (PCI_COMMAND.INTX_DISABLE >> 8)) !== 0;
  }

  /** Device-side write that ignores masks (the device setting its own status bits). */
  setU8(offset: number, v: number): void {
    this.bytes[offset] = v & 0xff;
  }
  setU16(offset: number, v: number): void {
    this.bytes[offset] = v & 0xff;
    this.bytes[offset + 1] = (v >> 8) & 0xff;
  }
  setU32(offset: number, v: number): void {
    for (let i = 0; i < 4; i++) this.bytes[offset + i] = (v >>> (i * 8)) & 0xff;
  }
}
