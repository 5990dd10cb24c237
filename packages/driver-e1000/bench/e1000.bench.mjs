// Benchmarks for @paravirt/driver-e1000 (run: pnpm bench). Prints one JSON object.
// The driver on a bare-metal PcBoard with the hw-e1000 model and a cable; wall-clock frames
// per second through driver + model together (virtual time is advanced as fast as it goes):
// - tx: send() of 64- and 1514-byte frames, copied into the driver's buffers, reaped by interrupt;
// - tx offload: 1514-byte TCP frames with checksum offload (context + data descriptors);
// - tx zero-copy: transmit() of a DMA-able 1514-byte buffer;
// - rx: frames injected on the wire, delivered to onReceive, ring refilled.
// Each figure is the median of 5 timed samples after a warm-up.
import { E1000PciFunction } from "@paravirt/hw-e1000";
import { BareMetalPlatform, PcBoard } from "@paravirt/pc-board";
import { cable } from "@paravirt/vm-interfaces";
import { probeE1000 } from "../dist/index.js";

const MAC = Uint8Array.of(2, 0x11, 0x22, 0x33, 0x44, 0x55);
const PEER = Uint8Array.of(2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function machine() {
  const board = new PcBoard({ ramBytes: 64 << 20 });
  const [a, b] = cable();
  let onWire = 0;
  b.onReceive(() => onWire++);
  const fn = new E1000PciFunction({ memory: board.memory, irq: board.intxLine(3), clock: board.clock, mac: MAC, port: a });
  board.plugPci(3, fn);
  board.boot();
  const platform = new BareMetalPlatform(board);
  let result;
  probeE1000(platform).then((r) => (result = r));
  while (result === undefined) {
    await new Promise((r) => setImmediate(r));
    if (board.clock.nextDeadline() !== undefined) board.clock.runNext();
  }
  const nic = result.nics[0];
  return { board, nic, wire: b, platform, sent: () => onWire };
}

/** Runs the clock until `done()` (no host I/O involved, so no awaiting needed). */
function drain(board, done) {
  while (!done()) {
    if (board.clock.nextDeadline() === undefined) throw new Error("machine idle");
    board.clock.runNext();
  }
}

function frame(len, dst, src) {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  return f;
}

function tcpFrame(len) {
  const f = frame(len, PEER, MAC);
  const dv = new DataView(f.buffer);
  dv.setUint16(12, 0x0800);
  f[14] = 0x45;
  dv.setUint16(16, len - 14);
  f[22] = 64;
  f[23] = 6;
  f.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
  f[46] = 5 << 4;
  return f;
}

async function rate(label, n, setup, run) {
  const m = await machine();
  const ctx = setup(m);
  run(m, ctx, n); // warm-up
  const samples = [];
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    run(m, ctx, n);
    samples.push((n / Number(process.hrtime.bigint() - t0)) * 1e9);
  }
  return [label, Math.round(median(samples))];
}

function txRun(offload) {
  return (m, f, n) => {
    // Bursts of 500 (ring 256 + software queue), each drained by the interrupt handler.
    for (let i = 0; i < n; i += 500) {
      const target = m.sent() + 500;
      for (let k = 0; k < 500; k++) m.nic.send(f, offload ? { checksumOffload: true } : undefined);
      drain(m.board, () => m.sent() === target && m.nic.txBacklog.inFlight === 0);
    }
  };
}

const results = Object.fromEntries([
  await rate("txFramesPerSec64", 20000, () => frame(64, PEER, MAC), txRun(false)),
  await rate("txFramesPerSec1514", 20000, () => frame(1514, PEER, MAC), txRun(false)),
  await rate("txOffloadFramesPerSec1514", 20000, () => tcpFrame(1514), txRun(true)),
  await rate(
    "txZeroCopyFramesPerSec1514",
    20000,
    (m) => {
      const r = m.platform.dmaAlloc(2048);
      r.bytes.set(frame(1514, PEER, MAC));
      return r.bytes.subarray(0, 1514);
    },
    (m, f, n) => {
      for (let i = 0; i < n; i += 500) {
        const target = m.sent() + 500;
        for (let k = 0; k < 500; k++) void m.nic.transmit(f);
        drain(m.board, () => m.sent() === target && m.nic.txBacklog.inFlight === 0);
      }
    },
  ),
  ...(await Promise.all(
    [64, 1514].map((len) =>
      rate(
        `rxFramesPerSec${len}`,
        20000,
        (m) => {
          const st = { got: 0 };
          m.nic.onReceive(() => st.got++);
          st.f = frame(len, MAC, PEER);
          return st;
        },
        (m, st, n) => {
          const target = st.got + n;
          // 32 frames per burst (well under the ring), then let the interrupt handler run.
          for (let i = 0; i < n; i += 32) {
            for (let k = 0; k < 32; k++) m.wire.send(st.f);
            drain(m.board, () => st.got >= target - n + i + 32);
          }
        },
      ),
    ),
  )),
]);
console.log(JSON.stringify(results, null, 2));
