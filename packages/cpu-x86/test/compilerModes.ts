/**
 * Test helper: run a describe block's CPUs interpreted only, or compiled on first execution
 * (every block the compiler accepts is compiled the first time it is reached).
 */
import { afterAll, beforeAll } from "vitest";
import { X86Cpu } from "../src/index.ts";

export interface CompilerMode {
  readonly name: string;
  readonly enabled: boolean;
  readonly threshold: number;
}

export const INTERPRETER: CompilerMode = { name: "interpreter", enabled: false, threshold: 0 };
export const EAGER: CompilerMode = { name: "compiled on first execution", enabled: true, threshold: 0 };
export const COMPILER_MODES: readonly CompilerMode[] = [INTERPRETER, EAGER];

/** Sets X86Cpu.compilerDefaults for the tests of the enclosing describe block. */
export function useCompilerMode(mode: CompilerMode): void {
  let saved = { ...X86Cpu.compilerDefaults };
  beforeAll(() => {
    saved = { ...X86Cpu.compilerDefaults };
    X86Cpu.compilerDefaults.enabled = mode.enabled;
    X86Cpu.compilerDefaults.threshold = mode.threshold;
  });
  afterAll(() => {
    X86Cpu.compilerDefaults.enabled = saved.enabled;
    X86Cpu.compilerDefaults.threshold = saved.threshold;
  });
}
