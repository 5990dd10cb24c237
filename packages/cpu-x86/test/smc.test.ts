/**
 * Self-modifying code and code written by others: a store into the next instruction's bytes,
 * REP STOS/MOVS over code that already ran, a store through a second linear alias of the code's
 * physical page, a device writing code during port I/O, and the embedder writing code through
 * GuestMemory between run() calls. Each program runs its code before it is changed, so an
 * instruction cache that missed a write would replay the old bytes. [SDM Vol.3A 8.1.3]
 */
import { FlatMemory } from "@paravirt/vm-interfaces/testing";
import { describe, expect, it } from "vitest";
import { CR0, SEG, X86Cpu, type PortBus } from "../src/index.ts";
import { COMPILER_MODES, useCompilerMode } from "./compilerModes.ts";

const CODE = 0x1000;

function flat32(mem: FlatMemory, io?: PortBus): X86Cpu {
  const cpu = new X86Cpu({ memory: mem, io });
  cpu.setCr0(cpu.cr0 | CR0.PE);
  cpu.setSegment(SEG.CS, { selector: 8, base: 0, limit: 0xffffffff, attributes: 0xc09b });
  for (const s of [SEG.DS, SEG.ES, SEG.SS, SEG.FS, SEG.GS]) cpu.setSegment(s, { selector: 16, base: 0, limit: 0xffffffff, attributes: 0xc093 });
  cpu.regs[4] = 0x8000;
  return cpu;
}

function load(code: number[], io?: PortBus): { cpu: X86Cpu; mem: FlatMemory } {
  const mem = new FlatMemory(1 << 20);
  mem.bytes.set(code, CODE);
  const cpu = flat32(mem, io);
  cpu.regs.fill(0);
  cpu.regs[4] = 0x8000;
  cpu.eip = CODE;
  return { cpu, mem };
}

describe.each(COMPILER_MODES)("self-modifying code ($name)", (mode) => {
  useCompilerMode(mode);
  it("a store into the next instruction's immediate is seen on every pass", () => {
    const { cpu } = load([
      0xb9, 0x03, 0x00, 0x00, 0x00, //       1000 mov ecx, 3
      0x88, 0x1d, 0x0c, 0x10, 0x00, 0x00, // 1005 mov [0x100c], bl  (imm8 of the next instruction)
      0xb0, 0x00, //                         100b mov al, imm8
      0x00, 0xc7, //                         100d add bh, al
      0xfe, 0xc3, //                         100f inc bl
      0xe2, 0xf2, //                         1011 loop 1005
      0xf4, //                               1013 hlt
    ]);
    cpu.regs[3] = 1; // bl = 1, bh = 0
    expect(cpu.run(100).reason).toBe("halt");
    expect((cpu.regs[3]! >> 8) & 0xff).toBe(1 + 2 + 3); // bh
  });

  it("a store into the next instruction's opcode switches the instruction", () => {
    const { cpu } = load([
      0xb9, 0x04, 0x00, 0x00, 0x00, //       1000 mov ecx, 4
      0x88, 0x1d, 0x0b, 0x10, 0x00, 0x00, // 1005 mov [0x100b], bl
      0x90, //                               100b inc eax (0x40) / inc edx (0x42)
      0x80, 0xf3, 0x02, //                   100c xor bl, 2
      0xe2, 0xf4, //                         100f loop 1005
      0xf4, //                               1011 hlt
    ]);
    cpu.regs[3] = 0x40;
    expect(cpu.run(100).reason).toBe("halt");
    expect([cpu.regs[0], cpu.regs[2]]).toEqual([2, 2]);
  });

  it("a store through another linear alias of the code page is seen (physical, not linear)", () => {
    const { cpu, mem } = load([
      0xb9, 0x02, 0x00, 0x00, 0x00, //       1000 mov ecx, 2
      0x88, 0x1d, 0x0c, 0x50, 0x00, 0x00, // 1005 mov [0x500c], bl  (0x5000 maps the code page)
      0xb0, 0x00, //                         100b mov al, imm8
      0x00, 0xc7, //                         100d add bh, al
      0xfe, 0xc3, //                         100f inc bl
      0xe2, 0xf2, //                         1011 loop 1005
      0xf4, //                               1013 hlt
    ]);
    const dv = new DataView(mem.bytes.buffer);
    dv.setUint32(0x10000, 0x11000 | 3, true);
    for (let i = 0; i < 1024; i++) dv.setUint32(0x11000 + i * 4, (i << 12) | 3, true);
    dv.setUint32(0x11000 + 5 * 4, CODE | 3, true); // linear 0x5000 -> physical 0x1000
    cpu.setCr3(0x10000);
    cpu.setCr0(cpu.cr0 | CR0.PG);
    cpu.regs[3] = 1;
    expect(cpu.run(100).reason).toBe("halt");
    expect((cpu.regs[3]! >> 8) & 0xff).toBe(1 + 2);
  });

  for (const [name, fill] of [
    ["REP STOSD", [0xb9, 0x01, 0x00, 0x00, 0x00, 0xb8, 0x90, 0x90, 0x90, 0x90, 0xf3, 0xab]], // mov ecx,1; mov eax,0x90909090; rep stosd
    ["REP MOVSB", [0xb9, 0x04, 0x00, 0x00, 0x00, 0xbe, 0x00, 0x20, 0x00, 0x00, 0xf3, 0xa4]], // mov ecx,4; mov esi,0x2000; rep movsb
  ] as const) {
    it(`${name} over code that already ran replaces it`, () => {
      const { cpu, mem } = load([
        0xe8, 0xfb, 0x00, 0x00, 0x00, // 1000 call 1100
        0xbf, 0x00, 0x11, 0x00, 0x00, // 1005 mov edi, 0x1100
        ...fill, //                      100a
        0xe8, 0xe5, 0x00, 0x00, 0x00, // 1016 call 1100
        0xf4, //                         101b hlt
      ]);
      mem.bytes.set([0x43, 0x43, 0x43, 0x43, 0xc3], 0x1100); // inc ebx x4; ret
      mem.bytes.fill(0x90, 0x2000, 0x2004);
      expect(cpu.run(100).reason).toBe("halt");
      expect(cpu.regs[3]).toBe(4); // the second call ran NOPs
    });
  }

  it("code written by a device during port I/O (DMA) is seen by the next instruction", () => {
    let mem: FlatMemory | undefined;
    const io: PortBus = {
      read: () => 0xff,
      write: (port) => {
        if (port === 0x80) mem!.writeU8(0x1005, 0x43); // inc eax -> inc ebx
      },
    };
    const loaded = load(
      [
        0xb9, 0x02, 0x00, 0x00, 0x00, // 1000 mov ecx, 2
        0x40, //                         1005 inc eax
        0xe6, 0x80, //                   1006 out 0x80, al
        0xe2, 0xfb, //                   1008 loop 1005
        0xf4, //                         100a hlt
      ],
      io,
    );
    mem = loaded.mem;
    expect(loaded.cpu.run(100).reason).toBe("halt");
    expect([loaded.cpu.regs[0], loaded.cpu.regs[3]]).toEqual([1, 1]);
  });

  it("code written through GuestMemory between run() calls is seen", () => {
    const { cpu, mem } = load([
      0x40, //             1000 inc eax
      0xeb, 0xfd, //       1001 jmp 1000
    ]);
    expect(cpu.run(10).reason).toBe("budget");
    expect(cpu.regs[0]).toBe(5);
    mem.write(0x1000, new Uint8Array([0x43])); // inc ebx
    cpu.run(10);
    expect([cpu.regs[0], cpu.regs[3]]).toEqual([5, 5]);
  });
});
