/**
 * libpcap capture files: a writer whose timestamps come from virtual time, a cable tap and a
 * port wrapper that record frames, and a reader.
 *
 * References: [pcap] the libpcap file format (draft-ietf-opsawg-pcap): 24-byte global header
 * (magic 0xA1B2C3D4 for microsecond or 0xA1B23C4D for nanosecond timestamps, version 2.4,
 * snaplen, link type), 16-byte record headers (seconds, sub-second, captured length, original
 * length); [LINKTYPE] LINKTYPE_ETHERNET = 1.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import type { Clock, EthernetPort } from "@paravirt/vm-interfaces";

/** Magic numbers of the two timestamp resolutions [pcap §4]. */
export const PCAP_MAGIC = { MICRO: 0xa1b2c3d4, NANO: 0xa1b23c4d } as const;
/** LINKTYPE_ETHERNET [LINKTYPE]. */
export const LINKTYPE_ETHERNET = 1;
/** Default snapshot length: whole frames up to 256 KiB. */
export const PCAP_DEFAULT_SNAPLEN = 262144;

/** Options for {@link PcapWriter}. */
export interface PcapWriterOptions {
  /** Timestamp source (virtual time). Without one, frames are stamped 0 unless a time is given. */
  clock?: Clock;
  /** Added to the clock to form the timestamp, in ns since the Unix epoch (default 0). */
  epochNs?: number;
  /** Largest number of bytes kept per frame (default {@link PCAP_DEFAULT_SNAPLEN}). */
  snaplen?: number;
  /** Nanosecond timestamps (magic 0xA1B23C4D); default microseconds. */
  nanosecond?: boolean;
  /** Receives the file's bytes as they are produced; without it they are kept for {@link PcapWriter.bytes}. */
  sink?: (chunk: Uint8Array) => void;
}

/** Writes a pcap stream. */
export class PcapWriter {
  private readonly clock: Clock | undefined;
  private readonly epochNs: number;
  private readonly snaplen: number;
  private readonly nano: boolean;
  private readonly sink: (chunk: Uint8Array) => void;
  private readonly chunks: Uint8Array[] = [];
  private count = 0;

  /** A cable tap (`cable(writer.tap)`): records every frame crossing the cable. */
  readonly tap: (frame: Uint8Array, fromA: boolean) => void;

  constructor(options: PcapWriterOptions = {}) {
    this.clock = options.clock;
    this.epochNs = options.epochNs ?? 0;
    this.snaplen = options.snaplen ?? PCAP_DEFAULT_SNAPLEN;
    if (!Number.isInteger(this.snaplen) || this.snaplen <= 0) throw new RangeError("snaplen must be a positive integer");
    this.nano = options.nanosecond ?? false;
    this.sink = options.sink ?? ((c) => this.chunks.push(c));
    this.tap = (frame) => this.write(frame);
    const h = new Uint8Array(24);
    const dv = new DataView(h.buffer);
    dv.setUint32(0, this.nano ? PCAP_MAGIC.NANO : PCAP_MAGIC.MICRO, true);
    dv.setUint16(4, 2, true); // version 2.4
    dv.setUint16(6, 4, true);
    dv.setInt32(8, 0, true); // thiszone
    dv.setUint32(12, 0, true); // sigfigs
    dv.setUint32(16, this.snaplen, true);
    dv.setUint32(20, LINKTYPE_ETHERNET, true);
    this.sink(h);
  }

  /** Number of frames written. */
  get frames(): number {
    return this.count;
  }

  /** Appends one frame, stamped `timeNs` (default: the clock's now). */
  write(frame: Uint8Array, timeNs?: number): void {
    const t = Math.max(0, (timeNs ?? this.clock?.now() ?? 0) + this.epochNs);
    const sec = Math.floor(t / 1e9);
    const frac = t - sec * 1e9;
    const incl = Math.min(frame.length, this.snaplen);
    const rec = new Uint8Array(16 + incl);
    const dv = new DataView(rec.buffer);
    dv.setUint32(0, sec >>> 0, true);
    dv.setUint32(4, this.nano ? Math.floor(frac) : Math.floor(frac / 1000), true);
    dv.setUint32(8, incl, true);
    dv.setUint32(12, frame.length, true);
    rec.set(frame.subarray(0, incl), 16);
    this.count++;
    this.sink(rec);
  }

  /** The whole file so far (only when no `sink` was given). */
  bytes(): Uint8Array {
    let n = 0;
    for (const c of this.chunks) n += c.length;
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/** A {@link PcapWriter} writing straight to a file; call `close()` when done. */
export class PcapFile extends PcapWriter {
  private fd: number | undefined;

  constructor(path: string, options: Omit<PcapWriterOptions, "sink"> = {}) {
    const fd = openSync(path, "w");
    super({ ...options, sink: (c) => void writeSync(fd, c) });
    this.fd = fd;
  }

  /** Closes the file. Further writes throw. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Wraps an Ethernet port so that frames sent out of it and frames arriving at it are both
 * written to `writer`; use the returned port in place of the original.
 */
export function capturePort(port: EthernetPort, writer: PcapWriter): EthernetPort {
  return {
    send(frame) {
      writer.write(frame);
      port.send(frame);
    },
    onReceive(handler) {
      port.onReceive((frame) => {
        writer.write(frame);
        handler(frame);
      });
    },
  };
}

/** One record of a capture file. */
export interface PcapRecord {
  /** Timestamp in ns. */
  timeNs: number;
  /** Captured bytes. */
  frame: Uint8Array;
  /** Length of the frame on the wire. */
  originalLength: number;
}

/** A parsed capture file. */
export interface PcapCapture {
  linkType: number;
  snaplen: number;
  nanosecond: boolean;
  records: PcapRecord[];
}

/** Parses a pcap file (either byte order, either resolution). Throws RangeError when malformed. */
export function readPcap(bytes: Uint8Array): PcapCapture {
  if (bytes.length < 24) throw new RangeError("pcap: file shorter than its header");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let le = true;
  let magic = dv.getUint32(0, true);
  if (magic !== PCAP_MAGIC.MICRO && magic !== PCAP_MAGIC.NANO) {
    magic = dv.getUint32(0, false);
    le = false;
    if (magic !== PCAP_MAGIC.MICRO && magic !== PCAP_MAGIC.NANO) throw new RangeError("pcap: bad magic");
  }
  const nanosecond = magic === PCAP_MAGIC.NANO;
  const snaplen = dv.getUint32(16, le);
  const linkType = dv.getUint32(20, le) & 0x0fffffff;
  const records: PcapRecord[] = [];
  let o = 24;
  while (o < bytes.length) {
    if (o + 16 > bytes.length) throw new RangeError("pcap: truncated record header");
    const sec = dv.getUint32(o, le);
    const frac = dv.getUint32(o + 4, le);
    const incl = dv.getUint32(o + 8, le);
    const orig = dv.getUint32(o + 12, le);
    if (o + 16 + incl > bytes.length) throw new RangeError("pcap: truncated record");
    records.push({ timeNs: sec * 1e9 + (nanosecond ? frac : frac * 1000), frame: bytes.slice(o + 16, o + 16 + incl), originalLength: orig });
    o += 16 + incl;
  }
  return { linkType, snaplen, nanosecond, records };
}
