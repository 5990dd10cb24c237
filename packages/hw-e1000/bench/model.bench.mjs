// Benchmarks for @paravirt/hw-e1000 (run: pnpm bench). Prints one JSON object.
// The model alone, driven through its BAR IoDevice with FlatMemory and a cable whose far end
// only counts: legacy Tx of 1514-byte frames (one descriptor each, TDT per 32), TSO of 64 KiB
// bursts (MSS 1460), Rx of 1514-byte frames into a 256-descriptor ring (RDT per 32).
// Each figure is the median of 7 timed samples after a warm-up.
import { VirtualClock, cable } from "@paravirt/vm-interfaces";
import { FlatMemory, RecordingIrqLine } from "@paravirt/vm-interfaces/testing";
import { E1000 } from "../dist/index.js";

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}
function rate(ops, fn) {
  const samples = [];
  fn(ops);
  for (let i = 0; i < 7; i++) {
    const t0 = process.hrtime.bigint();
    fn(ops);
    samples.push((ops / Number(process.hrtime.bigint() - t0)) * 1e9);
  }
  return Math.round(median(samples));
}

function machine() {
  const mem = new FlatMemory(0x2000000);
  const [a, b] = cable();
  let frames = 0;
  b.onReceive(() => frames++);
  const nic = new E1000({ memory: mem, irq: new RecordingIrqLine(), clock: new VirtualClock(), port: a });
  const w = (o, v) => nic.mmio.write(o, 4, v >>> 0);
  const r = (o) => nic.mmio.read(o, 4);
  return { mem, nic, w, r, peer: b, sent: () => frames };
}

// Legacy transmit.
const tx = machine();
const RING = 256;
for (let i = 0; i < RING; i++) {
  const buf = 0x100000 + i * 2048;
  tx.mem.bytes.fill(0x42, buf, buf + 1514);
  tx.mem.writeU32(0x10000 + i * 16, buf);
  tx.mem.writeU32(0x10000 + i * 16 + 8, 1514 | ((0x01 | 0x02 | 0x08) << 24));
}
tx.w(0x3800, 0x10000);
tx.w(0x3808, RING * 16);
tx.w(0x0400, 0x2 | 0x8);
let tail = 0;
const txFrames = rate(100_000, (n) => {
  for (let i = 0; i < n; i += 32) {
    tail = (tail + 32) % RING;
    tx.w(0x3818, tail);
    tx.r(0x00c0);
  }
});

// TSO bursts of 64 KiB.
const tso = machine();
const hdr = new Uint8Array(54);
hdr.set([2, 0, 0, 0, 0, 2, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00, 0x45], 0);
hdr[23] = 6;
hdr[46] = 0x50;
tso.mem.write(0x100000, hdr);
tso.mem.bytes.fill(0x33, 0x200000, 0x200000 + 65536);
const put = (i, d0, d1, d2, d3) => {
  tso.mem.writeU32(0x10000 + i * 16, d0);
  tso.mem.writeU32(0x10000 + i * 16 + 4, d1);
  tso.mem.writeU32(0x10000 + i * 16 + 8, d2);
  tso.mem.writeU32(0x10000 + i * 16 + 12, d3);
};
for (let k = 0; k < RING; k += 4) {
  put(k, 14 | (24 << 8) | (33 << 16), 34 | (50 << 8), 65536 | ((0x01 | 0x02 | 0x04 | 0x20) << 24), (54 << 8) | (1460 << 16));
  put(k + 1, 0x100000, 0, 54 | (1 << 20) | ((0x04 | 0x20) << 24), 0x03 << 8);
  put(k + 2, 0x200000, 0, 65536 | (1 << 20) | ((0x01 | 0x04 | 0x08 | 0x20) << 24), 0);
  put(k + 3, 0, 0, (0x20 | 0x08) << 24, 0); // an empty context descriptor as padding
}
tso.w(0x3800, 0x10000);
tso.w(0x3808, RING * 16);
tso.w(0x0400, 0x2 | 0x8);
let ttail = 0;
const tsoBursts = rate(2_000, (n) => {
  for (let i = 0; i < n; i++) {
    ttail = (ttail + 4) % RING;
    tso.w(0x3818, ttail);
  }
});

// Receive.
const rx = machine();
for (let i = 0; i < RING; i++) rx.mem.writeU32(0x20000 + i * 16, 0x100000 + i * 2048);
rx.w(0x2800, 0x20000);
rx.w(0x2808, RING * 16);
rx.w(0x2818, RING - 1);
rx.w(0x0100, 0x2 | 0x8 | (1 << 26));
const frame = new Uint8Array(1514).fill(0x55);
frame.set([0x52, 0x54, 0, 0x12, 0x34, 0x56], 0);
let head = 0;
const rxFrames = rate(100_000, (n) => {
  for (let i = 0; i < n; i++) {
    rx.peer.send(frame);
    if (((i + 1) & 31) === 0) {
      head = (head + 32) % RING;
      rx.w(0x2818, (head + RING - 1) % RING);
      rx.r(0x00c0);
    }
  }
});

// Sanity: the work was done.
if (tx.sent() < 100_000 || tso.sent() < 2_000 * 45 || rx.r(0x4074) === 0) throw new Error("benchmark did not move frames");

console.log(JSON.stringify({
  package: "@paravirt/hw-e1000",
  txLegacy1514FramesPerSec: txFrames,
  txLegacyMBytesPerSec: Math.round((txFrames * 1514) / 1e6),
  tso64kBurstsPerSec: tsoBursts,
  tsoMBytesPerSec: Math.round((tsoBursts * 65536) / 1e6),
  rx1514FramesPerSec: rxFrames,
  rxMBytesPerSec: Math.round((rxFrames * 1514) / 1e6),
}));
