// Benchmarks for @paravirt/device-channel (run: pnpm bench). Prints one JSON object.
// - ring round trips: a front end pushes a blkif READ request, the back end decodes it and
//   answers, the front end decodes the response; in batches of 32 (a full one-page ring).
// - codec: encode + decode of one 11-segment blkif request (x86_64 layout).
// Each figure is the median of 7 timed samples after a warm-up.
import {
  BLKIF_OP, BLKIF_X86_64, BackRing, FrontRing, decodeBlkifRequest, decodeBlkifResponse, encodeBlkifRequest, encodeBlkifResponse,
} from "../dist/index.js";

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function timeOps(ops, fn) {
  const samples = [];
  fn(ops); // warm-up
  for (let i = 0; i < 7; i++) {
    const t0 = process.hrtime.bigint();
    fn(ops);
    const ns = Number(process.hrtime.bigint() - t0);
    samples.push((ops / ns) * 1e9);
  }
  return { median: Math.round(median(samples)), min: Math.round(Math.min(...samples)), max: Math.round(Math.max(...samples)) };
}

const layout = BLKIF_X86_64;
const page = new Uint8Array(4096);
const front = FrontRing.init(page, layout.entrySize);
const back = BackRing.attach(page, layout.entrySize);
const seg = [{ gref: 8, firstSect: 0, lastSect: 7 }];

function roundTrips(n) {
  let id = 0n;
  let done = 0;
  let sum = 0n;
  while (done < n) {
    const batch = Math.min(front.freeRequests(), n - done);
    for (let i = 0; i < batch; i++) {
      encodeBlkifRequest(front.view, front.nextRequest(), { operation: BLKIF_OP.READ, nrSegments: 1, handle: 0, id: id++, sectorNumber: done + i, segments: seg }, layout);
    }
    front.pushRequestsAndCheckNotify();
    const pending = back.pendingRequests();
    for (let i = 0; i < pending; i++) {
      const req = decodeBlkifRequest(back.view, back.takeRequest(), layout);
      encodeBlkifResponse(back.view, back.nextResponse(), { id: req.id, operation: req.operation, status: 0 }, layout);
    }
    back.pushResponsesAndCheckNotify();
    for (let at = front.takeResponse(); at !== undefined; at = front.takeResponse()) sum += decodeBlkifResponse(front.view, at, layout).id;
    front.finalCheckForResponses();
    back.finalCheckForRequests();
    done += batch;
  }
  return sum;
}

const req = {
  operation: BLKIF_OP.WRITE, nrSegments: 11, handle: 0, id: 42n, sectorNumber: 123456,
  segments: Array.from({ length: 11 }, (_, i) => ({ gref: i, firstSect: 0, lastSect: 7 })),
};
const buf = new DataView(new ArrayBuffer(layout.entrySize));
function codec(n) {
  let s = 0;
  for (let i = 0; i < n; i++) {
    encodeBlkifRequest(buf, 0, req, layout);
    s += decodeBlkifRequest(buf, 0, layout).segments.length;
  }
  return s;
}

const rt = timeOps(2_000_000, roundTrips);
const cd = timeOps(1_000_000, codec);
console.log(JSON.stringify({
  package: "@paravirt/device-channel",
  node: process.version,
  ringRoundTripsPerSecond: rt,
  blkifRequestEncodeDecodePerSecond: cd,
  blkifRequestEncodeDecodeNs: Math.round(1e9 / cd.median),
}, null, 2));
