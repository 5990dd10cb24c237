/**
 * Register and command vocabulary of ATA task files and bus-master IDE.
 * References: [ATA8-ACS] ATA/ATAPI Command Set (T13/1699-D), [ATA-6] T13/1410D §7 (register
 * block), [BMIDE] Programming Interface for Bus Master IDE Controller rev 1.0.
 */

/** Command block register offsets from the channel's command base [ATA-6 §7.1]. */
export const ATA_REG = {
  DATA: 0,
  ERROR: 1,
  FEATURES: 1,
  SECTOR_COUNT: 2,
  LBA_LOW: 3,
  LBA_MID: 4,
  LBA_HIGH: 5,
  DEVICE: 6,
  STATUS: 7,
  COMMAND: 7,
} as const;

/** Control block: Alternate Status (read) / Device Control (write) at the control base [ATA-6 §7.3, §7.9]. */
export const ATA_CTL = { ALT_STATUS: 0, DEVICE_CONTROL: 0 } as const;

/** Status register bits [ATA-6 §7.15]. */
export const ATA_SR = { ERR: 0x01, DRQ: 0x08, DF: 0x20, DRDY: 0x40, BSY: 0x80 } as const;

/** Error register bits [ATA8-ACS §6.3]. */
export const ATA_ER = { AMNF: 0x01, ABRT: 0x04, IDNF: 0x10, UNC: 0x40, ICRC: 0x80 } as const;

/** Device Control bits [ATA-6 §7.9]. */
export const ATA_DC = { NIEN: 0x02, SRST: 0x04, HOB: 0x80 } as const;

/** Device register: LBA addressing (bit 6), DEV select (bit 4), obsolete bits 7 and 5 set. */
export const ATA_DEV = { LBA: 0x40, DEV1: 0x10, OBS: 0xa0 } as const;

/** Commands used [ATA8-ACS §7]. */
export const ATA_CMD = {
  READ_SECTORS: 0x20,
  READ_SECTORS_EXT: 0x24,
  READ_DMA_EXT: 0x25,
  WRITE_SECTORS: 0x30,
  WRITE_SECTORS_EXT: 0x34,
  WRITE_DMA_EXT: 0x35,
  READ_DMA: 0xc8,
  WRITE_DMA: 0xca,
  FLUSH_CACHE: 0xe7,
  FLUSH_CACHE_EXT: 0xea,
  IDENTIFY_DEVICE: 0xec,
  SET_FEATURES: 0xef,
} as const;

/** Bus-master IDE registers, per channel at BAR4 + 0 (primary) / + 8 (secondary) [BMIDE §2]. */
export const BM_REG = { COMMAND: 0, STATUS: 2, PRDT: 4, SECONDARY: 8 } as const;
/** Bus-master command bits: start, and direction (1 = device to memory, i.e. a read) [BMIDE §2.1]. */
export const BM_CMD = { START: 0x01, READ: 0x08 } as const;
/** Bus-master status bits: active, error (RW1C), interrupt (RW1C), drive DMA capable [BMIDE §2.2]. */
export const BM_STATUS = { ACTIVE: 0x01, ERROR: 0x02, INTERRUPT: 0x04, DRV0_DMA: 0x20, DRV1_DMA: 0x40 } as const;

/** A PRD entry: u32 physical base, u16 byte count (0 = 64 KiB), bit 15 of the top word = end of table [BMIDE §1.2]. */
export const PRD = { SIZE: 8, EOT: 0x8000, MAX_BYTES: 0x10000 } as const;

/** Legacy ("compatibility mode") channel resources [PCI IDE Controller Spec rev 1.0 §2.1]. */
export const LEGACY_CHANNELS = [
  { command: 0x1f0, control: 0x3f6, irq: 14 },
  { command: 0x170, control: 0x376, irq: 15 },
] as const;

/** PCI class code of a mass-storage IDE controller (prog-if in the low byte). */
export const PCI_CLASS_IDE = 0x0101;
