import { describe, expect, it } from "vitest";
import { checksumContext, probeE1000, type E1000Nic } from "../src/index.ts";
import { Machine, NIC_MAC, PEER_MAC, csum16, ipFrame, ipHeaderValid, l4Valid } from "./machine.ts";

async function up(o: { txRingSize?: number } = {}): Promise<{ m: Machine; nic: E1000Nic }> {
  const m = new Machine();
  const r = await m.settle(probeE1000(m.platform, o));
  return { m, nic: r.nics[0]! };
}

const payload = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

/** Everything but the two checksum fields is unchanged. */
function sameExceptChecksums(out: Uint8Array, sent: Uint8Array, l3: number, l4csum: number): void {
  expect(out.length).toBe(Math.max(60, sent.length));
  for (let i = 0; i < sent.length; i++) {
    if (i === l3 + 10 || i === l3 + 11 || i === l4csum || i === l4csum + 1) continue;
    expect(out[i], `byte ${i}`).toBe(sent[i]);
  }
}

describe("checksum offload", () => {
  it("has the MAC fill in correct IPv4 and TCP checksums", async () => {
    const { m, nic } = await up();
    const f = ipFrame("tcp", payload(333));
    expect(ipHeaderValid(f)).toBe(false);
    nic.send(f, { checksumOffload: true });
    await m.run(() => m.onWire.length === 1);
    const out = m.onWire[0]!;
    expect(ipHeaderValid(out)).toBe(true);
    expect(l4Valid(out)).toBe(true);
    sameExceptChecksums(out, f, 14, 14 + 20 + 16);
    const s = nic.statistics();
    expect(s.txChecksumOffload).toBe(1);
    expect(s.txContextDescriptors).toBe(1);
  });

  it("has the MAC fill in correct IPv4 and UDP checksums, also for a padded short datagram", async () => {
    const { m, nic } = await up();
    const f = ipFrame("udp", payload(500, 3));
    nic.send(f, { checksumOffload: true });
    // 4-byte UDP payload: 46-byte frame, padded by the caller to 60 with non-zero junk.
    const short = ipFrame("udp", payload(4, 9));
    const padded = new Uint8Array(60).fill(0x5a);
    padded.set(short);
    nic.send(padded, { checksumOffload: true });
    await m.run(() => m.onWire.length === 2);
    for (const [out, sent] of [
      [m.onWire[0]!, f],
      [m.onWire[1]!, padded],
    ] as const) {
      expect(ipHeaderValid(out)).toBe(true);
      expect(l4Valid(out)).toBe(true);
      sameExceptChecksums(out, sent, 14, 14 + 20 + 6);
    }
    // The checksum was computed over the datagram only: the junk padding did not count.
    const udpSum = (m.onWire[1]![40]! << 8) | m.onWire[1]![41]!;
    const l4 = short.subarray(34);
    const pseudo = [...short.subarray(26, 34), 0, 17, 0, l4.length];
    const ref = [...l4];
    ref[6] = ref[7] = 0;
    expect(udpSum).toBe(csum16([...pseudo, ...ref]) || 0xffff);
  });

  it("works on 802.1Q-tagged frames", async () => {
    const { m, nic } = await up();
    const f = ipFrame("tcp", payload(100), { vlan: 42 });
    nic.send(f, { checksumOffload: true });
    await m.run(() => m.onWire.length === 1);
    const out = m.onWire[0]!;
    expect(ipHeaderValid(out, 18)).toBe(true);
    expect(l4Valid(out, 18)).toBe(true);
    sameExceptChecksums(out, f, 18, 18 + 20 + 16);
  });

  it("reloads the context descriptor only when the header layout changes", async () => {
    const { m, nic } = await up();
    for (let i = 0; i < 3; i++) nic.send(ipFrame("tcp", payload(200 + i), { ipId: i }), { checksumOffload: true });
    nic.send(ipFrame("udp", payload(50)), { checksumOffload: true });
    nic.send(ipFrame("udp", payload(70)), { checksumOffload: true });
    nic.send(ipFrame("tcp", payload(10)), { checksumOffload: true });
    await m.run(() => m.onWire.length === 6);
    for (const out of m.onWire) {
      expect(ipHeaderValid(out)).toBe(true);
      expect(l4Valid(out)).toBe(true);
    }
    expect(nic.statistics().txContextDescriptors).toBe(3);
  });

  it("sends non-IP frames unchanged when offload is asked for", async () => {
    const { m, nic } = await up();
    const arp = new Uint8Array(60);
    arp.set(PEER_MAC, 0);
    arp.set(NIC_MAC, 6);
    arp[12] = 0x08;
    arp[13] = 0x06;
    arp.fill(0x77, 14);
    nic.send(arp, { checksumOffload: true });
    await m.run(() => m.onWire.length === 1);
    expect(Array.from(m.onWire[0]!)).toEqual(Array.from(arp));
    expect(nic.statistics().txChecksumOffload).toBe(0);
  });

  it("leaves checksums alone when offload is not asked for", async () => {
    const { m, nic } = await up();
    const f = ipFrame("tcp", payload(64));
    nic.send(f);
    await m.run(() => m.onWire.length === 1);
    expect(Array.from(m.onWire[0]!)).toEqual(Array.from(f));
  });

  it("zero-copy with offload: headers go through the driver's copy, the caller's buffer is not written", async () => {
    const { m, nic } = await up();
    const region = m.platform.dmaAlloc(4096);
    const f = region.bytes.subarray(8, 8 + 14 + 20 + 20 + 900);
    f.set(ipFrame("tcp", payload(900, 5)));
    const before = f.slice();
    expect(await m.settle(nic.transmit(f, { checksumOffload: true }))).toBe(true);
    const out = m.onWire[0]!;
    expect(ipHeaderValid(out)).toBe(true);
    expect(l4Valid(out)).toBe(true);
    sameExceptChecksums(out, before, 14, 14 + 20 + 16);
    expect(Array.from(f)).toEqual(Array.from(before));
    const s = nic.statistics();
    expect(s.txZeroCopy).toBe(1);
    expect(s.txChecksumOffload).toBe(1);
  });

  it("keeps offload correct across ring wrap-around with mixed frames", async () => {
    const { m, nic } = await up({ txRingSize: 16 });
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 200; i++) {
      const f = ipFrame(i % 3 === 0 ? "udp" : "tcp", payload(20 + ((i * 53) % 1400), i), { ipId: i });
      sent.push(f);
      nic.send(f, { checksumOffload: i % 5 !== 4 });
    }
    await m.run(() => m.onWire.length === 200);
    m.onWire.forEach((out, i) => {
      expect(((out[18]! << 8) | out[19]!) === i).toBe(true); // IP id: order kept
      if (i % 5 !== 4) {
        expect(ipHeaderValid(out)).toBe(true);
        expect(l4Valid(out)).toBe(true);
      } else {
        expect(Array.from(out)).toEqual(Array.from(sent[i]!));
      }
    });
  });
});

describe("checksumContext", () => {
  it("describes where the checksums of an IPv4 TCP frame go", () => {
    const f = ipFrame("tcp", payload(10));
    const c = checksumContext(f)!;
    expect(c).toMatchObject({ ipcss: 14, ipcso: 24, ipcse: 33, tucss: 34, tucso: 50, tucse: 0, protocol: "tcp" });
    // Seed: folded pseudo-header sum (addresses, protocol, TCP length), not inverted.
    const pseudo = [...f.subarray(26, 34), 0, 6, 0, 30];
    expect(c.seed).toBe(~csum16(pseudo) & 0xffff);
  });

  it("declines fragments, non-IPv4 and truncated frames", () => {
    const frag = ipFrame("udp", payload(10));
    frag[20] = 0x20; // MF
    expect(checksumContext(frag)).toBeUndefined();
    const v6 = ipFrame("tcp", payload(10));
    v6[12] = 0x86;
    v6[13] = 0xdd;
    expect(checksumContext(v6)).toBeUndefined();
    expect(checksumContext(ipFrame("tcp", payload(10)).subarray(0, 40))).toBeUndefined();
    const icmp = ipFrame("udp", payload(10));
    icmp[23] = 1;
    expect(checksumContext(icmp)).toBeUndefined();
  });
});

describe("receive checksum offload", () => {
  it("tells the receiver what the MAC verified", async () => {
    const { m, nic } = await up();
    const got: [Uint8Array, string][] = [];
    nic.onReceive((f, info) => got.push([f, info.checksum]));
    const tcp = ipFrame("tcp", payload(100), { dst: NIC_MAC, src: PEER_MAC });
    // Make its checksums valid the slow way, then break a copy.
    const fix = (f: Uint8Array) => {
      f[24] = f[25] = 0;
      const ip = csum16(f.subarray(14, 34));
      f[24] = ip >> 8;
      f[25] = ip & 0xff;
      f[50] = f[51] = 0;
      const l4 = f.subarray(34);
      const c = csum16([...f.subarray(26, 34), 0, 6, l4.length >> 8, l4.length & 0xff, ...l4]);
      f[50] = c >> 8;
      f[51] = c & 0xff;
      return f;
    };
    const good = fix(tcp);
    expect(ipHeaderValid(good) && l4Valid(good)).toBe(true);
    const bad = good.slice();
    bad[60] = bad[60]! ^ 0xff;
    const arp = new Uint8Array(60);
    arp.set(NIC_MAC, 0);
    arp.set(PEER_MAC, 6);
    arp[12] = 0x08;
    arp[13] = 0x06;
    m.wire.send(good);
    m.wire.send(bad);
    m.wire.send(arp);
    await m.run(() => got.length === 3);
    expect(got.map(([, c]) => c)).toEqual(["verified", "bad", "none"]);
    expect(Array.from(got[1]![0])).toEqual(Array.from(bad)); // delivered anyway
    const s = nic.statistics();
    expect(s.rxChecksumOk).toBe(1);
    expect(s.rxChecksumErrors).toBe(1);
  });
});
