// Block benchmark (pnpm bench): the same disk through (a) dom0's ATA driver natively and (b) a
// domU through blkfront → blkback → the same driver, in one run, on one machine. The disk is a
// RAM disk behind the emulated PIIX IDE controller, so the figures measure the I/O path, not the
// host's storage. Medians of 5 samples after a warm-up; prints one JSON object with two views:
// - virtual: throughput as the emulated machine experiences it (virtual time: the disk's modelled
//   command and per-sector times, the hypervisor's modelled CPU costs of domain tasks and upcalls);
// - wall: what the emulation costs on this host (JavaScript time of every layer).
import { RamDisk } from "@paravirt/disk-image";
import { bootXen2, measureThroughput, scratchPattern } from "../dist/index.js";

const SAMPLES = 5;
const sys = await bootXen2({ disk: new RamDisk(262144) }); // 128 MiB
const span = 65536; // sectors: a 32 MiB area
const start = 8192;
const scratch = scratchPattern(span * 512);

// Both paths are handed the same ordinary (heap) buffers, as a kernel's callers hand it user
// buffers: dom0's driver bounces them through its DMA buffer (one copy), blkfront copies them into
// the pages it grants (one copy) and dom0 DMAs straight into those grants (zero copy).
const paths = {
  dom0: sys.dom0.disk,
  domU: sys.domU.xvda,
};
const cases = [
  ["read", "sequential", 65536, 256, 1], // queue depth 1: the split path's latency shows
  ["write", "sequential", 65536, 512],
  ["read", "sequential", 65536, 512],
  ["write", "random", 65536, 256],
  ["read", "random", 65536, 256],
  ["write", "sequential", 4096, 2048],
  ["read", "sequential", 4096, 2048],
  ["write", "random", 4096, 2048],
  ["read", "random", 4096, 2048],
];

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const results = [];
for (const [op, pattern, bs, count, depth = 8] of cases) {
  const row = { op, pattern, blockBytes: bs, requests: count, depth };
  for (const [name, dev] of Object.entries(paths)) {
    await sys.run(measureThroughput(dev, op, pattern, bs, Math.min(count, 64), depth, start, scratch)); // warm-up
    const mib = [];
    const iops = [];
    const vmib = [];
    const viops = [];
    for (let i = 0; i < SAMPLES; i++) {
      const r = await sys.run(measureThroughput(dev, op, pattern, bs, count, depth, start, scratch, sys.clock));
      mib.push(r.mibPerSecond);
      iops.push(r.iops);
      vmib.push(r.virtualMibPerSecond);
      viops.push(r.virtualIops);
    }
    row[name] = {
      wall: { mibPerSecond: +median(mib).toFixed(1), iops: Math.round(median(iops)), minMiB: +Math.min(...mib).toFixed(1), maxMiB: +Math.max(...mib).toFixed(1) },
      virtual: { mibPerSecond: +median(vmib).toFixed(1), iops: Math.round(median(viops)) },
    };
  }
  row.ratioDomUToDom0 = {
    virtual: +(row.domU.virtual.mibPerSecond / row.dom0.virtual.mibPerSecond).toFixed(3),
    wall: +(row.domU.wall.mibPerSecond / row.dom0.wall.mibPerSecond).toFixed(3),
  };
  results.push(row);
}
console.log(
  JSON.stringify(
    {
      benchmark: "block: dom0 native (ATA driver) vs domU (blkfront/blkback over the same driver)",
      node: process.version,
      disk: "RamDisk 128 MiB behind hw-ide PIIX, bus-master DMA",
      samples: SAMPLES,
      results,
      counters: { blkback: sys.dom0.blkback.stats, blkfront: sys.domU.xvda.stats, ata: sys.dom0.disk.channel.stats },
    },
    null,
    2,
  ),
);
