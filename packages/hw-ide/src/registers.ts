/**
 * ATA task-file, bus-master IDE and PIIX constants.
 *
 * References:
 * - [ATA/ATAPI-6] T13/1410D rev. 3b, AT Attachment with Packet Interface - 6: §7 (register
 *   descriptions), §9 (protocols: PIO data-in/out, DMA, non-data, device reset).
 * - [ATA8-ACS] T13/1699-D rev. 3f, ATA/ATAPI Command Set: §7 (commands, cited by command name),
 *   the IDENTIFY DEVICE data table.
 * - [BMIDE rev 1.0] Programming Interface for Bus Master IDE Controller, rev. 1.0 (5/16/94):
 *   Physical Region Descriptor and bus-master register descriptions (cited by name).
 * - [PIIX] Intel 82371SB PIIX3 / 82371AB PIIX4 datasheets: IDE function configuration space.
 * - [QEMU] QEMU 7.2 hw/ide/{core,piix,pci}.c behaviour as recorded in docs devices.md §2.
 */

/** Command block register offsets from the command block base (0x1F0 / 0x170) [ATA/ATAPI-6 §7]. */
export const ATA_REG = {
  DATA: 0, // [ATA/ATAPI-6 §7 Data register] 16-bit PIO data (PIIX also decodes 32-bit)
  ERROR: 1, // [ATA/ATAPI-6 §7 Error register] (read)
  FEATURES: 1, // [ATA/ATAPI-6 §7 Features register] (write)
  SECTOR_COUNT: 2, // [ATA/ATAPI-6 §7 Sector Count register]
  LBA_LOW: 3, // [ATA/ATAPI-6 §7 LBA Low register] (sector number in CHS)
  LBA_MID: 4, // [ATA/ATAPI-6 §7 LBA Mid register] (cylinder low)
  LBA_HIGH: 5, // [ATA/ATAPI-6 §7 LBA High register] (cylinder high)
  DEVICE: 6, // [ATA/ATAPI-6 §7 Device register] (device/head)
  STATUS: 7, // [ATA/ATAPI-6 §7 Status register] (read; clears INTRQ)
  COMMAND: 7, // [ATA/ATAPI-6 §7 Command register] (write)
} as const;

/** Control block register offset from the control block base (0x3F6 / 0x376) [ATA/ATAPI-6 §7]. */
export const ATA_CTL_REG = {
  ALT_STATUS: 0, // [ATA/ATAPI-6 §7 Alternate Status register] (read; no side effect)
  DEVICE_CONTROL: 0, // [ATA/ATAPI-6 §7 Device Control register] (write)
} as const;

/** Status register bits [ATA/ATAPI-6 §7 Status register]. */
export const ATA_STATUS = {
  ERR: 0x01, // error (CHK for packet devices)
  IDX: 0x02, // obsolete index
  CORR: 0x04, // obsolete corrected data
  DRQ: 0x08, // data request
  DSC: 0x10, // device seek complete (obsolete in ATA-6, SERV for queued commands); QEMU sets it with DRDY
  DF: 0x20, // device fault
  DRDY: 0x40, // device ready
  BSY: 0x80, // busy
} as const;

/** Error register bits [ATA8-ACS Error field description]. */
export const ATA_ERROR = {
  /** Diagnostic code "device 0 passed, device 1 passed or not present" [ATA8-ACS EXECUTE DEVICE DIAGNOSTIC, diagnostic codes]. */
  DIAG_PASSED: 0x01,
  AMNF: 0x01, // obsolete address mark not found
  ABRT: 0x04, // command aborted
  MCR: 0x08, // media change request (removable)
  IDNF: 0x10, // ID not found: the address is outside the device
  MC: 0x20, // media changed (removable)
  UNC: 0x40, // uncorrectable data error
  ICRC: 0x80, // interface CRC error (Ultra DMA)
} as const;

/** Device Control register bits [ATA/ATAPI-6 §7 Device Control register]. */
export const ATA_DEVCTL = {
  NIEN: 0x02, // interrupt disable: INTRQ released (high impedance) while set
  SRST: 0x04, // software reset of both devices
  HOB: 0x80, // high-order byte: reads return the previous (HOB) register contents
} as const;

/** Device register bits [ATA/ATAPI-6 §7 Device register]. */
export const ATA_DEVICE = {
  HEAD: 0x0f, // CHS head, or LBA bits 27:24 for 28-bit commands
  DEV: 0x10, // selects device 1
  LBA: 0x40, // LBA (not CHS) addressing
  OBSOLETE: 0xa0, // bits 7 and 5, obsolete, read as one on QEMU
} as const;

/** Command opcodes [ATA8-ACS §7, by command name; older opcodes from ATA/ATAPI-6 §8]. */
export const ATA_CMD = {
  NOP: 0x00, // [ATA8-ACS NOP] always aborts (subcommand 0)
  DATA_SET_MANAGEMENT: 0x06, // [ATA8-ACS DATA SET MANAGEMENT] TRIM (features bit 0) by DMA
  DEVICE_RESET: 0x08, // [ATA8-ACS DEVICE RESET] packet devices only
  RECALIBRATE: 0x10, // [ATA-4 RECALIBRATE] obsolete; 0x10-0x1F
  READ_SECTORS: 0x20, // [ATA8-ACS READ SECTORS]
  READ_SECTORS_NORETRY: 0x21, // [ATA/ATAPI-6 §8] obsolete "without retry" form of 0x20
  READ_SECTORS_EXT: 0x24, // [ATA8-ACS READ SECTORS EXT]
  READ_DMA_EXT: 0x25, // [ATA8-ACS READ DMA EXT]
  READ_NATIVE_MAX_ADDRESS_EXT: 0x27, // [ATA8-ACS READ NATIVE MAX ADDRESS EXT]
  READ_MULTIPLE_EXT: 0x29, // [ATA8-ACS READ MULTIPLE EXT]
  WRITE_SECTORS: 0x30, // [ATA8-ACS WRITE SECTORS]
  WRITE_SECTORS_NORETRY: 0x31, // [ATA/ATAPI-6 §8] obsolete "without retry" form of 0x30
  WRITE_SECTORS_EXT: 0x34, // [ATA8-ACS WRITE SECTORS EXT]
  WRITE_DMA_EXT: 0x35, // [ATA8-ACS WRITE DMA EXT]
  WRITE_MULTIPLE_EXT: 0x39, // [ATA8-ACS WRITE MULTIPLE EXT]
  WRITE_VERIFY: 0x3c, // [ATA-4 WRITE VERIFY] obsolete; handled as WRITE SECTORS
  READ_VERIFY_SECTORS: 0x40, // [ATA8-ACS READ VERIFY SECTORS]
  READ_VERIFY_SECTORS_NORETRY: 0x41, // [ATA/ATAPI-6 §8] obsolete form of 0x40
  READ_VERIFY_SECTORS_EXT: 0x42, // [ATA8-ACS READ VERIFY SECTORS EXT]
  SEEK: 0x70, // [ATA/ATAPI-6 SEEK] 0x70-0x7F
  EXECUTE_DEVICE_DIAGNOSTIC: 0x90, // [ATA8-ACS EXECUTE DEVICE DIAGNOSTIC]
  INITIALIZE_DEVICE_PARAMETERS: 0x91, // [ATA/ATAPI-6 INITIALIZE DEVICE PARAMETERS] obsolete in ATA8
  STANDBY_IMMEDIATE_OLD: 0x94, // [ATA-3] obsolete opcode of STANDBY IMMEDIATE
  IDLE_IMMEDIATE_OLD: 0x95, // [ATA-3] obsolete opcode of IDLE IMMEDIATE
  STANDBY_OLD: 0x96, // [ATA-3] obsolete opcode of STANDBY
  IDLE_OLD: 0x97, // [ATA-3] obsolete opcode of IDLE
  CHECK_POWER_MODE_OLD: 0x98, // [ATA-3] obsolete opcode of CHECK POWER MODE
  SLEEP_OLD: 0x99, // [ATA-3] obsolete opcode of SLEEP
  PACKET: 0xa0, // [ATA8-ACS PACKET] packet devices only
  IDENTIFY_PACKET_DEVICE: 0xa1, // [ATA8-ACS IDENTIFY PACKET DEVICE] packet devices only
  SMART: 0xb0, // [ATA8-ACS SMART] (not implemented: aborts)
  READ_MULTIPLE: 0xc4, // [ATA8-ACS READ MULTIPLE]
  WRITE_MULTIPLE: 0xc5, // [ATA8-ACS WRITE MULTIPLE]
  SET_MULTIPLE_MODE: 0xc6, // [ATA8-ACS SET MULTIPLE MODE]
  READ_DMA: 0xc8, // [ATA8-ACS READ DMA]
  READ_DMA_NORETRY: 0xc9, // [ATA/ATAPI-6 §8] obsolete form of 0xC8
  WRITE_DMA: 0xca, // [ATA8-ACS WRITE DMA]
  WRITE_DMA_NORETRY: 0xcb, // [ATA/ATAPI-6 §8] obsolete form of 0xCA
  STANDBY_IMMEDIATE: 0xe0, // [ATA8-ACS STANDBY IMMEDIATE]
  IDLE_IMMEDIATE: 0xe1, // [ATA8-ACS IDLE IMMEDIATE]
  STANDBY: 0xe2, // [ATA8-ACS STANDBY]
  IDLE: 0xe3, // [ATA8-ACS IDLE]
  CHECK_POWER_MODE: 0xe5, // [ATA8-ACS CHECK POWER MODE]
  SLEEP: 0xe6, // [ATA8-ACS SLEEP]
  FLUSH_CACHE: 0xe7, // [ATA8-ACS FLUSH CACHE]
  FLUSH_CACHE_EXT: 0xea, // [ATA8-ACS FLUSH CACHE EXT]
  IDENTIFY_DEVICE: 0xec, // [ATA8-ACS IDENTIFY DEVICE]
  SET_FEATURES: 0xef, // [ATA8-ACS SET FEATURES]
  READ_NATIVE_MAX_ADDRESS: 0xf8, // [ATA8-ACS READ NATIVE MAX ADDRESS]
} as const;

/** SET FEATURES subcommands in the Features register [ATA8-ACS SET FEATURES, subcommand codes]. */
export const ATA_SETFEATURES = {
  ENABLE_WRITE_CACHE: 0x02,
  SET_TRANSFER_MODE: 0x03,
  DISABLE_REVERT_TO_DEFAULTS: 0x66,
  DISABLE_WRITE_CACHE: 0x82,
  DISABLE_READ_LOOK_AHEAD: 0x55,
  ENABLE_READ_LOOK_AHEAD: 0xaa,
  ENABLE_REVERT_TO_DEFAULTS: 0xcc,
} as const;

/** SET TRANSFER MODE values in the Sector Count register [ATA8-ACS SET FEATURES, transfer mode values]. */
export const ATA_XFER = {
  PIO_DEFAULT: 0x00, // PIO default mode
  PIO_DEFAULT_NO_IORDY: 0x01, // PIO default mode, disable IORDY
  PIO_FLOW: 0x08, // 0x08 | n: PIO flow-control mode n
  MWDMA: 0x20, // 0x20 | n: multiword DMA mode n
  UDMA: 0x40, // 0x40 | n: Ultra DMA mode n
} as const;

/** CHECK POWER MODE results in the Sector Count register [ATA8-ACS CHECK POWER MODE]. */
export const ATA_POWER = {
  STANDBY: 0x00,
  IDLE: 0x80,
  ACTIVE_OR_IDLE: 0xff,
} as const;

/** Bus-master IDE register offsets from a channel's base (BMIBA + 0 / + 8) [BMIDE rev 1.0 register layout]. */
export const BM_REG = {
  COMMAND: 0, // [BMIDE rev 1.0 Bus Master IDE Command Register] Bus Master IDE Command register (byte)
  STATUS: 2, // [BMIDE rev 1.0 Bus Master IDE Status Register] Bus Master IDE Status register (byte)
  PRDT: 4, // [BMIDE rev 1.0 Descriptor Table Pointer Register] Descriptor Table Pointer register (dword)
  /** Offset of the secondary channel's registers [BMIDE rev 1.0 register layout]. */
  SECONDARY: 8,
} as const;

/** Bus Master IDE Command register bits [BMIDE rev 1.0 Bus Master IDE Command Register]. */
export const BM_CMD = {
  START: 0x01, // start/stop bus master
  READ: 0x08, // direction: 1 = bus master writes memory (device-to-memory, a disk read)
} as const;

/** Bus Master IDE Status register bits [BMIDE rev 1.0 Bus Master IDE Status Register]. */
export const BM_STATUS = {
  ACTIVE: 0x01, // bus master IDE active (read-only)
  ERROR: 0x02, // error transferring to/from memory (write 1 to clear)
  INTERRUPT: 0x04, // set on the rising edge of the channel's IDE interrupt line (write 1 to clear)
  DMA0_CAPABLE: 0x20, // drive 0 DMA capable (software-set)
  DMA1_CAPABLE: 0x40, // drive 1 DMA capable (software-set)
  SIMPLEX: 0x80, // simplex only (read-only, 0 on PIIX)
} as const;

/** Physical Region Descriptor fields [BMIDE rev 1.0 Physical Region Descriptor]. */
export const PRD = {
  SIZE: 8, // bytes per entry: u32 base address, u16 byte count (0 = 64 KiB), u16 flags
  EOT: 0x8000, // flags bit 15: end of table
  /** Largest region of one entry (a byte count of 0). */
  MAX_BYTES: 0x10000,
  /** The table must not cross a 64 KiB boundary, so at most 8192 entries are walked. */
  MAX_ENTRIES: 0x10000 / 8,
} as const;

/** PIIX IDE function identity [PIIX 82371SB/82371AB datasheets; QEMU piix3-ide / piix4-ide]. */
export const PIIX = {
  VENDOR_INTEL: 0x8086,
  DEVICE_PIIX3_IDE: 0x7010, // 82371SB PIIX3 IDE
  DEVICE_PIIX4_IDE: 0x7111, // 82371AB/EB/MB PIIX4 IDE
  /** Class 01h (mass storage), subclass 01h (IDE), prog-if 80h (bus master, both channels legacy). */
  CLASS_CODE: 0x010180,
  /** BAR4: bus-master IDE base address (BMIBA), 16 I/O ports. */
  BMIBA_BAR: 4,
  BMIBA_SIZE: 16,
  /** Timing registers IDETIM (0x40, 0x42), SIDETIM (0x44), UDMACTL/UDMATIM (0x48, 0x4A on PIIX4). */
  TIMING_REGS: 0x40,
} as const;

/** Legacy (compatibility-mode) channel resources [ATA/ATAPI-6 Annex, PC-AT convention; PIIX]. */
export const LEGACY = {
  PRIMARY_CMD: 0x1f0,
  PRIMARY_CTL: 0x3f6,
  PRIMARY_IRQ: 14,
  SECONDARY_CMD: 0x170,
  SECONDARY_CTL: 0x376,
  SECONDARY_IRQ: 15,
  CMD_LENGTH: 8,
  CTL_LENGTH: 1,
} as const;
