/**
 * The model on a real-looking wire: a SimulatedHost from @paravirt/net-wire answers what the
 * "driver" (this test, through the BARs) sends, and a pcap of the cable is checked by tshark.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { IoBus, PCI_COMMAND, PCI_CONFIG, VirtualClock, cable } from "@paravirt/vm-interfaces";
import { FlatMemory, RecordingIrqLine } from "@paravirt/vm-interfaces/testing";
import { PcapWriter, SimulatedHost, arpPacket, ethernetFrame, icmpEcho, ipv4Packet, parseIpv4 } from "@paravirt/net-wire";
import { commandWorks, externalTool } from "@paravirt/test-support";
import { E1000PciFunction } from "../src/index.ts";
import { MAC, buildPacket, pseudoSeed } from "./harness.ts";

const tshark = externalTool("tshark", () => commandWorks("tshark", ["--version"]), "apt-get install tshark");
const dir = mkdtempSync(join(tmpdir(), "e1000-wire-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOST_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x02);
const HOST_IP = parseIpv4("10.0.2.2");
const GUEST_IP = parseIpv4("10.0.2.15");
const BASE = 0xfebc0000;

/** A minimal polled "driver" over the BARs. */
class MiniDriver {
  readonly clock = new VirtualClock();
  readonly mem = new FlatMemory(0x400000);
  readonly irq = new RecordingIrqLine();
  readonly bus = new IoBus(2 ** 32);
  readonly pcap: PcapWriter;
  readonly host: SimulatedHost;
  readonly nic: E1000PciFunction;
  private txTail = 0;
  private rxNext = 0;

  constructor() {
    this.pcap = new PcapWriter({ clock: this.clock, epochNs: 1_750_000_000e9 });
    const [nicEnd, hostEnd] = cable(this.pcap.tap);
    this.host = new SimulatedHost({ mac: HOST_MAC, ip: HOST_IP, clock: this.clock, replyDelayNs: 20_000 });
    this.host.plugInto(hostEnd);
    this.nic = new E1000PciFunction({ memory: this.mem, irq: this.irq, clock: this.clock, mac: MAC, port: nicEnd });
    this.nic.configWrite(PCI_CONFIG.BAR0, 4, BASE);
    this.nic.configWrite(PCI_CONFIG.COMMAND, 2, PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER);
    this.bus.register({ base: BASE, length: 0x20000 }, this.nic.bars[0]!.device);
    // Tx ring: 32 descriptors at 0x10000, buffers at 0x100000 (64 KiB each).
    this.w(0x3800, 0x10000);
    this.w(0x3808, 32 * 16);
    this.w(0x3810, 0);
    this.w(0x3818, 0);
    this.w(0x0400, 0x2 | 0x8);
    // Rx ring: 16 descriptors at 0x20000, 2 KiB buffers at 0x30000.
    for (let i = 0; i < 16; i++) this.mem.writeU32(0x20000 + i * 16, 0x30000 + i * 2048);
    this.w(0x2800, 0x20000);
    this.w(0x2808, 16 * 16);
    this.w(0x2810, 0);
    this.w(0x2818, 15);
    this.w(0x0100, 0x2 | (1 << 15) | (1 << 26)); // EN | BAM | SECRC
    this.w(0x00d0, 0x80);
  }

  w(off: number, v: number): void {
    this.bus.write(BASE + off, 4, v >>> 0);
  }
  r(off: number): number {
    return this.bus.read(BASE + off, 4);
  }

  /** Legacy descriptor transmit of a whole frame. */
  send(frame: Uint8Array): void {
    const i = this.txTail;
    const buf = 0x100000 + i * 0x10000;
    this.mem.write(buf, frame);
    const d = 0x10000 + i * 16;
    this.mem.writeU32(d, buf);
    this.mem.writeU32(d + 4, 0);
    this.mem.writeU32(d + 8, frame.length | ((0x01 | 0x02 | 0x08) << 24));
    this.mem.writeU32(d + 12, 0);
    this.txTail = (i + 1) % 32;
    this.w(0x3818, this.txTail);
  }

  /** TSO transmit: header + payload with a context descriptor. */
  sendTso(header: Uint8Array, payload: Uint8Array, mss: number): void {
    const ctx = this.txTail;
    const put = (i: number, d0: number, d2: number, d3: number) => {
      const d = 0x10000 + i * 16;
      this.mem.writeU32(d, d0);
      this.mem.writeU32(d + 4, 0);
      this.mem.writeU32(d + 8, d2);
      this.mem.writeU32(d + 12, d3);
    };
    put(ctx, 14 | (24 << 8) | (33 << 16), payload.length | ((0x01 | 0x02 | 0x04 | 0x20) << 24), (header.length << 8) | (mss << 16));
    // TUCSS/TUCSO live in dword 1 of the context descriptor.
    this.mem.writeU32(0x10000 + ctx * 16 + 4, 34 | (50 << 8));
    const h = (ctx + 1) % 32;
    const p = (ctx + 2) % 32;
    this.mem.write(0x100000 + h * 0x10000, header);
    this.mem.write(0x100000 + p * 0x10000, payload);
    put(h, 0x100000 + h * 0x10000, header.length | (1 << 20) | ((0x04 | 0x20) << 24), 0x03 << 8);
    put(p, 0x100000 + p * 0x10000, payload.length | (1 << 20) | ((0x01 | 0x04 | 0x08 | 0x20) << 24), 0);
    this.txTail = (ctx + 3) % 32;
    this.w(0x3818, this.txTail);
  }

  /** Frames the NIC has stored since the last call; gives the descriptors back. */
  receive(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (;;) {
      const d = 0x20000 + this.rxNext * 16;
      if ((this.mem.readU8(d + 12) & 1) === 0) break;
      const len = this.mem.readU16(d + 8);
      out.push(this.mem.bytes.slice(this.mem.readU32(d), this.mem.readU32(d) + len));
      this.mem.writeU8(d + 12, 0);
      this.w(0x2818, this.rxNext);
      this.rxNext = (this.rxNext + 1) % 16;
    }
    return out;
  }
}

describe("e1000 talking to a simulated host", () => {
  it("resolves the host with ARP, pings it and gets the replies through the Rx ring", () => {
    const d = new MiniDriver();
    d.send(ethernetFrame(Uint8Array.of(255, 255, 255, 255, 255, 255), MAC, 0x0806, arpPacket(1, MAC, GUEST_IP, new Uint8Array(6), HOST_IP)));
    expect(d.receive()).toHaveLength(0); // the host answers 20 µs later
    d.clock.advanceBy(20_000);
    expect(d.irq.level).toBe(true);
    const [arp] = d.receive();
    expect(Array.from(arp!.subarray(22, 28))).toEqual(Array.from(HOST_MAC));
    for (let seq = 1; seq <= 4; seq++) {
      d.send(ethernetFrame(HOST_MAC, MAC, 0x0800, ipv4Packet(GUEST_IP, HOST_IP, 1, icmpEcho(8, 42, seq, new Uint8Array(56).fill(seq)))));
    }
    d.clock.advanceBy(20_000);
    const replies = d.receive();
    expect(replies).toHaveLength(4);
    expect(replies.map((f) => (f[40]! << 8) | f[41]!)).toEqual([1, 2, 3, 4]);
    expect(d.host.counters.echoReplies).toBe(4);
    expect(d.r(0x4074)).toBe(5); // GPRC
  });

  it.skipIf(tshark.skip)("produces a capture in which tshark finds every checksum good, TSO segments included", () => {
    tshark.check();
    const d = new MiniDriver();
    d.send(ethernetFrame(Uint8Array.of(255, 255, 255, 255, 255, 255), MAC, 0x0806, arpPacket(1, MAC, GUEST_IP, new Uint8Array(6), HOST_IP)));
    d.clock.advanceBy(100_000);
    d.send(ethernetFrame(HOST_MAC, MAC, 0x0800, ipv4Packet(GUEST_IP, HOST_IP, 1, icmpEcho(8, 1, 1, new Uint8Array(1000).fill(7)))));
    d.clock.advanceBy(100_000);
    const hdr = buildPacket({ dst: HOST_MAC, proto: "tcp", payload: new Uint8Array(0), ipId: 0x2000, seq: 77, tcpFlags: 0x18 });
    hdr[16] = hdr[17] = 0;
    const seed = pseudoSeed(hdr, 0);
    hdr[50] = seed >> 8;
    hdr[51] = seed & 0xff;
    d.sendTso(hdr, Uint8Array.from({ length: 20000 }, (_, i) => i & 0xff), 1448);
    const path = join(dir, "e1000.pcap");
    writeFileSync(path, d.pcap.bytes());
    const r = spawnSync(
      "tshark",
      ["-r", path, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-T", "fields", "-E", "separator=,", "-e", "frame.protocols", "-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "icmp.checksum.status", "-e", "tcp.len", "-e", "_ws.malformed"],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout.trim().split("\n").map((l) => l.split(","));
    const tcp = rows.filter((row) => row[0]!.includes(":tcp"));
    expect(rows).toHaveLength(2 + 2 + 14);
    expect(tcp).toHaveLength(14); // ceil(20000 / 1448)
    expect(tcp.reduce((n, row) => n + Number(row[4]), 0)).toBe(20000);
    for (const [proto, ip, tcpStatus, icmp, , malformed] of rows) {
      expect(malformed ?? "").toBe("");
      if (proto!.includes(":ip:")) expect(ip).toBe("1");
      if (proto!.includes(":tcp")) expect(tcpStatus).toBe("1");
      if (proto!.includes(":icmp")) expect(icmp).toBe("1");
    }
  });
});
