import { describe, expect, it } from "vitest";
import { VirtualClock, cable } from "@paravirt/vm-interfaces";
import { SimulatedHost, arpPacket, ethernetFrame, icmpEcho, ipv4Packet, parseIpv4, udpDatagram } from "../src/index.ts";

const HOST_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x01);
const HOST_IP = parseIpv4("10.0.2.2");
const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
const GUEST_IP = parseIpv4("10.0.2.15");

/** RFC 1071 the obvious way (independent of src). */
function csum(bytes: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) + (bytes[i + 1] ?? 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

function setup(clock?: VirtualClock) {
  const host = new SimulatedHost({ mac: HOST_MAC, ip: HOST_IP, ...(clock ? { clock, replyDelayNs: 1000 } : {}) });
  const got: Uint8Array[] = [];
  host.onReceive((f) => got.push(f));
  return { host, got };
}

describe("SimulatedHost", () => {
  it("answers an ARP request for its address", () => {
    const { host, got } = setup();
    host.send(ethernetFrame(Uint8Array.of(255, 255, 255, 255, 255, 255), GUEST_MAC, 0x0806, arpPacket(1, GUEST_MAC, GUEST_IP, new Uint8Array(6), HOST_IP)));
    expect(got).toHaveLength(1);
    const r = got[0]!;
    expect(r.length).toBe(60);
    expect(Array.from(r.subarray(0, 6))).toEqual(Array.from(GUEST_MAC));
    expect(Array.from(r.subarray(6, 12))).toEqual(Array.from(HOST_MAC));
    expect((r[12]! << 8) | r[13]!).toBe(0x0806);
    expect((r[20]! << 8) | r[21]!).toBe(2); // reply
    expect(Array.from(r.subarray(22, 28))).toEqual(Array.from(HOST_MAC)); // sender MAC
    expect(Array.from(r.subarray(28, 32))).toEqual([10, 0, 2, 2]);
    expect(Array.from(r.subarray(32, 38))).toEqual(Array.from(GUEST_MAC));
    expect(Array.from(r.subarray(38, 42))).toEqual([10, 0, 2, 15]);
  });

  it("ignores ARP requests for other addresses", () => {
    const { host, got } = setup();
    host.send(ethernetFrame(Uint8Array.of(255, 255, 255, 255, 255, 255), GUEST_MAC, 0x0806, arpPacket(1, GUEST_MAC, GUEST_IP, new Uint8Array(6), parseIpv4("10.0.2.3"))));
    expect(got).toHaveLength(0);
    expect(host.counters.ignored).toBe(1);
  });

  it("answers ICMP echo with the same id, sequence and data and valid checksums", () => {
    const { host, got } = setup();
    const data = Uint8Array.from({ length: 56 }, (_, i) => i);
    host.send(ethernetFrame(HOST_MAC, GUEST_MAC, 0x0800, ipv4Packet(GUEST_IP, HOST_IP, 1, icmpEcho(8, 0x1234, 7, data), { id: 99 })));
    expect(got).toHaveLength(1);
    const r = got[0]!;
    expect(csum(r.subarray(14, 34))).toBe(0);
    expect(Array.from(r.subarray(26, 30))).toEqual([10, 0, 2, 2]);
    expect(Array.from(r.subarray(30, 34))).toEqual([10, 0, 2, 15]);
    const icmp = r.subarray(34);
    expect(icmp[0]).toBe(0);
    expect(csum(icmp)).toBe(0);
    expect((icmp[4]! << 8) | icmp[5]!).toBe(0x1234);
    expect((icmp[6]! << 8) | icmp[7]!).toBe(7);
    expect(icmp.subarray(8)).toEqual(data);
  });

  it("echoes UDP datagrams to port 7 with swapped ports and a valid checksum", () => {
    const { host, got } = setup();
    const payload = new TextEncoder().encode("hello, echo");
    host.send(ethernetFrame(HOST_MAC, GUEST_MAC, 0x0800, ipv4Packet(GUEST_IP, HOST_IP, 17, udpDatagram(GUEST_IP, HOST_IP, 40000, 7, payload))));
    expect(got).toHaveLength(1);
    const r = got[0]!;
    const u = r.subarray(34, 34 + 8 + payload.length);
    expect((u[0]! << 8) | u[1]!).toBe(7);
    expect((u[2]! << 8) | u[3]!).toBe(40000);
    const pseudo = [10, 0, 2, 2, 10, 0, 2, 15, 0, 17, 0, u.length];
    expect(csum([...pseudo, ...u])).toBe(0);
    expect(new TextDecoder().decode(u.subarray(8))).toBe("hello, echo");
  });

  it("does not answer frames with bad checksums, for other hosts, or to closed ports", () => {
    const { host, got } = setup();
    const ping = ethernetFrame(HOST_MAC, GUEST_MAC, 0x0800, ipv4Packet(GUEST_IP, HOST_IP, 1, icmpEcho(8, 1, 1, new Uint8Array(8))));
    const badIcmp = ping.slice();
    badIcmp[40] = badIcmp[40]! ^ 1;
    const badIp = ping.slice();
    badIp[22] = 1;
    const otherMac = ping.slice();
    otherMac[5] = 9;
    const closed = ethernetFrame(HOST_MAC, GUEST_MAC, 0x0800, ipv4Packet(GUEST_IP, HOST_IP, 17, udpDatagram(GUEST_IP, HOST_IP, 1, 9, new Uint8Array(4))));
    for (const f of [badIcmp, badIp, otherMac, closed, new Uint8Array(3), new Uint8Array(60)]) host.send(f);
    expect(got).toHaveLength(0);
    expect(host.counters.ignored).toBe(6);
  });

  it("replies after the configured virtual delay when given a clock", () => {
    const clock = new VirtualClock();
    const { host, got } = setup(clock);
    host.send(ethernetFrame(HOST_MAC, GUEST_MAC, 0x0800, ipv4Packet(GUEST_IP, HOST_IP, 1, icmpEcho(8, 1, 1, new Uint8Array(8)))));
    expect(got).toHaveLength(0);
    clock.advanceBy(999);
    expect(got).toHaveLength(0);
    clock.advanceBy(1);
    expect(got).toHaveLength(1);
  });

  it("two hosts on a cable: one pings the other after resolving it with ARP", () => {
    const [a, b] = cable();
    const h1 = new SimulatedHost({ mac: GUEST_MAC, ip: GUEST_IP });
    const h2 = new SimulatedHost({ mac: HOST_MAC, ip: HOST_IP });
    h1.plugInto(a);
    h2.plugInto(b);
    h1.sendArpRequest(HOST_IP);
    expect(h2.counters.arpReplies).toBe(1);
    // h1 got the reply (and ignored it: it only answers requests)
    const reply = h1.log[0]!;
    expect(Array.from(reply.subarray(22, 28))).toEqual(Array.from(HOST_MAC));
    h1.sendPing(HOST_MAC, HOST_IP, 5, 1, new Uint8Array(32).fill(0xaa));
    expect(h2.counters.echoReplies).toBe(1);
    expect(h1.log).toHaveLength(2);
    h1.sendUdp(HOST_MAC, HOST_IP, 5555, 7, new Uint8Array(100).fill(1));
    expect(h2.counters.udpEchoes).toBe(1);
    expect(h1.log).toHaveLength(3);
  });

  it("hands datagrams for other ports to onUdp", () => {
    const { host } = setup();
    const seen: number[] = [];
    host.onUdp((d) => seen.push(d.dstPort, d.srcPort, d.payload.length));
    host.send(ethernetFrame(HOST_MAC, GUEST_MAC, 0x0800, ipv4Packet(GUEST_IP, HOST_IP, 17, udpDatagram(GUEST_IP, HOST_IP, 1234, 9999, new Uint8Array(10)))));
    expect(seen).toEqual([9999, 1234, 10]);
  });
});
