/**
 * Descriptor layouts (16 bytes each, little-endian) and Internet checksum helpers.
 *
 * References: [8254x SDM 3.2.3] legacy receive descriptor, [8254x SDM 3.3.2] legacy transmit
 * descriptor, [8254x SDM 3.3.6] TCP/IP context descriptor, [8254x SDM 3.3.7] TCP/IP data
 * descriptor, [RFC 1071] the Internet checksum.
 */

/** Every descriptor is 16 bytes [8254x SDM 3.2.3, 3.3]. */
export const DESC_SIZE = 16;

/** Legacy receive descriptor fields [8254x SDM 3.2.3, table 3-1]. */
export const RXD = {
  ADDR: 0, // u64 buffer address
  LENGTH: 8, // u16
  CSUM: 10, // u16 packet checksum
  STATUS: 12, // u8
  ERRORS: 13, // u8
  SPECIAL: 14, // u16 VLAN tag
} as const;

/** Receive status bits [8254x SDM 3.2.3.1, table 3-2]. */
export const RXD_STA = {
  DD: 1 << 0, // descriptor done
  EOP: 1 << 1, // end of packet
  IXSM: 1 << 2, // ignore checksum indication
  VP: 1 << 3, // packet is 802.1Q (tag stripped)
  TCPCS: 1 << 5, // TCP/UDP checksum calculated
  IPCS: 1 << 6, // IP checksum calculated
  PIF: 1 << 7, // passed in-exact filter
} as const;

/** Receive error bits [8254x SDM 3.2.3.2, table 3-3]. */
export const RXD_ERR = {
  CE: 1 << 0,
  SE: 1 << 1,
  SEQ: 1 << 2,
  CXE: 1 << 4,
  TCPE: 1 << 5, // TCP/UDP checksum error
  IPE: 1 << 6, // IP checksum error
  RXE: 1 << 7,
} as const;

/** Legacy transmit descriptor fields [8254x SDM 3.3.2, table 3-8]. */
export const TXD = {
  ADDR: 0, // u64 buffer address
  LENGTH: 8, // u16 (legacy) / u32 bits 19:0 with DTYP and DCMD (data)
  CSO: 10, // u8 checksum offset (legacy)
  CMD: 11, // u8
  STATUS: 12, // u8 (low nibble)
  CSS: 13, // u8 checksum start (legacy) / POPTS (data)
  SPECIAL: 14, // u16 VLAN tag
} as const;

/** Transmit CMD / DCMD bits [8254x SDM 3.3.3, table 3-10; 3.3.7.1]. */
export const TXD_CMD = {
  EOP: 1 << 0, // end of packet
  IFCS: 1 << 1, // insert FCS
  IC: 1 << 2, // insert checksum (legacy)
  TSE: 1 << 2, // TCP segmentation enable (data descriptor)
  RS: 1 << 3, // report status
  RPS: 1 << 4, // report packet sent (82544 only; treated as RS)
  DEXT: 1 << 5, // extension: context or data descriptor
  VLE: 1 << 6, // VLAN packet enable
  IDE: 1 << 7, // interrupt delay enable
} as const;

/** Transmit status bits [8254x SDM 3.3.3.2]. */
export const TXD_STA = {
  DD: 1 << 0,
  EC: 1 << 1,
  LC: 1 << 2,
  TU: 1 << 3,
} as const;

/** DTYP values in bits 23:20 of dword 2 of an extended descriptor [8254x SDM 3.3.6, 3.3.7]. */
export const DTYP = {
  CONTEXT: 0x0,
  DATA: 0x1,
} as const;

/** TCP/IP context descriptor fields [8254x SDM 3.3.6, table 3-12]. */
export const CTXD = {
  IPCSS: 0, // u8 IP checksum start
  IPCSO: 1, // u8 IP checksum offset
  IPCSE: 2, // u16 IP checksum end (inclusive; 0 = end of packet)
  TUCSS: 4, // u8 TCP/UDP checksum start
  TUCSO: 5, // u8 TCP/UDP checksum offset
  TUCSE: 6, // u16 TCP/UDP checksum end (inclusive; 0 = end of packet)
  PAYLEN: 8, // u32 bits 19:0, DTYP 23:20, TUCMD 31:24
  TUCMD: 11,
  STA: 12, // u8
  HDRLEN: 13, // u8
  MSS: 14, // u16
} as const;

/** Context TUCMD bits [8254x SDM 3.3.6.1, table 3-13]. */
export const TUCMD = {
  TCP: 1 << 0, // 1 = TCP, 0 = UDP
  IP: 1 << 1, // 1 = IPv4, 0 = IPv6
  TSE: 1 << 2, // TCP segmentation enable
  RS: 1 << 3,
  DEXT: 1 << 5,
  IDE: 1 << 7,
} as const;

/** Data descriptor POPTS bits (byte 13) [8254x SDM 3.3.7.2, table 3-17]. */
export const POPTS = {
  IXSM: 1 << 0, // insert IP checksum
  TXSM: 1 << 1, // insert TCP/UDP checksum
} as const;

/** One's-complement 16-bit sum of `data[start, end)` added to `seed` (not folded, not inverted). */
export function onesSum(data: Uint8Array, start: number, end: number, seed = 0): number {
  let sum = seed;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  return sum;
}

/** Folds a 32-bit-ish sum into 16 bits with end-around carry. */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The Internet checksum (RFC 1071) of `data[start, end)`, seeded: `~fold(seed + sum)`. */
export function internetChecksum(data: Uint8Array, start: number, end: number, seed = 0): number {
  return ~foldSum(onesSum(data, start, end, seed)) & 0xffff;
}

/** Ethernet FCS (IEEE 802.3 CRC-32, reflected, as transmitted least significant byte first). */
export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
