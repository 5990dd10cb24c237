/** Test harness: a server, dom0's in-process client, introduced domU clients, raw ring peers. */
import { XsMessageReader, encodeXsMessage, xenstoreRings, type XsMessage } from "@paravirt/device-channel";
import { XenError, type DomId } from "@paravirt/vm-interfaces";
import { XenstoreClient, XenstoreServer, createLocalChannel, type XenstoreServerOptions } from "../src/index.ts";

/** Lets every queued event delivery (microtasks) run: the event loop of these tests. */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export function world(options: XenstoreServerOptions = {}) {
  const server = new XenstoreServer(options);
  const dom0 = new XenstoreClient(server.connectLocal(0));
  const domU = (domid: DomId): XenstoreClient => {
    const { guest, server: end } = createLocalChannel();
    server.introduce(domid, end);
    return new XenstoreClient(guest);
  };
  return { server, dom0, domU };
}

/** A domain that speaks raw bytes on its xenstore page. */
export function rawDomain(server: XenstoreServer, domid: DomId) {
  const { guest, server: end } = createLocalChannel();
  server.introduce(domid, end);
  const rings = xenstoreRings(guest.page);
  const reader = new XsMessageReader();
  const received: XsMessage[] = [];
  const rawBytes: number[] = [];
  guest.onEvent(() => {
    const bytes = rings.rsp.drain();
    if (bytes.length === 0) return;
    rawBytes.push(...bytes);
    reader.push(bytes, (m) => received.push(m));
    guest.notify();
  });
  return {
    page: guest.page,
    dv: new DataView(guest.page.buffer),
    rings,
    received,
    rawBytes,
    send(bytes: Uint8Array): number {
      const n = rings.req.write(bytes);
      guest.notify();
      return n;
    },
    request(type: number, payload: Uint8Array, reqId = 1, txId = 0): number {
      return this.send(encodeXsMessage({ type, reqId, txId, payload }));
    },
    notify: () => guest.notify(),
  };
}

/** The errno a promise rejects with (fails the test when it resolves). */
export async function errnoOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof XenError) return e.errno;
    throw e;
  }
  throw new Error("expected a XenError");
}
