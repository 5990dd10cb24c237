/** Descriptor field decoding. [SDM Vol.3A 3.4.5 Figure 3-8] */

/** Base address from a descriptor's two dwords. [SDM Vol.3A 3.4.5 Figure 3-8] */
export function descBase(lo: number, hi: number): number {
  return ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) | 0;
}

/** Byte-granular limit from a descriptor's two dwords. */
export function descLimit(lo: number, hi: number): number {
  const raw = (lo & 0xffff) | (hi & 0xf0000);
  return (hi & (1 << 23)) !== 0 ? ((raw << 12) | 0xfff) >>> 0 : raw;
}

