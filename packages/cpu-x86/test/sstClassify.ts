/**
 * Rules that recognise the documented ways an i386+ differs from the 80286 on the SST real-mode
 * suite. Used only to (re)generate sst-286-differences.json (SST_WRITE_DIFFERENCES=1); the
 * committed list is what the conformance test checks against.
 */
import type { CaseResult } from "./sst.ts";

export const REASONS = {
  lock:
    "LOCK on an instruction that does not accept it (or with a register destination) raises #UD on the i386 and later [SDM Vol.2 LOCK: 'An undefined opcode exception will also be generated if the LOCK prefix is used with any instruction not in the above list']; the 286 ignores it.",
  ssFault:
    "A stack-segment (SS-relative) limit violation in real mode raises #SS (vector 12) on the i386 and later [SDM Vol.2 real-address-mode exceptions: '#SS If a memory operand effective address is outside the SS segment limit']; the 286 raises #13 for every segment overrun.",
  length:
    "Instruction longer than 10 bytes (redundant prefixes): the 286 raises #13, the i386 accepts up to 15 bytes [SDM Vol.2 2.3.11 / conformance README].",
  fsgs:
    "8C/8E with sreg 4/5 encode FS/GS, which exist on the i386 and later; the 286 raises #UD.",
  stringWrap:
    "Word string access at offset 0xFFFF: both CPUs raise #13, but the 286 has already advanced SI/DI by 2; the i386's fault is precise and leaves SI/DI unchanged [SDM Vol.3A 6.5 faults are restartable].",
} as const;

/** The reason key for a failure an i386 is expected to show, or undefined for a real defect. */
export function classify(file: string, r: CaseResult): keyof typeof REASONS | undefined {
  if (/(^| )lock /.test(r.name) && r.raised === 6 && r.expected !== 6) return "lock";
  if (r.raised === 12 && r.expected === 13) return "ssFault";
  if (r.bytes.length - 1 > 10 && r.expected === 13 && r.raised !== 13) return "length";
  const op = file.slice(0, 2);
  if ((op === "8C" || op === "8E") && r.expected === 6) {
    const modrmIdx = r.bytes.findIndex((b) => b === 0x8c || b === 0x8e) + 1;
    const reg = (r.bytes[modrmIdx]! >> 3) & 7;
    if (reg === 4 || reg === 5) return "fsgs";
  }
  if (["A5", "A7", "AB", "AD", "AF", "6D", "6F"].includes(file) && r.raised === 13 && r.expected === 13 && /^((cx|si|di) [^;]*)(; (cx|si|di) [^;]*)*$/.test(r.detail)) {
    return "stringWrap";
  }
  return undefined;
}
