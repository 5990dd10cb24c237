import { BackRing, BLKIF_OP, BLKIF_X86_64, decodeBlkifRequest, encodeBlkifResponse, SRING, XENBUS_STATE } from "@paravirt/device-channel";
import { addDevice, InMemoryXen } from "@paravirt/xen-testing";
import { describe, expect, it } from "vitest";
import { Blkfront } from "../src/index.ts";

describe("blkfront against a misbehaving backend", () => {
  it("ignores unknown ids, wrong operations and runaway rsp_prod without throwing", async () => {
    const xen = new InMemoryXen();
    const dom0 = xen.createDomain(0);
    const domU = xen.createDomain(1);
    const { backendPath, frontendPath } = await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: 51712 });
    const xs = dom0.xenstore;
    for (const [k, v] of Object.entries({ "max-ring-page-order": "0", state: "2" })) await xs.write(`${backendPath}/${k}`, v);
    const front = new Blkfront({ xen: domU, devid: 51712, log: () => {} });
    const connected = front.connect();
    await xen.settle();
    expect(await xs.read(`${frontendPath}/state`)).toBe("3");
    const ringMap = dom0.gnttab.map(1, Number(await xs.read(`${frontendPath}/ring-ref`)), true);
    const port = dom0.evtchn.bindInterdomain(1, Number(await xs.read(`${frontendPath}/event-channel`)));
    const ring = BackRing.attach(ringMap.bytes, BLKIF_X86_64.entrySize);
    let kicks = 0;
    dom0.evtchn.onEvent(port, () => kicks++);
    for (const [k, v] of Object.entries({ sectors: "64", "sector-size": "512", info: "0", "feature-flush-cache": "1", state: "4" })) await xs.write(`${backendPath}/${k}`, v);
    await connected;
    expect(front.state).toBe(XENBUS_STATE.Connected);

    const done: string[] = [];
    const a = front.read(0, new Uint8Array(512)).then(() => done.push("a"), (e: Error) => done.push(`a:${e.message}`));
    const b = front.flush().then(() => done.push("b"), (e: Error) => done.push(`b:${e.message}`));
    await xen.settle();
    expect(kicks).toBeGreaterThan(0);
    const reqs = [ring.takeRequest()!, ring.takeRequest()!].map((off) => decodeBlkifRequest(ring.view, off, BLKIF_X86_64));
    expect(reqs.map((r) => r.operation)).toEqual([BLKIF_OP.READ, BLKIF_OP.FLUSH_DISKCACHE]);
    // A response with an id never issued, then one with the right id but the wrong operation.
    encodeBlkifResponse(ring.view, ring.nextResponse(), { id: 999n, operation: BLKIF_OP.READ, status: 0 }, BLKIF_X86_64);
    encodeBlkifResponse(ring.view, ring.nextResponse(), { id: reqs[0]!.id, operation: BLKIF_OP.WRITE, status: 0 }, BLKIF_X86_64);
    ring.pushResponses();
    dom0.evtchn.notify(port);
    await xen.settle();
    expect(front.stats.badResponses).toBe(2);
    expect(done).toEqual([]);
    // A runaway rsp_prod: consumption is clamped to what is outstanding (nothing now).
    ring.view.setUint32(SRING.RSP_PROD, 0x7fffffff, true);
    dom0.evtchn.notify(port);
    await xen.settle();
    expect(done).toEqual([]);
    expect(xen.errors).toEqual([]);
    // Both requests are still waiting for a real answer.
    expect(front.pending).toBe(2);
    void a;
    void b;
  });
});
