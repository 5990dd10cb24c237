/**
 * The xenstore wire protocol [xen/include/public/io/xs_wire.h, docs/misc/xenstore.txt]:
 * messages `struct xsd_sockmsg { u32 type, req_id, tx_id, len; }` followed by `len` payload
 * bytes (NUL-separated strings), carried over the byte rings of
 * `struct xenstore_domain_interface` in the domain's xenstore page.
 */
import { ByteRing, type ByteRingLayout } from "./byteRing.ts";

/** Message types [xs_wire.h `enum xsd_sockmsg_type`]. */
export const XS = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
  TYPE_COUNT: 23,
  INVALID: 0xffff,
} as const;

/** `struct xsd_sockmsg` layout. */
export const XSD_SOCKMSG = {
  TYPE: 0,
  REQ_ID: 4,
  TX_ID: 8,
  LEN: 12,
  SIZE: 16,
} as const;

/** `struct xenstore_domain_interface` layout. */
export const XENSTORE_DOMAIN_INTERFACE = {
  REQ: 0,
  RSP: 1024,
  REQ_CONS: 2048,
  REQ_PROD: 2052,
  RSP_CONS: 2056,
  RSP_PROD: 2060,
  SERVER_FEATURES: 2064,
  CONNECTION: 2068,
  ERROR: 2072,
  SIZE: 2076,
} as const;

export const XENSTORE_RING_SIZE = 1024;
/** Largest payload a message may carry ("Violating this is very bad"). */
export const XENSTORE_PAYLOAD_MAX = 4096;
export const XENSTORE_ABS_PATH_MAX = 3072;
export const XENSTORE_REL_PATH_MAX = 2048;
export const XENSTORE_SERVER_FEATURE = { RECONNECTION: 1, ERROR: 2 } as const;
export const XENSTORE_CONNECTION = { CONNECTED: 0, RECONNECT: 1 } as const;
export const XENSTORE_ERROR = { NONE: 0, COMM: 1, RINGIDX: 2, PROTO: 3 } as const;

/** Requests: guest → xenstored. */
export const XENSTORE_REQ_RING: ByteRingLayout = {
  data: XENSTORE_DOMAIN_INTERFACE.REQ,
  size: XENSTORE_RING_SIZE,
  cons: XENSTORE_DOMAIN_INTERFACE.REQ_CONS,
  prod: XENSTORE_DOMAIN_INTERFACE.REQ_PROD,
};
/** Responses and watch events: xenstored → guest. */
export const XENSTORE_RSP_RING: ByteRingLayout = {
  data: XENSTORE_DOMAIN_INTERFACE.RSP,
  size: XENSTORE_RING_SIZE,
  cons: XENSTORE_DOMAIN_INTERFACE.RSP_CONS,
  prod: XENSTORE_DOMAIN_INTERFACE.RSP_PROD,
};

/** The two directions of a xenstore page. */
export function xenstoreRings(page: Uint8Array): { req: ByteRing; rsp: ByteRing } {
  return { req: new ByteRing(page, XENSTORE_REQ_RING), rsp: new ByteRing(page, XENSTORE_RSP_RING) };
}

/** One xenstore message. */
export interface XsMessage {
  type: number;
  reqId: number;
  txId: number;
  payload: Uint8Array;
}

/** Encodes header + payload. **Errors:** RangeError when the payload exceeds XENSTORE_PAYLOAD_MAX. */
export function encodeXsMessage(m: XsMessage): Uint8Array {
  if (m.payload.length > XENSTORE_PAYLOAD_MAX) throw new RangeError(`xenstore payload ${m.payload.length} > ${XENSTORE_PAYLOAD_MAX}`);
  const out = new Uint8Array(XSD_SOCKMSG.SIZE + m.payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(XSD_SOCKMSG.TYPE, m.type >>> 0, true);
  dv.setUint32(XSD_SOCKMSG.REQ_ID, m.reqId >>> 0, true);
  dv.setUint32(XSD_SOCKMSG.TX_ID, m.txId >>> 0, true);
  dv.setUint32(XSD_SOCKMSG.LEN, m.payload.length, true);
  out.set(m.payload, XSD_SOCKMSG.SIZE);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Payload of NUL-terminated strings (`["a","b"]` → `a\0b\0`), as most requests carry. */
export function xsStrings(...parts: string[]): Uint8Array {
  return encoder.encode(parts.map((p) => `${p}\0`).join(""));
}

/** Splits a payload at NULs; a trailing NUL does not make an empty last element. */
export function parseXsStrings(payload: Uint8Array): string[] {
  const text = decoder.decode(payload);
  const parts = text.split("\0");
  if (parts.length > 0 && parts[parts.length - 1] === "") parts.pop();
  return parts;
}

/** Payload as text without a trailing NUL (XS_READ replies have none, others end in one). */
export function xsText(payload: Uint8Array): string {
  const end = payload.length > 0 && payload[payload.length - 1] === 0 ? payload.length - 1 : payload.length;
  return decoder.decode(payload.subarray(0, end));
}

/**
 * Reassembles messages from a byte stream that arrives in arbitrary pieces (partial ring
 * reads). A header announcing more than XENSTORE_PAYLOAD_MAX is a protocol error: `push`
 * returns "error" and the stream must be reset; nothing is buffered past the limit.
 */
export class XsMessageReader {
  private readonly header = new Uint8Array(XSD_SOCKMSG.SIZE);
  private headerFill = 0;
  private payload: Uint8Array | undefined;
  private payloadFill = 0;
  private type = 0;
  private reqId = 0;
  private txId = 0;

  /** Feeds bytes; calls `onMessage` for each complete message. */
  push(bytes: Uint8Array, onMessage: (m: XsMessage) => void): "ok" | "error" {
    let i = 0;
    while (i < bytes.length) {
      if (this.payload === undefined) {
        const n = Math.min(XSD_SOCKMSG.SIZE - this.headerFill, bytes.length - i);
        this.header.set(bytes.subarray(i, i + n), this.headerFill);
        this.headerFill += n;
        i += n;
        if (this.headerFill < XSD_SOCKMSG.SIZE) break;
        const dv = new DataView(this.header.buffer);
        this.type = dv.getUint32(XSD_SOCKMSG.TYPE, true);
        this.reqId = dv.getUint32(XSD_SOCKMSG.REQ_ID, true);
        this.txId = dv.getUint32(XSD_SOCKMSG.TX_ID, true);
        const len = dv.getUint32(XSD_SOCKMSG.LEN, true);
        if (len > XENSTORE_PAYLOAD_MAX) {
          this.reset();
          return "error";
        }
        this.payload = new Uint8Array(len);
        this.payloadFill = 0;
      }
      const p = this.payload;
      const n = Math.min(p.length - this.payloadFill, bytes.length - i);
      p.set(bytes.subarray(i, i + n), this.payloadFill);
      this.payloadFill += n;
      i += n;
      if (this.payloadFill === p.length) {
        this.payload = undefined;
        this.headerFill = 0;
        onMessage({ type: this.type, reqId: this.reqId, txId: this.txId, payload: p });
      }
    }
    return "ok";
  }

  /** Drops any partial message. */
  reset(): void {
    this.headerFill = 0;
    this.payload = undefined;
    this.payloadFill = 0;
  }

  /** Whether a message is partly received. */
  get partial(): boolean {
    return this.headerFill > 0 || this.payload !== undefined;
  }
}
