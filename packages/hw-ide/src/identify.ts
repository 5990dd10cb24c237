/**
 * IDENTIFY DEVICE data: 256 words describing an ATA disk [ATA8-ACS IDENTIFY DEVICE data],
 * with the values QEMU 7.2 reports where ATA8-ACS leaves a choice (docs devices.md §2.5).
 *
 * Unlike QEMU, the block is rebuilt from the drive's current settings every time, so word 59
 * follows SET MULTIPLE MODE and words 54-58 follow INITIALIZE DEVICE PARAMETERS.
 */

/** A CHS translation. */
export interface Chs {
  readonly cylinders: number;
  readonly heads: number;
  readonly sectorsPerTrack: number;
}

/** The selected transfer mode [ATA8-ACS SET FEATURES, transfer mode values]. */
export type TransferMode = { readonly kind: "pio" | "mwdma" | "udma"; readonly mode: number };

/** Everything the identify block is computed from. */
export interface IdentifyParams {
  readonly model: string;
  readonly serial: string;
  readonly firmware: string;
  /** Capacity in logical sectors. */
  readonly sectors: number;
  readonly sectorSize: number;
  readonly physicalSectorSize: number;
  /** The default translation (words 1, 3, 6). */
  readonly defaultChs: Chs;
  /** The current translation (words 54-58). */
  readonly currentChs: Chs;
  /** Largest READ/WRITE MULTIPLE block (word 47). */
  readonly maxMultiple: number;
  /** Current multiple setting, 0 = disabled (word 59). */
  readonly multiple: number;
  readonly writeCache: boolean;
  readonly lookAhead: boolean;
  readonly transferMode: TransferMode;
  /** DATA SET MANAGEMENT payload limit in 512-byte blocks when TRIM is offered, else 0 (words 105, 169). */
  readonly trimBlocks?: number;
}

/** Word numbers [ATA8-ACS IDENTIFY DEVICE data]. */
export const ID_WORD = {
  GENERAL_CONFIG: 0, // bit 15 = 0: ATA device
  CYLINDERS: 1, // obsolete: default cylinders
  HEADS: 3, // obsolete: default heads
  SECTORS_PER_TRACK: 6, // obsolete: default sectors per track
  SERIAL: 10, // 20 ATA-string characters
  FIRMWARE: 23, // 8 characters
  MODEL: 27, // 40 characters
  MAX_MULTIPLE: 47, // bits 7:0 maximum sectors per DRQ block of READ/WRITE MULTIPLE; bits 15:8 = 80h
  DWORD_IO: 48, // ATA-1: dword I/O supported (QEMU sets 1)
  CAPABILITIES: 49, // bit 9 LBA, bit 8 DMA, bit 11 IORDY
  CAPABILITIES2: 50, // bit 14 shall be one
  PIO_TIMING: 51, // obsolete PIO timing mode
  VALIDITY: 53, // bit 0: words 54-58, bit 1: words 64-70, bit 2: word 88
  CUR_CYLINDERS: 54,
  CUR_HEADS: 55,
  CUR_SECTORS: 56,
  CUR_CAPACITY: 57, // 2 words
  MULTIPLE: 59, // bit 8 = valid, bits 7:0 = current multiple setting
  LBA28_CAPACITY: 60, // 2 words
  MWDMA: 63, // bits 2:0 supported, bits 10:8 selected
  PIO_MODES: 64, // bits 1:0: PIO 3 and 4 supported
  MIN_MWDMA_CYCLE: 65,
  REC_MWDMA_CYCLE: 66,
  MIN_PIO_CYCLE: 67,
  MIN_PIO_IORDY_CYCLE: 68,
  MAJOR_VERSION: 80,
  MINOR_VERSION: 81,
  SUPPORTED1: 82, // command set supported
  SUPPORTED2: 83,
  SUPPORTED3: 84, // command set/feature supported extension
  ENABLED1: 85, // command set enabled
  ENABLED2: 86,
  ENABLED3: 87, // command set/feature default
  UDMA: 88, // bits 6:0 supported, bits 14:8 selected
  HW_RESET_RESULT: 93,
  LBA48_CAPACITY: 100, // 4 words
  DSM_MAX_BLOCKS: 105, // maximum 512-byte blocks of LBA range entries per DATA SET MANAGEMENT
  SECTOR_SIZE_INFO: 106, // physical/logical sector size
  LOGICAL_SECTOR_SIZE: 117, // 2 words, in words, when word 106 bit 12
  DSM_SUPPORT: 169, // bit 0: TRIM supported
  INTEGRITY: 255, // bits 7:0 = A5h, bits 15:8 = checksum
} as const;

/** Feature bits of words 82-87 [ATA8-ACS IDENTIFY DEVICE data]. */
export const ID_FEATURE = {
  // word 82 / 85
  POWER_MANAGEMENT: 1 << 3,
  WRITE_CACHE: 1 << 5,
  LOOK_AHEAD: 1 << 6,
  NOP: 1 << 14,
  // word 83 / 86
  LBA48: 1 << 10,
  FLUSH_CACHE: 1 << 12,
  FLUSH_CACHE_EXT: 1 << 13,
  // words 83, 84, 87: bit 14 shall be one, bit 15 zero
  VALID: 1 << 14,
} as const;

const MAX_UDMA = 5;
const MAX_MWDMA = 2;

/** Writes `s` as an ATA string (two characters a word, first in the high byte, space padded). */
export function putAtaString(words: Uint16Array, start: number, chars: number, s: string): void {
  const padded = s.padEnd(chars, " ").slice(0, chars);
  for (let i = 0; i < chars; i += 2) {
    words[start + i / 2] = ((padded.charCodeAt(i) & 0xff) << 8) | (padded.charCodeAt(i + 1) & 0xff);
  }
}

/** Reads an ATA string back (for tests and tools). */
export function getAtaString(words: Uint16Array, start: number, chars: number): string {
  let s = "";
  for (let i = 0; i < chars / 2; i++) s += String.fromCharCode(words[start + i]! >> 8, words[start + i]! & 0xff);
  return s;
}

/** The default translation: 16 heads, 63 sectors per track [ATA/ATAPI-6 Annex; QEMU hd_geometry_guess]. */
export function defaultChs(sectors: number): Chs {
  const cylinders = Math.max(1, Math.min(16383, Math.floor(sectors / (16 * 63))));
  return { cylinders, heads: 16, sectorsPerTrack: 63 };
}

/** The translation INITIALIZE DEVICE PARAMETERS selects: cylinders follow from capacity. */
export function translatedChs(sectors: number, heads: number, sectorsPerTrack: number): Chs {
  const limit = Math.min(sectors, 16514064); // CHS addressing covers at most 16383*16*63 sectors
  const cylinders = Math.max(1, Math.min(65535, Math.floor(limit / (heads * sectorsPerTrack))));
  return { cylinders, heads, sectorsPerTrack };
}

/** Builds the 256 IDENTIFY DEVICE words. */
export function identifyDevice(p: IdentifyParams): Uint16Array {
  const w = new Uint16Array(256);
  w[ID_WORD.GENERAL_CONFIG] = 0x0040; // fixed device (obsolete bit 6), as QEMU
  w[ID_WORD.CYLINDERS] = p.defaultChs.cylinders;
  w[ID_WORD.HEADS] = p.defaultChs.heads;
  w[ID_WORD.SECTORS_PER_TRACK] = p.defaultChs.sectorsPerTrack;
  // Retired words 4, 5 (unformatted bytes per track / sector) and 20-22 (buffer type and size,
  // ECC bytes) as QEMU fills them; no driver reads them.
  w[4] = 512 * p.defaultChs.sectorsPerTrack;
  w[5] = 512;
  w[20] = 3;
  w[21] = 512;
  w[22] = 4;
  putAtaString(w, ID_WORD.SERIAL, 20, p.serial);
  putAtaString(w, ID_WORD.FIRMWARE, 8, p.firmware);
  putAtaString(w, ID_WORD.MODEL, 40, p.model);
  w[ID_WORD.MAX_MULTIPLE] = 0x8000 | p.maxMultiple;
  w[ID_WORD.DWORD_IO] = 0x0001;
  w[ID_WORD.CAPABILITIES] = (1 << 11) | (1 << 9) | (1 << 8); // IORDY, LBA, DMA
  w[ID_WORD.CAPABILITIES2] = 1 << 14;
  w[ID_WORD.PIO_TIMING] = 0x0200;
  w[52] = 0x0200; // obsolete DMA timing mode
  w[ID_WORD.VALIDITY] = 0x0007;
  const cur = p.currentChs;
  const curCapacity = Math.min(cur.cylinders * cur.heads * cur.sectorsPerTrack, 0xffffffff);
  w[ID_WORD.CUR_CYLINDERS] = cur.cylinders;
  w[ID_WORD.CUR_HEADS] = cur.heads;
  w[ID_WORD.CUR_SECTORS] = cur.sectorsPerTrack;
  w[ID_WORD.CUR_CAPACITY] = curCapacity & 0xffff;
  w[ID_WORD.CUR_CAPACITY + 1] = curCapacity >>> 16;
  w[ID_WORD.MULTIPLE] = 0x0100 | p.multiple;
  const lba28 = Math.min(p.sectors, 0x0fffffff);
  w[ID_WORD.LBA28_CAPACITY] = lba28 & 0xffff;
  w[ID_WORD.LBA28_CAPACITY + 1] = lba28 >>> 16;
  const tm = p.transferMode;
  w[ID_WORD.MWDMA] = ((1 << (MAX_MWDMA + 1)) - 1) | (tm.kind === "mwdma" ? 0x100 << tm.mode : 0);
  w[ID_WORD.PIO_MODES] = 0x0003;
  w[ID_WORD.MIN_MWDMA_CYCLE] = 120;
  w[ID_WORD.REC_MWDMA_CYCLE] = 120;
  w[ID_WORD.MIN_PIO_CYCLE] = 120;
  w[ID_WORD.MIN_PIO_IORDY_CYCLE] = 120;
  w[ID_WORD.MAJOR_VERSION] = 0x00f0; // ATA-4 .. ATA/ATAPI-7, as QEMU
  w[ID_WORD.MINOR_VERSION] = 0x0016;
  const f82 = ID_FEATURE.NOP | ID_FEATURE.LOOK_AHEAD | ID_FEATURE.WRITE_CACHE | ID_FEATURE.POWER_MANAGEMENT;
  const f83 = ID_FEATURE.VALID | ID_FEATURE.FLUSH_CACHE_EXT | ID_FEATURE.FLUSH_CACHE | ID_FEATURE.LBA48;
  w[ID_WORD.SUPPORTED1] = f82;
  w[ID_WORD.SUPPORTED2] = f83;
  w[ID_WORD.SUPPORTED3] = ID_FEATURE.VALID;
  w[ID_WORD.ENABLED1] =
    ID_FEATURE.NOP | ID_FEATURE.POWER_MANAGEMENT | (p.writeCache ? ID_FEATURE.WRITE_CACHE : 0) | (p.lookAhead ? ID_FEATURE.LOOK_AHEAD : 0);
  w[ID_WORD.ENABLED2] = ID_FEATURE.FLUSH_CACHE_EXT | ID_FEATURE.FLUSH_CACHE | ID_FEATURE.LBA48; // bit 14 of word 86 is reserved
  w[ID_WORD.ENABLED3] = ID_FEATURE.VALID;
  w[ID_WORD.UDMA] = ((1 << (MAX_UDMA + 1)) - 1) | (tm.kind === "udma" ? 0x100 << tm.mode : 0);
  w[ID_WORD.HW_RESET_RESULT] = 0x6001;
  let cap = p.sectors;
  for (let i = 0; i < 4; i++) {
    w[ID_WORD.LBA48_CAPACITY + i] = cap % 0x10000;
    cap = Math.floor(cap / 0x10000);
  }
  if ((p.trimBlocks ?? 0) > 0) {
    w[ID_WORD.DSM_MAX_BLOCKS] = p.trimBlocks!;
    w[ID_WORD.DSM_SUPPORT] = 0x0001;
  }
  let sizeInfo = 1 << 14; // word valid
  const ratio = p.physicalSectorSize / p.sectorSize;
  if (ratio > 1) sizeInfo |= (1 << 13) | Math.log2(ratio);
  if (p.sectorSize > 512) {
    sizeInfo |= 1 << 12;
    const wordsPerSector = p.sectorSize / 2;
    w[ID_WORD.LOGICAL_SECTOR_SIZE] = wordsPerSector & 0xffff;
    w[ID_WORD.LOGICAL_SECTOR_SIZE + 1] = wordsPerSector >>> 16;
  }
  w[ID_WORD.SECTOR_SIZE_INFO] = sizeInfo;
  // Integrity word [ATA8-ACS IDENTIFY DEVICE data, word 255]: signature A5h, and a checksum making the
  // byte sum of the 512 bytes zero (QEMU leaves the word 0, which means "not supported").
  w[ID_WORD.INTEGRITY] = 0x00a5;
  let sum = 0;
  for (let i = 0; i < 255; i++) sum += (w[i]! & 0xff) + (w[i]! >> 8);
  sum += 0xa5;
  w[ID_WORD.INTEGRITY] = 0x00a5 | (((256 - (sum & 0xff)) & 0xff) << 8);
  return w;
}

/** The words as the 512 bytes the data port delivers (little-endian words). */
export function identifyBytes(words: Uint16Array): Uint8Array {
  const b = new Uint8Array(512);
  for (let i = 0; i < 256; i++) {
    b[2 * i] = words[i]! & 0xff;
    b[2 * i + 1] = words[i]! >> 8;
  }
  return b;
}
