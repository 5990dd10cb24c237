/**
 * Vitest setup: CPU_X86_COMPILER=off runs every CPU a test creates on the interpreter alone,
 * CPU_X86_COMPILER=eager compiles blocks on first execution (the default compiles hot code).
 */
import { X86Cpu } from "../src/index.ts";

const mode = process.env["CPU_X86_COMPILER"];
if (mode === "off") X86Cpu.compilerDefaults.enabled = false;
else if (mode === "eager") X86Cpu.compilerDefaults.threshold = 0;
else if (mode !== undefined && mode !== "" && mode !== "on") throw new Error(`CPU_X86_COMPILER=${mode}: expected off, on or eager`);
