/**
 * Runs QEMU (Debian qemu-system-x86) with an e1000 whose iPXE ROM PXE-boots, so real QEMU
 * network backends put DHCP traffic on our wires; plus a tiny DHCP offer builder.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { commandWorks, externalTool } from "@paravirt/test-support";
import { ethernetFrame, ipv4Packet, parseIpv4, udpDatagram } from "../src/index.ts";

export const qemu = externalTool(
  "qemu-system-x86_64 + iPXE e1000 ROM",
  () => commandWorks("qemu-system-x86_64", ["--version"]) && existsSync("/usr/lib/ipxe/qemu/efi-e1000.rom"),
  "apt-get install qemu-system-x86 ipxe-qemu",
);

export const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);

/** Starts QEMU with `-netdev <netdev>` and `-boot n`; the caller kills it. */
export function startQemu(netdev: string): ChildProcess {
  return spawn(
    "qemu-system-x86_64",
    ["-M", "pc", "-accel", "tcg", "-nodefaults", "-display", "none", "-m", "64", "-netdev", netdev, "-device", "e1000,netdev=n0,mac=52:54:00:12:34:56", "-boot", "n"],
    { stdio: "ignore" },
  );
}

export function stopQemu(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once("exit", () => resolve());
    p.kill("SIGKILL");
  });
}

/** Parsed DHCP message from a frame, if the frame carries one (UDP 68 → 67). */
export function dhcpFromFrame(f: Uint8Array): { type: number; xid: number } | undefined {
  if (f.length < 14 + 20 + 8 + 240 || f[12] !== 0x08 || f[13] !== 0x00 || f[23] !== 17) return undefined;
  const ihl = (f[14]! & 0xf) * 4;
  const u = 14 + ihl;
  if (((f[u]! << 8) | f[u + 1]!) !== 68 || ((f[u + 2]! << 8) | f[u + 3]!) !== 67) return undefined;
  const d = u + 8;
  const xid = ((f[d + 4]! << 24) | (f[d + 5]! << 16) | (f[d + 6]! << 8) | f[d + 7]!) >>> 0;
  let o = d + 240;
  while (o < f.length && f[o] !== 255) {
    if (f[o] === 0) {
      o++;
      continue;
    }
    if (f[o] === 53) return { type: f[o + 2]!, xid };
    o += 2 + f[o + 1]!;
  }
  return undefined;
}

/** A DHCPOFFER for 10.0.2.15 from 10.0.2.2 [RFC 2131, RFC 2132]. */
export function dhcpOffer(xid: number): Uint8Array {
  const server = parseIpv4("10.0.2.2");
  const bootp = new Uint8Array(240 + 32);
  const dv = new DataView(bootp.buffer);
  bootp[0] = 2; // BOOTREPLY
  bootp[1] = 1;
  bootp[2] = 6;
  dv.setUint32(4, xid);
  bootp.set([10, 0, 2, 15], 16); // yiaddr
  bootp.set(server, 20); // siaddr
  bootp.set(GUEST_MAC, 28);
  bootp.set([99, 130, 83, 99], 236);
  bootp.set([53, 1, 2, 54, 4, ...server, 1, 4, 255, 255, 255, 0, 51, 4, 0, 0, 0x0e, 0x10, 3, 4, ...server, 255], 240);
  const bcast = parseIpv4("255.255.255.255");
  return ethernetFrame(GUEST_MAC, Uint8Array.of(0x52, 0x55, 0x0a, 0x00, 0x02, 0x02), 0x0800, ipv4Packet(server, bcast, 17, udpDatagram(server, bcast, 67, 68, bootp)));
}
