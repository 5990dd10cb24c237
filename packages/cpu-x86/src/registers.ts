/**
 * Architectural constants of the i386/i686 as the emulator uses them.
 *
 * References: [SDM] Intel 64 and IA-32 Architectures Software Developer's Manual, Vol. 3A
 * (system programming) and Vol. 1/2 (basic architecture, instruction set).
 */

/** General-purpose register numbers, in ModRM encoding order. [SDM Vol.2 2.1.5 Table 2-1] */
export const REG = { EAX: 0, ECX: 1, EDX: 2, EBX: 3, ESP: 4, EBP: 5, ESI: 6, EDI: 7 } as const;

/** Segment register numbers, in ModRM sreg encoding order. [SDM Vol.2 3.1.1.3 "Sreg"] */
export const SEG = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5 } as const;

/** EFLAGS bits. [SDM Vol.1 3.4.3 Figure 3-8] */
export const FLAG = {
  CF: 1 << 0,
  /** Bit 1 always reads as 1. */
  ONE: 1 << 1,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  IOPL: 3 << 12,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
  AC: 1 << 18,
  VIF: 1 << 19,
  VIP: 1 << 20,
  ID: 1 << 21,
} as const;

/** The six arithmetic status flags. */
export const ARITH_FLAGS = FLAG.CF | FLAG.PF | FLAG.AF | FLAG.ZF | FLAG.SF | FLAG.OF;

/** CR0 bits. [SDM Vol.3A 2.5 Figure 2-7] */
export const CR0 = {
  PE: 1 << 0,
  MP: 1 << 1,
  EM: 1 << 2,
  TS: 1 << 3,
  ET: 1 << 4,
  NE: 1 << 5,
  WP: 1 << 16,
  AM: 1 << 18,
  NW: 1 << 29,
  CD: 1 << 30,
  PG: 1 << 31,
} as const;

/** CR4 bits. [SDM Vol.3A 2.5 Figure 2-7] */
export const CR4 = {
  VME: 1 << 0,
  PVI: 1 << 1,
  TSD: 1 << 2,
  DE: 1 << 3,
  PSE: 1 << 4,
  PAE: 1 << 5,
  MCE: 1 << 6,
  PGE: 1 << 7,
  PCE: 1 << 8,
  OSFXSR: 1 << 9,
  OSXMMEXCPT: 1 << 10,
} as const;

/** Exception vectors. [SDM Vol.3A 6.3.1 Table 6-1] */
export const EXC = {
  DE: 0,
  DB: 1,
  NMI: 2,
  BP: 3,
  OF: 4,
  BR: 5,
  UD: 6,
  NM: 7,
  DF: 8,
  TS: 10,
  NP: 11,
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
} as const;

/** Page-table entry bits (2-level and PAE). [SDM Vol.3A 4.3 Table 4-6, 4.4.2 Table 4-11] */
export const PTE = {
  P: 1 << 0,
  RW: 1 << 1,
  US: 1 << 2,
  PWT: 1 << 3,
  PCD: 1 << 4,
  A: 1 << 5,
  D: 1 << 6,
  PS: 1 << 7,
  G: 1 << 8,
  /** Execute-disable: bit 63, i.e. bit 31 of the high dword. [SDM Vol.3A 4.4.2] */
  XD_HI: 1 << 31,
} as const;

/** Page-fault error-code bits. [SDM Vol.3A 4.7 Figure 4-12] */
export const PFEC = { P: 1, W: 2, U: 4, RSVD: 8, I: 16 } as const;

/** Model-specific registers the CPU implements. [SDM Vol.4 Table 2-2] */
export const MSR = {
  TSC: 0x10,
  APIC_BASE: 0x1b,
  SYSENTER_CS: 0x174,
  SYSENTER_ESP: 0x175,
  SYSENTER_EIP: 0x176,
  MISC_ENABLE: 0x1a0,
  PAT: 0x277,
  EFER: 0xc0000080,
} as const;

/** EFER bits. [SDM Vol.4 Table 2-2 IA32_EFER] */
export const EFER = { SCE: 1 << 0, LME: 1 << 8, LMA: 1 << 10, NXE: 1 << 11 } as const;

/**
 * System-descriptor types (S=0). [SDM Vol.3A 3.5 Table 3-2]
 */
export const SYS_DESC = {
  TSS16_AVAIL: 1,
  LDT: 2,
  TSS16_BUSY: 3,
  CALL_GATE16: 4,
  TASK_GATE: 5,
  INT_GATE16: 6,
  TRAP_GATE16: 7,
  TSS32_AVAIL: 9,
  TSS32_BUSY: 11,
  CALL_GATE32: 12,
  INT_GATE32: 14,
  TRAP_GATE32: 15,
} as const;
