import { describe, expect, it } from "vitest";
import { XEN_ERRNO, XenError, type DomId, type EventChannels, type Port } from "@paravirt/vm-interfaces";
import { XenstoreClient, XenstoreServer, evtchnPort } from "../src/index.ts";

/** Just enough of two domains' event channels: interdomain binding, asynchronous coalescing delivery, close. */
class Hub {
  private readonly ports = new Map<string, { peer: string | undefined; handler?: () => void; pending: boolean; masked: boolean }>();
  private next = 1;
  domain(domid: DomId): EventChannels {
    const key = (p: Port) => `${domid}:${p}`;
    const deliver = (k: string) => {
      const e = this.ports.get(k);
      if (e === undefined || e.pending) return;
      e.pending = true;
      queueMicrotask(() => {
        e.pending = false;
        if (!e.masked) e.handler?.();
      });
    };
    return {
      allocUnbound: () => {
        const p = this.next++;
        this.ports.set(key(p), { peer: undefined, pending: false, masked: false });
        return p;
      },
      bindInterdomain: (remote, remotePort) => {
        const p = this.next++;
        const rk = `${remote}:${remotePort}`;
        this.ports.set(key(p), { peer: rk, pending: false, masked: false });
        this.ports.get(rk)!.peer = key(p);
        return p;
      },
      notify: (p) => {
        const peer = this.ports.get(key(p))?.peer;
        if (peer === undefined || !this.ports.has(peer)) throw new XenError(XEN_ERRNO.EINVAL);
        deliver(peer);
      },
      onEvent: (p, handler) => {
        this.ports.get(key(p))!.handler = handler;
        return () => {
          const e = this.ports.get(key(p));
          if (e?.handler === handler) e.handler = undefined;
        };
      },
      setMask: (p, masked) => {
        this.ports.get(key(p))!.masked = masked;
      },
      close: (p) => {
        this.ports.delete(key(p));
      },
    };
  }
}

describe("wiring through event channels (evtchnPort)", () => {
  it("serves a domain whose page and store event channel come from the hypervisor", async () => {
    const hub = new Hub();
    const dom0Ev = hub.domain(0);
    const dom1Ev = hub.domain(1);
    const page = new Uint8Array(4096); // the guest's store page; dom0 maps the same bytes
    const guestPort = dom1Ev.allocUnbound(0); // start_info.store_evtchn
    const dom0Port = dom0Ev.bindInterdomain(1, guestPort);
    const server = new XenstoreServer();
    server.introduce(1, evtchnPort(dom0Ev, dom0Port, page));
    const client = new XenstoreClient(evtchnPort(dom1Ev, guestPort, page));
    const dom0 = new XenstoreClient(server.connectLocal());
    await client.write("data/hello", "world");
    expect(await dom0.read("/local/domain/1/data/hello")).toBe("world");
    const seen: string[] = [];
    await client.watch("data", (p) => seen.push(p));
    await dom0.write("/local/domain/1/data/x", "1");
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(["data", "data/x"]);
    // The guest closes its end: the next notification fails, the page says COMM, dom0 carries on.
    dom1Ev.close(guestPort);
    await dom0.write("/local/domain/1/data/y", "2");
    await new Promise((r) => setImmediate(r));
    expect(new DataView(page.buffer).getUint32(2072, true)).toBe(1);
    expect(await dom0.read("/local/domain/1/data/y")).toBe("2");
  });

  it("refuses reserved domids as host misuse", () => {
    const server = new XenstoreServer();
    expect(() => server.connectLocal(0x7ff0)).toThrow(RangeError);
    expect(() => server.connectLocal(-1)).toThrow(RangeError);
  });
});
