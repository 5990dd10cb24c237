/**
 * The network device channel [xen/include/public/io/netif.h], byte for byte. Its structures
 * hold no 64-bit fields, so x86_32 and x86_64 share one layout (the header test checks both).
 *
 * Two rings per queue: TX (front end → back end: `netif_tx_request`, answered by
 * `netif_tx_response`) and RX (front end posts empty buffers as `netif_rx_request`, the
 * back end fills them and answers `netif_rx_response`). A packet on TX is a chain of
 * requests linked by NETTXF_more_data, optionally followed by `netif_extra_info` slots.
 */

/** `netif_tx_request.flags` [netif.h NETTXF_*]. */
export const NETTXF = {
  csum_blank: 1 << 0,
  data_validated: 1 << 1,
  more_data: 1 << 2,
  extra_info: 1 << 3,
} as const;

/** `netif_rx_response.flags` [netif.h NETRXF_*]. */
export const NETRXF = {
  data_validated: 1 << 0,
  csum_blank: 1 << 1,
  more_data: 1 << 2,
  extra_info: 1 << 3,
  gso_prefix: 1 << 4,
} as const;

/** Response status [netif.h NETIF_RSP_*]. */
export const NETIF_RSP = {
  DROPPED: -2,
  ERROR: -1,
  OKAY: 0,
  /** No response: used for auxiliary requests (e.g. netif_extra_info). */
  NULL: 1,
} as const;

/** `netif_extra_info.type` [netif.h XEN_NETIF_EXTRA_TYPE_*]. */
export const XEN_NETIF_EXTRA_TYPE = {
  NONE: 0,
  GSO: 1,
  MCAST_ADD: 2,
  MCAST_DEL: 3,
  HASH: 4,
  MAX: 5,
} as const;

/** `netif_extra_info.flags` [netif.h XEN_NETIF_EXTRA_FLAG_MORE]: another extra slot follows. */
export const XEN_NETIF_EXTRA_FLAG_MORE = 1 << 0;

/** GSO types [netif.h XEN_NETIF_GSO_TYPE_*]. */
export const XEN_NETIF_GSO_TYPE = { NONE: 0, TCPV4: 1, TCPV6: 2 } as const;

/** Minimum number of slots a back end must accept for one packet [netif.h XEN_NETIF_NR_SLOTS_MIN]. */
export const XEN_NETIF_NR_SLOTS_MIN = 18;
/** Largest packet a TX request chain may describe [netif.h XEN_NETIF_MAX_TX_SIZE]. */
export const XEN_NETIF_MAX_TX_SIZE = 0xffff;

/** Structure layouts [netif.h]. */
export const NETIF_TX_REQUEST = { GREF: 0, OFFSET: 4, FLAGS: 6, ID: 8, SIZE_FIELD: 10, SIZE: 12 } as const;
export const NETIF_TX_RESPONSE = { ID: 0, STATUS: 2, SIZE: 4 } as const;
export const NETIF_RX_REQUEST = { ID: 0, GREF: 4, SIZE: 8 } as const;
export const NETIF_RX_RESPONSE = { ID: 0, OFFSET: 2, FLAGS: 4, STATUS: 6, SIZE: 8 } as const;
export const NETIF_EXTRA_INFO = {
  TYPE: 0,
  FLAGS: 1,
  /** u.gso: `uint16_t size; uint8_t type; uint8_t pad; uint16_t features;` */
  GSO_SIZE: 2,
  GSO_TYPE: 4,
  GSO_FEATURES: 6,
  /** u.mcast: `uint8_t addr[6];` */
  MCAST_ADDR: 2,
  /** u.hash: `uint8_t type; uint8_t algorithm; uint8_t value[4];` */
  HASH_TYPE: 2,
  HASH_ALGORITHM: 3,
  HASH_VALUE: 4,
  SIZE: 8,
} as const;

/** Ring strides: each ring's entry is the union of its request and response. */
export const NETIF_TX_ENTRY_SIZE = 12;
export const NETIF_RX_ENTRY_SIZE = 8;

export interface NetifTxRequest {
  gref: number;
  offset: number;
  flags: number;
  id: number;
  /** For the first slot of a packet, the whole packet's size; otherwise this slot's. */
  size: number;
}
export interface NetifTxResponse {
  id: number;
  status: number;
}
export interface NetifRxRequest {
  id: number;
  gref: number;
}
export interface NetifRxResponse {
  id: number;
  offset: number;
  flags: number;
  /** Bytes received (> 0), or a NETIF_RSP_* error (< 0). */
  status: number;
}

export type NetifExtraInfo =
  | { type: typeof XEN_NETIF_EXTRA_TYPE.GSO; flags: number; gsoSize: number; gsoType: number; gsoFeatures: number }
  | { type: typeof XEN_NETIF_EXTRA_TYPE.MCAST_ADD | typeof XEN_NETIF_EXTRA_TYPE.MCAST_DEL; flags: number; addr: Uint8Array }
  | { type: typeof XEN_NETIF_EXTRA_TYPE.HASH; flags: number; hashType: number; algorithm: number; value: number }
  | { type: number; flags: number };

export function encodeNetifTxRequest(v: DataView, off: number, r: NetifTxRequest): void {
  v.setUint32(off + NETIF_TX_REQUEST.GREF, r.gref >>> 0, true);
  v.setUint16(off + NETIF_TX_REQUEST.OFFSET, r.offset, true);
  v.setUint16(off + NETIF_TX_REQUEST.FLAGS, r.flags, true);
  v.setUint16(off + NETIF_TX_REQUEST.ID, r.id, true);
  v.setUint16(off + NETIF_TX_REQUEST.SIZE_FIELD, r.size, true);
}
export function decodeNetifTxRequest(v: DataView, off: number): NetifTxRequest {
  return {
    gref: v.getUint32(off + NETIF_TX_REQUEST.GREF, true),
    offset: v.getUint16(off + NETIF_TX_REQUEST.OFFSET, true),
    flags: v.getUint16(off + NETIF_TX_REQUEST.FLAGS, true),
    id: v.getUint16(off + NETIF_TX_REQUEST.ID, true),
    size: v.getUint16(off + NETIF_TX_REQUEST.SIZE_FIELD, true),
  };
}
export function encodeNetifTxResponse(v: DataView, off: number, r: NetifTxResponse): void {
  v.setUint16(off + NETIF_TX_RESPONSE.ID, r.id, true);
  v.setInt16(off + NETIF_TX_RESPONSE.STATUS, r.status, true);
}
export function decodeNetifTxResponse(v: DataView, off: number): NetifTxResponse {
  return { id: v.getUint16(off + NETIF_TX_RESPONSE.ID, true), status: v.getInt16(off + NETIF_TX_RESPONSE.STATUS, true) };
}
export function encodeNetifRxRequest(v: DataView, off: number, r: NetifRxRequest): void {
  v.setUint16(off + NETIF_RX_REQUEST.ID, r.id, true);
  v.setUint16(off + 2, 0, true);
  v.setUint32(off + NETIF_RX_REQUEST.GREF, r.gref >>> 0, true);
}
export function decodeNetifRxRequest(v: DataView, off: number): NetifRxRequest {
  return { id: v.getUint16(off + NETIF_RX_REQUEST.ID, true), gref: v.getUint32(off + NETIF_RX_REQUEST.GREF, true) };
}
export function encodeNetifRxResponse(v: DataView, off: number, r: NetifRxResponse): void {
  v.setUint16(off + NETIF_RX_RESPONSE.ID, r.id, true);
  v.setUint16(off + NETIF_RX_RESPONSE.OFFSET, r.offset, true);
  v.setUint16(off + NETIF_RX_RESPONSE.FLAGS, r.flags, true);
  v.setInt16(off + NETIF_RX_RESPONSE.STATUS, r.status, true);
}
export function decodeNetifRxResponse(v: DataView, off: number): NetifRxResponse {
  return {
    id: v.getUint16(off + NETIF_RX_RESPONSE.ID, true),
    offset: v.getUint16(off + NETIF_RX_RESPONSE.OFFSET, true),
    flags: v.getUint16(off + NETIF_RX_RESPONSE.FLAGS, true),
    status: v.getInt16(off + NETIF_RX_RESPONSE.STATUS, true),
  };
}

export function encodeNetifExtraInfo(v: DataView, off: number, e: NetifExtraInfo): void {
  for (let i = 0; i < NETIF_EXTRA_INFO.SIZE; i++) v.setUint8(off + i, 0);
  v.setUint8(off + NETIF_EXTRA_INFO.TYPE, e.type);
  v.setUint8(off + NETIF_EXTRA_INFO.FLAGS, e.flags);
  if (e.type === XEN_NETIF_EXTRA_TYPE.GSO && "gsoSize" in e) {
    v.setUint16(off + NETIF_EXTRA_INFO.GSO_SIZE, e.gsoSize, true);
    v.setUint8(off + NETIF_EXTRA_INFO.GSO_TYPE, e.gsoType);
    v.setUint16(off + NETIF_EXTRA_INFO.GSO_FEATURES, e.gsoFeatures, true);
  } else if ("addr" in e) {
    for (let i = 0; i < 6; i++) v.setUint8(off + NETIF_EXTRA_INFO.MCAST_ADDR + i, e.addr[i] ?? 0);
  } else if ("hashType" in e) {
    v.setUint8(off + NETIF_EXTRA_INFO.HASH_TYPE, e.hashType);
    v.setUint8(off + NETIF_EXTRA_INFO.HASH_ALGORITHM, e.algorithm);
    v.setUint32(off + NETIF_EXTRA_INFO.HASH_VALUE, e.value >>> 0, true);
  }
}

/** Decodes an extra-info slot; unknown types decode to `{type, flags}` (the caller rejects them). */
export function decodeNetifExtraInfo(v: DataView, off: number): NetifExtraInfo {
  const type = v.getUint8(off + NETIF_EXTRA_INFO.TYPE);
  const flags = v.getUint8(off + NETIF_EXTRA_INFO.FLAGS);
  switch (type) {
    case XEN_NETIF_EXTRA_TYPE.GSO:
      return {
        type,
        flags,
        gsoSize: v.getUint16(off + NETIF_EXTRA_INFO.GSO_SIZE, true),
        gsoType: v.getUint8(off + NETIF_EXTRA_INFO.GSO_TYPE),
        gsoFeatures: v.getUint16(off + NETIF_EXTRA_INFO.GSO_FEATURES, true),
      };
    case XEN_NETIF_EXTRA_TYPE.MCAST_ADD:
    case XEN_NETIF_EXTRA_TYPE.MCAST_DEL: {
      const addr = new Uint8Array(6);
      for (let i = 0; i < 6; i++) addr[i] = v.getUint8(off + NETIF_EXTRA_INFO.MCAST_ADDR + i);
      return { type, flags, addr };
    }
    case XEN_NETIF_EXTRA_TYPE.HASH:
      return {
        type,
        flags,
        hashType: v.getUint8(off + NETIF_EXTRA_INFO.HASH_TYPE),
        algorithm: v.getUint8(off + NETIF_EXTRA_INFO.HASH_ALGORITHM),
        value: v.getUint32(off + NETIF_EXTRA_INFO.HASH_VALUE, true),
      };
    default:
      return { type, flags };
  }
}
