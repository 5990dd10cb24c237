import { describe, expect, it } from "vitest";
import { XENSTORE_DOMAIN_INTERFACE as XDI, XS, XsMessageReader, encodeXsMessage, xenstoreRings, xsStrings } from "@paravirt/device-channel";
import { XenstoreClient, XenstoreServer, createLocalChannel } from "../src/index.ts";

/** A hand-stepped event loop: deliveries wait in a queue until the test runs them. */
class Loop {
  readonly queue: (() => void)[] = [];
  readonly schedule = (task: () => void): void => {
    this.queue.push(task);
  };
  /** Runs one queued delivery; false when idle. */
  step(): boolean {
    const t = this.queue.shift();
    t?.();
    return t !== undefined;
  }
  async runUntilIdle(): Promise<number> {
    let n = 0;
    for (;;) {
      await Promise.resolve(); // let promise continuations enqueue their requests
      if (!this.step()) {
        await new Promise((r) => setImmediate(r));
        if (this.queue.length === 0) return n;
      }
      n++;
    }
  }
}

describe("deterministic stepping and partial ring transfers", () => {
  it("writes a message larger than the free ring space in pieces as the server consumes", async () => {
    const loop = new Loop();
    const server = new XenstoreServer();
    const { guest, server: end } = createLocalChannel({ schedule: loop.schedule });
    server.introduce(1, end);
    const client = new XenstoreClient(guest);
    const dv = new DataView(guest.page.buffer);
    const value = "z".repeat(2000);
    const done = client.write("big", value);
    // 16-byte header + "big\0" + 2000 bytes: only the first 1024 fit before the server runs.
    expect(dv.getUint32(XDI.REQ_PROD, true)).toBe(1024);
    expect(dv.getUint32(XDI.REQ_CONS, true)).toBe(0);
    const prods: number[] = [];
    while (loop.step()) prods.push(dv.getUint32(XDI.REQ_PROD, true));
    expect(Math.max(...prods)).toBe(16 + 4 + 2000);
    await done;
    const read = client.read("big");
    await loop.runUntilIdle();
    expect(await read).toBe(value);
    // The reply (16 + 2000 bytes) crossed the 1024-byte response ring in pieces too.
    expect(dv.getUint32(XDI.RSP_PROD, true)).toBe(16 + 3 + 16 + 2000);
  });

  it("gives the same page bytes for the same inputs", async () => {
    const run = async () => {
      const loop = new Loop();
      const server = new XenstoreServer();
      const { guest, server: end } = createLocalChannel({ schedule: loop.schedule });
      server.introduce(1, end);
      const dom0 = new XenstoreClient(server.connectLocal(0, loop.schedule));
      const c = new XenstoreClient(guest);
      const seen: string[] = [];
      const w = c.watch("data", (p) => seen.push(p));
      const ops = Promise.all([
        c.transaction(async (tx) => tx.write("data/a", String(Number(await tx.read("data/a").catch(() => "0")) + 1))),
        dom0.write("/local/domain/1/data/a", "7"),
        c.write("data/b", "x".repeat(1500)),
      ]);
      await loop.runUntilIdle();
      await ops;
      await w;
      return { page: Array.from(guest.page), seen };
    };
    const a = await run();
    const b = await run();
    expect(a).toEqual(b);
    expect(a.seen[0]).toBe("data");
  });

  it("copes with ports that deliver events synchronously (no re-entry into the parser)", async () => {
    const sync = (task: () => void) => task();
    const server = new XenstoreServer();
    const { guest, server: end } = createLocalChannel({ schedule: sync });
    server.introduce(1, end);
    const c = new XenstoreClient(guest);
    const dom0 = new XenstoreClient(server.connectLocal(0, sync));
    const seen: string[] = [];
    await c.watch("w", (p) => seen.push(p));
    const big = "q".repeat(1900);
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.write(`w/k${i}`, big)));
    const values = await Promise.all(Array.from({ length: 20 }, (_, i) => dom0.read(`/local/domain/1/w/k${i}`)));
    expect(values.every((v) => v === big)).toBe(true);
    expect(seen.length).toBe(21);
  });

  it("serves a guest that answers every event with its next request over a synchronous port, iteratively", () => {
    const sync = (task: () => void) => task();
    const server = new XenstoreServer();
    const { guest, server: end } = createLocalChannel({ schedule: sync });
    const rings = xenstoreRings(guest.page);
    const total = 20000;
    let sent = 0;
    let replies = 0;
    const reader = new XsMessageReader();
    const sendNext = () => {
      if (sent === total) return;
      rings.req.write(encodeXsMessage({ type: XS.GET_DOMAIN_PATH, reqId: sent++, txId: 0, payload: xsStrings("1") }));
      guest.notify(); // delivered synchronously: the server runs inside this call
    };
    guest.onEvent(() => {
      reader.push(rings.rsp.drain(), () => replies++);
      sendNext();
    });
    server.introduce(1, end);
    sendNext();
    expect(replies).toBe(total);
    expect(new DataView(guest.page.buffer).getUint32(XDI.ERROR, true)).toBe(0);
  });
});
