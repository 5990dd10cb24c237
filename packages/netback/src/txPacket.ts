/**
 * Reading one packet off the TX ring [io/netif.h "Guest transmit"]: a first request whose
 * `size` is the whole packet's, optional `netif_extra_info` slots (NETTXF_extra_info, chained
 * by XEN_NETIF_EXTRA_FLAG_MORE), then fragment requests while NETTXF_more_data is set.
 * Every field is checked; nothing here throws on what the front end wrote.
 */
import {
  NETTXF, XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_EXTRA_TYPE, XEN_NETIF_GSO_TYPE, XEN_NETIF_NR_SLOTS_MIN,
  decodeNetifExtraInfo, decodeNetifTxRequest, type BackRing, type NetifExtraInfo, type NetifTxRequest,
} from "@paravirt/device-channel";
import { PAGE_SIZE } from "@paravirt/vm-interfaces";

/** Smallest frame a front end may send: an Ethernet header. */
export const ETH_HLEN = 14;

export interface TxPacket {
  /** Data slots in order; `size` of slot 0 is rewritten to the bytes it carries itself. */
  slots: NetifTxRequest[];
  /** Ring slots taken by extra-info, answered with NETIF_RSP_NULL after slot 0's response. */
  extraSlots: number;
  extras: NetifExtraInfo[];
  /** Total packet length. */
  length: number;
  /** Why the packet is dropped (answered NETIF_RSP_ERROR), if it is. */
  error: string | undefined;
}

/**
 * Counts the ring slots the next packet occupies without consuming anything, so a packet that
 * is only partly published is left for later. Returns 0 when fewer than one whole packet is
 * available within `available` slots (or the chain is longer than any valid packet: then the
 * caller takes it anyway, capped, and drops it).
 */
export function peekPacketSlots(ring: BackRing, available: number): number {
  /** Longest chain taken as one packet: more is consumed as a dropped packet piece by piece. */
  const cap = XEN_NETIF_NR_SLOTS_MIN + XEN_NETIF_EXTRA_TYPE.MAX + 1;
  if (available < 1) return 0;
  const first = decodeNetifTxRequest(ring.view, ring.slot(ring.reqCons));
  let used = 1;
  // Walks one more slot of the chain; false when the chain is not fully published yet.
  const next = (): number | undefined => (used >= available ? undefined : ring.slot((ring.reqCons + used++) >>> 0));
  let inExtras = (first.flags & NETTXF.extra_info) !== 0;
  while (inExtras) {
    if (used >= cap) return cap;
    const at = next();
    if (at === undefined) return 0;
    inExtras = (decodeNetifExtraInfo(ring.view, at).flags & XEN_NETIF_EXTRA_FLAG_MORE) !== 0;
  }
  let more = (first.flags & NETTXF.more_data) !== 0;
  while (more) {
    if (used >= cap) return cap;
    const at = next();
    if (at === undefined) return 0;
    more = (decodeNetifTxRequest(ring.view, at).flags & NETTXF.more_data) !== 0;
  }
  return used;
}

/** Consumes `count` slots (from {@link peekPacketSlots}) and validates them as one packet. */
export function takePacket(ring: BackRing, count: number): TxPacket {
  const slots: NetifTxRequest[] = [];
  const extras: NetifExtraInfo[] = [];
  let extraSlots = 0;
  let error: string | undefined;
  const first = decodeNetifTxRequest(ring.view, ring.takeRequest()!);
  slots.push(first);
  let taken = 1;
  if ((first.flags & NETTXF.extra_info) !== 0) {
    while (taken < count) {
      const e = decodeNetifExtraInfo(ring.view, ring.takeRequest()!);
      taken++;
      extraSlots++;
      extras.push(e);
      if ((e.flags & XEN_NETIF_EXTRA_FLAG_MORE) === 0) break;
    }
  }
  while (taken < count) {
    slots.push(decodeNetifTxRequest(ring.view, ring.takeRequest()!));
    taken++;
  }
  const length = first.size;
  if ((slots[slots.length - 1]!.flags & NETTXF.more_data) !== 0) error = "packet chain longer than any valid packet";
  else if (slots.length > XEN_NETIF_NR_SLOTS_MIN) error = `${slots.length} slots (max ${XEN_NETIF_NR_SLOTS_MIN})`;
  else if (length < ETH_HLEN) error = `packet of ${length} bytes is shorter than an Ethernet header`;
  if (error === undefined) {
    let rest = 0;
    for (let i = 1; i < slots.length; i++) rest += slots[i]!.size;
    if (rest > length) error = `fragments (${rest} bytes) exceed the packet size ${length}`;
    else if (rest > 0) slots[0] = { ...first, size: length - rest };
  }
  if (error === undefined) {
    for (const s of slots) {
      if (s.offset + s.size > PAGE_SIZE) {
        error = `slot crosses a page boundary (offset ${s.offset} + size ${s.size})`;
        break;
      }
    }
  }
  if (error === undefined) {
    for (const e of extras) {
      if (e.type === XEN_NETIF_EXTRA_TYPE.GSO && "gsoSize" in e) {
        if (e.gsoSize === 0 || (e.gsoType !== XEN_NETIF_GSO_TYPE.TCPV4 && e.gsoType !== XEN_NETIF_GSO_TYPE.TCPV6)) {
          error = `bad GSO extra (size ${e.gsoSize}, type ${e.gsoType})`;
        }
      } else if (e.type !== XEN_NETIF_EXTRA_TYPE.MCAST_ADD && e.type !== XEN_NETIF_EXTRA_TYPE.MCAST_DEL && e.type !== XEN_NETIF_EXTRA_TYPE.HASH) {
        error = `unknown extra-info type ${e.type}`;
      }
      if (error) break;
    }
  }
  return { slots, extraSlots, extras, length, error };
}
