import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { VirtualClock, cable } from "@paravirt/vm-interfaces";
import { commandWorks, externalTool } from "@paravirt/test-support";
import { PcapFile, PcapWriter, SimulatedHost, capturePort, ethernetFrame, ipv4Packet, parseIpv4, readPcap, udpDatagram } from "../src/index.ts";

const tshark = externalTool("tshark", () => commandWorks("tshark", ["--version"]), "apt-get install tshark");
const dir = mkdtempSync(join(tmpdir(), "net-wire-pcap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MAC1 = Uint8Array.of(0x02, 0, 0, 0, 0, 1);
const MAC2 = Uint8Array.of(0x02, 0, 0, 0, 0, 2);

function conversation(writer: PcapWriter, clock: VirtualClock) {
  const [a, b] = cable(writer.tap);
  const h1 = new SimulatedHost({ mac: MAC1, ip: parseIpv4("192.168.7.1") });
  const h2 = new SimulatedHost({ mac: MAC2, ip: parseIpv4("192.168.7.2") });
  h1.plugInto(a);
  h2.plugInto(b);
  h1.sendArpRequest(h2.ip);
  clock.advanceBy(1_500_000_000);
  for (let seq = 1; seq <= 3; seq++) {
    h1.sendPing(MAC2, h2.ip, 0x77, seq, Uint8Array.from({ length: 56 * seq }, (_, i) => i));
    clock.advanceBy(1000);
  }
  h1.sendUdp(MAC2, h2.ip, 40000, 7, new TextEncoder().encode("odd-length payload!"));
  h1.sendUdp(MAC2, h2.ip, 40001, 7, new Uint8Array(1400).fill(0x5a));
  return { h1, h2 };
}

describe("PcapWriter", () => {
  it("writes the libpcap global header for Ethernet", () => {
    const w = new PcapWriter();
    const h = w.bytes();
    expect(h.length).toBe(24);
    const dv = new DataView(h.buffer);
    expect(dv.getUint32(0, true)).toBe(0xa1b2c3d4);
    expect(dv.getUint16(4, true)).toBe(2);
    expect(dv.getUint16(6, true)).toBe(4);
    expect(dv.getUint32(16, true)).toBe(262144);
    expect(dv.getUint32(20, true)).toBe(1);
  });

  it("stamps records with virtual time and reads them back (micro- and nanoseconds)", () => {
    for (const nanosecond of [false, true]) {
      const clock = new VirtualClock();
      const w = new PcapWriter({ clock, nanosecond });
      const f = new Uint8Array(64).fill(7);
      clock.advanceBy(2_000_123_456);
      w.write(f);
      w.write(f.subarray(0, 60), 5_000_000_000);
      const c = readPcap(w.bytes());
      expect(c.linkType).toBe(1);
      expect(c.nanosecond).toBe(nanosecond);
      expect(c.records.map((r) => r.timeNs)).toEqual([nanosecond ? 2_000_123_456 : 2_000_123_000, 5_000_000_000]);
      expect(c.records[0]!.frame).toEqual(f);
      expect(c.records[1]!.originalLength).toBe(60);
    }
  });

  it("truncates to snaplen but records the original length", () => {
    const w = new PcapWriter({ snaplen: 100 });
    w.write(new Uint8Array(1514));
    const r = readPcap(w.bytes()).records[0]!;
    expect(r.frame.length).toBe(100);
    expect(r.originalLength).toBe(1514);
  });

  it("captures both directions through capturePort", () => {
    const [a, b] = cable();
    const w = new PcapWriter();
    const ca = capturePort(a, w);
    ca.onReceive(() => {});
    b.onReceive(() => {});
    ca.send(new Uint8Array(60).fill(1));
    b.send(new Uint8Array(61).fill(2));
    expect(readPcap(w.bytes()).records.map((r) => r.frame.length)).toEqual([60, 61]);
  });

  it("rejects a file that is not pcap", () => {
    expect(() => readPcap(new Uint8Array(24))).toThrow(RangeError);
    const w = new PcapWriter();
    w.write(new Uint8Array(60));
    expect(() => readPcap(w.bytes().subarray(0, 50))).toThrow(RangeError);
  });

  it("PcapFile streams to disk", () => {
    const clock = new VirtualClock();
    const path = join(dir, "stream.pcap");
    const w = new PcapFile(path, { clock });
    conversation(w, clock);
    w.close();
    const c = readPcap(new Uint8Array(readFileSync(path)));
    expect(c.records).toHaveLength(12); // ARP 2, ICMP 6, UDP 4
  });
});

describe.skipIf(tshark.skip)("tshark reads the capture", () => {
  function tsharkFields(path: string): string[][] {
    const r = spawnSync(
      "tshark",
      ["-r", path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=,", "-e", "frame.protocols", "-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "icmp.checksum.status", "-e", "_ws.malformed"],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    return r.stdout.trim().split("\n").map((l) => l.split(","));
  }

  it("decodes every frame of a simulated conversation with valid checksums", () => {
    tshark.check();
    const clock = new VirtualClock();
    const path = join(dir, "conversation.pcap");
    const w = new PcapFile(path, { clock, epochNs: 1_700_000_000e9 });
    conversation(w, clock);
    w.close();
    const rows = tsharkFields(path);
    expect(rows).toHaveLength(12);
    const protos = rows.map((r) => r[0]);
    expect(protos.filter((p) => p === "eth:ethertype:arp")).toHaveLength(2);
    expect(protos.filter((p) => p?.startsWith("eth:ethertype:ip:icmp"))).toHaveLength(6);
    expect(protos.filter((p) => p?.startsWith("eth:ethertype:ip:udp"))).toHaveLength(4);
    for (const [proto, ip, udp, icmp, malformed] of rows) {
      expect(malformed ?? "").toBe("");
      if (proto!.includes(":ip:")) expect(ip).toBe("1"); // Good
      if (proto!.includes(":udp")) expect(udp).toBe("1");
      if (proto!.includes(":icmp")) expect(icmp).toBe("1");
    }
  });

  it("flags a frame with a corrupted checksum (the check is real)", () => {
    tshark.check();
    const path = join(dir, "bad.pcap");
    const w = new PcapFile(path);
    const src = parseIpv4("10.1.1.1");
    const dst = parseIpv4("10.1.1.2");
    const f = ethernetFrame(MAC2, MAC1, 0x0800, ipv4Packet(src, dst, 17, udpDatagram(src, dst, 1, 2, new Uint8Array(30))));
    f[40] = f[40]! ^ 0x10; // UDP checksum
    w.write(f);
    w.close();
    const [row] = tsharkFields(path);
    expect(row![1]).toBe("1");
    expect(row![2]).toBe("0"); // Bad
  });
});
