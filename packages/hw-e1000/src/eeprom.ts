/**
 * The 82540EM's 64-word Microwire EEPROM (a 93C46-style part) and its two software paths:
 * bit-banging through EECD and single-word reads through EERD.
 *
 * References: [8254x SDM 5.2] EEPROM address map (words 0-2 MAC, 0x0A-0x0F init and PCI ids,
 * 0x3F checksum so that words 0x00-0x3F sum to 0xBABA), [8254x SDM 5.3] Microwire protocol
 * (start bit + 2-bit opcode, 6 address bits for 64 words, then a dummy 0 and 16 data bits
 * MSB first; sequential reads continue into the next word), [8254x SDM 13.4.3] EECD and
 * [13.4.4] EERD. Image words beyond the MAC follow the one QEMU ships (devices.md §1.3).
 */
import { EECD, EERD } from "./registers.ts";

/** Number of 16-bit words in the 82540EM's EEPROM (EECD.SIZE = 0) [8254x SDM 5.2]. */
export const EEPROM_WORDS = 64;
/** Word that makes the sum of words 0x00-0x3F equal {@link EEPROM_CHECKSUM} [8254x SDM 5.2.1]. */
export const EEPROM_CHECKSUM_WORD = 0x3f;
/** Sum of all 64 words of a valid image [8254x SDM 5.2.1]. */
export const EEPROM_CHECKSUM = 0xbaba;

/** Word addresses [8254x SDM 5.2, table 5-2]. */
export const EEPROM_WORD = {
  MAC0: 0x00,
  MAC1: 0x01,
  MAC2: 0x02,
  INIT_CONTROL1: 0x0a,
  SUBSYSTEM_ID: 0x0b,
  SUBSYSTEM_VENDOR: 0x0c,
  DEVICE_ID: 0x0d,
  VENDOR_ID: 0x0e,
  INIT_CONTROL2: 0x0f,
} as const;

/** Microwire opcodes after the start bit [8254x SDM 5.3.1]. */
const OPCODE_READ = 0b10;

/**
 * Default image (before MAC and checksum): word values of an 82540EM image as QEMU ships it
 * (devices.md §1.3; 0xFFFF = unprogrammed). Words 0x0B/0x0D = device id 0x100E, 0x0C/0x0E = 0x8086.
 */
const TEMPLATE: readonly number[] = [
  0x0000, 0x0000, 0x0000, 0x0000, 0xffff, 0x0000, 0x0000, 0x0000,
  0x3000, 0x1000, 0x6403, 0x100e, 0x8086, 0x100e, 0x8086, 0x3040,
  0x0008, 0x2000, 0x7e14, 0x0048, 0x1000, 0x00d8, 0x0000, 0x2700,
  0x6cc9, 0x3150, 0x0722, 0x040b, 0x0984, 0x0000, 0xc000, 0x0706,
  0x1008, 0x0000, 0x0f04, 0x7fff, 0x4d01, 0xffff, 0xffff, 0xffff,
  0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
  0x0100, 0x4000, 0x121c, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
  0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0x0000,
];

/** Builds a valid 64-word image for `mac`: MAC in words 0-2 (little-endian pairs), checksum in 0x3F. */
export function buildEepromImage(mac: Uint8Array): Uint16Array {
  if (mac.length !== 6) throw new RangeError("MAC address must be 6 bytes");
  const w = Uint16Array.from(TEMPLATE);
  for (let i = 0; i < 3; i++) w[i] = mac[2 * i]! | (mac[2 * i + 1]! << 8);
  let sum = 0;
  for (let i = 0; i < EEPROM_CHECKSUM_WORD; i++) sum = (sum + w[i]!) & 0xffff;
  w[EEPROM_CHECKSUM_WORD] = (EEPROM_CHECKSUM - sum) & 0xffff;
  return w;
}

/** Saved state of the Microwire shift logic. */
export interface EepromState {
  words: number[];
  eecd: number;
  bitsIn: number;
  shiftIn: number;
  reading: boolean;
  address: number;
  bitOut: number;
}

/**
 * The EEPROM chip plus the EECD pins. The EERD path reads the same words instantly
 * (the hardware takes microseconds; drivers poll DONE, which is set at once).
 */
export class Eeprom {
  readonly words: Uint16Array;
  /** Latched software-driven EECD bits: SK, CS, DI, FWE, REQ. */
  private eecd = 0;
  private bitsIn = 0;
  private shiftIn = 0;
  private reading = false;
  private address = 0;
  /** -1: the dummy 0 bit; 0..15: data bit 15-bitOut of the current word. */
  private bitOut = -1;

  constructor(words: Uint16Array) {
    if (words.length !== EEPROM_WORDS) throw new RangeError(`EEPROM image must be ${EEPROM_WORDS} words`);
    this.words = Uint16Array.from(words);
  }

  /** Reads a word (address wraps within the part). */
  word(address: number): number {
    return this.words[address & (EEPROM_WORDS - 1)]!;
  }

  /** EECD as software reads it: PRES, GNT when REQ is held, the latched pins, and DO. */
  readEecd(): number {
    let v = (this.eecd & (EECD.SK | EECD.CS | EECD.DI | EECD.FWE_MASK | EECD.REQ)) | EECD.PRES;
    if ((this.eecd & EECD.REQ) !== 0) v |= EECD.GNT;
    if (this.dataOut()) v |= EECD.DO;
    return v >>> 0;
  }

  /** EECD write: drives CS/SK/DI; a rising SK edge shifts one bit in or out [8254x SDM 5.3]. */
  writeEecd(value: number): void {
    const old = this.eecd;
    this.eecd = value & (EECD.SK | EECD.CS | EECD.DI | EECD.FWE_MASK | EECD.REQ);
    const cs = (this.eecd & EECD.CS) !== 0;
    if (!cs) {
      // Deselected: the part returns to standby and waits for a new start bit.
      this.resetShift();
      return;
    }
    if ((old & EECD.CS) === 0) this.resetShift(); // rising CS starts a new instruction
    const rising = (old & EECD.SK) === 0 && (this.eecd & EECD.SK) !== 0;
    if (!rising) return;
    if (this.reading) {
      this.bitOut++;
      if (this.bitOut === 16) {
        // Sequential read: the next word follows without a new instruction.
        this.bitOut = 0;
        this.address = (this.address + 1) & (EEPROM_WORDS - 1);
      }
      return;
    }
    const di = (this.eecd & EECD.DI) !== 0 ? 1 : 0;
    if (this.bitsIn === 0 && di === 0) return; // leading zeros before the start bit are ignored
    this.shiftIn = (this.shiftIn << 1) | di;
    this.bitsIn++;
    if (this.bitsIn === 9) {
      // start(1) + opcode(2) + address(6)
      const opcode = (this.shiftIn >> 6) & 3;
      if (opcode === OPCODE_READ) {
        this.reading = true;
        this.address = this.shiftIn & 0x3f;
        this.bitOut = -1;
      }
      // Write, erase and the EWEN/EWDS family are not supported: the part stays silent
      // until CS drops (an 82540EM image is written by tools, not by drivers).
    }
  }

  /** EERD read given the last value software wrote [8254x SDM 13.4.4]. */
  eerdRead(written: number): number {
    if ((written & EERD.START) === 0) return written >>> 0;
    const addr = (written & EERD.ADDR_MASK) >>> EERD.ADDR_SHIFT;
    const base = (written & EERD.ADDR_MASK) | EERD.DONE;
    if (addr >= EEPROM_WORDS) return base >>> 0;
    return (base | (this.word(addr) << EERD.DATA_SHIFT)) >>> 0;
  }

  reset(): void {
    this.eecd = 0;
    this.resetShift();
  }

  saveState(): EepromState {
    return {
      words: Array.from(this.words),
      eecd: this.eecd,
      bitsIn: this.bitsIn,
      shiftIn: this.shiftIn,
      reading: this.reading,
      address: this.address,
      bitOut: this.bitOut,
    };
  }

  restoreState(s: EepromState): void {
    if (!Array.isArray(s.words) || s.words.length !== EEPROM_WORDS) throw new TypeError("bad EEPROM state");
    this.words.set(s.words);
    this.eecd = s.eecd;
    this.bitsIn = s.bitsIn;
    this.shiftIn = s.shiftIn;
    this.reading = s.reading;
    this.address = s.address;
    this.bitOut = s.bitOut;
  }

  private resetShift(): void {
    this.bitsIn = 0;
    this.shiftIn = 0;
    this.reading = false;
    this.address = 0;
    this.bitOut = -1;
  }

  private dataOut(): boolean {
    // Idle/standby: DO is pulled high (QEMU reset EECD reads DO=1); during a read: data bits.
    if (!this.reading) return (this.eecd & EECD.CS) === 0 || this.bitsIn < 9;
    if (this.bitOut < 0) return false; // dummy zero
    return ((this.word(this.address) >> (15 - this.bitOut)) & 1) !== 0;
  }
}
