// Network benchmark (pnpm bench): frames to the wire through (a) dom0's e1000 driver natively and
// (b) a domU through netfront → netback → dom0's bridge → the same driver, in one run, on one
// machine (the Xen 2.0 system of examples/src/xen2). The wire's far end only counts frames.
// For 64-byte (60 + FCS) and 1514-byte frames: medians of SAMPLES timed samples of FRAMES frames
// per path after a warm-up of WARMUP frames; the paths take turns, and which one goes first
// alternates from sample to sample (ABBA), so that both see the same host load and neither
// always inherits the other's garbage. Prints one JSON object with two views, as the block
// benchmark does:
// - wall: what the emulation achieves on this host (JavaScript time of every layer, all the way
//   to the frame leaving the model's wire port); `cpu` is the same per CPU-second of this process
//   (user + system), which other load on a shared machine disturbs less; `thread` is the same per
//   CPU-second of the main thread alone (Linux's /proc/thread-self/schedstat: the JavaScript of
//   every layer, without the garbage collector's helper threads or time spent waiting for a CPU);
// - virtual: throughput as the emulated machine experiences it (the hypervisor's modelled CPU
//   costs of domain tasks and upcalls, the NIC's interrupt moderation; the model's wire itself
//   has no serialisation delay).
// Each sender is a task of its domain that sends while the backlog (frames queued or in flight
// at the NIC, and queued or on the ring in netfront) is below 255 frames (the TX ring: nothing waits in a software queue) and otherwise checks again 2 µs later
// (virtual), the same for both paths.
// Ratios domU/dom0: of the medians, and the median (min, max) of the ratios of the two samples
// taken back to back (pairs), for wall clock, process and main-thread CPU time. The host's 1-minute
// load average before and after is printed with them: on a shared machine other load lowers
// the domU path's figures more (it touches more memory per frame), so compare runs at like load.
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { createMachine, probeHardware, addDomU } from "../dist/xen2/system.js";
import { E1000_ASSIGNMENT, addVif, dom0Network, plugE1000, startE1000Driver } from "../dist/xen2/network.js";

const SAMPLES = Number(process.env.SAMPLES ?? 21);
const FRAMES = Number(process.env.FRAMES ?? 100_000);
const WARMUP = Number(process.env.WARMUP ?? 20_000);

/** CPU time of the calling (main) thread in ns, or undefined off Linux [Documentation/scheduler/sched-stats.rst]. */
function threadCpuNs() {
  try {
    return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0]);
  } catch {
    return undefined;
  }
}
const PEER = Uint8Array.of(0x02, 0, 0, 0, 0, 0xfe);
const GUEST_MAC = "00:16:3e:00:00:01";

const m = createMachine({ assignments: [E1000_ASSIGNMENT] });
const plugged = plugE1000(m);
let onWire = 0;
let wireBytes = 0;
let wireTarget = -1;
let wireDoneAt;
plugged.wire.onReceive((f) => {
  onWire++;
  wireBytes += f.length;
  if (onWire === wireTarget) wireDoneAt = m.clock.now();
});
probeHardware(m);
const nic = await startE1000Driver(m);
const domU = addDomU(m, "domU1");
const { netfront, netback } = await addVif(m, domU, GUEST_MAC);
const { bridge } = dom0Network(m);
// The peer speaks once so the bridge learns it is behind eth0 (no flooding afterwards).
const hello = new Uint8Array(60);
hello.fill(0xff, 0, 6);
hello.set(PEER, 6);
hello[12] = 0x88;
hello[13] = 0xb5;
plugged.wire.send(hello);
await m.run(new Promise((r) => m.clock.schedule(m.clock.now() + 1_000_000, r)));

function frame(len, src) {
  const f = new Uint8Array(len);
  f.set(PEER, 0);
  f.set(src, 6);
  f[12] = 0x88; // local experimental ethertype [IEEE 802]
  f[13] = 0xb5;
  for (let i = 14; i < len; i++) f[i] = i & 0xff;
  return f;
}

const allPaths = {
  dom0: {
    domain: m.dom0.domain,
    send: (f) => nic.send(f),
    backlog: () => nic.txBacklog.queued + nic.txBacklog.inFlight,
    window: 255,
    src: nic.mac,
  },
  domU: {
    domain: domU.domain,
    send: (f) => netfront.send(f),
    // Netback answers a TX slot as soon as it copied the frame, so a domU could outrun the NIC
    // and have dom0's queue drop (as Linux's qdisc does). The domU sender is held to the same
    // window on the NIC's backlog as dom0's, standing in for a transport's flow control.
    backlog: () => netfront.stats.txQueued + netfront.txInFlight + nic.txBacklog.queued + nic.txBacklog.inFlight,
    window: 255,
    src: netfront.mac,
  },
};

const only = process.env.PATHS?.split(",");
const paths = Object.fromEntries(Object.entries(allPaths).filter(([k]) => only === undefined || only.includes(k)));

/**
 * Sends `n` frames from `path`'s domain; resolves when all of them left the wire port, with
 * the virtual time from the first send to the last frame on the wire, and the frames dropped
 * on the way (then it resolves once the rest arrived).
 */
function blast(path, f, n) {
  wireTarget = onWire + n;
  wireDoneAt = undefined;
  let sent = 0;
  let v0;
  let idlePolls = 0;
  return new Promise((resolve) => {
    const step = () => {
      v0 ??= m.clock.now();
      while (sent < n && path.backlog() < path.window) {
        path.send(f);
        sent++;
      }
      // Done when every frame reached the wire, or (frames were dropped) when nothing is left in
      // flight anywhere. The NIC's statistics are not read here: that is MMIO, costly.
      const b = nic.txBacklog;
      idlePolls = sent >= n && b.queued + b.inFlight === 0 && path.backlog() === 0 ? idlePolls + 1 : 0;
      if (onWire >= wireTarget || idlePolls > 3) resolve({ virtualNs: (wireDoneAt ?? m.clock.now()) - v0, lost: wireTarget - onWire });
      else m.clock.schedule(m.clock.now() + 2_000, () => path.domain.post(step));
    };
    path.domain.post(step);
  });
}

const loadBefore = loadavg()[0];
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
};
const results = [];
for (const len of (process.env.SIZES ?? "60,1514").split(",").map(Number)) {
  const row = { frameBytes: len, onWireBytes: len + 4, frames: FRAMES };
  const f = {};
  const fps = {};
  const cfps = {};
  const tfps = {};
  const vfps = {};
  const lost = {};
  for (const [name, path] of Object.entries(paths)) {
    f[name] = frame(len, path.src);
    fps[name] = [];
    cfps[name] = [];
    tfps[name] = [];
    vfps[name] = [];
    lost[name] = 0;
    await m.run(blast(path, f[name], WARMUP));
  }
  const order = Object.entries(paths);
  for (let i = 0; i < SAMPLES; i++) {
    for (const [name, path] of i % 2 === 0 ? order : [...order].reverse()) {
      const w0 = performance.now();
      const c0 = process.cpuUsage();
      const t0 = threadCpuNs();
      const r = await m.run(blast(path, f[name], FRAMES));
      const wall = (performance.now() - w0) / 1e3;
      const t1 = threadCpuNs();
      const c = process.cpuUsage(c0);
      fps[name].push(FRAMES / wall);
      cfps[name].push(FRAMES / ((c.user + c.system) / 1e6));
      if (t0 !== undefined && t1 !== undefined) tfps[name].push(FRAMES / ((t1 - t0) / 1e9));
      vfps[name].push(FRAMES / (r.virtualNs / 1e9));
      lost[name] += r.lost;
    }
  }
  const gbit = (x) => +((x * len * 8) / 1e9).toFixed(3);
  for (const name of Object.keys(paths)) {
    row[name] = {
      wall: { framesPerSecond: Math.round(median(fps[name])), gbitPerSecond: gbit(median(fps[name])), min: Math.round(Math.min(...fps[name])), max: Math.round(Math.max(...fps[name])) },
      cpu: { framesPerSecond: Math.round(median(cfps[name])), gbitPerSecond: gbit(median(cfps[name])), min: Math.round(Math.min(...cfps[name])), max: Math.round(Math.max(...cfps[name])) },
      ...(tfps[name].length > 0 ? { thread: { framesPerSecond: Math.round(median(tfps[name])), gbitPerSecond: gbit(median(tfps[name])), min: Math.round(Math.min(...tfps[name])), max: Math.round(Math.max(...tfps[name])) } } : {}),
      virtual: { framesPerSecond: Math.round(median(vfps[name])), gbitPerSecond: gbit(median(vfps[name])) },
      lost: lost[name],
    };
  }
  if (row.dom0 && row.domU) {
    const pairs = (xs) => {
      const r = xs.domU.map((u, i) => u / xs.dom0[i]);
      return { median: +median(r).toFixed(3), min: +Math.min(...r).toFixed(3), max: +Math.max(...r).toFixed(3) };
    };
    row.ratioDomUToDom0 = {
      cpu: +(row.domU.cpu.framesPerSecond / row.dom0.cpu.framesPerSecond).toFixed(3),
      wall: +(row.domU.wall.framesPerSecond / row.dom0.wall.framesPerSecond).toFixed(3),
      virtual: +(row.domU.virtual.framesPerSecond / row.dom0.virtual.framesPerSecond).toFixed(3),
      ...(row.domU.thread && row.dom0.thread ? { thread: +(row.domU.thread.framesPerSecond / row.dom0.thread.framesPerSecond).toFixed(3) } : {}),
      pairs: { cpu: pairs(cfps), wall: pairs(fps), ...(tfps.domU.length > 0 ? { thread: pairs(tfps) } : {}) },
    };
  }
  results.push(row);
}
console.log(
  JSON.stringify(
    {
      benchmark: "net: dom0 native (e1000 driver) vs domU (netfront/netback/bridge over the same driver), frames to the wire",
      node: process.version,
      nic: "hw-e1000 82540EM, 256 TX descriptors, dom0's vanilla driver-e1000 on the hypervisor's driver platform",
      gbit: "frame bytes without FCS x 8 / time",
      samples: SAMPLES,
      hostLoadAverage: { before: +loadBefore.toFixed(2), after: +loadavg()[0].toFixed(2) },
      warmupFrames: WARMUP,
      results,
      counters: {
        nic: (({ txPackets, txCopied, txZeroCopy, txQueued, txDropped, interrupts }) => ({ txPackets, txCopied, txZeroCopy, txQueued, txDropped, interrupts }))(nic.statistics()),
        netback: netback.stats,
        netfront: netfront.stats,
        bridge: { eth0: bridge.stats("eth0"), "vif1.0": bridge.stats("vif1.0") },
        wire: { frames: onWire, bytes: wireBytes },
      },
    },
    null,
    2,
  ),
);
