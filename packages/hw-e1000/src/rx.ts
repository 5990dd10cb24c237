/**
 * Receive-side decisions that do not touch the ring: address filtering, long-packet limits,
 * buffer sizes, VLAN filtering and the receive checksum offload.
 *
 * References: [8254x SDM 3.2.1] packet address filtering (exact RA matches with AV, the
 * MTA hash selected by RCTL.MO, UPE/MPE promiscuous modes, BAM), [8254x SDM 3.2.2] buffer
 * size (RCTL.BSIZE/BSEX), [8254x SDM 13.4.22] RCTL, [8254x SDM 3.2.9] receive checksum
 * offload (RXCSUM.IPOFL/TUOFL, status IPCS/TCPCS, errors IPE/TCPE), [8254x SDM 13.5.4] VFTA.
 */
import { RXD_ERR, RXD_STA, internetChecksum, onesSum } from "./descriptors.ts";
import { RAH, RCTL, REG, RXCSUM } from "./registers.ts";

/** How a frame passed the filter, for the statistics. */
export type RxMatch = "unicast" | "multicast" | "broadcast";

/** Register reader the filter uses. */
export type RegRead = (offset: number) => number;

/** Receive buffer size selected by RCTL.BSIZE and RCTL.BSEX [8254x SDM 13.4.22, table 13-67]. */
export function rxBufferSize(rctl: number): number {
  const bsize = (rctl & RCTL.BSIZE_MASK) >>> RCTL.BSIZE_SHIFT;
  if ((rctl & RCTL.BSEX) !== 0) {
    // 01: 16384, 10: 8192, 11: 4096; 00 is reserved (treated as 2048).
    return [2048, 16384, 8192, 4096][bsize]!;
  }
  return [2048, 1024, 512, 256][bsize]!;
}

/** Largest frame accepted (including the 4-byte FCS): 1522 without RCTL.LPE, 16384 with [8254x SDM 13.4.22]. */
export function rxMaxFrame(rctl: number): number {
  return (rctl & RCTL.LPE) !== 0 ? 16384 : 1522;
}

/** The 12-bit MTA hash of a destination address for RCTL.MO [8254x SDM 13.5.1]. */
export function mtaHash(da: Uint8Array, mo: number): number {
  const b4 = da[4]!;
  const b5 = da[5]!;
  switch (mo & 3) {
    case 0:
      return ((b4 >> 4) | (b5 << 4)) & 0xfff; // bits 47:36
    case 1:
      return ((b4 >> 3) | (b5 << 5)) & 0xfff; // bits 46:35
    case 2:
      return ((b4 >> 2) | (b5 << 6)) & 0xfff; // bits 45:34
    default:
      return (b4 | (b5 << 8)) & 0xfff; // bits 43:32
  }
}

/** Whether `da` equals one of the 16 receive addresses marked valid [8254x SDM 13.5.2-13.5.3]. */
export function exactMatch(reg: RegRead, frame: Uint8Array): boolean {
  const lo = (frame[0]! | (frame[1]! << 8) | (frame[2]! << 16) | (frame[3]! << 24)) >>> 0;
  const hi = frame[4]! | (frame[5]! << 8);
  for (let i = 0; i < 16; i++) {
    const rah = reg(REG.RAH0 + i * 8);
    if ((rah & RAH.AV) === 0) continue;
    if ((rah & 0xffff) === hi && reg(REG.RAL0 + i * 8) >>> 0 === lo) return true;
  }
  return false;
}

/**
 * The destination-address filter [8254x SDM 3.2.1]: broadcast with BAM; unicast by exact
 * match or UPE; multicast by exact match, MPE or the MTA hash. Undefined = dropped.
 */
export function addressFilter(reg: RegRead, frame: Uint8Array): RxMatch | undefined {
  const rctl = reg(REG.RCTL);
  const group = (frame[0]! & 1) !== 0;
  const broadcast = group && frame[0] === 0xff && frame[1] === 0xff && frame[2] === 0xff && frame[3] === 0xff && frame[4] === 0xff && frame[5] === 0xff;
  const kind: RxMatch = broadcast ? "broadcast" : group ? "multicast" : "unicast";
  if (broadcast && (rctl & RCTL.BAM) !== 0) return kind;
  if (!group && (rctl & RCTL.UPE) !== 0) return kind;
  if (group && (rctl & RCTL.MPE) !== 0) return kind;
  if (exactMatch(reg, frame)) return kind;
  if (group) {
    const h = mtaHash(frame, (rctl & RCTL.MO_MASK) >>> RCTL.MO_SHIFT);
    if (((reg(REG.MTA + ((h >>> 5) << 2)) >>> (h & 31)) & 1) !== 0) return kind;
  }
  return undefined;
}

/** VLAN filter for 802.1Q frames when RCTL.VFE is set [8254x SDM 3.2.1, 13.5.4]. True = pass. */
export function vlanFilter(reg: RegRead, frame: Uint8Array, vet: number): boolean {
  if ((reg(REG.RCTL) & RCTL.VFE) === 0 || frame.length < 18) return true;
  if (((frame[12]! << 8) | frame[13]!) !== vet) return true;
  const vid = ((frame[14]! << 8) | frame[15]!) & 0xfff;
  return ((reg(REG.VFTA + ((vid >>> 5) << 2)) >>> (vid & 31)) & 1) !== 0;
}

/** Status/error bits and the raw packet checksum for the EOP descriptor [8254x SDM 3.2.9]. */
export interface RxChecksumResult {
  status: number;
  errors: number;
  csum: number;
}

/** Receive checksum offload over an untagged frame (FCS not included). */
export function rxChecksum(rxcsum: number, frame: Uint8Array): RxChecksumResult {
  const pcss = rxcsum & RXCSUM.PCSS_MASK;
  // The packet checksum: one's-complement sum from PCSS to the end [8254x SDM 3.2.3].
  let s = onesSum(frame, Math.min(pcss, frame.length), frame.length);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  const result: RxChecksumResult = { status: 0, errors: 0, csum: s };
  const ipOffload = (rxcsum & RXCSUM.IPOFL) !== 0;
  const l4Offload = (rxcsum & RXCSUM.TUOFL) !== 0;
  if (frame.length < 34 || ((frame[12]! << 8) | frame[13]!) !== 0x0800 || (frame[14]! >> 4) !== 4) {
    result.status |= RXD_STA.IXSM; // not IPv4: nothing checked
    return result;
  }
  const ihl = (frame[14]! & 0xf) * 4;
  const totalLength = (frame[16]! << 8) | frame[17]!;
  if (ihl < 20 || 14 + ihl > frame.length || totalLength < ihl || 14 + totalLength > frame.length) {
    result.status |= RXD_STA.IXSM;
    return result;
  }
  let checked = false;
  if (ipOffload) {
    checked = true;
    result.status |= RXD_STA.IPCS;
    if (internetChecksum(frame, 14, 14 + ihl) !== 0) result.errors |= RXD_ERR.IPE;
  }
  const proto = frame[23]!;
  const fragment = (((frame[20]! << 8) | frame[21]!) & 0x3fff) !== 0; // MF or offset
  if (l4Offload && !fragment && (proto === 6 || proto === 17)) {
    const l4 = 14 + ihl;
    const l4len = totalLength - ihl;
    const udpNoChecksum = proto === 17 && l4len >= 8 && frame[l4 + 6] === 0 && frame[l4 + 7] === 0;
    if (l4len >= (proto === 6 ? 20 : 8) && !udpNoChecksum) {
      checked = true;
      result.status |= RXD_STA.TCPCS;
      let pseudo = onesSum(frame, 26, 34); // source and destination addresses
      pseudo += proto + l4len;
      if (internetChecksum(frame, l4, l4 + l4len, pseudo) !== 0) result.errors |= RXD_ERR.TCPE;
    }
  }
  if (!checked) result.status |= RXD_STA.IXSM;
  return result;
}
