import { describe, expect, it } from "vitest";
import { PCI_COMMAND, PCI_CONFIG, PciConfigSpace, type IoDevice, type IrqLine } from "@paravirt/vm-interfaces";
import { BareMetalPlatform, PcBoard, configRead, runUntil } from "../src/index.ts";

/** A toy NIC-like function: 4 registers behind a 16-byte I/O BAR and a 4 KiB MMIO BAR. */
function toyDevice(irq?: IrqLine) {
  const regs = new Uint32Array(4);
  const dev: IoDevice = {
    read: (o) => regs[o >> 2]!,
    write: (o, _s, v) => {
      regs[o >> 2] = v;
      if (o === 0 && irq) irq.setLevel(v !== 0);
    },
  };
  const cfg = new PciConfigSpace({ vendorId: 0x1234, deviceId: 0x5678, classCode: 0x020000, interruptPin: 1 });
  cfg.setBar(0, { kind: "mem32", size: 0x1000, device: dev });
  cfg.setBar(1, { kind: "io", size: 16, device: dev });
  return { cfg, regs };
}

describe("PcBoard", () => {
  it("answers configuration mechanism #1 and all ones for empty slots", () => {
    const board = new PcBoard({ ramBytes: 1 << 20, chipset: false });
    board.plugPci(3, toyDevice().cfg);
    expect(configRead(board.ports, { bus: 0, device: 3, function: 0 }, 0, 4)).toBe(0x56781234);
    expect(configRead(board.ports, { bus: 0, device: 3, function: 0 }, 2, 2)).toBe(0x5678);
    expect(configRead(board.ports, { bus: 0, device: 4, function: 0 }, 0, 4)).toBe(0xffffffff);
  });

  it("has firmware size and place every BAR, route the IRQ and enable decoding", () => {
    const board = new PcBoard({ ramBytes: 1 << 20, chipset: false });
    const { regs } = toyDevice();
    const t = toyDevice();
    board.plugPci(3, t.cfg);
    const [d] = board.boot();
    expect(d!.bars[0]).toEqual({ kind: "mem32", base: 0xf0000000, size: 0x1000 });
    expect(d!.bars[1]).toEqual({ kind: "io", base: 0xc000, size: 16 });
    expect(d!.irq).toBe([10, 11, 10, 11][(3 + 1 - 1) & 3]);
    expect(t.cfg.configRead(PCI_CONFIG.INTERRUPT_LINE, 1)).toBe(d!.irq);
    expect(t.cfg.configRead(PCI_CONFIG.COMMAND, 2) & (PCI_COMMAND.IO | PCI_COMMAND.MEMORY | PCI_COMMAND.MASTER)).toBe(7);
    board.ports.write(0xc004, 4, 0xabcd);
    expect(t.regs[1]).toBe(0xabcd);
    expect(board.memory.readU32(0xf0000004)).toBe(0xabcd);
    void regs;
  });

  it("moves a BAR's claim when software reprograms it, and drops it when decoding is disabled", () => {
    const board = new PcBoard({ ramBytes: 1 << 20, chipset: false });
    const t = toyDevice();
    board.plugPci(1, t.cfg);
    board.boot();
    t.cfg.configWrite(PCI_CONFIG.BAR0 + 4, 4, 0xd000);
    expect(board.ports.find(0xc000)).toBeUndefined();
    board.ports.write(0xd008, 4, 7);
    expect(t.regs[2]).toBe(7);
    t.cfg.configWrite(PCI_CONFIG.COMMAND, 2, 0);
    expect(board.ports.read(0xd008, 4)).toBe(0xffffffff);
  });

  it("carries the i440FX host bridge and a multi-function PIIX3 ISA bridge by default", () => {
    const board = new PcBoard({ ramBytes: 1 << 20 });
    const found = board.boot();
    expect(found.map((d) => [d.address.device, d.address.function, d.vendorId, d.deviceId])).toEqual([
      [0, 0, 0x8086, 0x1237],
      [1, 0, 0x8086, 0x7000],
    ]);
  });

  it("can use an existing buffer as RAM, so DMA lands in memory someone else manages", () => {
    const machine = new ArrayBuffer(1 << 20);
    const board = new PcBoard({ ram: machine });
    board.memory.writeU32(0x3000, 0x11223344);
    expect(new DataView(machine).getUint32(0x3000, true)).toBe(0x11223344);
    expect(board.memory.addressOf(new Uint8Array(machine, 0x5000, 16))).toBe(0x5000);
  });

  it("routes DMA views of RAM to physical addresses and refuses unmapped addresses", () => {
    const board = new PcBoard({ ramBytes: 1 << 20, chipset: false });
    board.memory.writeU32(0x1000, 0xdeadbeef);
    expect(board.memory.view(0x1000, 4)).toEqual(Uint8Array.of(0xef, 0xbe, 0xad, 0xde));
    expect(board.memory.addressOf(board.memory.ram.subarray(0x2000, 0x3000))).toBe(0x2000);
    expect(() => board.memory.readU32(0x2000_0000)).toThrow(/unmapped/);
  });
});

describe("BareMetalPlatform", () => {
  it("runs an IRQ handler from the clock, again while the line stays asserted", async () => {
    const board = new PcBoard({ ramBytes: 1 << 20, chipset: false });
    const t = toyDevice(board.intxLine(4));
    board.plugPci(4, t.cfg);
    board.boot();
    const platform = new BareMetalPlatform(board);
    const [dev] = platform.pciDevices({ vendorId: 0x1234 });
    const mmio = platform.ioremap(dev!.bars[0]!.base, 0x1000);
    let runs = 0;
    platform.requestIrq(dev!.irq!, () => {
      runs++;
      if (runs === 2) mmio.writel(0, 0); // acknowledge: deassert
    });
    mmio.writel(0, 1); // device raises its line
    expect(runs).toBe(0); // never inside the register write
    await runUntil(board.clock, () => runs >= 2);
    expect(runs).toBe(2);
    expect(board.irqs.level(dev!.irq!)).toBe(false);
  });

  it("disables a line nobody acknowledges instead of looping forever", async () => {
    const board = new PcBoard({ ramBytes: 1 << 20, chipset: false });
    const line = board.irqLine(5);
    const platform = new BareMetalPlatform(board);
    let runs = 0;
    platform.requestIrq(5, () => runs++);
    line.setLevel(true);
    await runUntil(board.clock, () => platform.logs.length > 0);
    expect(platform.logs[0]).toMatch(/nobody cared/);
    expect(runs).toBe(10_000);
  });

  it("hands out zeroed, page-aligned DMA memory with its bus address, and maps RAM views zero-copy", () => {
    const board = new PcBoard({ ramBytes: 4 << 20, chipset: false });
    const platform = new BareMetalPlatform(board);
    board.memory.ram.fill(0xaa, 0x100000, 0x102000);
    const r = platform.dmaAlloc(6000);
    expect(r.busAddress % 4096).toBe(0);
    expect(r.bytes.length).toBe(6000);
    expect(r.bytes.every((b) => b === 0)).toBe(true);
    expect(platform.dmaMap(r.bytes, "to-device")).toEqual([{ busAddress: r.busAddress, length: 6000 }]);
    expect(platform.dmaMap(new Uint8Array(16), "to-device")).toBeUndefined();
    platform.dmaFree(r);
    expect(platform.dmaAlloc(4096).busAddress).toBe(r.busAddress);
  });
});

describe("host I/O and virtual time", () => {
  it("does not jump virtual time while tracked host I/O is in flight", async () => {
    const { trackBlockDevice } = await import("../src/index.ts");
    const { MemoryBlockDevice } = await import("@paravirt/vm-interfaces/testing");
    const board = new PcBoard({ ramBytes: 1 << 20, chipset: false });
    const slow = new MemoryBlockDevice(8);
    // A backend that answers after 20 ms of wall time.
    const real = { ...slow, info: slow.info, read: (s: number, d: Uint8Array) => new Promise<void>((r) => setTimeout(() => slow.read(s, d).then(r), 20)), write: slow.write.bind(slow), flush: slow.flush.bind(slow) };
    const dev = trackBlockDevice(real, board.hostIo);
    let timedOut = false;
    board.clock.after(1e9, () => (timedOut = true)); // a device timeout 1 s of virtual time away
    let done = false;
    void dev.read(0, new Uint8Array(512)).then(() => (done = true));
    await board.run(() => done);
    expect(timedOut).toBe(false);
    expect(board.clock.now()).toBe(0);
  });
});
