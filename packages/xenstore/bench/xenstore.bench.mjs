// Round trips through the xenstore page: client → request ring → server → response ring → client.
import { XenstoreClient, XenstoreServer, createLocalChannel } from "../dist/index.js";

const server = new XenstoreServer();
const dom0 = new XenstoreClient(server.connectLocal(0));
const { guest, server: end } = createLocalChannel();
server.introduce(1, end);
const dom1 = new XenstoreClient(guest);

async function measure(name, n, body) {
  await body(Math.min(n, 200)); // warm-up
  const t0 = performance.now();
  await body(n);
  const ms = performance.now() - t0;
  console.log(`${name.padEnd(46)} ${String(Math.round((n / ms) * 1000)).padStart(8)} ops/s`);
}

await measure("domU write (sequential round trips)", 20000, async (n) => {
  for (let i = 0; i < n; i++) await dom1.write(`k${i % 100}`, String(i));
});
await measure("domU read, 32 outstanding", 40000, async (n) => {
  for (let i = 0; i < n; i += 32) await Promise.all(Array.from({ length: 32 }, (_, j) => dom1.read(`k${(i + j) % 100}`)));
});
await measure("domU 2000-byte write (split across the ring)", 5000, async (n) => {
  const v = "x".repeat(2000);
  for (let i = 0; i < n; i++) await dom1.write("big", v);
});
await measure("transaction read+write (4 messages)", 5000, async (n) => {
  for (let i = 0; i < n; i++) await dom1.transaction(async (tx) => tx.write("c", String(Number(await tx.read("c").catch(() => "0")) + 1)));
});
let events = 0;
await dom0.watch("/local/domain/1", () => events++);
await measure("write with a watch firing to dom0", 10000, async (n) => {
  for (let i = 0; i < n; i++) await dom1.write(`w${i % 50}`, "v");
});
console.log(`(watch events delivered: ${events})`);
