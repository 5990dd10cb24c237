/**
 * A small IPv4 host stack over one {@link NetDevice}, for example guests: Ethernet II, ARP
 * (a cache, resolution with retries in virtual time, answering requests for our address),
 * IPv4 without fragmentation, ICMP echo (answering pings and a `ping()` client measuring
 * round trips in virtual ns) and UDP sockets. All timing goes through the `TimerQueue` it is
 * given; nothing a peer sends can make it throw (bad frames are counted and dropped).
 *
 * References: [RFC 826] ARP (the merge-then-answer algorithm), [RFC 1122 §2.3.2.1] ARP
 * retransmission at most once per second and queued packets, [RFC 791] IPv4,
 * [RFC 792] ICMP echo, [RFC 768] UDP, [RFC 1071] checksums. Defaults follow Linux's
 * neighbour table (`retrans_time` 1 s, `mcast_solicit` 3, `base_reachable_time` 30 s).
 */
import type { EthernetPort, TimerId, TimerQueue } from "@paravirt/vm-interfaces";
import {
  ARP_OP, BROADCAST_MAC, ETHERTYPE, ICMP_TYPE, IP_PROTO, arpPacket, equalBytes, ethernetFrame, formatIpv4, icmpEcho,
  inetChecksum, ipv4Packet, parseArp, parseIpv4, parseIpv4Packet, udpChecksumOk, udpDatagram, type Ipv4,
} from "./packets.ts";

/** The device a stack runs on: an Ethernet port with an address (any vm-interfaces `NetDevice`). */
export interface StackDevice extends EthernetPort {
  readonly mac: Uint8Array;
}

export interface NetStackOptions {
  device: StackDevice;
  /** Our address (4 bytes or dotted quad). */
  ip: Ipv4 | string;
  /** Prefix length of the on-link subnet (default 24). */
  prefixLength?: number;
  /** Where off-link destinations go (default: none; they are treated as on-link). */
  gateway?: Ipv4 | string;
  timers: TimerQueue;
  /** Wait for an ARP reply before asking again (default 1 s, Linux `retrans_time`). */
  arpTimeoutNs?: number;
  /** ARP requests sent before a resolution fails (default 3, Linux `mcast_solicit`). */
  arpAttempts?: number;
  /** How long a learned address stays valid (default 30 s, Linux `base_reachable_time`). */
  arpLifetimeNs?: number;
  /** TTL of the packets we send (default 64). */
  ttl?: number;
  log?: (line: string) => void;
}

export interface NetStackCounters {
  rxFrames: number;
  txFrames: number;
  arpRequests: number;
  arpReplies: number;
  /** Echo requests we answered. */
  echoReplies: number;
  udpReceived: number;
  udpSent: number;
  /** Frames dropped for a bad IPv4, ICMP or UDP checksum. */
  badChecksum: number;
  /** Frames too short or inconsistent to parse. */
  malformed: number;
  /** UDP datagrams for a port nobody bound. */
  noPort: number;
  /** Frames not for us or of a protocol we do not speak. */
  ignored: number;
}

/** Where a UDP datagram came from and went. */
export interface UdpMeta {
  src: Ipv4;
  srcPort: number;
  dst: Ipv4;
  dstPort: number;
}

export type UdpHandler = (data: Uint8Array, meta: UdpMeta) => void;

export interface UdpSocket {
  readonly port: number;
  /** Sends a datagram from this socket's port; resolves once it went out (after ARP if needed), rejects when the address does not resolve. */
  sendTo(ip: Ipv4 | string, port: number, data: Uint8Array): Promise<void>;
  close(): void;
}

export interface PingOptions {
  /** Bytes of ICMP data (default 56, as ping(8)). */
  size?: number;
  /** Give up waiting for the reply after this long (default 1 s). */
  timeoutNs?: number;
  id?: number;
  seq?: number;
}

export interface PingReply {
  /** Round trip in virtual ns, from the request leaving to the reply arriving (ARP excluded). */
  rttNs: number;
  seq: number;
  ttl: number;
  /** ICMP data bytes echoed (verified equal to what was sent). */
  bytes: number;
}

interface Resolution {
  waiters: { resolve(mac: Uint8Array): void; reject(e: Error): void }[];
  attempts: number;
  timer: TimerId | undefined;
}

interface ArpEntry {
  mac: Uint8Array;
  expires: number;
}

interface PendingPing {
  data: Uint8Array;
  sentAt: number;
  resolve(r: PingReply): void;
  reject(e: Error): void;
  timer: TimerId | undefined;
}

const EPHEMERAL_FIRST = 49152; // [RFC 6335 §6] dynamic ports
const EPHEMERAL_COUNT = 16384;

const ipKey = (ip: Uint8Array): number => ((ip[0]! << 24) | (ip[1]! << 16) | (ip[2]! << 8) | ip[3]!) >>> 0;
const toIp = (ip: Ipv4 | string): Ipv4 => (typeof ip === "string" ? parseIpv4(ip) : ip.slice(0, 4));

/** An IPv4 host on one Ethernet device. */
export class NetStack {
  readonly counters: NetStackCounters = {
    rxFrames: 0, txFrames: 0, arpRequests: 0, arpReplies: 0, echoReplies: 0, udpReceived: 0, udpSent: 0,
    badChecksum: 0, malformed: 0, noPort: 0, ignored: 0,
  };
  readonly ip: Ipv4;
  readonly mac: Uint8Array;
  private readonly device: StackDevice;
  private readonly timers: TimerQueue;
  private readonly mask: number;
  private readonly gateway: Ipv4 | undefined;
  private readonly arpTimeoutNs: number;
  private readonly arpAttempts: number;
  private readonly arpLifetimeNs: number;
  private readonly ttl: number;
  private readonly log: (line: string) => void;
  private readonly arpCache = new Map<number, ArpEntry>();
  private readonly resolving = new Map<number, Resolution>();
  private readonly sockets = new Map<number, UdpHandler>();
  private readonly pings = new Map<number, PendingPing>();
  private nextPingSeq = 1;
  private readonly pingId: number;
  private nextEphemeral = 0;
  private ipId = 0;
  private closed = false;

  constructor(o: NetStackOptions) {
    if (o.device.mac.length !== 6) throw new RangeError("device mac must be 6 bytes");
    this.device = o.device;
    this.mac = o.device.mac.slice();
    this.ip = toIp(o.ip);
    const prefix = o.prefixLength ?? 24;
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`bad prefix length ${prefix}`);
    this.mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
    this.gateway = o.gateway === undefined ? undefined : toIp(o.gateway);
    this.timers = o.timers;
    this.arpTimeoutNs = o.arpTimeoutNs ?? 1e9;
    this.arpAttempts = o.arpAttempts ?? 3;
    this.arpLifetimeNs = o.arpLifetimeNs ?? 30e9;
    this.ttl = o.ttl ?? 64;
    this.log = o.log ?? (() => {});
    this.pingId = ipKey(this.ip) & 0xffff;
    this.device.onReceive((frame) => this.input(frame));
  }

  /** The ARP cache: dotted quad → MAC, valid entries only. */
  arpTable(): Map<string, Uint8Array> {
    const now = this.timers.now();
    const out = new Map<string, Uint8Array>();
    for (const [k, e] of this.arpCache) if (e.expires > now) out.set(formatIpv4(Uint8Array.of(k >>> 24, (k >>> 16) & 0xff, (k >>> 8) & 0xff, k & 0xff)), e.mac.slice());
    return out;
  }

  /** Resolves an on-link address to a MAC (ARP, with retries); rejects after `arpAttempts` unanswered requests. */
  resolve(ip: Ipv4 | string): Promise<Uint8Array> {
    const target = toIp(ip);
    const known = this.lookup(target);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve, reject) => this.startResolution(target, { resolve, reject }));
  }

  /** Opens a UDP socket on `port` (0: an ephemeral port). Throws if the port is taken. */
  bind(port: number, handler: UdpHandler): UdpSocket {
    let p = port;
    if (p === 0) p = this.ephemeralPort();
    if (!Number.isInteger(p) || p < 1 || p > 0xffff) throw new RangeError(`bad UDP port ${port}`);
    if (this.sockets.has(p)) throw new RangeError(`UDP port ${p} is in use`);
    this.sockets.set(p, handler);
    return {
      port: p,
      sendTo: (ip, dstPort, data) => this.sendUdp(p, ip, dstPort, data),
      close: () => {
        if (this.sockets.get(p) === handler) this.sockets.delete(p);
      },
    };
  }

  /** Sends one UDP datagram from `srcPort`. Resolves once it went out; rejects when ARP fails. */
  async sendUdp(srcPort: number, ip: Ipv4 | string, dstPort: number, data: Uint8Array): Promise<void> {
    if (data.length > 1500 - 28) throw new RangeError(`UDP payload of ${data.length} bytes needs fragmentation`);
    const dst = toIp(ip);
    const udp = udpDatagram(this.ip, dst, srcPort, dstPort, data);
    await this.sendIp(dst, IP_PROTO.UDP, udp);
    this.counters.udpSent++;
  }

  /** Sends an ICMP echo request and resolves with the round trip of its reply; rejects on timeout or when ARP fails. */
  async ping(ip: Ipv4 | string, o: PingOptions = {}): Promise<PingReply> {
    const dst = toIp(ip);
    const size = o.size ?? 56;
    if (size < 0 || size > 1500 - 28) throw new RangeError(`ping size ${size}`);
    const id = (o.id ?? this.pingId) & 0xffff;
    const seq = (o.seq ?? this.nextPingSeq++) & 0xffff;
    const key = id * 0x10000 + seq;
    if (this.pings.has(key)) throw new RangeError(`ping ${id}/${seq} already outstanding`);
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (i + seq) & 0xff;
    const mac = await this.resolveNextHop(dst);
    const timeoutNs = o.timeoutNs ?? 1e9;
    return new Promise<PingReply>((resolve, reject) => {
      const p: PendingPing = { data, sentAt: this.timers.now(), resolve, reject, timer: undefined };
      p.timer = this.timers.schedule(this.timers.now() + timeoutNs, () => {
        if (this.pings.get(key) !== p) return;
        this.pings.delete(key);
        reject(new Error(`ping ${formatIpv4(dst)} seq ${seq}: no reply within ${timeoutNs} ns`));
      });
      this.pings.set(key, p);
      this.transmitIp(mac, dst, IP_PROTO.ICMP, icmpEcho(ICMP_TYPE.ECHO_REQUEST, id, seq, data));
    });
  }

  /** Detaches from the device; outstanding resolutions and pings fail. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.device.onReceive(() => {});
    for (const r of this.resolving.values()) {
      if (r.timer !== undefined) this.timers.cancel(r.timer);
      for (const w of r.waiters) w.reject(new Error("stack closed"));
    }
    this.resolving.clear();
    for (const p of this.pings.values()) {
      if (p.timer !== undefined) this.timers.cancel(p.timer);
      p.reject(new Error("stack closed"));
    }
    this.pings.clear();
    this.sockets.clear();
  }

  // ------------------------------------------------------------------------ output

  private ephemeralPort(): number {
    for (let i = 0; i < EPHEMERAL_COUNT; i++) {
      const p = EPHEMERAL_FIRST + ((this.nextEphemeral++ + i) % EPHEMERAL_COUNT);
      if (!this.sockets.has(p)) return p;
    }
    throw new RangeError("no free ephemeral UDP port");
  }

  private onLink(ip: Ipv4): boolean {
    return ((ipKey(ip) ^ ipKey(this.ip)) & this.mask) === 0;
  }

  private resolveNextHop(dst: Ipv4): Promise<Uint8Array> {
    if (ipKey(dst) === 0xffffffff) return Promise.resolve(BROADCAST_MAC);
    const hop = this.onLink(dst) || this.gateway === undefined ? dst : this.gateway;
    return this.resolve(hop);
  }

  private async sendIp(dst: Ipv4, proto: number, payload: Uint8Array): Promise<void> {
    const hop = ipKey(dst) === 0xffffffff ? undefined : this.onLink(dst) || this.gateway === undefined ? dst : this.gateway;
    // Fast path: a cached neighbour goes out synchronously.
    const mac = hop === undefined ? BROADCAST_MAC : (this.lookup(hop) ?? (await this.resolve(hop)));
    this.transmitIp(mac, dst, proto, payload);
  }

  private transmitIp(mac: Uint8Array, dst: Ipv4, proto: number, payload: Uint8Array): void {
    this.ipId = (this.ipId + 1) & 0xffff;
    this.emit(ethernetFrame(mac, this.mac, ETHERTYPE.IPV4, ipv4Packet(this.ip, dst, proto, payload, { id: this.ipId, ttl: this.ttl })));
  }

  private emit(frame: Uint8Array): void {
    if (this.closed) return;
    let f = frame;
    if (f.length < 60) {
      // The sender pads to the Ethernet minimum [IEEE 802.3 §3.2.8].
      f = new Uint8Array(60);
      f.set(frame);
    }
    this.counters.txFrames++;
    this.device.send(f);
  }

  private lookup(ip: Ipv4): Uint8Array | undefined {
    const e = this.arpCache.get(ipKey(ip));
    if (e === undefined) return undefined;
    if (e.expires <= this.timers.now()) {
      this.arpCache.delete(ipKey(ip));
      return undefined;
    }
    return e.mac;
  }

  private startResolution(target: Ipv4, waiter: Resolution["waiters"][number]): void {
    const key = ipKey(target);
    const existing = this.resolving.get(key);
    if (existing !== undefined) {
      existing.waiters.push(waiter);
      return;
    }
    const r: Resolution = { waiters: [waiter], attempts: 0, timer: undefined };
    this.resolving.set(key, r);
    const attempt = () => {
      if (this.resolving.get(key) !== r) return;
      if (r.attempts >= this.arpAttempts) {
        this.resolving.delete(key);
        this.log(`arp: ${formatIpv4(target)} did not answer ${r.attempts} requests`);
        for (const w of r.waiters) w.reject(new Error(`${formatIpv4(target)}: no ARP reply after ${r.attempts} requests`));
        return;
      }
      r.attempts++;
      this.counters.arpRequests++;
      this.emit(ethernetFrame(BROADCAST_MAC, this.mac, ETHERTYPE.ARP, arpPacket(ARP_OP.REQUEST, this.mac, this.ip, new Uint8Array(6), target)));
      r.timer = this.timers.schedule(this.timers.now() + this.arpTimeoutNs, attempt);
    };
    attempt();
  }

  private learn(ip: Uint8Array, mac: Uint8Array): void {
    const key = ipKey(ip);
    this.arpCache.set(key, { mac: mac.slice(), expires: this.timers.now() + this.arpLifetimeNs });
    const r = this.resolving.get(key);
    if (r !== undefined) {
      this.resolving.delete(key);
      if (r.timer !== undefined) this.timers.cancel(r.timer);
      for (const w of r.waiters) w.resolve(mac.slice());
    }
  }

  // ------------------------------------------------------------------------ input

  /** A frame from the device. Never throws. */
  private input(frame: Uint8Array): void {
    if (this.closed) return;
    this.counters.rxFrames++;
    if (frame.length < 14) {
      this.counters.malformed++;
      return;
    }
    const type = (frame[12]! << 8) | frame[13]!;
    const dst = frame.subarray(0, 6);
    const forUs = equalBytes(dst, this.mac);
    if (!forUs && !equalBytes(dst, BROADCAST_MAC)) {
      this.counters.ignored++;
      return;
    }
    if (type === ETHERTYPE.ARP) this.arpInput(frame);
    else if (type === ETHERTYPE.IPV4) this.ipInput(frame);
    else this.counters.ignored++;
  }

  private arpInput(frame: Uint8Array): void {
    const a = parseArp(frame);
    if (a === undefined) {
      this.counters.malformed++;
      return;
    }
    // [RFC 826] "Packet reception": merge the sender into the table if it is there (or the
    // packet is for us), then answer a request for our address.
    const forMe = equalBytes(a.targetIp, this.ip);
    const senderKey = ipKey(a.senderIp);
    if (senderKey !== 0 && (a.senderMac[0]! & 1) === 0 && (forMe || this.arpCache.has(senderKey) || this.resolving.has(senderKey))) {
      this.learn(a.senderIp, a.senderMac);
    }
    if (!forMe) {
      this.counters.ignored++;
      return;
    }
    if (a.op === ARP_OP.REQUEST) {
      this.counters.arpReplies++;
      this.emit(ethernetFrame(a.senderMac, this.mac, ETHERTYPE.ARP, arpPacket(ARP_OP.REPLY, this.mac, this.ip, a.senderMac, a.senderIp)));
    }
  }

  private ipInput(frame: Uint8Array): void {
    const ip = parseIpv4Packet(frame);
    if (ip === undefined) {
      this.counters.malformed++;
      return;
    }
    if (!ip.headerOk) {
      this.counters.badChecksum++;
      return;
    }
    const bcast = ipKey(ip.dst) === 0xffffffff;
    if (ip.fragment || (!bcast && !equalBytes(ip.dst, this.ip))) {
      this.counters.ignored++;
      return;
    }
    if (ip.proto === IP_PROTO.ICMP) this.icmpInput(frame, ip.src, ip.ttl, ip.payload, bcast);
    else if (ip.proto === IP_PROTO.UDP) this.udpInput(ip);
    else this.counters.ignored++;
  }

  private icmpInput(frame: Uint8Array, src: Ipv4, ttl: number, m: Uint8Array, bcast: boolean): void {
    if (m.length < 8) {
      this.counters.malformed++;
      return;
    }
    if (inetChecksum(m) !== 0) {
      this.counters.badChecksum++;
      return;
    }
    const id = (m[4]! << 8) | m[5]!;
    const seq = (m[6]! << 8) | m[7]!;
    if (m[0] === ICMP_TYPE.ECHO_REQUEST && !bcast) {
      this.counters.echoReplies++;
      // Reply straight to the sender's MAC (it just spoke to us), learning nothing new.
      this.transmitIp(frame.slice(6, 12), src, IP_PROTO.ICMP, icmpEcho(ICMP_TYPE.ECHO_REPLY, id, seq, m.slice(8)));
      return;
    }
    if (m[0] === ICMP_TYPE.ECHO_REPLY) {
      const key = id * 0x10000 + seq;
      const p = this.pings.get(key);
      const data = m.subarray(8);
      if (p === undefined || !equalBytes(data, p.data)) {
        this.counters.ignored++;
        return;
      }
      this.pings.delete(key);
      if (p.timer !== undefined) this.timers.cancel(p.timer);
      p.resolve({ rttNs: this.timers.now() - p.sentAt, seq, ttl, bytes: data.length });
      return;
    }
    this.counters.ignored++;
  }

  private udpInput(ip: NonNullable<ReturnType<typeof parseIpv4Packet>>): void {
    const u = ip.payload;
    if (u.length < 8 || ((u[4]! << 8) | u[5]!) > u.length || ((u[4]! << 8) | u[5]!) < 8) {
      this.counters.malformed++;
      return;
    }
    const len = (u[4]! << 8) | u[5]!;
    const dgram = { ...ip, payload: u.subarray(0, len) };
    if (!udpChecksumOk(dgram)) {
      this.counters.badChecksum++;
      return;
    }
    const srcPort = (u[0]! << 8) | u[1]!;
    const dstPort = (u[2]! << 8) | u[3]!;
    const h = this.sockets.get(dstPort);
    if (h === undefined) {
      this.counters.noPort++;
      return;
    }
    this.counters.udpReceived++;
    try {
      h(u.slice(8, len), { src: ip.src, srcPort, dst: ip.dst, dstPort });
    } catch (e) {
      this.log(`udp ${dstPort}: handler threw ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
