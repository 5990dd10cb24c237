/**
 * The model on the PC board: firmware finds and configures it, and a driver reaches it only
 * through the DriverPlatform (config space, ioremap, port I/O, DMA memory, requestIrq).
 */
import { describe, expect, it } from "vitest";
import { cable } from "@paravirt/vm-interfaces";
import { BareMetalPlatform, PcBoard } from "@paravirt/pc-board";
import { E1000PciFunction } from "../src/index.ts";
import { MAC, PEER_MAC } from "./harness.ts";

describe("on a PcBoard", () => {
  it("is enumerated by firmware and driven through the bare-metal driver platform", () => {
    const board = new PcBoard({ ramBytes: 16 * 1024 * 1024 });
    const [nicEnd, far] = cable();
    const seen: Uint8Array[] = [];
    far.onReceive((f) => seen.push(f));
    const nic = new E1000PciFunction({ memory: board.memory, irq: board.intxLine(4), clock: board.clock, mac: MAC, port: nicEnd });
    board.plugPci(4, nic);
    board.boot();
    const platform = new BareMetalPlatform(board);
    const [dev] = platform.pciDevices({ vendorId: 0x8086, deviceId: 0x100e });
    expect(dev).toBeDefined();
    expect(dev!.classCode).toBe(0x020000);
    expect(dev!.bars[0]).toMatchObject({ kind: "mem32", size: 0x20000 });
    expect(dev!.bars[1]).toMatchObject({ kind: "io", size: 64 });
    expect(dev!.irq).toBeDefined();

    const regs = platform.ioremap(dev!.bars[0]!.base, 0x20000);
    expect(regs.readl(0x8) & 2).toBe(2); // STATUS.LU
    expect(regs.readl(0x5400)).toBe(0x12005452); // RAL0
    // IOADDR/IODATA through port I/O.
    const io = dev!.bars[1]!.base;
    platform.outl(io, 0x5404);
    expect(platform.inl(io + 4)).toBe(0x80005634);

    let interrupts = 0;
    platform.requestIrq(dev!.irq!, () => {
      if (regs.readl(0xc0) !== 0) interrupts++; // ICR read-to-clear deasserts the line
    });
    const ring = platform.dmaAlloc(4096);
    const buf = platform.dmaAlloc(4096);
    const frame = new Uint8Array(100);
    frame.set(PEER_MAC, 0);
    frame.set(MAC, 6);
    frame[12] = 0x88;
    frame[13] = 0xb5;
    buf.bytes.set(frame);
    const d = new DataView(ring.bytes.buffer, ring.bytes.byteOffset, 16);
    d.setUint32(0, buf.busAddress, true);
    d.setUint32(8, frame.length | ((0x01 | 0x08) << 24), true);
    regs.writel(0x3800, ring.busAddress);
    regs.writel(0x3808, 4096);
    regs.writel(0x0400, 0x2 | 0x8);
    regs.writel(0x00d0, 0x1); // IMS.TXDW
    regs.writel(0x3818, 1);
    expect(seen).toEqual([frame]);
    expect(ring.bytes[12]! & 1).toBe(1);
    board.clock.advanceBy(1000);
    expect(interrupts).toBe(1);
    expect(board.irqs.level(dev!.irq!)).toBe(false);
  });
});
