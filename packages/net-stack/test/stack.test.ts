import { describe, expect, it } from "vitest";
import { VirtualClock, cable, type EthernetPort } from "@paravirt/vm-interfaces";
import {
  ETHERTYPE, IP_PROTO, NetStack, ethernetFrame, icmpEcho, inetChecksum, ipv4Packet, parseIpv4, parseIpv4Packet, udpChecksumOk, udpDatagram,
} from "../src/index.ts";

const MAC_A = Uint8Array.of(0x02, 0, 0, 0, 0, 0xa);
const MAC_B = Uint8Array.of(0x02, 0, 0, 0, 0, 0xb);

/** A cable whose frames take `delayNs` of virtual time to cross. */
function delayedCable(clock: VirtualClock, delayNs: number, seen?: Uint8Array[]): [EthernetPort, EthernetPort] {
  const [a, b] = cable((f) => seen?.push(f.slice()));
  const delayed = (end: EthernetPort): EthernetPort => ({
    send: (f) => {
      const copy = f.slice();
      clock.schedule(clock.now() + delayNs, () => end.send(copy));
    },
    onReceive: (h) => end.onReceive(h),
  });
  return [delayed(a), delayed(b)];
}

function pair(delayNs = 10_000, seen?: Uint8Array[]) {
  const clock = new VirtualClock();
  const [pa, pb] = delayedCable(clock, delayNs, seen);
  const a = new NetStack({ device: { ...pa, mac: MAC_A }, ip: "10.0.0.1", timers: clock });
  const b = new NetStack({ device: { ...pb, mac: MAC_B }, ip: "10.0.0.2", timers: clock });
  return { clock, a, b };
}

/** Advances virtual time until `p` settles (or the queue empties). */
async function settle<T>(clock: VirtualClock, p: Promise<T>): Promise<T> {
  let done = false;
  const w = p.finally(() => (done = true));
  w.catch(() => {});
  for (let i = 0; i < 100_000 && !done; i++) {
    await Promise.resolve();
    await new Promise<void>((r) => setImmediate(r));
    if (done) break;
    const next = clock.nextDeadline();
    if (next === undefined) continue;
    clock.advanceTo(next);
  }
  return w;
}

describe("checksums", () => {
  it("match RFC 1071's worked example and a known IPv4 header", () => {
    // [RFC 1071 §3]: the one's complement sum of 0001 f203 f4f5 f6f7 is ddf2; the checksum is its complement.
    expect(inetChecksum(Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7))).toBe(~0xddf2 & 0xffff);
    // A captured header (192.168.0.1 → 192.168.0.199, UDP, total length 0x73) whose checksum field is b861.
    const h = Uint8Array.of(0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7);
    expect(inetChecksum(h)).toBe(0xb861);
    h[10] = 0xb8;
    h[11] = 0x61;
    expect(inetChecksum(h)).toBe(0);
  });

  it("agrees with an independent 32-bit-word implementation on random packets", () => {
    // Independent: sums 32-bit big-endian words and folds at the end (RFC 1071 §2 (B)/(C)).
    const independent = (d: Uint8Array, seed = 0): number => {
      let sum = BigInt(seed);
      const padded = new Uint8Array(Math.ceil(d.length / 4) * 4);
      padded.set(d);
      const dv = new DataView(padded.buffer);
      for (let i = 0; i < padded.length; i += 4) sum += BigInt(dv.getUint32(i));
      while (sum >> 16n) sum = (sum & 0xffffn) + (sum >> 16n);
      return Number(~sum & 0xffffn);
    };
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
    for (let n = 0; n < 500; n++) {
      const data = Uint8Array.from({ length: rnd() % 1473 }, () => rnd() & 0xff);
      const src = Uint8Array.of(10, rnd() & 0xff, rnd() & 0xff, 1);
      const dst = Uint8Array.of(192, 168, rnd() & 0xff, 2);
      const udp = udpDatagram(src, dst, rnd() & 0xffff, rnd() & 0xffff, data);
      // Pseudo-header as bytes, then the datagram: the whole must sum to zero.
      const pseudo = new Uint8Array(12 + udp.length);
      pseudo.set(src, 0);
      pseudo.set(dst, 4);
      pseudo[9] = IP_PROTO.UDP;
      new DataView(pseudo.buffer).setUint16(10, udp.length);
      pseudo.set(udp, 12);
      const c = independent(pseudo);
      expect(c === 0 || (udp[6] === 0xff && udp[7] === 0xff)).toBe(true);
      const ip = ipv4Packet(src, dst, IP_PROTO.UDP, udp, { id: n });
      expect(independent(ip.subarray(0, 20))).toBe(0);
      const icmp = icmpEcho(8, n, n, data);
      expect(independent(icmp)).toBe(0);
      const parsed = parseIpv4Packet(ethernetFrame(MAC_A, MAC_B, ETHERTYPE.IPV4, ip))!;
      expect(parsed.headerOk).toBe(true);
      expect(udpChecksumOk(parsed)).toBe(true);
    }
  });
});

describe("NetStack", () => {
  it("resolves by ARP, pings with the round trip in virtual time, and answers pings", async () => {
    const seen: Uint8Array[] = [];
    const { clock, a, b } = pair(25_000, seen);
    const r1 = await settle(clock, a.ping("10.0.0.2"));
    expect(r1.rttNs).toBe(50_000); // one way 25 µs each direction; ARP done before the clock starts
    expect(r1.bytes).toBe(56);
    expect(r1.ttl).toBe(64);
    expect(Array.from(a.arpTable().get("10.0.0.2")!)).toEqual(Array.from(MAC_B));
    // b learnt a from a's request (it was the target) [RFC 826].
    expect(Array.from(b.arpTable().get("10.0.0.1")!)).toEqual(Array.from(MAC_A));
    const r2 = await settle(clock, b.ping("10.0.0.1", { size: 1000 }));
    expect(r2.rttNs).toBe(50_000);
    expect(b.counters.arpRequests).toBe(0);
    expect(a.counters.arpRequests).toBe(1);
    expect(a.counters.echoReplies).toBe(1);
    expect(b.counters.echoReplies).toBe(1);
    // Every frame on the wire is at least the Ethernet minimum.
    expect(seen.every((f) => f.length >= 60)).toBe(true);
  });

  it("retries ARP once per timeout and fails after the last attempt", async () => {
    const clock = new VirtualClock();
    const [pa] = cable();
    const sent: Uint8Array[] = [];
    const s = new NetStack({ device: { send: (f) => sent.push(f), onReceive: pa.onReceive, mac: MAC_A }, ip: "10.0.0.1", timers: clock, arpAttempts: 3, arpTimeoutNs: 1e9 });
    const t0 = clock.now();
    await expect(settle(clock, s.ping("10.0.0.9"))).rejects.toThrow(/no ARP reply after 3 requests/);
    expect(clock.now() - t0).toBe(3e9);
    expect(sent.length).toBe(3);
    expect(sent.every((f) => f[12] === 0x08 && f[13] === 0x06)).toBe(true);
  });

  it("times a ping out when the peer never answers", async () => {
    const { clock, a, b } = pair();
    await settle(clock, a.resolve("10.0.0.2"));
    b.close();
    await expect(settle(clock, a.ping("10.0.0.2", { timeoutNs: 5e6 }))).rejects.toThrow(/no reply within 5000000 ns/);
  });

  it("carries UDP both ways with ports and data intact", async () => {
    const { clock, a, b } = pair();
    const got: string[] = [];
    b.bind(7000, (data, meta) => {
      got.push(`${new TextDecoder().decode(data)} from ${meta.srcPort}`);
      void b.sendUdp(7000, meta.src, meta.srcPort, data.reverse());
    });
    const back: string[] = [];
    const sock = a.bind(0, (data) => back.push(new TextDecoder().decode(data)));
    expect(sock.port).toBeGreaterThanOrEqual(49152);
    await settle(clock, sock.sendTo("10.0.0.2", 7000, new TextEncoder().encode("hello")));
    await settle(clock, Promise.resolve());
    for (let i = 0; i < 50 && back.length === 0; i++) await settle(clock, new Promise<void>((r) => clock.schedule(clock.now() + 100_000, r)));
    expect(got).toEqual([`hello from ${sock.port}`]);
    expect(back).toEqual(["olleh"]);
    expect(() => a.bind(sock.port, () => {})).toThrow(RangeError);
    await settle(clock, a.sendUdp(1, "10.0.0.2", 9, new Uint8Array(4)));
    await settle(clock, new Promise<void>((r) => clock.schedule(clock.now() + 100_000, r)));
    expect(b.counters.noPort).toBe(1);
  });

  it("drops frames with bad checksums and survives random garbage without throwing", () => {
    const clock = new VirtualClock();
    let deliver: (f: Uint8Array) => void = () => {};
    const out: Uint8Array[] = [];
    const s = new NetStack({ device: { send: (f) => out.push(f), onReceive: (h) => (deliver = h), mac: MAC_A }, ip: "10.0.0.1", timers: clock });
    const ipA = parseIpv4("10.0.0.1");
    const ipB = parseIpv4("10.0.0.2");
    const good = ethernetFrame(MAC_A, MAC_B, ETHERTYPE.IPV4, ipv4Packet(ipB, ipA, IP_PROTO.ICMP, icmpEcho(8, 1, 1, new Uint8Array(8))));
    deliver(good);
    expect(out.length).toBe(1);
    const badIcmp = good.slice();
    badIcmp[40] ^= 1;
    deliver(badIcmp);
    const badIp = good.slice();
    badIp[22] ^= 1; // TTL changed, header checksum not
    deliver(badIp);
    const badUdp = ethernetFrame(MAC_A, MAC_B, ETHERTYPE.IPV4, ipv4Packet(ipB, ipA, IP_PROTO.UDP, udpDatagram(ipB, ipA, 5, 6, Uint8Array.of(1, 2, 3))));
    badUdp[42] ^= 0xff;
    s.bind(6, () => {
      throw new Error("must not be called");
    });
    deliver(badUdp);
    expect(s.counters.badChecksum).toBe(3);
    expect(out.length).toBe(1);
    let seed = 99;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
    for (let i = 0; i < 20_000; i++) {
      const f = Uint8Array.from({ length: rnd() % 120 }, () => rnd() & 0xff);
      if (f.length >= 14 && i % 2 === 0) {
        f.set(MAC_A, 0);
        f[12] = 0x08;
        f[13] = i % 4 === 0 ? 0x06 : 0x00;
        if (f.length > 14) f[14] = 0x45;
      }
      expect(() => deliver(f)).not.toThrow();
    }
    expect(s.counters.rxFrames).toBe(20_004);
  });
});
