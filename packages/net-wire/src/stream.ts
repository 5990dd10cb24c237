/**
 * An Ethernet port carried over a TCP stream, each frame preceded by its length as a 4-byte
 * big-endian integer: the framing of QEMU's `-netdev stream` (and of the older
 * `-netdev socket,listen=/connect=`), QEMU 7.2 `net/stream.c`.
 *
 * Host-side plumbing: uses Node's `net` and real sockets, never virtual time.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { EthernetPort } from "@paravirt/vm-interfaces";
import type { WireCounters } from "./dgram.ts";

/** A TCP endpoint. */
export interface TcpAddress {
  host: string;
  port: number;
}

/** Largest frame accepted from a peer: QEMU's NET_BUFSIZE (4096 + 65536). */
export const MAX_STREAM_FRAME = 4096 + 65536;

/**
 * An EthernetPort over a length-prefixed TCP stream. A listening backend serves one peer at
 * a time (a new connection replaces the old one, as a plugged-in cable would); frames sent
 * while nobody is connected are dropped, like frames on an unplugged cable.
 */
export class StreamBackend implements EthernetPort {
  readonly counters: WireCounters = { sent: 0, received: 0, dropped: 0 };
  private readonly server: Server | undefined;
  private socket: Socket | undefined;
  private handler: ((frame: Uint8Array) => void) | undefined;
  private linkHandler: ((up: boolean) => void) | undefined;
  private waiters: (() => void)[] = [];
  private closed = false;
  private pending = new Uint8Array(0);

  private constructor(server: Server | undefined) {
    this.server = server;
  }

  /** Listens for a peer (QEMU `-netdev stream,server=off,addr...` connects to it). */
  static listen(address: Partial<TcpAddress> = {}): Promise<StreamBackend> {
    const server = createServer();
    const backend = new StreamBackend(server);
    server.on("connection", (s) => backend.attach(s));
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(address.port ?? 0, address.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        server.on("error", () => {});
        resolve(backend);
      });
    });
  }

  /** Connects to a listening peer (QEMU `-netdev stream,server=on,addr...`). Rejects when refused. */
  static connect(address: TcpAddress): Promise<StreamBackend> {
    const backend = new StreamBackend(undefined);
    return new Promise((resolve, reject) => {
      const s = createConnection({ host: address.host, port: address.port });
      s.once("error", reject);
      s.once("connect", () => {
        s.off("error", reject);
        backend.attach(s);
        resolve(backend);
      });
    });
  }

  /** The listening address (listening backends only). */
  get address(): TcpAddress | undefined {
    const a = this.server?.address();
    if (a === undefined || a === null || typeof a === "string") return undefined;
    return { host: a.address, port: a.port };
  }

  /** Whether a peer is connected. */
  get connected(): boolean {
    return this.socket !== undefined;
  }

  /** Resolves once a peer is connected. */
  whenConnected(): Promise<void> {
    if (this.socket !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Called with true when a peer connects and false when it goes away. */
  onLinkChange(handler: (up: boolean) => void): void {
    this.linkHandler = handler;
  }

  send(frame: Uint8Array): void {
    const s = this.socket;
    if (s === undefined || this.closed) {
      this.counters.dropped++;
      return;
    }
    const out = new Uint8Array(4 + frame.length);
    new DataView(out.buffer).setUint32(0, frame.length, false);
    out.set(frame, 4);
    this.counters.sent++;
    s.write(out);
  }

  onReceive(handler: (frame: Uint8Array) => void): void {
    this.handler = handler;
  }

  /** Closes the connection and the listener. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.socket?.destroy();
    this.socket = undefined;
    if (this.server) await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  private attach(s: Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    this.socket?.destroy();
    this.socket = s;
    this.pending = new Uint8Array(0);
    s.setNoDelay(true);
    s.on("data", (chunk: Buffer) => {
      if (this.socket === s) this.feed(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
    const gone = () => {
      if (this.socket !== s) return;
      this.socket = undefined;
      this.linkHandler?.(false);
    };
    s.on("close", gone);
    s.on("error", gone);
    this.linkHandler?.(true);
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  /** Reassembles length-prefixed frames; a peer sending an impossible length is disconnected. */
  private feed(chunk: Uint8Array): void {
    let buf: Uint8Array;
    if (this.pending.length === 0) buf = chunk;
    else {
      buf = new Uint8Array(this.pending.length + chunk.length);
      buf.set(this.pending);
      buf.set(chunk, this.pending.length);
    }
    let o = 0;
    while (buf.length - o >= 4) {
      const len = ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
      if (len > MAX_STREAM_FRAME) {
        this.counters.dropped++;
        this.pending = new Uint8Array(0);
        this.socket?.destroy();
        return;
      }
      if (buf.length - o - 4 < len) break;
      const frame = buf.slice(o + 4, o + 4 + len);
      o += 4 + len;
      if (len < 14) {
        this.counters.dropped++;
        continue;
      }
      this.counters.received++;
      this.handler?.(frame);
    }
    this.pending = o === buf.length ? new Uint8Array(0) : buf.slice(o);
  }
}
