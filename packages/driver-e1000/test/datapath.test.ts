import { describe, expect, it } from "vitest";
import { PCI_COMMAND, PCI_CONFIG } from "@paravirt/vm-interfaces";
import { probeE1000, type E1000Nic, type E1000Options } from "../src/index.ts";
import { Machine, NIC_MAC, PEER_MAC, seqFrame, seqOf } from "./machine.ts";

async function up(o: E1000Options = {}, m = new Machine()): Promise<{ m: Machine; nic: E1000Nic }> {
  const r = await m.settle(probeE1000(m.platform, o));
  expect(r.failed).toEqual([]);
  const nic = r.nics[0]!;
  expect(nic.linkUp).toBe(true);
  return { m, nic };
}

describe("transmit", () => {
  it("puts a frame on the wire byte for byte", async () => {
    const { m, nic } = await up();
    const f = seqFrame(7, 200, PEER_MAC, NIC_MAC);
    nic.send(f);
    expect(m.onWire).toHaveLength(1); // the TDT doorbell sends at once on this model
    expect(Array.from(m.onWire[0]!)).toEqual(Array.from(f));
    await m.run(() => nic.statistics().txPackets === 1);
    const s = nic.statistics();
    expect(s.txBytes).toBe(200);
    expect(s.txCopied).toBe(1);
    expect(s.hw.goodPacketsTx).toBe(1);
    expect(s.hw.goodOctetsTx).toBe(204); // with FCS [8254x SDM 13.7]
  });

  it("does not keep the caller's buffer: changing it after send changes nothing", async () => {
    const { m, nic } = await up({ txRingSize: 8 });
    const f = seqFrame(1, 100, PEER_MAC, NIC_MAC);
    const copy = f.slice();
    // Fill the ring so later frames wait in the software queue.
    for (let i = 0; i < 12; i++) nic.send(f);
    f.fill(0xee);
    await m.run(() => m.onWire.length === 12);
    for (const w of m.onWire) expect(Array.from(w)).toEqual(Array.from(copy));
  });

  it("pads short frames to the 60-byte minimum (TCTL.PSP)", async () => {
    const { m, nic } = await up();
    const f = seqFrame(3, 42, PEER_MAC, NIC_MAC);
    nic.send(f);
    await m.run(() => m.onWire.length === 1);
    expect(m.onWire[0]).toHaveLength(60);
    expect(Array.from(m.onWire[0]!.subarray(0, 42))).toEqual(Array.from(f));
    expect(m.onWire[0]!.subarray(42).every((b) => b === 0)).toBe(true);
  });

  it("refuses frames shorter than a header or longer than the MTU, and counts them", async () => {
    const { m, nic } = await up();
    nic.send(new Uint8Array(10));
    nic.send(seqFrame(0, 1515, PEER_MAC, NIC_MAC));
    nic.send(seqFrame(0, 1514, PEER_MAC, NIC_MAC));
    await m.idle(1_000_000);
    expect(m.onWire).toHaveLength(1);
    expect(nic.statistics().txInvalid).toBe(2);
  });

  it("zero-copy: the MAC reads a DMA-able caller buffer in place and the promise reports completion", async () => {
    const { m, nic } = await up();
    const region = m.platform.dmaAlloc(4096);
    const f = region.bytes.subarray(100, 100 + 300);
    f.set(seqFrame(42, 300, PEER_MAC, NIC_MAC));
    const sent = await m.settle(nic.transmit(f));
    expect(sent).toBe(true);
    expect(Array.from(m.onWire[0]!)).toEqual(Array.from(f));
    const s = nic.statistics();
    expect(s.txZeroCopy).toBe(1);
    expect(s.txCopied).toBe(0);
    // A buffer outside RAM (not DMA-able here) is bounced through the driver's buffers.
    const heap = seqFrame(43, 300, PEER_MAC, NIC_MAC);
    expect(await m.settle(nic.transmit(heap))).toBe(true);
    expect(Array.from(m.onWire[1]!)).toEqual(Array.from(heap));
    expect(nic.statistics().txCopied).toBe(1);
  });
});

describe("receive", () => {
  it("delivers a frame injected on the wire to onReceive", async () => {
    const { m, nic } = await up();
    const got: Uint8Array[] = [];
    nic.onReceive((f) => got.push(f));
    const f = seqFrame(9, 128, NIC_MAC, PEER_MAC);
    m.wire.send(f);
    await m.run(() => got.length === 1);
    expect(Array.from(got[0]!)).toEqual(Array.from(f)); // CRC stripped (SECRC)
    const s = nic.statistics();
    expect(s.rxPackets).toBe(1);
    expect(s.rxBytes).toBe(128);
    expect(s.hw.goodPacketsRx).toBe(1);
  });

  it("accepts broadcast, filters other stations' unicast unless promiscuous", async () => {
    const { m, nic } = await up();
    const got: Uint8Array[] = [];
    nic.onReceive((f) => got.push(f));
    const other = Uint8Array.of(0x02, 0, 0, 0, 0, 0x99);
    m.wire.send(seqFrame(1, 64, other, PEER_MAC));
    m.wire.send(seqFrame(2, 64, new Uint8Array(6).fill(0xff), PEER_MAC));
    await m.idle(1_000_000);
    expect(got.map(seqOf)).toEqual([2]);
    nic.setPromiscuous(true);
    m.wire.send(seqFrame(3, 64, other, PEER_MAC));
    await m.run(() => got.length === 2);
    expect(seqOf(got[1]!)).toBe(3);
    nic.setPromiscuous(false);
    m.wire.send(seqFrame(4, 64, other, PEER_MAC));
    await m.idle(1_000_000);
    expect(got).toHaveLength(2);
  });

  it("receives the multicast groups it was given (MTA hash)", async () => {
    const { m, nic } = await up();
    const got: Uint8Array[] = [];
    nic.onReceive((f) => got.push(f));
    const group = Uint8Array.of(0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb);
    m.wire.send(seqFrame(1, 64, group, PEER_MAC));
    await m.idle(1_000_000);
    expect(got).toHaveLength(0);
    nic.setMulticast([group]);
    m.wire.send(seqFrame(2, 64, group, PEER_MAC));
    await m.run(() => got.length === 1);
    expect(seqOf(got[0]!)).toBe(2);
  });

  it("survives a receive handler that throws", async () => {
    const { m, nic } = await up();
    let calls = 0;
    nic.onReceive(() => {
      calls++;
      throw new Error("boom");
    });
    m.wire.send(seqFrame(1, 64, NIC_MAC, PEER_MAC));
    m.wire.send(seqFrame(2, 64, NIC_MAC, PEER_MAC));
    await m.run(() => calls === 2);
    expect(m.platform.logs.some((l) => l.includes("boom"))).toBe(true);
  });
});

describe("1,000 frames each way", () => {
  it("sends and receives 1,000 frames without loss or reordering, wrapping the Tx ring and refilling the Rx ring", async () => {
    const { m, nic } = await up({ txRingSize: 64, rxRingSize: 64 });
    const N = 1000;
    const got: Uint8Array[] = [];
    nic.onReceive((f) => got.push(f));
    const sizes = (i: number) => 60 + ((i * 37) % 1455);
    // Transmit: handed over back to back, far faster than the ring drains.
    const txFrames: Uint8Array[] = [];
    for (let i = 0; i < N; i++) {
      const f = seqFrame(i, sizes(i), PEER_MAC, NIC_MAC);
      txFrames.push(f);
      nic.send(f);
    }
    expect(nic.statistics().txQueued).toBeGreaterThan(0);
    // Receive: one frame per microsecond from the peer (about line rate for these sizes).
    const rxFrames: Uint8Array[] = [];
    const t0 = m.board.clock.now();
    for (let i = 0; i < N; i++) {
      const f = seqFrame(100_000 + i, sizes(N - i), NIC_MAC, PEER_MAC);
      rxFrames.push(f);
      m.board.clock.schedule(t0 + (i + 1) * 1000, () => m.wire.send(f));
    }
    await m.run(() => m.onWire.length === N && got.length === N && nic.txBacklog.inFlight === 0);
    for (let i = 0; i < N; i++) {
      expect(seqOf(m.onWire[i]!)).toBe(i);
      expect(m.onWire[i]!.length).toBe(txFrames[i]!.length);
      expect(m.onWire[i]!.every((b, k) => b === txFrames[i]![k])).toBe(true);
      expect(seqOf(got[i]!)).toBe(100_000 + i);
      expect(got[i]!.every((b, k) => b === rxFrames[i]![k])).toBe(true);
      expect(got[i]!.length).toBe(rxFrames[i]!.length);
    }
    const s = nic.statistics();
    expect(s.txPackets).toBe(N);
    expect(s.txDropped).toBe(0);
    expect(s.rxPackets).toBe(N);
    expect(s.rxOverruns).toBe(0);
    expect(s.hw.goodPacketsTx).toBe(N);
    expect(s.hw.goodPacketsRx).toBe(N);
    expect(s.hw.missedPackets).toBe(0);
    // Both rings went round many times.
    expect(N / 64).toBeGreaterThan(15);
    expect(s.interrupts).toBeGreaterThan(0);
    expect(m.irqLevel).toBe(false);
  });

  it("drops (and counts) frames when the software queue is full", async () => {
    const { m, nic } = await up({ txRingSize: 8, txQueueLength: 10 });
    // Link held down for the burst would drop everything; instead stop the MAC from
    // finishing descriptors by disabling bus mastering so the ring stays full.
    const addr = nic.pci.address;
    const cmd = m.platform.pciConfigRead(addr, PCI_CONFIG.COMMAND, 2);
    m.platform.pciConfigWrite(addr, PCI_CONFIG.COMMAND, 2, cmd & ~PCI_COMMAND.MASTER);
    for (let i = 0; i < 30; i++) nic.send(seqFrame(i, 64, PEER_MAC, NIC_MAC));
    const s = nic.statistics();
    expect(s.txQueued).toBe(10);
    expect(s.txDropped).toBe(30 - 7 - 10);
    m.platform.pciConfigWrite(addr, PCI_CONFIG.COMMAND, 2, cmd);
    await m.run(() => m.onWire.length === 17);
    expect(m.onWire.map(seqOf)).toEqual([...Array(17).keys()]);
  });
});

describe("interrupts and link", () => {
  it("acknowledges interrupts: the line is asserted when the handler starts and deasserted when it returns", async () => {
    const m = new Machine();
    // Two more handlers share the line: one runs before the driver's, one after.
    const before: boolean[] = [];
    const after: boolean[] = [];
    m.platform.requestIrq(m.irq, () => before.push(m.irqLevel));
    const { nic } = await up({}, m);
    m.platform.requestIrq(m.irq, () => after.push(m.irqLevel));
    before.length = 0;
    const got: Uint8Array[] = [];
    nic.onReceive((f) => got.push(f));
    const n0 = nic.statistics().interrupts;
    m.wire.send(seqFrame(1, 64, NIC_MAC, PEER_MAC));
    await m.run(() => got.length === 1);
    expect(before).toEqual([true]);
    expect(after).toEqual([false]);
    expect(m.irqLevel).toBe(false);
    expect(nic.statistics().interrupts).toBe(n0 + 1);
    nic.send(seqFrame(2, 64, PEER_MAC, NIC_MAC));
    await m.run(() => nic.statistics().txPackets === 1);
    expect(before.slice(1)).toEqual([true]);
    expect(after.slice(1)).toEqual([false]);
    expect(m.irqLevel).toBe(false);
    expect(nic.statistics().spuriousInterrupts).toBe(0);
  });

  it("reports link down and up on the wire through onLinkChange", async () => {
    const { m, nic } = await up();
    const seen: boolean[] = [];
    nic.onLinkChange((u) => seen.push(u));
    m.fn.device.disconnect();
    await m.run(() => seen.length === 1);
    expect(seen).toEqual([false]);
    expect(nic.linkUp).toBe(false);
    expect(nic.speedMbps).toBe(0);
    nic.send(seqFrame(1, 64, PEER_MAC, NIC_MAC));
    expect(nic.statistics().txDropped).toBe(1);
    m.fn.device.connect(m.nicEnd);
    await m.run(() => seen.length === 2);
    expect(seen).toEqual([false, true]);
    expect(nic.linkUp).toBe(true);
    nic.send(seqFrame(2, 64, PEER_MAC, NIC_MAC));
    await m.run(() => m.onWire.length === 1);
    expect(seqOf(m.onWire[0]!)).toBe(2);
    expect(m.irqLevel).toBe(false);
  });

  it("ignores a shared-line call when the NIC raised nothing", async () => {
    const { m, nic } = await up();
    // Another device's handler on the same line: ICR reads 0, the driver does nothing.
    m.board.irqLine(m.irq).setLevel(true);
    await m.idle(10_000);
    m.board.irqLine(m.irq).setLevel(false);
    await m.idle(10_000);
    expect(nic.statistics().spuriousInterrupts).toBeGreaterThan(0);
  });
});

describe("statistics", () => {
  it("accumulates the clear-on-read counters across reads", async () => {
    const { m, nic } = await up();
    for (let i = 0; i < 3; i++) nic.send(seqFrame(i, 100, PEER_MAC, NIC_MAC));
    await m.run(() => nic.statistics().txPackets === 3);
    expect(nic.statistics().hw.goodPacketsTx).toBe(3);
    for (let i = 0; i < 2; i++) nic.send(seqFrame(i, 100, new Uint8Array(6).fill(0xff), NIC_MAC));
    await m.run(() => nic.statistics().txPackets === 5);
    const s = nic.statistics();
    expect(s.hw.goodPacketsTx).toBe(5);
    expect(s.hw.broadcastTx).toBe(2);
    expect(s.hw.totalPacketsTx).toBe(5);
    expect(s.hw.goodOctetsTx).toBe(5 * 104);
    expect(s.hw.tx65to127).toBe(5);
  });

  it("folds statistics and re-checks the link from a watchdog when asked", async () => {
    const { m, nic } = await up({ watchdogNs: 2_000_000_000 });
    nic.send(seqFrame(1, 100, PEER_MAC, NIC_MAC));
    await m.idle(2_500_000_000);
    // The watchdog read the registers already: they are zero in the device now.
    const d = m.platform.pciDevices({ vendorId: 0x8086, deviceId: 0x100e })[0]!;
    const regs = m.platform.ioremap(d.bars[0]!.base, 0x20000);
    expect(regs.readl(0x4080)).toBe(0); // GPTC
    expect(nic.statistics().hw.goodPacketsTx).toBe(1);
    nic.close();
  });
});

describe("shutdown", () => {
  it("close stops the NIC, releases the IRQ, frees DMA memory and reports the link down", async () => {
    const { m, nic } = await up();
    const got: Uint8Array[] = [];
    const seen: boolean[] = [];
    nic.onReceive((f) => got.push(f));
    nic.onLinkChange((u) => seen.push(u));
    nic.close();
    expect(nic.isClosed).toBe(true);
    expect(seen).toEqual([false]);
    expect(nic.linkUp).toBe(false);
    const cmd = m.platform.pciConfigRead(nic.pci.address, PCI_CONFIG.COMMAND, 2);
    expect(cmd & PCI_COMMAND.MASTER).toBe(0);
    m.wire.send(seqFrame(1, 64, NIC_MAC, PEER_MAC));
    nic.send(seqFrame(2, 64, PEER_MAC, NIC_MAC));
    await m.idle(1_000_000);
    expect(got).toHaveLength(0);
    expect(m.onWire).toHaveLength(0);
    expect(m.irqLevel).toBe(false);
    expect(await m.settle(nic.transmit(seqFrame(3, 64, PEER_MAC, NIC_MAC)))).toBe(false);
    nic.close(); // idempotent
    // The driver can be loaded again on the same function.
    const again = await m.settle(probeE1000(m.platform));
    expect(again.nics).toHaveLength(1);
    const nic2 = again.nics[0]!;
    nic2.send(seqFrame(4, 64, PEER_MAC, NIC_MAC));
    await m.run(() => m.onWire.length === 1);
    expect(seqOf(m.onWire[0]!)).toBe(4);
  });

  it("pending zero-copy transmissions resolve false when the NIC is closed", async () => {
    const { m, nic } = await up({ txRingSize: 8 });
    const addr = nic.pci.address;
    const cmd = m.platform.pciConfigRead(addr, PCI_CONFIG.COMMAND, 2);
    m.platform.pciConfigWrite(addr, PCI_CONFIG.COMMAND, 2, cmd & ~PCI_COMMAND.MASTER);
    const results: boolean[] = [];
    const ps = [...Array(10).keys()].map((i) => nic.transmit(seqFrame(i, 64, PEER_MAC, NIC_MAC)).then((r) => results.push(r)));
    nic.close();
    await m.settle(Promise.all(ps));
    expect(results).toEqual(new Array(10).fill(false));
  });
});

describe("reset", () => {
  it("detects a transmit hang from the watchdog and resets the adapter, then works again", async () => {
    const { m, nic } = await up({ txRingSize: 8, watchdogNs: 1_000_000_000 });
    const seen: boolean[] = [];
    nic.onLinkChange((u) => seen.push(u));
    const addr = nic.pci.address;
    const cmd = m.platform.pciConfigRead(addr, PCI_CONFIG.COMMAND, 2);
    // The DMA engine stops (bus mastering lost): descriptors are never written back.
    m.platform.pciConfigWrite(addr, PCI_CONFIG.COMMAND, 2, cmd & ~PCI_COMMAND.MASTER);
    const results: boolean[] = [];
    for (let i = 0; i < 3; i++) void nic.transmit(seqFrame(i, 64, PEER_MAC, NIC_MAC)).then((r) => results.push(r));
    await m.run(() => nic.statistics().resets === 1 && seen.length === 2);
    expect(m.platform.logs.some((l) => l.includes("transmit timeout"))).toBe(true);
    expect(results).toEqual([false, false, false]);
    expect(seen).toEqual([false, true]); // autonegotiation after the reset
    expect(m.onWire).toHaveLength(0);
    expect(m.platform.pciConfigRead(addr, PCI_CONFIG.COMMAND, 2) & PCI_COMMAND.MASTER).toBe(PCI_COMMAND.MASTER);
    const got: Uint8Array[] = [];
    nic.onReceive((f) => got.push(f));
    nic.send(seqFrame(10, 64, PEER_MAC, NIC_MAC));
    m.wire.send(seqFrame(11, 64, NIC_MAC, PEER_MAC));
    await m.run(() => m.onWire.length === 1 && got.length === 1);
    expect(seqOf(m.onWire[0]!)).toBe(10);
    expect(seqOf(got[0]!)).toBe(11);
    nic.close();
  });

  it("keeps promiscuous mode and multicast groups across a reset", async () => {
    const { m, nic } = await up();
    const group = Uint8Array.of(0x01, 0x00, 0x5e, 0x00, 0x00, 0x01);
    nic.setMulticast([group]);
    nic.setPromiscuous(true);
    expect(await m.settle(nic.reset())).toBe(true);
    await m.settle(nic.waitForLink(5e9));
    const got: Uint8Array[] = [];
    nic.onReceive((f) => got.push(f));
    m.wire.send(seqFrame(1, 64, group, PEER_MAC));
    m.wire.send(seqFrame(2, 64, Uint8Array.of(2, 0, 0, 0, 0, 9), PEER_MAC));
    await m.run(() => got.length === 2);
    expect(got.map(seqOf)).toEqual([1, 2]);
    expect(nic.statistics().resets).toBe(1);
  });
});

describe("device input never throws", () => {
  it("survives garbage written into the descriptor rings by a misbehaving device", async () => {
    const { m, nic } = await up({ txRingSize: 16, rxRingSize: 16 });
    const got: Uint8Array[] = [];
    nic.onReceive((f) => got.push(f));
    const d = m.platform.pciDevices({ vendorId: 0x8086, deviceId: 0x100e })[0]!;
    const regs = m.platform.ioremap(d.bars[0]!.base, 0x20000);
    const rxBase = regs.readl(0x2800);
    const txBase = regs.readl(0x3800);
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
    for (let round = 0; round < 20; round++) {
      nic.send(seqFrame(round, 80, PEER_MAC, NIC_MAC));
      for (let i = 0; i < 16 * 16; i++) {
        m.board.memory.ram[rxBase + i] = rnd();
        if (round % 2 === 0) m.board.memory.ram[txBase + i] = rnd();
      }
      regs.writel(0xc8, 0x80 | 0x01 | 0x04); // ICS: RXT0 | TXDW | LSC
      await m.idle(100_000);
    }
    // Nothing threw (an exception would have escaped the interrupt dispatch); the counters moved.
    const s = nic.statistics();
    expect(s.interrupts).toBeGreaterThanOrEqual(20);
    expect(s.rxPackets + s.rxErrors).toBeGreaterThan(0);
    for (const f of got) expect(f.length).toBeLessThanOrEqual(16384);
    // A reset brings the interface back to a clean state.
    expect(await m.settle(nic.reset("test"))).toBe(true);
    await m.settle(nic.waitForLink(5e9));
    const before = m.onWire.length;
    got.length = 0;
    nic.send(seqFrame(99, 64, PEER_MAC, NIC_MAC));
    m.wire.send(seqFrame(98, 64, NIC_MAC, PEER_MAC));
    await m.run(() => m.onWire.length > before && got.length === 1);
    expect(seqOf(m.onWire[m.onWire.length - 1]!)).toBe(99);
    expect(seqOf(got[0]!)).toBe(98);
  });
});
