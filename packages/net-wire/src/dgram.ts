/**
 * An Ethernet port carried over UDP, one raw frame per datagram: the framing of QEMU's
 * `-netdev dgram,local.type=inet,...,remote.type=inet,...` (QEMU 7.2 `net/dgram.c`; the frame
 * is the datagram payload, destination MAC first, no FCS, no header).
 *
 * Host-side plumbing: uses Node's `dgram` and real sockets, never virtual time.
 */
import { createSocket, type Socket } from "node:dgram";
import type { EthernetPort } from "@paravirt/vm-interfaces";

/** A UDP endpoint. */
export interface UdpAddress {
  host: string;
  port: number;
}

/** Options for {@link DgramBackend.open}. */
export interface DgramOptions {
  /** Where to bind (default 127.0.0.1, an ephemeral port). */
  local?: Partial<UdpAddress>;
  /** Where frames are sent; may be set later with {@link DgramBackend.setRemote}. */
  remote?: UdpAddress;
}

/** Largest UDP payload over IPv4 [RFC 768 / IPv4 total length]. */
export const MAX_DATAGRAM = 65507;

/** Counters of a backend. */
export interface WireCounters {
  sent: number;
  received: number;
  /** Frames not sent (no peer, too large) or peer data that was not a frame. */
  dropped: number;
}

/** An EthernetPort whose frames travel as UDP datagrams. */
export class DgramBackend implements EthernetPort {
  readonly counters: WireCounters = { sent: 0, received: 0, dropped: 0 };
  private readonly socket: Socket;
  private remote: UdpAddress | undefined;
  private handler: ((frame: Uint8Array) => void) | undefined;
  private closed = false;

  private constructor(socket: Socket, remote: UdpAddress | undefined) {
    this.socket = socket;
    this.remote = remote;
    socket.on("message", (msg, rinfo) => {
      // Only the configured peer is heard (as QEMU's dgram backend does for a connected remote).
      if (this.remote !== undefined && (rinfo.port !== this.remote.port || !sameHost(rinfo.address, this.remote.host))) {
        this.counters.dropped++;
        return;
      }
      if (msg.length < 14) {
        this.counters.dropped++;
        return;
      }
      this.counters.received++;
      this.handler?.(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength).slice());
    });
    socket.on("error", () => {
      this.counters.dropped++;
    });
  }

  /** Binds a UDP socket. **Errors:** rejects when the address cannot be bound. */
  static open(options: DgramOptions = {}): Promise<DgramBackend> {
    const socket = createSocket("udp4");
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      socket.once("error", onError);
      socket.bind(options.local?.port ?? 0, options.local?.host ?? "127.0.0.1", () => {
        socket.off("error", onError);
        resolve(new DgramBackend(socket, options.remote));
      });
    });
  }

  /** The bound local address. */
  get local(): UdpAddress {
    const a = this.socket.address();
    return { host: a.address, port: a.port };
  }

  /** Sets the peer frames are sent to (and the only one heard). */
  setRemote(remote: UdpAddress): void {
    this.remote = remote;
  }

  send(frame: Uint8Array): void {
    if (this.closed || this.remote === undefined || frame.length > MAX_DATAGRAM) {
      this.counters.dropped++;
      return;
    }
    this.counters.sent++;
    this.socket.send(frame.slice(), this.remote.port, this.remote.host);
  }

  onReceive(handler: (frame: Uint8Array) => void): void {
    this.handler = handler;
  }

  /** Closes the socket. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

function sameHost(a: string, b: string): boolean {
  if (a === b) return true;
  const norm = (h: string) => (h === "localhost" ? "127.0.0.1" : h.replace(/^::ffff:/, ""));
  return norm(a) === norm(b);
}
