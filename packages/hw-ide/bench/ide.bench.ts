/** Throughput of the model through its register interface (no real time, no disk): PIO and DMA. */
import { bench, describe } from "vitest";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { ATA_CMD } from "../src/index.ts";
import { machine, P } from "../test/harness.ts";

const m = machine({ master: new MemoryBlockDevice(65536), disk: { timing: { commandNs: 0, sectorNs: 0 } } });

async function pioRead256(): Promise<void> {
  m.lba28(0, 0);
  m.outb(P.CMD, ATA_CMD.READ_MULTIPLE);
  for (let b = 0; b < 16; b++) {
    await m.waitNotBusy();
    m.inb(P.STATUS);
    for (let i = 0; i < 2048; i++) m.inl(P.DATA);
  }
}

async function dmaRead256(): Promise<void> {
  m.stopBm();
  m.outb(0xc002, 6);
  m.prdTable(0x1000, [{ addr: 0x100000, bytes: 0 }, { addr: 0x110000, bytes: 0 }]);
  m.lba28(0, 0);
  m.outb(P.CMD, ATA_CMD.READ_DMA);
  m.startBm(true);
  await m.settle();
  m.inb(P.STATUS);
}

describe("hw-ide 128 KiB reads", () => {
  bench("PIO READ MULTIPLE, 32-bit data port", pioRead256, { time: 1000 });
  bench("READ DMA, 2 PRDs", dmaRead256, { time: 1000 });
});
