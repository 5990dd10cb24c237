// Benchmarks for blkfront + blkback through the in-memory Xen (run: pnpm bench). Prints one JSON
// object. Host wall time, not virtual time: the cost of the protocol path itself (grants, ring,
// event delivery, validation), with a RAM disk behind the backend.
// Each figure is the median of 5 timed samples after a warm-up.
import { Blkback } from "@paravirt/blkback";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { addDevice, InMemoryXen } from "@paravirt/xen-testing";
import { Blkfront } from "../dist/index.js";

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function setup(order) {
  const xen = new InMemoryXen();
  const dom0 = xen.createDomain(0);
  const domU = xen.createDomain(1, { pages: 4096, grantFrames: 16 });
  const disk = new MemoryBlockDevice(65536);
  await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: 51712, backend: { mode: "w" } });
  const back = new Blkback({ xen: dom0, device: disk, frontendDomid: 1, devid: 51712 });
  await back.start();
  const front = new Blkfront({ xen: domU, devid: 51712, maxRingPageOrder: order });
  await front.connect();
  return { front, back };
}

async function sample(fn, ops) {
  await fn(Math.max(1, ops >> 3));
  const rates = [];
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    await fn(ops);
    const ns = Number(process.hrtime.bigint() - t0);
    rates.push((ops / ns) * 1e9);
  }
  return Math.round(median(rates));
}

const { front } = await setup(0);
const buf4k = new Uint8Array(4096);
const buf64k = new Uint8Array(65536);
const qd1Read4k = await sample(async (n) => {
  for (let i = 0; i < n; i++) await front.read((i * 8) % 65000, buf4k);
}, 2000);
const qd32Read4k = await sample(async (n) => {
  const ps = [];
  for (let i = 0; i < n; i++) ps.push(front.read((i * 8) % 65000, new Uint8Array(4096)));
  await Promise.all(ps);
}, 4000);
const write64kPerSec = await sample(async (n) => {
  for (let i = 0; i < n; i++) await front.write((i * 128) % 65000, buf64k);
}, 500);
const big = await setup(4);
const qd128Read4kOrder4 = await sample(async (n) => {
  const ps = [];
  for (let i = 0; i < n; i++) ps.push(big.front.read((i * 8) % 65000, new Uint8Array(4096)));
  await Promise.all(ps);
}, 8000);

console.log(JSON.stringify({
  "qd1 4KiB reads/s (1-page ring)": qd1Read4k,
  "qd32 4KiB reads/s (1-page ring)": qd32Read4k,
  "64KiB writes/s (indirect)": write64kPerSec,
  "64KiB write MiB/s": Math.round((write64kPerSec * 65536) / 2 ** 20),
  "queued 4KiB reads/s (16-page ring)": qd128Read4kOrder4,
}));
