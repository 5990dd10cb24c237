/**
 * Robustness: random instruction bytes in real mode, 16- and 32-bit protected mode and with
 * paging never make `run` throw. Guest errors must become guest-visible exceptions, halts or
 * triple faults [CONTRIBUTING: guest-controlled input never throws].
 */
import { FlatMemory } from "@paravirt/vm-interfaces/testing";
import { describe, expect, it } from "vitest";
import { CR0, SEG, X86Cpu } from "../src/index.ts";
import { COMPILER_MODES, useCompilerMode } from "./compilerModes.ts";

let seed = 0x1234567;
function rnd(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

function fill(mem: FlatMemory): void {
  // Random code and data everywhere, with a valid-looking IDT/IVT and page tables left random.
  for (let i = 0; i < mem.bytes.length; i += 4) new DataView(mem.bytes.buffer).setUint32(i, rnd(), true);
}

describe.each(COMPILER_MODES)("random code never throws out of run() ($name)", (mode) => {
  useCompilerMode(mode);
  const modes = ["real", "pm16", "pm32", "pm32-paging"] as const;
  for (const mode of modes) {
    it(mode, () => {
      const mem = new FlatMemory(1 << 20);
      const reasons = new Map<string, number>();
      for (let round = 0; round < 60; round++) {
        fill(mem);
        const cpu = new X86Cpu({ memory: mem, io: { read: () => rnd(), write: () => {} } });
        if (mode !== "real") {
          cpu.setCr0(cpu.cr0 | CR0.PE | (mode === "pm32-paging" ? CR0.PG : 0));
          cpu.gdtrBase = rnd() & 0xf0000;
          cpu.gdtrLimit = 0xffff;
          cpu.idtrBase = rnd() & 0xf0000;
          cpu.idtrLimit = 0x7ff;
          cpu.setCr3(rnd() & 0xff000);
          const big = mode === "pm16" ? 0 : 0x4000;
          cpu.setSegment(SEG.CS, { selector: 8, base: 0, limit: 0xfffff, attributes: 0x9b | big });
          for (const s of [SEG.DS, SEG.ES, SEG.SS]) cpu.setSegment(s, { selector: 16, base: 0, limit: 0xfffff, attributes: 0x93 | big });
        } else {
          cpu.setSegment(SEG.CS, { selector: 0x1000, base: 0x10000, limit: 0xffff, attributes: 0x9b });
        }
        cpu.eip = rnd() & 0xffff;
        for (let r = 0; r < 8; r++) cpu.regs[r] = rnd();
        const exit = cpu.run(2000);
        reasons.set(exit.reason, (reasons.get(exit.reason) ?? 0) + 1);
        expect(exit.executed).toBeLessThanOrEqual(2000);
      }
      expect([...reasons.values()].reduce((a, b) => a + b)).toBe(60);
    });
  }
});
