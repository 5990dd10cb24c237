/**
 * Reading the 82540EM's EEPROM: through EERD (one word per START/DONE handshake
 * [8254x SDM 13.4.4]) or, where EERD does not answer, by bit-banging the Microwire part
 * through EECD (REQ/GNT arbitration, CS, SK, DI, DO [8254x SDM 13.4.3, 5.3]). The image is
 * valid when words 0x00-0x3F sum to 0xBABA [8254x SDM 5.2.1].
 */
import type { MmioWindow } from "@paravirt/vm-interfaces";
import { E1000_REG, EECD, EEPROM, EERD, MICROWIRE_READ } from "./registers.ts";

/** How the words were read. */
export type EepromAccess = "eerd" | "microwire";

/** What {@link readEeprom} found. */
export interface EepromImage {
  readonly words: Uint16Array;
  readonly access: EepromAccess;
  /** Sum of words 0x00-0x3F (0xBABA when valid). */
  readonly sum: number;
  readonly checksumValid: boolean;
}

/** A delay in virtual time. */
export type Sleep = (ns: number) => Promise<void>;

/** EERD polls: DONE normally appears within a few microseconds [8254x SDM 13.4.4]. */
const EERD_POLLS = 100;
const EERD_POLL_NS = 5_000;
/** GNT polls after REQ [8254x SDM 13.4.3: software must wait for GNT]. */
const GNT_POLLS = 100;
const GNT_POLL_NS = 5_000;

/** Reads one word through EERD; undefined when DONE never appears. */
export async function eerdRead(regs: MmioWindow, address: number, sleep: Sleep): Promise<number | undefined> {
  regs.writel(E1000_REG.EERD, ((address << EERD.ADDR_SHIFT) | EERD.START) >>> 0);
  for (let i = 0; i < EERD_POLLS; i++) {
    const v = regs.readl(E1000_REG.EERD);
    if ((v & EERD.DONE) !== 0) {
      regs.writel(E1000_REG.EERD, 0);
      return v >>> EERD.DATA_SHIFT;
    }
    await sleep(EERD_POLL_NS);
  }
  regs.writel(E1000_REG.EERD, 0);
  return undefined;
}

/**
 * Microwire bit-banging [8254x SDM 5.3]: request the interface, raise CS, clock out the
 * start bit + READ opcode and the address (6 bits on a 64-word part, 8 on a 256-word one),
 * then clock in 16 data bits per word, most significant first; sequential reads continue
 * into the following words while CS stays up. Returns undefined when GNT never comes.
 */
export async function microwireRead(regs: MmioWindow, first: number, count: number, sleep: Sleep): Promise<Uint16Array | undefined> {
  let eecd = regs.readl(E1000_REG.EECD);
  const addressBits = (eecd & EECD.SIZE) !== 0 ? 8 : 6;
  eecd |= EECD.REQ;
  regs.writel(E1000_REG.EECD, eecd);
  let granted = false;
  for (let i = 0; i < GNT_POLLS; i++) {
    if ((regs.readl(E1000_REG.EECD) & EECD.GNT) !== 0) {
      granted = true;
      break;
    }
    await sleep(GNT_POLL_NS);
  }
  if (!granted) {
    regs.writel(E1000_REG.EECD, eecd & ~EECD.REQ);
    return undefined;
  }
  // Standby: SK and DI low, then select the part.
  eecd &= ~(EECD.SK | EECD.DI | EECD.CS);
  regs.writel(E1000_REG.EECD, eecd);
  eecd |= EECD.CS;
  regs.writel(E1000_REG.EECD, eecd);
  const clock = (value: number) => {
    regs.writel(E1000_REG.EECD, value | EECD.SK);
    regs.writel(E1000_REG.EECD, value);
  };
  const shiftOut = (value: number, bits: number) => {
    for (let b = bits - 1; b >= 0; b--) {
      eecd = ((value >>> b) & 1) !== 0 ? eecd | EECD.DI : eecd & ~EECD.DI;
      regs.writel(E1000_REG.EECD, eecd);
      clock(eecd);
    }
    eecd &= ~EECD.DI;
    regs.writel(E1000_REG.EECD, eecd);
  };
  shiftOut(MICROWIRE_READ, 3);
  shiftOut(first, addressBits);
  const out = new Uint16Array(count);
  for (let w = 0; w < count; w++) {
    let word = 0;
    for (let b = 0; b < 16; b++) {
      regs.writel(E1000_REG.EECD, eecd | EECD.SK);
      word = (word << 1) | ((regs.readl(E1000_REG.EECD) & EECD.DO) !== 0 ? 1 : 0);
      regs.writel(E1000_REG.EECD, eecd);
    }
    out[w] = word;
  }
  // Deselect and release the interface.
  eecd &= ~(EECD.CS | EECD.SK | EECD.DI);
  regs.writel(E1000_REG.EECD, eecd);
  regs.writel(E1000_REG.EECD, eecd & ~EECD.REQ);
  return out;
}

/** Sum of words 0x00..0x3F, 16-bit [8254x SDM 5.2.1]. */
export function eepromSum(words: Uint16Array): number {
  let sum = 0;
  for (let i = 0; i <= EEPROM.CHECKSUM_WORD; i++) sum = (sum + (words[i] ?? 0)) & 0xffff;
  return sum;
}

/**
 * Reads the 64 words software uses: through EERD unless `prefer` says "microwire" or EERD
 * does not complete, then by bit-banging. Undefined when neither path answers.
 */
export async function readEeprom(regs: MmioWindow, sleep: Sleep, prefer: "auto" | EepromAccess = "auto"): Promise<EepromImage | undefined> {
  const n = EEPROM.WORDS_SMALL;
  let words: Uint16Array | undefined;
  let access: EepromAccess = "eerd";
  if (prefer !== "microwire") {
    const w = new Uint16Array(n);
    let ok = true;
    for (let i = 0; i < n; i++) {
      const v = await eerdRead(regs, i, sleep);
      if (v === undefined) {
        ok = false;
        break;
      }
      w[i] = v;
    }
    if (ok) words = w;
  }
  if (words === undefined && prefer !== "eerd") {
    access = "microwire";
    words = await microwireRead(regs, 0, n, sleep);
  }
  if (words === undefined) return undefined;
  const sum = eepromSum(words);
  return { words, access, sum, checksumValid: sum === EEPROM.CHECKSUM };
}

/** The station address in words 0-2, low byte first [8254x SDM 5.2, table 5-2]. */
export function macFromEeprom(words: Uint16Array): Uint8Array {
  const mac = new Uint8Array(6);
  for (let i = 0; i < 3; i++) {
    const w = words[EEPROM.MAC0 + i]!;
    mac[2 * i] = w & 0xff;
    mac[2 * i + 1] = w >>> 8;
  }
  return mac;
}
