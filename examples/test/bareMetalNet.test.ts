import { describe, expect, it } from "vitest";
import { parseIpv4Packet } from "@paravirt/net-stack";
import { bootBareMetalNet } from "../src/bareMetalNet.ts";
import { attachSimulatedHost, WIRE_HOST } from "../src/xen2/network.ts";

describe("bare metal: the same e1000 driver on a PcBoard, talking to a simulated host", () => {
  it("pings the host and gets every reply; UDP echo comes back intact", async () => {
    const m = await bootBareMetalNet({ ip: "10.0.0.2" });
    expect(m.nic.linkUp).toBe(true);
    const host = attachSimulatedHost({ clock: m.board.clock }, m.wire);
    const rtts: number[] = [];
    for (let seq = 1; seq <= 4; seq++) {
      const r = await m.run(m.stack.ping(WIRE_HOST.ip, { seq, size: 100 * seq }));
      expect(r.bytes).toBe(100 * seq);
      rtts.push(r.rttNs);
    }
    for (const rtt of rtts) {
      expect(rtt).toBeGreaterThanOrEqual(20_000); // the host's reply delay
      expect(rtt).toBeLessThan(2_000_000);
    }
    expect(host.counters.echoReplies).toBe(4);
    const echoed: Uint8Array[] = [];
    const sock = m.stack.bind(0, (d) => echoed.push(d));
    const data = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
    await m.run(sock.sendTo(WIRE_HOST.ip, 7, data));
    await m.run(new Promise<void>((resolve) => {
      const check = () => (echoed.length > 0 ? resolve() : m.board.clock.schedule(m.board.clock.now() + 10_000, check));
      check();
    }));
    expect(echoed[0]).toEqual(data);
    expect(host.counters.udpEchoes).toBe(1);
    const fromUs = host.log.map((f) => parseIpv4Packet(f)).filter((p) => p !== undefined);
    expect(fromUs.every((p) => p.src.join(".") === "10.0.0.2" && p.headerOk)).toBe(true);
    const s = m.nic.statistics();
    expect(s.hw.goodPacketsTx).toBe(6); // ARP request, 4 echo requests, 1 datagram
    expect(s.hw.goodPacketsRx).toBe(6);
    expect(m.stack.counters.badChecksum).toBe(0);
  });
});
