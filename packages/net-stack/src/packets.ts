/**
 * Ethernet/ARP/IPv4/ICMP/UDP encoding and parsing: the one implementation paravirt's stack
 * (`NetStack`), net-wire's simulated host and the tests share.
 *
 * References: [IEEE 802.3] Ethernet II framing, [RFC 826] ARP, [RFC 791] IPv4,
 * [RFC 792] ICMP echo, [RFC 768] UDP, [RFC 1071] the Internet checksum.
 */

/** EtherType values [IEEE 802 numbers]. */
export const ETHERTYPE = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  IPV6: 0x86dd,
} as const;

/** IP protocol numbers [IANA]. */
export const IP_PROTO = {
  ICMP: 1,
  TCP: 6,
  UDP: 17,
} as const;

/** ARP opcodes [RFC 826]. */
export const ARP_OP = { REQUEST: 1, REPLY: 2 } as const;

/** ICMP types [RFC 792]. */
export const ICMP_TYPE = { ECHO_REPLY: 0, ECHO_REQUEST: 8 } as const;

/** Ethernet broadcast address. */
export const BROADCAST_MAC: Uint8Array = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/** An IPv4 address as 4 bytes. */
export type Ipv4 = Uint8Array;

/** Parses dotted-quad text; throws RangeError on anything else. */
export function parseIpv4(text: string): Ipv4 {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new RangeError(`not an IPv4 address: ${JSON.stringify(text)}`);
  }
  return Uint8Array.from(parts, Number);
}

/** Formats 4 bytes as dotted-quad text. */
export function formatIpv4(ip: Uint8Array): string {
  return Array.from(ip.subarray(0, 4)).join(".");
}

/** Byte-wise equality. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** RFC 1071 checksum of `data[start, end)` with an optional unfolded seed. */
export function inetChecksum(data: Uint8Array, start = 0, end = data.length, seed = 0): number {
  let sum = seed;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (data[i]! << 8) | data[i + 1]!;
  if (i < end) sum += data[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** Unfolded sum of the IPv4 pseudo-header [RFC 768, RFC 793]. */
export function pseudoHeaderSum(src: Ipv4, dst: Ipv4, proto: number, length: number): number {
  return ((src[0]! << 8) | src[1]!) + ((src[2]! << 8) | src[3]!) + ((dst[0]! << 8) | dst[1]!) + ((dst[2]! << 8) | dst[3]!) + proto + length;
}

/** An Ethernet II frame. */
export function ethernetFrame(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst.subarray(0, 6), 0);
  f.set(src.subarray(0, 6), 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

/** An ARP packet for IPv4 over Ethernet [RFC 826]. */
export function arpPacket(op: number, senderMac: Uint8Array, senderIp: Ipv4, targetMac: Uint8Array, targetIp: Ipv4): Uint8Array {
  const p = new Uint8Array(28);
  const dv = new DataView(p.buffer);
  dv.setUint16(0, 1); // hardware type: Ethernet
  dv.setUint16(2, ETHERTYPE.IPV4);
  p[4] = 6;
  p[5] = 4;
  dv.setUint16(6, op);
  p.set(senderMac.subarray(0, 6), 8);
  p.set(senderIp.subarray(0, 4), 14);
  p.set(targetMac.subarray(0, 6), 18);
  p.set(targetIp.subarray(0, 4), 24);
  return p;
}

/** An IPv4 packet (20-byte header, DF clear) with its header checksum. */
export function ipv4Packet(src: Ipv4, dst: Ipv4, proto: number, payload: Uint8Array, opts: { id?: number; ttl?: number } = {}): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, p.length);
  dv.setUint16(4, opts.id ?? 0);
  p[8] = opts.ttl ?? 64;
  p[9] = proto;
  p.set(src.subarray(0, 4), 12);
  p.set(dst.subarray(0, 4), 16);
  dv.setUint16(10, inetChecksum(p, 0, 20));
  p.set(payload, 20);
  return p;
}

/** A UDP datagram with its checksum over the pseudo-header [RFC 768]. */
export function udpDatagram(src: Ipv4, dst: Ipv4, srcPort: number, dstPort: number, payload: Uint8Array): Uint8Array {
  const u = new Uint8Array(8 + payload.length);
  const dv = new DataView(u.buffer);
  dv.setUint16(0, srcPort);
  dv.setUint16(2, dstPort);
  dv.setUint16(4, u.length);
  u.set(payload, 8);
  const c = inetChecksum(u, 0, u.length, pseudoHeaderSum(src, dst, IP_PROTO.UDP, u.length));
  dv.setUint16(6, c === 0 ? 0xffff : c);
  return u;
}

/** An ICMP echo request or reply [RFC 792]. */
export function icmpEcho(type: number, id: number, seq: number, data: Uint8Array): Uint8Array {
  const m = new Uint8Array(8 + data.length);
  const dv = new DataView(m.buffer);
  m[0] = type;
  dv.setUint16(4, id);
  dv.setUint16(6, seq);
  m.set(data, 8);
  dv.setUint16(2, inetChecksum(m));
  return m;
}

/** A parsed IPv4 packet inside an Ethernet frame. */
export interface ParsedIpv4 {
  src: Ipv4;
  dst: Ipv4;
  proto: number;
  ttl: number;
  id: number;
  /** Header checksum is valid. */
  headerOk: boolean;
  /** More-fragments set or a nonzero fragment offset. */
  fragment: boolean;
  /** The payload (a view of the frame). */
  payload: Uint8Array;
}

/** Parses the IPv4 packet at `offset` (14 for an untagged frame); undefined when malformed. */
export function parseIpv4Packet(frame: Uint8Array, offset = 14): ParsedIpv4 | undefined {
  if (frame.length < offset + 20 || frame[offset]! >> 4 !== 4) return undefined;
  const ihl = (frame[offset]! & 0xf) * 4;
  const total = (frame[offset + 2]! << 8) | frame[offset + 3]!;
  if (ihl < 20 || total < ihl || offset + total > frame.length) return undefined;
  const frag = ((frame[offset + 6]! << 8) | frame[offset + 7]!) & 0x3fff;
  return {
    src: frame.slice(offset + 12, offset + 16),
    dst: frame.slice(offset + 16, offset + 20),
    proto: frame[offset + 9]!,
    ttl: frame[offset + 8]!,
    id: (frame[offset + 4]! << 8) | frame[offset + 5]!,
    headerOk: inetChecksum(frame, offset, offset + ihl) === 0,
    fragment: frag !== 0,
    payload: frame.subarray(offset + ihl, offset + total),
  };
}

/** Whether a UDP datagram's checksum is valid (or absent: zero) for the given addresses. */
export function udpChecksumOk(ip: ParsedIpv4): boolean {
  const u = ip.payload;
  if (u.length < 8) return false;
  if (u[6] === 0 && u[7] === 0) return true;
  return inetChecksum(u, 0, u.length, pseudoHeaderSum(ip.src, ip.dst, IP_PROTO.UDP, u.length)) === 0;
}

/** A parsed ARP packet for IPv4 over Ethernet. */
export interface ParsedArp {
  op: number;
  senderMac: Uint8Array;
  senderIp: Ipv4;
  targetMac: Uint8Array;
  targetIp: Ipv4;
}

/** Parses the ARP packet of an Ethernet frame; undefined unless it is IPv4-over-Ethernet ARP [RFC 826]. */
export function parseArp(frame: Uint8Array, offset = 14): ParsedArp | undefined {
  const a = frame.subarray(offset);
  if (a.length < 28) return undefined;
  const htype = (a[0]! << 8) | a[1]!;
  const ptype = (a[2]! << 8) | a[3]!;
  if (htype !== 1 || ptype !== ETHERTYPE.IPV4 || a[4] !== 6 || a[5] !== 4) return undefined;
  return {
    op: (a[6]! << 8) | a[7]!,
    senderMac: a.slice(8, 14),
    senderIp: a.slice(14, 18),
    targetMac: a.slice(18, 24),
    targetIp: a.slice(24, 28),
  };
}
