/**
 * One channel's bus-master IDE engine: Command, Status and Descriptor Table Pointer registers
 * and the PRD walk [BMIDE rev 1.0], with QEMU 7.2's access rules (docs devices.md §2.8).
 */
import type { AccessSize, GuestMemory } from "@paravirt/vm-interfaces";
import type { DmaEngine, DmaPlan } from "./ataDisk.ts";
import { BM_CMD, BM_REG, BM_STATUS, PRD } from "./registers.ts";

/** Saved state of a {@link BusMaster}. */
export interface BusMasterState {
  command: number;
  status: number;
  prdt: number;
}

/**
 * The eight bus-master registers of one channel (BAR4 + 0 or + 8) and the DMA engine a drive
 * uses to move data through guest memory.
 *
 * **Guest-visible behaviour:** Command is byte-wide, only START and READ are stored; setting
 * START sets ACTIVE and lets a waiting drive transfer, clearing it stops the transfer and
 * clears ACTIVE. Status: ACTIVE read-only, ERROR and INTERRUPT write-1-to-clear, the two
 * "drive DMA capable" bits read/write, SIMPLEX 0. Offsets 1 and 3 read 0xFF; wider accesses
 * to offsets 0-3 read all-ones and are dropped (as QEMU). The PRD table pointer takes any width,
 * bits 1:0 read 0. The PRD walk stops at EOT or after 8192 entries (a 64 KiB table).
 */
export class BusMaster implements DmaEngine {
  command = 0;
  status = 0;
  prdt = 0;
  private readonly memory: GuestMemory;
  private readonly canMaster: () => boolean;
  private readonly masterAbort: () => void;
  /** Called when START goes 0 -> 1 and when the PCI function regains bus mastership. */
  onStart: () => void = () => {};
  /** Called when START goes 1 -> 0. */
  onStop: () => void = () => {};

  /**
   * @param memory the guest memory DMA goes to.
   * @param canMaster whether PCI COMMAND.MASTER is set: without it the engine waits.
   * @param masterAbort called when a DMA access hits unmapped memory (received master abort).
   */
  constructor(memory: GuestMemory, canMaster: () => boolean, masterAbort: () => void) {
    this.memory = memory;
    this.canMaster = canMaster;
    this.masterAbort = masterAbort;
  }

  /** Whether START is set and PCI bus mastering enabled, so a transfer may run. */
  get running(): boolean {
    return (this.status & BM_STATUS.ACTIVE) !== 0 && this.canMaster();
  }

  /** Register read at `offset` (0-7) of this channel's block. */
  read(offset: number, size: AccessSize): number {
    if (offset >= BM_REG.PRDT) {
      if (offset - BM_REG.PRDT + size > 4) return ones(size);
      const v = this.prdt >>> ((offset - BM_REG.PRDT) * 8);
      return size === 4 ? v >>> 0 : v & ones(size);
    }
    if (size !== 1) return ones(size);
    if (offset === BM_REG.COMMAND) return this.command;
    if (offset === BM_REG.STATUS) return this.status;
    return 0xff;
  }

  /** Register write at `offset` (0-7) of this channel's block. */
  write(offset: number, size: AccessSize, value: number): void {
    if (offset >= BM_REG.PRDT) {
      const at = offset - BM_REG.PRDT;
      if (at + size > 4) return;
      const mask = size === 4 ? 0xffffffff : ones(size) << (at * 8);
      this.prdt = ((this.prdt & ~mask) | ((value << (at * 8)) & mask) & ~3) >>> 0;
      return;
    }
    if (size !== 1) return;
    if (offset === BM_REG.COMMAND) return this.writeCommand(value & 0xff);
    if (offset === BM_REG.STATUS) {
      const keep = this.status & (BM_STATUS.ACTIVE | ((BM_STATUS.ERROR | BM_STATUS.INTERRUPT) & ~value));
      this.status = keep | (value & (BM_STATUS.DMA0_CAPABLE | BM_STATUS.DMA1_CAPABLE));
    }
  }

  private writeCommand(v: number): void {
    const old = this.command;
    this.command = v & (BM_CMD.START | BM_CMD.READ);
    if ((old & BM_CMD.START) === 0 && (v & BM_CMD.START) !== 0) {
      this.status |= BM_STATUS.ACTIVE;
      this.onStart();
    } else if ((old & BM_CMD.START) !== 0 && (v & BM_CMD.START) === 0) {
      this.status &= ~BM_STATUS.ACTIVE;
      this.onStop();
    }
  }

  /** Sets INTERRUPT: the channel's interrupt line rose [BMIDE rev 1.0 Bus Master IDE Status Register]. */
  interruptEdge(): void {
    this.status |= BM_STATUS.INTERRUPT;
  }

  plan(bytes: number): DmaPlan {
    const segments: { address: number; length: number }[] = [];
    let left = bytes;
    let at = this.prdt;
    let exhausted = true;
    for (let i = 0; i < PRD.MAX_ENTRIES && left > 0; i++, at += PRD.SIZE) {
      const address = (this.memory.readU32(at) & ~1) >>> 0;
      const length = this.memory.readU16(at + 4) & 0xfffe || PRD.MAX_BYTES;
      const eot = (this.memory.readU16(at + 6) & PRD.EOT) !== 0;
      const take = Math.min(length, left);
      segments.push({ address, length: take });
      left -= take;
      if (left === 0) {
        exhausted = eot && take === length;
        break;
      }
      if (eot) break;
    }
    return { segments, total: bytes - left, exhausted };
  }

  view(plan: DmaPlan, writable: boolean): Uint8Array | undefined {
    if (plan.segments.length !== 1 || this.memory.view === undefined) return undefined;
    const s = plan.segments[0]!;
    return this.memory.view(s.address, s.length, writable);
  }

  views(plan: DmaPlan, writable: boolean): Uint8Array[] | undefined {
    const view = this.memory.view;
    if (view === undefined) return undefined;
    const out: Uint8Array[] = [];
    for (const s of plan.segments) {
      const v = view.call(this.memory, s.address, s.length, writable);
      if (v === undefined) return undefined;
      out.push(v);
    }
    return out;
  }

  scatter(plan: DmaPlan, src: Uint8Array): void {
    let off = 0;
    for (const s of plan.segments) {
      this.memory.write(s.address, src.subarray(off, off + s.length));
      off += s.length;
    }
  }

  gather(plan: DmaPlan, dst: Uint8Array): void {
    let off = 0;
    for (const s of plan.segments) {
      this.memory.read(s.address, dst.subarray(off, off + s.length));
      off += s.length;
    }
  }

  endTransfer(clearActive: boolean): void {
    if (clearActive) this.status &= ~BM_STATUS.ACTIVE;
  }

  fault(): void {
    this.status = (this.status & ~BM_STATUS.ACTIVE) | BM_STATUS.ERROR;
    this.masterAbort();
  }

  /** Power-on state: everything zero. */
  reset(): void {
    this.command = 0;
    this.status = 0;
    this.prdt = 0;
  }

  saveState(): BusMasterState {
    return { command: this.command, status: this.status, prdt: this.prdt };
  }

  restoreState(s: BusMasterState): void {
    if (typeof s?.command !== "number" || typeof s.status !== "number" || typeof s.prdt !== "number") {
      throw new TypeError("malformed BusMaster state");
    }
    this.command = s.command & 0x09;
    this.status = s.status & 0x67;
    this.prdt = s.prdt >>> 0;
  }
}

function ones(size: AccessSize): number {
  return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
}
