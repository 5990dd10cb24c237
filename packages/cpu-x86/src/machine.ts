/**
 * A bare machine for running test images on X86Cpu: RAM from 0, a ROM image mapped at the top
 * of the 4 GiB space and shadowed below 1 MiB, port logging, and loaders for raw ROM images
 * (reset vector F000:FFF0) and Multiboot ELF kernels. Used by the `x86run` command and tests.
 *
 * References: [MB] Multiboot Specification 0.6.96 §3.2 (machine state), §3.3 (boot information);
 * [ELF] System V ABI, ELF32 header and program headers.
 */
import { GuestMemoryError, IoBus, type GuestMemory, type VcpuExit } from "@paravirt/vm-interfaces";
import { X86Cpu } from "./cpu.ts";
import { SEG } from "./registers.ts";
import { X86CpuError } from "./errors.ts";

/** RAM at [0, ramSize) plus a read-only ROM ending at 4 GiB. */
export class RomRamMemory implements GuestMemory {
  readonly ram: Uint8Array;
  readonly rom: Uint8Array;
  readonly romBase: number;

  constructor(ramSize: number, rom: Uint8Array = new Uint8Array(0)) {
    this.ram = new Uint8Array(ramSize);
    this.rom = rom;
    this.romBase = 2 ** 32 - rom.length;
  }

  private where(address: number, length: number): { buf: Uint8Array; off: number } {
    if (address < 0 || address + length > 2 ** 32) throw new GuestMemoryError("overflow", address, length);
    if (address + length <= this.ram.length) return { buf: this.ram, off: address };
    if (address >= this.romBase) return { buf: this.rom, off: address - this.romBase };
    throw new GuestMemoryError("unmapped", address, length);
  }
  read(address: number, dst: Uint8Array): void {
    const { buf, off } = this.where(address, dst.length);
    dst.set(buf.subarray(off, off + dst.length));
  }
  write(address: number, src: Uint8Array): void {
    const { buf, off } = this.where(address, src.length);
    if (buf === this.rom) throw new GuestMemoryError("readonly", address, src.length);
    buf.set(src, off);
  }
  readU8(address: number): number {
    const { buf, off } = this.where(address, 1);
    return buf[off]!;
  }
  readU16(address: number): number {
    return this.readU8(address) | (this.readU8(address + 1) << 8);
  }
  readU32(address: number): number {
    return (this.readU16(address) | (this.readU16(address + 2) << 16)) >>> 0;
  }
  writeU8(address: number, value: number): void {
    const { buf, off } = this.where(address, 1);
    if (buf === this.rom) throw new GuestMemoryError("readonly", address, 1);
    buf[off] = value;
  }
  writeU16(address: number, value: number): void {
    this.writeU8(address, value);
    this.writeU8(address + 1, value >>> 8);
  }
  writeU32(address: number, value: number): void {
    this.writeU16(address, value);
    this.writeU16(address + 2, value >>> 16);
  }
  view(address: number, length: number, writable: boolean): Uint8Array | undefined {
    if (address >= 0 && address + length <= this.ram.length) return this.ram.subarray(address, address + length);
    if (!writable && address >= this.romBase && address + length <= 2 ** 32) {
      return this.rom.subarray(address - this.romBase, address - this.romBase + length);
    }
    return undefined;
  }
}

/** What a run printed and how it ended. */
export interface RunResult {
  readonly exit: VcpuExit;
  readonly instructions: number;
  readonly seconds: number;
  readonly mips: number;
  /** Bytes written to the logged ports, in order. */
  readonly portOutput: Uint8Array;
}

export interface MachineOptions {
  /** RAM size in bytes (default 64 MiB). */
  readonly ramSize?: number;
  /** Ports whose byte writes are logged (e.g. 0xE9 Bochs/QEMU debug port, 0x190). */
  readonly logPorts?: readonly number[];
  /** Called with each logged byte. */
  readonly onPortByte?: (port: number, byte: number) => void;
  /** X86Cpu `compiler` option (default: on). */
  readonly compiler?: boolean;
  /** X86Cpu `compileThreshold` option. */
  readonly compileThreshold?: number;
}

/** A CPU, memory and a port bus with logging devices. */
export class Machine {
  readonly memory: RomRamMemory;
  readonly io = new IoBus(0x10000);
  readonly cpu: X86Cpu;
  private readonly out: number[] = [];

  constructor(rom: Uint8Array | undefined, options: MachineOptions = {}) {
    this.memory = new RomRamMemory(options.ramSize ?? 64 * 1024 * 1024, rom);
    for (const port of options.logPorts ?? []) {
      this.io.register({ base: port, length: 1 }, {
        read: () => 0xff,
        write: (_o, _s, v) => {
          this.out.push(v & 0xff);
          options.onPortByte?.(port, v & 0xff);
        },
        accessSizes: [1],
      }, `log-port-0x${port.toString(16)}`);
    }
    this.cpu = new X86Cpu({ memory: this.memory, io: this.io, ramSize: this.memory.ram.length, compiler: options.compiler, compileThreshold: options.compileThreshold });
    if (rom !== undefined && rom.length > 0) {
      // Shadow the top of the ROM below 1 MiB, ending at 0xFFFFF (up to 128 KiB, as PC chipsets do).
      const n = Math.min(rom.length, 0x20000);
      this.memory.ram.set(rom.subarray(rom.length - n), 0x100000 - n);
    }
  }

  /** Runs until HLT, a triple fault, or `budget` instructions. */
  run(budget: number): RunResult {
    const t0 = process.hrtime.bigint();
    let executed = 0;
    let exit: VcpuExit;
    for (;;) {
      exit = this.cpu.run(Math.min(budget - executed, 1 << 24));
      executed += exit.executed;
      if (exit.reason !== "budget" || executed >= budget) break;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { exit: { ...exit, executed } as VcpuExit, instructions: executed, seconds, mips: executed / seconds / 1e6, portOutput: Uint8Array.from(this.out) };
  }

  /**
   * Loads a Multiboot ELF32 kernel: PT_LOAD segments at their physical addresses, a boot
   * information block, and the machine state of [MB §3.2] (flat 32-bit protected mode,
   * EAX=0x2BADB002, EBX=info address, paging and interrupts off).
   */
  loadMultiboot(elf: Uint8Array): void {
    const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
    if (!isElf32(elf)) throw new X86CpuError("bad-image", "not an ELF32 little-endian image");
    const entry = dv.getUint32(24, true);
    const phoff = dv.getUint32(28, true);
    const phentsize = dv.getUint16(42, true);
    const phnum = dv.getUint16(44, true);
    for (let i = 0; i < phnum; i++) {
      const p = phoff + i * phentsize;
      if (dv.getUint32(p, true) !== 1) continue; // PT_LOAD
      const off = dv.getUint32(p + 4, true);
      const paddr = dv.getUint32(p + 12, true);
      const filesz = dv.getUint32(p + 16, true);
      const memsz = dv.getUint32(p + 20, true);
      if (paddr + memsz > this.memory.ram.length) throw new X86CpuError("bad-image", `segment at 0x${paddr.toString(16)} does not fit in RAM`);
      this.memory.ram.set(elf.subarray(off, off + filesz), paddr);
      this.memory.ram.fill(0, paddr + filesz, paddr + memsz);
    }
    // Boot information [MB §3.3]: flags bit 0 (mem_lower/mem_upper valid), at 0x9000.
    const info = 0x9000;
    const ram = new DataView(this.memory.ram.buffer);
    ram.setUint32(info, 1, true);
    ram.setUint32(info + 4, 640, true);
    ram.setUint32(info + 8, this.memory.ram.length / 1024 - 1024, true);
    this.enterFlat32(entry);
    this.cpu.regs[0] = 0x2badb002;
    this.cpu.regs[3] = info;
  }

  /** Flat 32-bit protected mode (CS 0x08, data 0x10, base 0, 4 GiB), paging and interrupts off. */
  enterFlat32(entry: number): void {
    const cpu = this.cpu;
    cpu.halted = false;
    cpu.setCr0(cpu.cr0 | 1);
    const code = { selector: 0x08, base: 0, limit: 0xffffffff, attributes: 0xc09b };
    const data = { selector: 0x10, base: 0, limit: 0xffffffff, attributes: 0xc093 };
    cpu.setSegment(SEG.CS, code);
    for (const s of [SEG.DS, SEG.ES, SEG.SS, SEG.FS, SEG.GS]) cpu.setSegment(s, data);
    cpu.eip = entry | 0;
    cpu.writeFlags(0x2, -1);
  }
}

/** True for an ELF32 little-endian x86 image. */
export function isElf32(b: Uint8Array): boolean {
  return b.length > 52 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46 && b[4] === 1 && b[5] === 1;
}
