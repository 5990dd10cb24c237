/**
 * @paravirt/cpu-x86: an i386/i686 CPU emulator for paravirt.
 * @packageDocumentation
 */
export { X86Cpu, type X86CpuOptions, type X86CpuState, type SegmentState, type PortBus } from "./cpu.ts";
export { OPCODE_TABLE, type OpcodeEntry } from "./opcodeTable.ts";
export { REG, SEG, FLAG, CR0, CR4, EXC, PTE, PFEC, MSR, EFER, SYS_DESC, ARITH_FLAGS } from "./registers.ts";
export { descBase, descLimit } from "./descriptor.ts";
export { Machine, RomRamMemory, isElf32, type MachineOptions, type RunResult } from "./machine.ts";
export { main as x86run, type CliStreams } from "./cli.ts";
export { X86CpuError, type X86CpuErrorKind } from "./errors.ts";
