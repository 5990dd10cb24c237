/**
 * A host on the wire with a MAC and an IPv4 address that answers ARP requests for its
 * address, ICMP echo requests to it and UDP datagrams to its echo ports, with correct
 * checksums: the peer a NIC model or driver test talks to.
 *
 * References: [RFC 826] ARP, [RFC 792] ICMP echo, [RFC 862] Echo protocol (UDP port 7),
 * [RFC 1122 §3.2.2.6] an echo reply carries the request's identifier, sequence and data.
 */
import type { EthernetPort, TimerQueue } from "@paravirt/vm-interfaces";
import {
  ARP_OP,
  BROADCAST_MAC,
  ETHERTYPE,
  ICMP_TYPE,
  IP_PROTO,
  arpPacket,
  equalBytes,
  ethernetFrame,
  icmpEcho,
  inetChecksum,
  ipv4Packet,
  parseArp,
  parseIpv4Packet,
  udpChecksumOk,
  udpDatagram,
  type Ipv4,
} from "@paravirt/net-stack";

/** Options for {@link SimulatedHost}. */
export interface SimulatedHostOptions {
  /** The host's MAC address (6 bytes). */
  mac: Uint8Array;
  /** The host's IPv4 address (4 bytes). */
  ip: Ipv4;
  /** UDP ports that echo datagrams back (default [7]). */
  udpEchoPorts?: readonly number[];
  /** With a clock, replies leave `replyDelayNs` after the request; without one, synchronously. */
  clock?: TimerQueue;
  /** Reply latency in virtual ns (default 0; only with `clock`). */
  replyDelayNs?: number;
}

/** What the host has seen and done. */
export interface SimulatedHostCounters {
  received: number;
  arpReplies: number;
  echoReplies: number;
  udpEchoes: number;
  /** Frames for the host it did not answer (bad checksums, other protocols, malformed). */
  ignored: number;
}

/**
 * A simulated host. It is an {@link EthernetPort}: hand it to a NIC as the NIC's wire (the
 * NIC's `send` reaches the host, the host's replies reach the NIC's handler), or plug it into
 * one end of a cable with {@link SimulatedHost.plugInto}.
 */
export class SimulatedHost implements EthernetPort {
  readonly mac: Uint8Array;
  readonly ip: Ipv4;
  readonly counters: SimulatedHostCounters = { received: 0, arpReplies: 0, echoReplies: 0, udpEchoes: 0, ignored: 0 };
  /** Every frame that reached the host, in order (for assertions). */
  readonly log: Uint8Array[] = [];
  private readonly echoPorts: ReadonlySet<number>;
  private readonly clock: TimerQueue | undefined;
  private readonly delay: number;
  private out: ((frame: Uint8Array) => void) | undefined;
  private udpHandler: ((d: { src: Ipv4; srcPort: number; dstPort: number; payload: Uint8Array }) => void) | undefined;

  constructor(options: SimulatedHostOptions) {
    if (options.mac.length !== 6) throw new RangeError("mac must be 6 bytes");
    if (options.ip.length !== 4) throw new RangeError("ip must be 4 bytes");
    this.mac = options.mac.slice();
    this.ip = options.ip.slice();
    this.echoPorts = new Set(options.udpEchoPorts ?? [7]);
    this.clock = options.clock;
    this.delay = options.replyDelayNs ?? 0;
  }

  /** Connects the host to a cable end: frames arriving there reach the host, replies go out of it. */
  plugInto(port: EthernetPort): void {
    port.onReceive((f) => this.send(f));
    this.onReceive((f) => port.send(f));
  }

  /** A frame arriving at the host (from the NIC or the cable). Never throws. */
  send(frame: Uint8Array): void {
    this.counters.received++;
    this.log.push(frame.slice());
    if (!this.handle(frame)) this.counters.ignored++;
  }

  /** Sets where the host's frames go. */
  onReceive(handler: (frame: Uint8Array) => void): void {
    this.out = handler;
  }

  /** Called for UDP datagrams to non-echo ports addressed to the host. */
  onUdp(handler: (d: { src: Ipv4; srcPort: number; dstPort: number; payload: Uint8Array }) => void): void {
    this.udpHandler = handler;
  }

  /** Sends a UDP datagram from the host (e.g. to drive a guest). */
  sendUdp(dstMac: Uint8Array, dstIp: Ipv4, srcPort: number, dstPort: number, payload: Uint8Array): void {
    const udp = udpDatagram(this.ip, dstIp, srcPort, dstPort, payload);
    this.emit(ethernetFrame(dstMac, this.mac, ETHERTYPE.IPV4, ipv4Packet(this.ip, dstIp, IP_PROTO.UDP, udp)));
  }

  /** Sends an ARP request for `ip` (broadcast). */
  sendArpRequest(ip: Ipv4): void {
    this.emit(ethernetFrame(BROADCAST_MAC, this.mac, ETHERTYPE.ARP, arpPacket(ARP_OP.REQUEST, this.mac, this.ip, new Uint8Array(6), ip)));
  }

  /** Sends an ICMP echo request to `dstIp`. */
  sendPing(dstMac: Uint8Array, dstIp: Ipv4, id: number, seq: number, data: Uint8Array): void {
    this.emit(ethernetFrame(dstMac, this.mac, ETHERTYPE.IPV4, ipv4Packet(this.ip, dstIp, IP_PROTO.ICMP, icmpEcho(ICMP_TYPE.ECHO_REQUEST, id, seq, data))));
  }

  private emit(frame: Uint8Array): void {
    // Pad to the Ethernet minimum: the sender pads (vm-interfaces ETH_FRAME_MIN).
    let f = frame;
    if (f.length < 60) {
      f = new Uint8Array(60);
      f.set(frame);
    }
    const deliver = () => this.out?.(f);
    if (this.clock !== undefined) this.clock.schedule(this.clock.now() + this.delay, deliver);
    else deliver();
  }

  private handle(frame: Uint8Array): boolean {
    if (frame.length < 14) return false;
    const dst = frame.subarray(0, 6);
    const forUs = equalBytes(dst, this.mac);
    const bcast = equalBytes(dst, BROADCAST_MAC);
    if (!forUs && !bcast) return false;
    const type = (frame[12]! << 8) | frame[13]!;
    const srcMac = frame.slice(6, 12);
    if (type === ETHERTYPE.ARP) return this.handleArp(frame);
    if (type !== ETHERTYPE.IPV4 || !forUs) return false;
    const ip = parseIpv4Packet(frame);
    if (ip === undefined || !ip.headerOk || ip.fragment || !equalBytes(ip.dst, this.ip)) return false;
    if (ip.proto === IP_PROTO.ICMP) {
      const m = ip.payload;
      if (m.length < 8 || m[0] !== ICMP_TYPE.ECHO_REQUEST || inetChecksum(m) !== 0) return false;
      const id = (m[4]! << 8) | m[5]!;
      const seq = (m[6]! << 8) | m[7]!;
      const reply = icmpEcho(ICMP_TYPE.ECHO_REPLY, id, seq, m.slice(8));
      this.counters.echoReplies++;
      this.emit(ethernetFrame(srcMac, this.mac, ETHERTYPE.IPV4, ipv4Packet(this.ip, ip.src, IP_PROTO.ICMP, reply, { id: ip.id })));
      return true;
    }
    if (ip.proto === IP_PROTO.UDP) {
      const u = ip.payload;
      if (u.length < 8 || ((u[4]! << 8) | u[5]!) !== u.length || !udpChecksumOk(ip)) return false;
      const srcPort = (u[0]! << 8) | u[1]!;
      const dstPort = (u[2]! << 8) | u[3]!;
      const payload = u.slice(8);
      if (this.echoPorts.has(dstPort)) {
        this.counters.udpEchoes++;
        this.emit(ethernetFrame(srcMac, this.mac, ETHERTYPE.IPV4, ipv4Packet(this.ip, ip.src, IP_PROTO.UDP, udpDatagram(this.ip, ip.src, dstPort, srcPort, payload))));
        return true;
      }
      if (this.udpHandler) {
        this.udpHandler({ src: ip.src, srcPort, dstPort, payload });
        return true;
      }
      return false;
    }
    return false;
  }

  private handleArp(frame: Uint8Array): boolean {
    const a = parseArp(frame);
    if (a === undefined || a.op !== ARP_OP.REQUEST || !equalBytes(a.targetIp, this.ip)) return false;
    this.counters.arpReplies++;
    this.emit(ethernetFrame(a.senderMac, this.mac, ETHERTYPE.ARP, arpPacket(ARP_OP.REPLY, this.mac, this.ip, a.senderMac, a.senderIp)));
    return true;
  }
}
