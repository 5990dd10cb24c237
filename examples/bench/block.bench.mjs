// Block benchmark (pnpm bench): the same disk through (a) dom0's ATA driver natively and (b) a
// domU through blkfront → blkback → the same driver, in one run, on one machine, over two disks:
// - "ram": a RAM disk behind the emulated PIIX IDE controller: isolates the cost of the I/O path
//   (the emulator's layers), nothing of the host's storage;
// - "image": a raw image file (RawImageFile) in a temporary folder, the product's configuration
//   (what `paravirt demo` uses): every DMA is a positional read or write of the file on libuv's
//   thread pool (served from the host's page cache once warm);
// - "image-readahead": the same with RawImageFile's read-ahead, so that a sequential reader's
//   next data is read on the thread pool while the machine runs (writes are unchanged).
// For every row the two paths alternate sample by sample (dom0, domU, domU, dom0, ...) so that
// noise from the shared host falls on both alike. Medians of SAMPLES samples after a warm-up;
// prints one JSON object with three views per path:
// - virtual: throughput as the emulated machine experiences it (virtual time: the disk's modelled
//   command and per-sector times, the hypervisor's modelled CPU costs of domain tasks and upcalls);
// - wall: what the emulation costs on this host (JavaScript time of every layer, host I/O waits);
// - cpu: host CPU time of the process per request (process.cpuUsage: user + system, all threads).
// Environment: BENCH_SAMPLES (default 5), BENCH_DISKS (default "ram,image,image-readahead").
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RamDisk, RawImageFile } from "@paravirt/disk-image";
import { bootXen2, measureThroughput, scratchPattern } from "../dist/index.js";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 5);
const DISK_BYTES = 128 * 2 ** 20;
const span = 65536; // sectors: a 32 MiB area
const start = 8192;
const scratch = scratchPattern(span * 512);

const disks = {
  ram: {
    description: "RamDisk 128 MiB behind hw-ide PIIX, bus-master DMA",
    open: async () => new RamDisk(DISK_BYTES / 512),
  },
  image: {
    description: "RawImageFile 128 MiB (raw image in a temporary folder, host page cache) behind hw-ide PIIX, bus-master DMA",
    open: async (dir) => RawImageFile.open(join(dir, "disk.img"), { create: DISK_BYTES }),
  },
  "image-readahead": {
    description: "the same RawImageFile with readAhead 256 KiB (sequential reads find their data read already: host I/O overlaps the emulation)",
    open: async (dir) => RawImageFile.open(join(dir, "disk-ra.img"), { create: DISK_BYTES, readAhead: 256 * 1024 }),
  },
};
const selected = (process.env.BENCH_DISKS ?? "ram,image,image-readahead").split(",").filter((d) => d in disks);

// Both paths are handed the same ordinary (heap) buffers, as a kernel's callers hand it user
// buffers: dom0's driver bounces them through its DMA buffer (one copy), blkfront copies them into
// the pages it grants (one copy) and dom0 DMAs straight into those grants (zero copy).
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

async function sample(sys, dev, op, pattern, bs, count, depth) {
  const c0 = process.cpuUsage();
  const r = await sys.run(measureThroughput(dev, op, pattern, bs, count, depth, start, scratch, sys.clock));
  const c = process.cpuUsage(c0);
  return { ...r, cpuUs: (c.user + c.system) / count };
}

async function benchDisk(label, dir) {
  const disk = await disks[label].open(dir);
  const sys = await bootXen2({ disk });
  const paths = { dom0: sys.dom0.disk, domU: sys.domU.xvda };
  const names = Object.keys(paths);
  // Warm-up: every row's code on both paths first (the JIT), so the first row is not the coldest.
  for (const [op, pattern, bs, count, depth = 8] of cases) for (const name of names) await sample(sys, paths[name], op, pattern, bs, Math.min(count, 256), depth);
  const results = [];
  for (const [op, pattern, bs, count, depth = 8] of cases) {
    const row = { disk: label, op, pattern, blockBytes: bs, requests: count, depth };
    const got = { dom0: [], domU: [] };
    for (const name of names) await sample(sys, paths[name], op, pattern, bs, Math.min(count, 64), depth); // warm-up of the row
    for (let i = 0; i < SAMPLES; i++) {
      const order = i % 2 === 0 ? names : [...names].reverse();
      for (const name of order) got[name].push(await sample(sys, paths[name], op, pattern, bs, count, depth));
    }
    for (const name of names) {
      const s = got[name];
      const mib = s.map((r) => r.mibPerSecond);
      row[name] = {
        wall: { mibPerSecond: +median(mib).toFixed(1), iops: Math.round(median(s.map((r) => r.iops))), minMiB: +Math.min(...mib).toFixed(1), maxMiB: +Math.max(...mib).toFixed(1) },
        cpu: { usPerRequest: +median(s.map((r) => r.cpuUs)).toFixed(2) },
        virtual: { mibPerSecond: +median(s.map((r) => r.virtualMibPerSecond)).toFixed(1), iops: Math.round(median(s.map((r) => r.virtualIops))) },
      };
    }
    row.ratioDomUToDom0 = {
      virtual: +(row.domU.virtual.mibPerSecond / row.dom0.virtual.mibPerSecond).toFixed(3),
      wall: +(row.domU.wall.mibPerSecond / row.dom0.wall.mibPerSecond).toFixed(3),
      // Throughput per CPU time: dom0's CPU per request over domU's.
      cpu: +(row.dom0.cpu.usPerRequest / row.domU.cpu.usPerRequest).toFixed(3),
    };
    results.push(row);
  }
  const counters = { blkback: { ...sys.dom0.blkback.stats }, blkfront: { ...sys.domU.xvda.stats }, ata: { ...sys.dom0.disk.channel.stats } };
  if (typeof disk.close === "function") await disk.close();
  return { results, counters };
}

const dir = await mkdtemp(join(tmpdir(), "paravirt-block-bench-"));
const out = {
  benchmark: "block: dom0 native (ATA driver) vs domU (blkfront/blkback over the same driver)",
  node: process.version,
  samples: SAMPLES,
  disks: Object.fromEntries(selected.map((d) => [d, disks[d].description])),
  results: [],
  counters: {},
};
try {
  for (const label of selected) {
    const { results, counters } = await benchDisk(label, dir);
    out.results.push(...results);
    out.counters[label] = counters;
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(JSON.stringify(out, null, 2));
