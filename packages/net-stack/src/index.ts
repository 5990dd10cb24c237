/**
 * @paravirt/net-stack: a small IPv4 stack over a NetDevice, and the packet codecs paravirt shares.
 * @packageDocumentation
 */
export {
  NetStack,
  type NetStackOptions,
  type NetStackCounters,
  type StackDevice,
  type UdpSocket,
  type UdpHandler,
  type UdpMeta,
  type PingOptions,
  type PingReply,
} from "./stack.ts";
export {
  ETHERTYPE,
  IP_PROTO,
  ARP_OP,
  ICMP_TYPE,
  BROADCAST_MAC,
  parseIpv4,
  formatIpv4,
  equalBytes,
  inetChecksum,
  pseudoHeaderSum,
  ethernetFrame,
  arpPacket,
  ipv4Packet,
  udpDatagram,
  icmpEcho,
  parseIpv4Packet,
  parseArp,
  udpChecksumOk,
  type Ipv4,
  type ParsedIpv4,
  type ParsedArp,
} from "./packets.ts";
