/**
 * Parsing the 256-word IDENTIFY DEVICE block [ATA8-ACS §7.16, table 22].
 */

export interface AtaIdentity {
  model: string;
  serial: string;
  firmware: string;
  /** Addressable sectors (LBA48 words 100-103 when supported, else words 60-61). */
  sectors: number;
  lba48: boolean;
  /** Logical sector size in bytes (words 106, 117-118; 512 unless reported otherwise). */
  sectorSize: number;
  /** FLUSH CACHE supported (word 83 bit 12 / word 82 bit 12 cache), FLUSH CACHE EXT (word 83 bit 13). */
  flushCache: boolean;
  flushCacheExt: boolean;
  /** Volatile write cache present (word 82 bit 5) and enabled (word 85 bit 5). */
  writeCache: boolean;
  /** Multiword DMA modes supported (word 63 low byte) and UDMA modes (word 88 low byte). */
  mwdmaModes: number;
  udmaModes: number;
  /** DMA supported (word 49 bit 8). */
  dma: boolean;
}

/** ATA strings are byte-swapped within each word and space-padded [ATA8-ACS §3.4.9]. */
function ataString(words: Uint16Array, first: number, count: number): string {
  let s = "";
  for (let i = first; i < first + count; i++) s += String.fromCharCode(words[i]! >> 8, words[i]! & 0xff);
  return s.replace(/\0/g, " ").trim();
}

export function parseIdentify(words: Uint16Array): AtaIdentity {
  const lba48 = (words[83]! & (1 << 10)) !== 0 && (words[86]! & (1 << 10)) !== 0;
  const sectors48 = words[100]! + words[101]! * 0x10000 + words[102]! * 0x1_0000_0000 + words[103]! * 0x1_0000_0000_0000;
  const sectors28 = words[60]! + words[61]! * 0x10000;
  const w106 = words[106]!;
  const largeLogical = (w106 & 0xc000) === 0x4000 && (w106 & (1 << 12)) !== 0;
  const sectorSize = largeLogical ? (words[117]! + words[118]! * 0x10000) * 2 : 512;
  return {
    model: ataString(words, 27, 20),
    serial: ataString(words, 10, 10),
    firmware: ataString(words, 23, 4),
    sectors: lba48 && sectors48 > 0 ? sectors48 : sectors28,
    lba48,
    sectorSize,
    flushCache: (words[83]! & (1 << 12)) !== 0,
    flushCacheExt: (words[83]! & (1 << 13)) !== 0,
    writeCache: (words[82]! & (1 << 5)) !== 0,
    mwdmaModes: words[63]! & 0xff,
    udmaModes: words[88]! & 0xff,
    dma: (words[49]! & (1 << 8)) !== 0,
  };
}
