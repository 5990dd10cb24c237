/**
 * Protected mode, paging, rings and gates: test/asm/pmode.asm and test/asm/system.asm are
 * assembled by nasm at test time, run on cpu-x86 through Machine (what x86run does), and their
 * debug-port transcripts are compared with the same ROMs run on QEMU (qemu-system-i386 -bios,
 * isa-debugcon, isa-debug-exit).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { commandWorks, externalTool } from "@paravirt/test-support";
import { describe, expect, it } from "vitest";
import { Machine } from "../src/index.ts";
import { COMPILER_MODES, useCompilerMode } from "./compilerModes.ts";

const nasm = externalTool("nasm", () => commandWorks("nasm", ["-v"]), "apt-get install nasm");
const qemu = externalTool("qemu-system-i386", () => commandWorks("qemu-system-i386", ["--version"]), "apt-get install qemu-system-x86");

function assemble(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), "cpu-x86-asm-"));
  const out = join(dir, `${name}.bin`);
  const asm = new URL("./asm/", import.meta.url).pathname; // -i: where common.inc is
  const r = spawnSync("nasm", ["-f", "bin", "-i", asm, "-o", out, `${asm}${name}.asm`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`nasm failed: ${r.stderr}`);
  return out;
}

function runOurs(rom: string): { text: string; reason: string } {
  const m = new Machine(new Uint8Array(readFileSync(rom)), { logPorts: [0xe9] });
  const r = m.run(10_000_000);
  return { text: Buffer.from(r.portOutput).toString("latin1"), reason: r.exit.reason };
}

function runQemu(rom: string): string {
  const log = join(mkdtempSync(join(tmpdir(), "cpu-x86-qemu-")), "debugcon.txt");
  spawnSync("qemu-system-i386", ["-nodefaults", "-display", "none", "-bios", rom, "-debugcon", `file:${log}`, "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-cpu", "pentium3", "-m", "64"], { timeout: 60_000 });
  return readFileSync(log, "latin1");
}

describe.skipIf(nasm.skip).each(COMPILER_MODES)("pmode.asm: protected mode, paging, rings ($name)", (mode) => {
  useCompilerMode(mode);
  const rom = nasm.available ? assemble("pmode") : "";

  it("runs to HLT with the results the SDM specifies", () => {
    nasm.check();
    const { text, reason } = runOurs(rom);
    expect(reason).toBe("halt");
    const lines = text.split("\n");
    expect(lines).toContain("id flag 00200000");
    expect(lines).toContain("pte after rd 00303027"); // A set by a read
    expect(lines).toContain("pte after wr 00303067"); // D set by a write
    expect(lines.some((l) => /^EXC 0000000E err=00000003 .* cr2=00301008$/.test(l))).toBe(true); // CR0.WP
    expect(lines).toContain("INT80 from cs=0000001B ss=00000023 handler cs=00000008");
    expect(lines).toContain("GATE cs=00000008 param=0000ABCD retcs=0000001B");
    expect(lines.some((l) => /^EXC 0000000E err=00000005 .* cpl=00000003 cr2=00300000$/.test(l))).toBe(true);
    expect(lines).toContain("pae read FEEDF00D");
    expect(lines.at(-2)).toBe("DONE");
  });

  it.skipIf(qemu.skip)("prints the same transcript as QEMU", () => {
    qemu.check();
    const ours = runOurs(rom).text.split("\n");
    const theirs = runQemu(rom).split("\n");
    // QEMU's TCG does not check data-segment limits, so the one access past a 0xFFF limit
    // (mov eax,[es:0xFFE]) faults only here, as the SDM requires (#GP(0), Vol.2 MOV).
    const limitFault = ours.findIndex((l, i) => l.startsWith("EXC 0000000D err=00000000") && theirs[i] !== l);
    expect(limitFault).toBeGreaterThan(0);
    const oursWithoutLimit = ours.filter((_, i) => i !== limitFault);
    expect(oursWithoutLimit).toEqual(theirs);
  });
});

describe.skipIf(nasm.skip).each(COMPILER_MODES)("system.asm: descriptors, LDT, task switches, virtual-8086 mode, LAR/LSL/VERR/VERW, conforming code, RETF/IRET to ring 3 ($name)", (mode) => {
  useCompilerMode(mode);
  const rom = nasm.available ? assemble("system") : "";

  it("runs to HLT", () => {
    nasm.check();
    const { text, reason } = runOurs(rom);
    expect(reason).toBe("halt");
    const lines = text.split("\n");
    expect(lines).toContain("rm int  00002345"); // a real-mode INT through the IVT
    expect(lines).toContain("lar 28 00008B00"); // busy TSS after LTR
    expect(lines).toContain("CONF cs=00000033"); // conforming code keeps CPL 3
    expect(lines).toContain("TASK2 nt 00004000"); // CALL to a TSS nests the task
    expect(lines).toContain("link 00000028");
    expect(lines).toContain("tss2 after iret 00008900"); // IRET freed the busy bit
    expect(lines).toContain("cr0.ts 00000008");
    expect(lines).toContain("DF link 00000028"); // #DF delivered through an IDT task gate
    expect(lines).toContain("v86 eflags 00023202"); // INT from virtual-8086 mode: VM in the pushed EFLAGS
    expect(lines).toContain("v86 gs 00002100"); // v86 data segments saved on the ring-0 stack
    expect(lines).toContain("v86 int ds 00000000"); // and nulled
    expect(lines).toContain("EXC 0000000D err=0000001A cpl=00000003"); // INT3 through a DPL-0 gate
    expect(lines.at(-2)).toBe("DONE");
  });

  it.skipIf(qemu.skip)("prints the same transcript as QEMU", () => {
    qemu.check();
    expect(runOurs(rom).text).toBe(runQemu(rom));
  });
});
