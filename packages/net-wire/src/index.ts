/**
 * @paravirt/net-wire: wires for Ethernet ports — pcap capture, QEMU-compatible UDP datagram
 * and TCP stream backends, and a simulated host.
 * @packageDocumentation
 */
export { PcapWriter, PcapFile, capturePort, readPcap, PCAP_MAGIC, LINKTYPE_ETHERNET, PCAP_DEFAULT_SNAPLEN, type PcapWriterOptions, type PcapRecord, type PcapCapture } from "./pcap.ts";
export { DgramBackend, MAX_DATAGRAM, type DgramOptions, type UdpAddress, type WireCounters } from "./dgram.ts";
export { StreamBackend, MAX_STREAM_FRAME, type TcpAddress } from "./stream.ts";
export { SimulatedHost, type SimulatedHostOptions, type SimulatedHostCounters } from "./simulatedHost.ts";
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
} from "@paravirt/net-stack";
