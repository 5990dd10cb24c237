/**
 * `paravirt demo`: the product's front door. Builds the Xen 2.0 system on a raw disk image,
 * runs a workload in the domU, and tells a newcomer what happened where.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DiskImageError, RawImageFile } from "@paravirt/disk-image";
import { XVDA } from "./xen2/system.ts";
import { bootDemoSystem } from "./xen2/demoSystem.ts";
import { runNetworkWorkload, WIRE_HOST, type NetWorkloadResult } from "./xen2/network.ts";
import { createHash } from "node:crypto";
import { measureThroughput, runDiskWorkload, scratchPattern, type ThroughputResult, type WrittenRegion } from "./workload.ts";

export interface DemoOptions {
  /** Raw image to use (created at `sizeMiB` when missing); default: a fresh one in a temp folder. */
  disk?: string;
  sizeMiB: number;
  json: boolean;
  /** Capture the e1000's wire to this pcap file. */
  pcap?: string;
  /** Where narrative lines go (default stdout). */
  out?: (line: string) => void;
}

export interface DemoReport {
  image: { path: string; bytes: number; created: boolean; temporary: boolean };
  system: { hypervisor: string; domains: { domid: number; name: string; role: string }[] };
  writes: WrittenRegion[];
  verified: boolean;
  throughput: ThroughputResult[];
  counters: Record<string, number>;
  network: {
    pings: NetWorkloadResult["pings"];
    domUToDomU: NetWorkloadResult["domUToDomU"];
    toWire: NetWorkloadResult["toWire"];
    counters: NetWorkloadResult["counters"];
    pcap?: string;
  };
  virtualTimeNs: number;
  wallSeconds: number;
  peakRssBytes: number;
}

/** A user-facing failure: printed as one line, exit code 1. */
export class DemoError extends Error {
  override readonly name = "DemoError";
}

async function openImage(o: DemoOptions): Promise<{ image: RawImageFile; path: string; created: boolean; temporary: boolean; cleanup(): void }> {
  const bytes = o.sizeMiB * 1024 * 1024;
  if (o.disk === undefined) {
    const dir = mkdtempSync(join(tmpdir(), "paravirt-demo-"));
    const path = join(dir, "disk.img");
    const image = await RawImageFile.open(path, { create: bytes });
    return { image, path, created: true, temporary: true, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  }
  const path = resolve(o.disk);
  const exists = existsSync(path);
  try {
    const image = exists ? await RawImageFile.open(path) : await RawImageFile.open(path, { create: bytes });
    if (image.info.sectors < 8192) {
      await image.close();
      throw new DemoError(`${path}: ${image.info.sectors * 512} bytes is too small for the demo (needs at least 4 MiB)`);
    }
    return { image, path, created: !exists, temporary: false, cleanup: () => {} };
  } catch (e) {
    if (e instanceof DiskImageError) throw new DemoError(e.message);
    throw e;
  }
}

function fmtTime(ns: number): string {
  return `[${(ns / 1e9).toFixed(6)}]`;
}

/** Runs the demo; resolves with the report (also printed as the narrative or as JSON). */
export async function runDemo(o: DemoOptions): Promise<DemoReport> {
  const print = o.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const say = (l: string) => {
    if (!o.json) print(l);
  };
  const t0 = performance.now();
  const img = await openImage(o);
  say(`paravirt demo: the Xen 2.0 I/O architecture on emulated hardware`);
  say(`disk image: ${img.path} (${(img.image.info.sectors * 512) / 2 ** 20} MiB${img.created ? ", new" : ""})`);
  say("");
  say("Booting: hypervisor-core on a PC board with a PIIX IDE controller (hw-ide) whose disk is the image,");
  say(`and an Intel 82540EM (hw-e1000) whose wire leads to a simulated host at ${WIRE_HOST.ip}.`);
  say("dom0 is privileged and owns both controllers (vanilla ATA and e1000 drivers, blkback, netback, a bridge,");
  say("xenstored); domU1 and domU2 have no hardware and reach the disk and the wire through dom0.");
  say("");
  const pcap = o.pcap === undefined ? undefined : resolve(o.pcap);
  try {
    const sys = await bootDemoSystem({
      disk: img.image,
      ...(pcap !== undefined ? { pcap } : {}),
      narrate: (t, who, line) => say(`${fmtTime(t)} ${who.padEnd(15)} ${line}`),
    });
    const hv = sys.hv;
    const xvda = sys.xvda;
    say("");
    say(`domU1 writes known patterns at several offsets of xvda, flushes, reads them back:`);
    const result = await sys.run(
      runDiskWorkload(xvda, { phase: (p) => say(`${fmtTime(hv.clock.now())} domU1           workload: ${p}`) }),
    );
    for (const w of result.writes) say(`  wrote ${String(w.length).padStart(7)} bytes at byte ${String(w.offset).padStart(10)}  sha256 ${w.sha256.slice(0, 16)}…`);
    say(`  read back and verified: ${result.verified ? "all regions match" : "MISMATCH"}`);
    say("");
    // A scratch area for the throughput runs, clear of the workload's regions: from 2 MiB up to
    // at most 16 MiB, below the workload's region at a third of the disk.
    const sectors = xvda.info.sectors;
    const scratchStart = 4096;
    const scratchSectors = Math.min(32768, Math.floor(sectors / 3) - scratchStart) & ~127;
    const throughput: ThroughputResult[] = [];
    const writes = [...result.writes];
    if (scratchSectors >= 2048) {
      const scratch = scratchPattern(scratchSectors * 512);
      say(`Throughput from domU1 through blkfront → blkback → ATA driver → hw-ide → image (wall clock, ${scratch.length / 2 ** 20} MiB scratch area):`);
      for (const [op, pat, bs, n] of [
      ["write", "sequential", 65536, 256],
      ["read", "sequential", 65536, 256],
      ["write", "random", 4096, 1024],
      ["read", "random", 4096, 1024],
      ] as const) {
        const r = await sys.run(measureThroughput(xvda, op, pat, bs, n, 8, scratchStart, scratch, hv.clock));
        throughput.push(r);
        say(`  ${`${pat} ${op}`.padEnd(17)} ${String(bs / 1024).padStart(3)} KiB x ${String(n).padStart(4)}: ${r.mibPerSecond.toFixed(1).padStart(7)} MiB/s ${Math.round(r.iops).toString().padStart(7)} IOPS`);
      }
      // The sequential write covered the whole area (a whole number of 64 KiB blocks, at most
      // 256 of them); the random writes rewrote parts of it with the same bytes.
      writes.push({ offset: scratchStart * 512, length: scratch.length, sha256: createHash("sha256").update(scratch).digest("hex") });
    }
    await sys.run(xvda.flush());
    say("");
    say(`The network path: domU1 pings ${WIRE_HOST.ip} on the e1000's wire; domU1 and domU2 exchange UDP over dom0's bridge;`);
    say(`domU2 sends UDP to the host's echo port through the e1000:`);
    const net = await runNetworkWorkload(sys);
    sys.close();
    const bb = sys.blkback.stats;
    const bf = xvda.stats;
    const ch = sys.hda.channel.stats;
    const counters = {
      ringRequests: bf.requests,
      ringResponses: bf.responses,
      blkbackRequests: bb.requests,
      zeroCopyDeviceCalls: bb.zeroCopyCalls,
      bouncedDeviceCalls: bb.bounced,
      ataCommands: ch.commands,
      ataInterrupts: ch.interrupts,
      dmaZeroCopy: ch.zeroCopy,
      dmaBounced: ch.bounced,
    };
    const report: DemoReport = {
      image: { path: img.path, bytes: img.image.info.sectors * 512, created: img.created, temporary: img.temporary },
      system: {
        hypervisor: "@paravirt/hypervisor-core (Xen 2.0 ABI)",
        domains: hv.list().map((d) => ({
          domid: d.domid,
          name: d.name,
          role: d.privileged
            ? "privileged: ATA and e1000 drivers, blkback, netback, bridge, xenstored"
            : d.name === "domU1"
              ? `unprivileged: blkfront (xvda = vbd ${XVDA}), netfront (eth0)`
              : "unprivileged: netfront (eth0)",
        })),
      },
      writes,
      verified: result.verified && net.domUToDomU.intact && net.toWire.intact,
      throughput,
      counters,
      network: { pings: net.pings, domUToDomU: net.domUToDomU, toWire: net.toWire, counters: net.counters, ...(pcap !== undefined ? { pcap } : {}) },
      virtualTimeNs: hv.clock.now(),
      wallSeconds: (performance.now() - t0) / 1000,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
    };
    await img.image.close();
    say("");
    say("Summary");
    say(`  requests on the blkif ring: ${bf.requests} (blkback answered ${bb.requests}; ${bb.zeroCopyCalls} disk calls straight into granted pages, ${bb.bounced} bounced)`);
    say(`  ATA commands issued by dom0's driver: ${ch.commands}, IRQ 14 interrupts taken as pirq events: ${ch.interrupts}, DMA into mapped grants: ${ch.zeroCopy}`);
    const rtts = net.pings.map((p) => p.rttNs / 1000);
    say(`  ping ${WIRE_HOST.ip}: ${net.pings.length} sent, ${net.pings.length} received, rtt min/avg/max ${Math.min(...rtts).toFixed(1)}/${(rtts.reduce((a, b) => a + b, 0) / rtts.length).toFixed(1)}/${Math.max(...rtts).toFixed(1)} µs (virtual)`);
    say(`  UDP domU1 -> domU2 over xenbr0: ${net.domUToDomU.sent} sent, ${net.domUToDomU.echoed} echoed back ${net.domUToDomU.intact ? "intact" : "CORRUPTED"}, ${net.domUToDomU.nicTxFrames} frame(s) reached the e1000`);
    say(`  UDP domU2 -> ${WIRE_HOST.ip}:7 through the e1000: ${net.toWire.sent} sent, ${net.toWire.echoed} echoed ${net.toWire.intact ? "intact" : "CORRUPTED"}; wire frames tx ${net.counters.nic.wireTxFrames} rx ${net.counters.nic.wireRxFrames}`);
    if (pcap !== undefined) say(`  wire captured to ${pcap} (tshark -r ${pcap})`);
    say(`  virtual time: ${(report.virtualTimeNs / 1e9).toFixed(3)} s   wall time: ${report.wallSeconds.toFixed(2)} s   peak memory (RSS): ${(report.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
    if (!img.temporary) say(`  check from outside: dd if=${img.path} bs=1 skip=${result.writes[0]!.offset} count=${result.writes[0]!.length} | sha256sum`);
    if (o.json) print(JSON.stringify(report, null, 2));
    return report;
  } finally {
    await img.image.close().catch(() => {});
    img.cleanup();
  }
}

/** Validates `--size`. */
export function parseSize(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 4 || Number(v) > 65536) throw new DemoError(`--size must be a whole number of MiB between 4 and 65536, not ${JSON.stringify(v)}`);
  return Number(v);
}
