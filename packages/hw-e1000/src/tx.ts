/**
 * Transmit packet assembly: legacy descriptors (with the CSO/CSS checksum insertion),
 * TCP/IP context descriptors and data descriptors (IP and TCP/UDP checksum offload, TCP
 * segmentation), VLAN tag insertion and short-packet padding.
 *
 * References: [8254x SDM 3.3.2-3.3.3] legacy descriptors, [8254x SDM 3.3.5-3.3.7] context and
 * data descriptors, [8254x SDM 3.5] TCP segmentation (header replication, IP length/ID,
 * TCP sequence number, PSH/FIN only on the last frame, pseudo-header checksum that excludes
 * the length), [8254x SDM 13.4.33] TCTL.PSP, [IEEE 802.1Q] tag insertion.
 *
 * The engine knows nothing about rings or registers; the core feeds it descriptors.
 */
import { CTXD, DTYP, POPTS, TUCMD, TXD, TXD_CMD, foldSum, internetChecksum } from "./descriptors.ts";

/** The parameters a TCP/IP context descriptor loads [8254x SDM 3.3.6]. */
export interface TxContext {
  ipcss: number;
  ipcso: number;
  ipcse: number;
  tucss: number;
  tucso: number;
  tucse: number;
  paylen: number;
  tucmd: number;
  hdrlen: number;
  mss: number;
}

/** What one descriptor asked for, for the core's write-back and interrupt logic. */
export interface TxDescriptorResult {
  /** RS (or RPS): write DD back. */
  reportStatus: boolean;
  /** IDE: delay the TXDW interrupt by TIDV/TADV. */
  delayInterrupt: boolean;
}

/** How the engine reaches the outside world. */
export interface TxSink {
  /** Copies `length` bytes of guest memory at `address` into `dst` at `offset`; false on a DMA error. */
  dma(address: number, dst: Uint8Array, offset: number, length: number): boolean;
  /** A finished frame (the engine does not keep it). `tsoLast` marks a segmentation context's end. */
  emit(frame: Uint8Array): void;
  /** Per-packet settings the engine reads from registers. */
  readonly padShort: boolean; // TCTL.PSP
  readonly vlanMode: boolean; // CTRL.VME
  readonly vlanEtherType: number; // VET
  /** A segmentation context was carried out (TSCTC) or failed (TSCTFC). */
  tsoDone(ok: boolean): void;
}

/** Saved state of the engine. */
export interface TxEngineState {
  ctx: TxContext;
  packet: number[];
  inPacket: boolean;
  popts: number;
  tse: boolean;
  dropping: boolean;
}

/** Largest packet the engine gathers: a TSO payload of 2^20-1 bytes plus its header [8254x SDM 3.3.6]. */
const MAX_PACKET = (1 << 20) + 256;
/** Minimum frame without FCS (64-byte minimum on the wire) [IEEE 802.3 4.4.2]. */
const MIN_FRAME = 60;

function emptyContext(): TxContext {
  return { ipcss: 0, ipcso: 0, ipcse: 0, tucss: 0, tucso: 0, tucse: 0, paylen: 0, tucmd: 0, hdrlen: 0, mss: 0 };
}

/** Gathers descriptors into packets and packets into frames. */
export class TxEngine {
  ctx: TxContext = emptyContext();
  private buf = new Uint8Array(16384);
  private len = 0;
  private inPacket = false;
  /** POPTS of the packet's first data descriptor. */
  private popts = 0;
  /** The packet's first data descriptor had DCMD.TSE. */
  private tse = false;
  /** The packet overran MAX_PACKET or hit a DMA error: discard up to EOP. */
  private dropping = false;
  /** What {@link process} returns, overwritten by the next call. */
  private readonly result: TxDescriptorResult = { reportStatus: false, delayInterrupt: false };
  /** The descriptor bytes last processed and a view of them (a device passes the same buffer each time). */
  private descBytes: Uint8Array | undefined;
  private descView: DataView = new DataView(new ArrayBuffer(16));

  reset(): void {
    this.ctx = emptyContext();
    this.len = 0;
    this.inPacket = false;
    this.popts = 0;
    this.tse = false;
    this.dropping = false;
  }

  /** Processes one 16-byte descriptor; the result is valid until the next call. */
  process(d: Uint8Array, sink: TxSink): TxDescriptorResult {
    if (d !== this.descBytes) {
      this.descBytes = d;
      this.descView = new DataView(d.buffer, d.byteOffset, 16);
    }
    const dv = this.descView;
    const cmd = d[TXD.CMD]!;
    const result = this.result;
    result.reportStatus = (cmd & (TXD_CMD.RS | TXD_CMD.RPS)) !== 0;
    result.delayInterrupt = (cmd & TXD_CMD.IDE) !== 0;
    if ((cmd & TXD_CMD.DEXT) !== 0) {
      const dtyp = (d[10]! >> 4) & 0xf;
      if (dtyp === DTYP.CONTEXT) {
        this.loadContext(dv);
        return result;
      }
      if (dtyp !== DTYP.DATA) return result; // reserved type: consumed, ignored
      const length = dv.getUint32(TXD.LENGTH, true) & 0xfffff;
      if (!this.inPacket) {
        this.inPacket = true;
        this.popts = d[TXD.CSS]!;
        this.tse = (cmd & TXD_CMD.TSE) !== 0;
      }
      this.gather(dv, length, sink);
      if ((cmd & TXD_CMD.EOP) !== 0) this.finishExtended(cmd, dv.getUint16(TXD.SPECIAL, true), sink);
      return result;
    }
    // Legacy descriptor [8254x SDM 3.3.2].
    const length = dv.getUint16(TXD.LENGTH, true);
    if (!this.inPacket) {
      this.inPacket = true;
      this.popts = 0;
      this.tse = false;
    }
    this.gather(dv, length, sink);
    if ((cmd & TXD_CMD.EOP) !== 0) {
      if (!this.dropping) {
        const frame = this.buf.subarray(0, this.len);
        // IC: the checksum of bytes CSS..end goes to CSO [8254x SDM 3.3.3.1].
        const cso = d[TXD.CSO]!;
        const css = d[TXD.CSS]!;
        if ((cmd & TXD_CMD.IC) !== 0 && css < this.len && cso + 2 <= this.len) {
          putChecksum(frame, css, this.len, cso);
        }
        this.send(frame, cmd, dv.getUint16(TXD.SPECIAL, true), sink);
      }
      this.endPacket();
    }
    return result;
  }

  saveState(): TxEngineState {
    return {
      ctx: { ...this.ctx },
      packet: Array.from(this.buf.subarray(0, this.len)),
      inPacket: this.inPacket,
      popts: this.popts,
      tse: this.tse,
      dropping: this.dropping,
    };
  }

  restoreState(s: TxEngineState): void {
    this.ctx = { ...emptyContext(), ...s.ctx };
    this.len = 0;
    this.ensure(s.packet.length);
    this.buf.set(s.packet);
    this.len = s.packet.length;
    this.inPacket = s.inPacket;
    this.popts = s.popts;
    this.tse = s.tse;
    this.dropping = s.dropping;
  }

  private loadContext(dv: DataView): void {
    const c = this.ctx;
    c.ipcss = dv.getUint8(CTXD.IPCSS);
    c.ipcso = dv.getUint8(CTXD.IPCSO);
    c.ipcse = dv.getUint16(CTXD.IPCSE, true);
    c.tucss = dv.getUint8(CTXD.TUCSS);
    c.tucso = dv.getUint8(CTXD.TUCSO);
    c.tucse = dv.getUint16(CTXD.TUCSE, true);
    c.paylen = dv.getUint32(CTXD.PAYLEN, true) & 0xfffff;
    c.tucmd = dv.getUint8(CTXD.TUCMD);
    c.hdrlen = dv.getUint8(CTXD.HDRLEN);
    c.mss = dv.getUint16(CTXD.MSS, true);
  }

  private ensure(extra: number): boolean {
    const need = this.len + extra;
    if (need > MAX_PACKET) return false;
    if (need > this.buf.length) {
      let n = this.buf.length;
      while (n < need) n *= 2;
      const b = new Uint8Array(Math.min(n, MAX_PACKET));
      b.set(this.buf.subarray(0, this.len));
      this.buf = b;
    }
    return true;
  }

  private gather(dv: DataView, length: number, sink: TxSink): void {
    if (this.dropping || length === 0) return;
    const address = dv.getUint32(TXD.ADDR, true) + dv.getUint32(TXD.ADDR + 4, true) * 2 ** 32;
    if (address >= 2 ** 32 || !this.ensure(length) || !sink.dma(address, this.buf, this.len, length)) {
      this.dropping = true;
      return;
    }
    this.len += length;
  }

  private endPacket(): void {
    this.inPacket = false;
    this.len = 0;
    this.dropping = false;
    this.popts = 0;
    this.tse = false;
    if (this.buf.length > 65536) this.buf = new Uint8Array(16384);
  }

  private finishExtended(cmd: number, special: number, sink: TxSink): void {
    if (this.dropping) {
      if (this.tse) sink.tsoDone(false);
      this.endPacket();
      return;
    }
    const c = this.ctx;
    const frame = this.buf.subarray(0, this.len);
    if (this.tse && (c.tucmd & TUCMD.TSE) !== 0) {
      this.segment(frame, cmd, special, sink);
    } else {
      if ((this.popts & POPTS.IXSM) !== 0) insertIpChecksum(frame, c);
      if ((this.popts & POPTS.TXSM) !== 0) insertL4Checksum(frame, c);
      this.send(frame, cmd, special, sink);
    }
    this.endPacket();
  }

  /** TCP segmentation [8254x SDM 3.5]. */
  private segment(packet: Uint8Array, cmd: number, special: number, sink: TxSink): void {
    const c = this.ctx;
    const hdrlen = c.hdrlen;
    const isTcp = (c.tucmd & TUCMD.TCP) !== 0;
    const isIpv4 = (c.tucmd & TUCMD.IP) !== 0;
    // Guest errors: no MSS, a header that does not hold the fields we rewrite.
    const l4min = isTcp ? 20 : 8;
    if (c.mss === 0 || hdrlen > packet.length || c.tucss + l4min > hdrlen || c.ipcss + (isIpv4 ? 20 : 40) > hdrlen || c.tucso + 2 > hdrlen) {
      sink.tsoDone(false);
      return;
    }
    const payload = packet.length - hdrlen;
    const header = packet.slice(0, hdrlen);
    const hv = new DataView(header.buffer);
    const ipId = hv.getUint16(c.ipcss + 4, false);
    const seq = isTcp ? hv.getUint32(c.tucss + 4, false) : 0;
    const seed = hv.getUint16(c.tucso, false);
    const flags = isTcp ? header[c.tucss + 13]! : 0;
    const frames = Math.max(1, Math.ceil(payload / c.mss));
    for (let i = 0; i < frames; i++) {
      const off = i * c.mss;
      const chunk = Math.min(c.mss, payload - off);
      const seg = new Uint8Array(hdrlen + chunk);
      seg.set(header);
      seg.set(packet.subarray(hdrlen + off, hdrlen + off + chunk), hdrlen);
      const sv = new DataView(seg.buffer);
      const last = i === frames - 1;
      if (isIpv4) {
        sv.setUint16(c.ipcss + 2, seg.length - c.ipcss, false); // total length
        sv.setUint16(c.ipcss + 4, (ipId + i) & 0xffff, false); // identification
      } else {
        sv.setUint16(c.ipcss + 4, seg.length - c.ipcss - 40, false); // IPv6 payload length
      }
      const l4len = seg.length - c.tucss;
      if (isTcp) {
        sv.setUint32(c.tucss + 4, (seq + off) >>> 0, false);
        if (!last) seg[c.tucss + 13] = flags & ~0x09; // PSH and FIN only on the last frame
      } else {
        sv.setUint16(c.tucss + 4, l4len, false); // UDP length
      }
      if ((this.popts & POPTS.IXSM) !== 0 && isIpv4) insertIpChecksum(seg, c);
      if ((this.popts & POPTS.TXSM) !== 0) {
        // The driver seeded the pseudo-header sum without the length; add this frame's.
        sv.setUint16(c.tucso, foldSum(seed + l4len), false);
        insertL4Checksum(seg, c);
      }
      this.send(seg, cmd, special, sink);
    }
    sink.tsoDone(true);
  }

  private send(frame: Uint8Array, cmd: number, special: number, sink: TxSink): void {
    let out = frame;
    if ((cmd & TXD_CMD.VLE) !== 0 && sink.vlanMode && out.length >= 12) {
      const tagged = new Uint8Array(out.length + 4);
      tagged.set(out.subarray(0, 12));
      tagged[12] = (sink.vlanEtherType >> 8) & 0xff;
      tagged[13] = sink.vlanEtherType & 0xff;
      tagged[14] = (special >> 8) & 0xff;
      tagged[15] = special & 0xff;
      tagged.set(out.subarray(12), 16);
      out = tagged;
    }
    if (sink.padShort && out.length < MIN_FRAME) {
      const padded = new Uint8Array(MIN_FRAME);
      padded.set(out);
      out = padded;
    }
    if (out.length === 0) return;
    sink.emit(out);
  }
}

/** Stores the Internet checksum of `data[start, end)` (field included as the seed) at `at`. */
function putChecksum(data: Uint8Array, start: number, end: number, at: number): number {
  const sum = internetChecksum(data, start, end);
  data[at] = sum >> 8;
  data[at + 1] = sum & 0xff;
  return sum;
}

/** IXSM: IP header checksum over IPCSS..IPCSE (inclusive; 0 = end of packet) at IPCSO. */
function insertIpChecksum(frame: Uint8Array, c: TxContext): void {
  const end = c.ipcse === 0 ? frame.length : Math.min(c.ipcse + 1, frame.length);
  if (c.ipcss >= end || c.ipcso + 2 > frame.length) return;
  putChecksum(frame, c.ipcss, end, c.ipcso);
}

/** TXSM: TCP/UDP checksum over TUCSS..TUCSE (inclusive; 0 = end of packet) at TUCSO. */
function insertL4Checksum(frame: Uint8Array, c: TxContext): void {
  const end = c.tucse === 0 ? frame.length : Math.min(c.tucse + 1, frame.length);
  if (c.tucss >= end || c.tucso + 2 > frame.length) return;
  const sum = putChecksum(frame, c.tucss, end, c.tucso);
  // A computed UDP checksum of zero is sent as all ones [RFC 768].
  if (sum === 0 && (c.tucmd & TUCMD.TCP) === 0) {
    frame[c.tucso] = 0xff;
    frame[c.tucso + 1] = 0xff;
  }
}
