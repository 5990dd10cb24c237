/**
 * x86run end to end through its `main`: a Multiboot ELF (nasm + ld at test time) and a raw ROM,
 * with port logging and the JSON summary.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandWorks, externalTool } from "@paravirt/test-support";
import { describe, expect, it } from "vitest";
import { x86run } from "../src/index.ts";

const nasm = externalTool("nasm", () => commandWorks("nasm", ["-v"]), "apt-get install nasm");
const ld = externalTool("ld (binutils)", () => commandWorks("ld", ["--version"]), "apt-get install binutils");

function capture(argv: string[]): { code: number; out: string; err: string } {
  let out = "";
  let err = "";
  const code = x86run(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

describe.skipIf(nasm.skip || ld.skip)("x86run", () => {
  it("boots a Multiboot ELF and logs the requested ports", () => {
    nasm.check();
    ld.check();
    const dir = mkdtempSync(join(tmpdir(), "cpu-x86-mb-"));
    const script = join(dir, "link.ld");
    writeFileSync(script, "ENTRY(_start)\nSECTIONS { . = 0x100000; .text : { *(.multiboot) *(.text) } .rodata : { *(.rodata) } }\n");
    const obj = join(dir, "mb.o");
    const elf = join(dir, "mb.elf");
    expect(spawnSync("nasm", ["-f", "elf32", "-o", obj, new URL("./asm/multiboot.asm", import.meta.url).pathname]).status).toBe(0);
    expect(spawnSync("ld", ["-m", "elf_i386", "-T", script, "-o", elf, obj]).status).toBe(0);
    const r = capture([elf, "--port-log", "0xE9,0x190", "--mem", "32", "--json"]);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out);
    expect(summary.format).toBe("multiboot-elf");
    expect(summary.exit).toBe("halt");
    expect(summary.portOutput).toBe(`MB OK ${(31 * 1024).toString(16).toUpperCase().padStart(8, "0")}!`);
    expect(summary.instructions).toBeGreaterThan(20);
  });

  it("runs a raw ROM from the reset vector and reports a budget stop", () => {
    const dir = mkdtempSync(join(tmpdir(), "cpu-x86-rom-"));
    const rom = new Uint8Array(0x10000).fill(0xf4);
    // At F000:FFF0: mov al,'R'; out 0xE9,al; jmp $ (never halts).
    rom.set([0xb0, 0x52, 0xe6, 0xe9, 0xeb, 0xfe], 0xfff0);
    writeFileSync(join(dir, "rom.bin"), rom);
    const r = capture([join(dir, "rom.bin"), "--port-log", "0xe9", "--budget", "1000"]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("R");
    expect(r.err).toMatch(/^\nbudget: 1000 instructions in [0-9.]+ s, [0-9.]+ MIPS\n$/);
  });

  it("rejects a bad port list", () => {
    const r = capture(["x.bin", "--port-log", "0x1ffff"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/not a port/);
  });
});
