/**
 * Transmit checksum offload: finding the IPv4 and TCP/UDP headers of an outgoing frame and
 * the fields of the TCP/IP context descriptor that tell the MAC where the checksums start,
 * end and go [8254x SDM 3.3.6, table 3-12], plus the pseudo-header sum the driver seeds the
 * TCP/UDP checksum field with (the MAC sums from TUCSS to TUCSE over whatever the field
 * holds [8254x SDM 3.3.6, 3.3.7; RFC 793 §3.1, RFC 768]).
 */

/** Where the checksums of one frame start, end and go (byte offsets from the frame start). */
export interface ChecksumContext {
  /** IPCSS: first byte of the IPv4 header. */
  readonly ipcss: number;
  /** IPCSO: the header checksum field. */
  readonly ipcso: number;
  /** IPCSE: last byte of the IPv4 header (inclusive). */
  readonly ipcse: number;
  /** TUCSS: first byte of the TCP/UDP header. */
  readonly tucss: number;
  /** TUCSO: the TCP/UDP checksum field. */
  readonly tucso: number;
  /** TUCSE: last byte of the IP datagram (inclusive) when Ethernet padding follows it, else 0 (end of packet). */
  readonly tucse: number;
  readonly protocol: "tcp" | "udp";
  /** Folded (not inverted) pseudo-header sum: source, destination, protocol, TCP/UDP length. */
  readonly seed: number;
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_VLAN = 0x8100; // [IEEE 802.1Q]
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** One's-complement 16-bit sum of big-endian words in `[start, end)`, unfolded. */
function sum16(data: Uint8Array, start: number, end: number, seed = 0): number {
  let s = seed;
  let i = start;
  for (; i + 1 < end; i += 2) s += (data[i]! << 8) | data[i + 1]!;
  if (i < end) s += data[i]! << 8;
  return s;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/**
 * The checksum context of an Ethernet II (optionally 802.1Q-tagged) IPv4 TCP or UDP frame;
 * `undefined` for anything else (other protocols, IP options that overrun the frame,
 * fragments, truncated headers), which is then sent with its checksums as they are.
 */
export function checksumContext(frame: Uint8Array): ChecksumContext | undefined {
  if (frame.length < 14) return undefined;
  let l3 = 14;
  let type = (frame[12]! << 8) | frame[13]!;
  if (type === ETHERTYPE_VLAN) {
    if (frame.length < 18) return undefined;
    type = (frame[16]! << 8) | frame[17]!;
    l3 = 18;
  }
  if (type !== ETHERTYPE_IPV4 || frame.length < l3 + 20) return undefined;
  if (frame[l3]! >> 4 !== 4) return undefined;
  const ihl = (frame[l3]! & 0xf) * 4;
  const total = (frame[l3 + 2]! << 8) | frame[l3 + 3]!;
  const fragment = (((frame[l3 + 6]! << 8) | frame[l3 + 7]!) & 0x3fff) !== 0; // MF or an offset [RFC 791]
  const proto = frame[l3 + 9]!;
  if (ihl < 20 || total < ihl || l3 + total > frame.length || fragment) return undefined;
  // IPCSS/TUCSS/TUCSO are 8-bit fields [8254x SDM 3.3.6].
  const tucss = l3 + ihl;
  const l4len = total - ihl;
  let tucso: number;
  if (proto === IPPROTO_TCP && l4len >= 20) tucso = tucss + 16; // [RFC 793 §3.1]
  else if (proto === IPPROTO_UDP && l4len >= 8) tucso = tucss + 6; // [RFC 768]
  else return undefined;
  if (tucso + 2 > 0xff) return undefined;
  const seed = fold(sum16(frame, l3 + 12, l3 + 20, proto + l4len));
  return {
    ipcss: l3,
    ipcso: l3 + 10,
    ipcse: l3 + ihl - 1,
    tucss,
    tucso,
    tucse: l3 + total === frame.length ? 0 : l3 + total - 1,
    protocol: proto === IPPROTO_TCP ? "tcp" : "udp",
    seed,
  };
}

/**
 * Prepares the driver's copy of the headers for the MAC: IPv4 header checksum zeroed (the MAC
 * sums the header including the field), TCP/UDP checksum field seeded with the pseudo-header
 * sum. `header` holds at least the bytes up to TUCSO + 2.
 */
export function seedHeaders(header: Uint8Array, ctx: ChecksumContext): void {
  header[ctx.ipcso] = 0;
  header[ctx.ipcso + 1] = 0;
  header[ctx.tucso] = ctx.seed >> 8;
  header[ctx.tucso + 1] = ctx.seed & 0xff;
}

/** A key identifying the context descriptor's contents, to skip reloading an identical context. */
export function contextKey(ctx: ChecksumContext): string {
  return `${ctx.ipcss}/${ctx.ipcso}/${ctx.ipcse}/${ctx.tucss}/${ctx.tucso}/${ctx.tucse}/${ctx.protocol}`;
}
