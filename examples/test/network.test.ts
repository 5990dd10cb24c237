import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { commandWorks, externalTool } from "@paravirt/test-support";
import { readPcap } from "@paravirt/net-wire";
import { ICMP_TYPE, inetChecksum, parseArp, parseIpv4, parseIpv4Packet, type UdpMeta } from "@paravirt/net-stack";
import { bootXen2Net, inGuest, runNetworkWorkload, WIRE_HOST } from "../src/xen2/network.ts";

const tshark = externalTool("tshark", () => commandWorks("tshark", ["--version"]), "apt-get install tshark");
const dir = mkdtempSync(join(tmpdir(), "xen2-net-"));
afterAll(() => { if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true }); });

describe("Xen 2.0 network path: domU netfront -> dom0 netback -> bridge -> e1000 driver -> hw-e1000 -> wire", () => {
  it("a domU pings the simulated host on the e1000's wire and gets every reply, RTTs in virtual time", async () => {
    const lines: string[] = [];
    const sys = await bootXen2Net({ narrate: (_t, who, l) => lines.push(`${who}: ${l}`) });
    const [u1] = sys.domUs;
    const rtts: number[] = [];
    for (let seq = 1; seq <= 5; seq++) {
      const r = await sys.run(inGuest(u1!, () => u1!.stack.ping(WIRE_HOST.ip, { seq })));
      expect(r.bytes).toBe(56);
      expect(r.ttl).toBe(64);
      rtts.push(r.rttNs);
    }
    // Replies take at least the host's 20 µs reply delay, and far less than the 1 s timeout.
    for (const rtt of rtts) {
      expect(rtt).toBeGreaterThanOrEqual(20_000);
      expect(rtt).toBeLessThan(5_000_000);
    }
    expect(sys.host.counters.echoReplies).toBe(5);
    expect(sys.host.counters.arpReplies).toBe(1);
    // Every request crossed the real hardware: the e1000 transmitted ARP + 5 echo requests and
    // received the ARP reply + 5 echo replies.
    const s = sys.dom0.nic.statistics();
    expect(s.hw.goodPacketsTx).toBeGreaterThanOrEqual(6);
    expect(s.hw.goodPacketsRx).toBeGreaterThanOrEqual(6);
    expect(s.interrupts).toBeGreaterThan(0);
    const nb = sys.domUs[0]!.vif.netback.stats;
    expect(nb.txPackets).toBeGreaterThanOrEqual(6);
    expect(nb.rxPackets).toBeGreaterThanOrEqual(6);
    // The host saw the domU's own MAC and address (the bridge, not NAT).
    const fromGuest = sys.host.log.map((f) => parseIpv4Packet(f)).filter((p) => p !== undefined);
    expect(fromGuest.length).toBe(5);
    expect(fromGuest.every((p) => p.src.join(".") === u1!.ip)).toBe(true);
    expect(lines.filter((l) => l.includes("refused"))).toEqual([]);
    expect(sys.hv.logLines.filter((l) => l.includes("refused"))).toEqual([]);
  });

  it("two domUs exchange UDP over dom0's bridge; the e1000 transmits none of those frames", async () => {
    const sys = await bootXen2Net();
    const [u1, u2] = sys.domUs as [(typeof sys.domUs)[0], (typeof sys.domUs)[0]];
    const nicTxBefore = sys.dom0.nic.statistics().hw.goodPacketsTx;
    const wireBefore = sys.host.counters.received;
    const atU2: { data: Uint8Array; meta: UdpMeta }[] = [];
    const atU1: Uint8Array[] = [];
    const COUNT = 200;
    await sys.run(
      inGuest(u2, () => {
        // An echo service in domU2: every datagram goes back reversed.
        u2.stack.bind(5000, (data, meta) => {
          atU2.push({ data, meta });
          void u2.stack.sendUdp(5000, meta.src, meta.srcPort, data.slice().reverse());
        });
      }),
    );
    const sock = await sys.run(inGuest(u1, () => u1.stack.bind(6000, (data) => atU1.push(data))));
    const payload = (i: number) => Uint8Array.from({ length: 1 + ((i * 37) % 1400) }, (_, j) => (i * 7 + j) & 0xff);
    await sys.run(
      inGuest(u1, async () => {
        for (let i = 0; i < COUNT; i++) await sock.sendTo(u2.ip, 5000, payload(i));
      }),
    );
    await sys.run(new Promise<void>((resolve) => {
      const check = () => (atU1.length >= COUNT ? resolve() : sys.clock.schedule(sys.clock.now() + 100_000, check));
      check();
    }));
    expect(atU2.length).toBe(COUNT);
    atU2.forEach((d, i) => {
      expect(d.data).toEqual(payload(i));
      expect(d.meta.src.join(".")).toBe(u1.ip);
      expect(d.meta.srcPort).toBe(6000);
    });
    atU1.forEach((d, i) => expect(d).toEqual(payload(i).reverse()));
    // The bridge forwarded vif to vif: nothing reached the NIC's transmitter or the wire
    // (the ARP request, broadcast, is flooded to eth0 too; the 400 datagrams are not).
    const nicTx = sys.dom0.nic.statistics().hw.goodPacketsTx - nicTxBefore;
    expect(nicTx).toBeLessThanOrEqual(1);
    expect(sys.host.counters.received - wireBefore).toBe(nicTx);
    expect(sys.dom0.bridge.stats("vif1.0")!.rxFrames).toBeGreaterThanOrEqual(COUNT);
    expect(sys.dom0.bridge.stats("vif2.0")!.rxFrames).toBeGreaterThanOrEqual(COUNT);
    expect(sys.dom0.bridge.stats("eth0")!.txFrames).toBe(nicTx);
    expect(u1.stack.counters.badChecksum + u2.stack.counters.badChecksum).toBe(0);
  });

  it.skipIf(tshark.skip)("captures the wire to pcap; tshark decodes every frame with good checksums", async () => {
    tshark.check();
    const path = join(dir, "wire.pcap");
    const sys = await bootXen2Net({ pcap: path });
    const [u1, u2] = sys.domUs as [(typeof sys.domUs)[0], (typeof sys.domUs)[0]];
    for (let seq = 1; seq <= 3; seq++) await sys.run(inGuest(u1, () => u1.stack.ping(WIRE_HOST.ip, { seq, size: 56 * seq })));
    await sys.run(inGuest(u2, () => u2.stack.ping(WIRE_HOST.ip)));
    // UDP echo (port 7) from the host, odd and large payloads.
    const echoed: Uint8Array[] = [];
    const sock = await sys.run(inGuest(u2, () => u2.stack.bind(0, (d) => echoed.push(d))));
    await sys.run(inGuest(u2, () => sock.sendTo(WIRE_HOST.ip, 7, new TextEncoder().encode("odd-length payload!"))));
    await sys.run(inGuest(u2, () => sock.sendTo(WIRE_HOST.ip, 7, new Uint8Array(1400).fill(0x5a))));
    await sys.run(new Promise<void>((resolve) => {
      const check = () => (echoed.length >= 2 ? resolve() : sys.clock.schedule(sys.clock.now() + 100_000, check));
      check();
    }));
    sys.close();
    const cap = readPcap(readFileSync(path));
    // 2 ARP exchanges, 4 pings, 2 UDP echoes: 16 frames, each way.
    expect(cap.records.length).toBe(16);
    const r = spawnSync("tshark", ["-r", path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-T", "fields", "-e", "frame.number", "-e", "frame.protocols", "-e", "ip.checksum.status", "-e", "icmp.checksum.status", "-e", "udp.checksum.status", "-E", "separator=|"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const rows = r.stdout.trim().split("\n").map((l) => l.split("|"));
    expect(rows.length).toBe(16);
    for (const [n, protocols, ipStatus, icmpStatus, udpStatus] of rows) {
      expect(protocols, `frame ${n}`).toMatch(/^eth:ethertype:(arp|ip:icmp:data|ip:udp:(echo|data))$/);
      if (protocols!.includes(":ip:")) expect(ipStatus, `frame ${n} ip`).toBe("1"); // PROTO_CHECKSUM_E_GOOD [epan/proto.h]
      if (protocols!.includes(":icmp")) expect(icmpStatus, `frame ${n} icmp`).toBe("1");
      if (protocols!.includes(":udp")) expect(udpStatus, `frame ${n} udp`).toBe("1");
    }
    const expert = spawnSync("tshark", ["-r", path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-z", "expert,error", "-q"], { encoding: "utf8" });
    expect(expert.stdout).not.toMatch(/Malformed|Bad checksum|incorrect/i);
  });

  it("runs the demo's workload: pings, UDP between the domUs and to the wire, with counters", async () => {
    const lines: string[] = [];
    const sys = await bootXen2Net({ narrate: (_t, who, l) => lines.push(`${who}: ${l}`) });
    const r = await runNetworkWorkload(sys, { pings: 3, datagrams: 50, wireDatagrams: 10 });
    expect(r.pings.map((p) => p.seq)).toEqual([1, 2, 3]);
    expect(r.pings.every((p) => p.rttNs > 0 && p.bytes === 56)).toBe(true);
    expect(r.domUToDomU).toMatchObject({ sent: 50, echoed: 50, intact: true });
    expect(r.domUToDomU.nicTxFrames).toBeLessThanOrEqual(1);
    expect(r.toWire).toEqual({ sent: 10, echoed: 10, intact: true });
    expect(r.counters.host.echoReplies).toBe(3);
    expect(r.counters.host.udpEchoes).toBe(10);
    expect(r.counters.vifs["vif1.0"]!.netback.txPackets).toBeGreaterThanOrEqual(53);
    expect(r.counters.bridge["eth0"]!.txFrames).toBe(r.counters.nic.wireTxFrames);
    expect(lines.some((l) => l.includes("icmp_seq=3"))).toBe(true);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it("a host on the wire resolves and pings a domU: the domU's stack answers through netfront, netback, the bridge and the e1000", async () => {
    const sys = await bootXen2Net();
    const u1 = sys.domUs[0]!;
    const before = sys.host.log.length;
    sys.host.sendArpRequest(parseIpv4(u1.ip));
    await sys.run(new Promise<void>((r) => sys.clock.schedule(sys.clock.now() + 1_000_000, r)));
    const arp = sys.host.log.slice(before).map((f) => parseArp(f)).find((a) => a !== undefined && a.op === 2);
    expect(arp).toBeDefined();
    expect(arp!.senderIp.join(".")).toBe(u1.ip);
    const mac = arp!.senderMac;
    for (let seq = 1; seq <= 3; seq++) sys.host.sendPing(mac, parseIpv4(u1.ip), 0x4242, seq, Uint8Array.from({ length: 100 * seq }, (_, i) => i & 0xff));
    await sys.run(new Promise<void>((r) => sys.clock.schedule(sys.clock.now() + 1_000_000, r)));
    const replies = sys.host.log
      .slice(before)
      .map((f) => parseIpv4Packet(f))
      .filter((p) => p !== undefined && p.proto === 1 && p.payload[0] === ICMP_TYPE.ECHO_REPLY);
    expect(replies.length).toBe(3);
    replies.forEach((p, i) => {
      expect(p!.headerOk).toBe(true);
      expect(inetChecksum(p!.payload)).toBe(0);
      expect(p!.src.join(".")).toBe(u1.ip);
      expect(p!.payload.length).toBe(8 + 100 * (i + 1));
    });
    expect(u1.stack.counters.echoReplies).toBe(3);
  });
});
