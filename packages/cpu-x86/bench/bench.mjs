#!/usr/bin/env node
/**
 * Benchmark: one bare-metal Multiboot kernel (bench.asm, built here with nasm + ld) on
 * @paravirt/cpu-x86 and on the v86 npm package with its JIT off and on, in the same run.
 * Prints a table on stderr and a JSON summary on stdout.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Machine } from "../dist/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(join(tmpdir(), "cpu-x86-bench-"));

function build() {
  const obj = join(work, "bench.o");
  const elf = join(work, "bench.elf");
  for (const [cmd, args] of [
    ["nasm", ["-f", "elf32", "-o", obj, join(here, "bench.asm")]],
    ["ld", ["-m", "elf_i386", "-T", join(here, "link.ld"), "-o", elf, obj]],
  ]) {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  }
  return new Uint8Array(readFileSync(elf));
}

/** CPU seconds used by this process since `c0`: fairer than wall time on a shared machine. */
function cpuSince(c0) {
  const u = process.cpuUsage(c0);
  return (u.user + u.system) / 1e6;
}

function runOurs(image) {
  let out = "";
  const m = new Machine(undefined, { ramSize: 64 * 1024 * 1024, logPorts: [0x3f8], onPortByte: (_p, b) => (out += String.fromCharCode(b)) });
  m.loadMultiboot(image);
  const c0 = process.cpuUsage();
  const r = m.run(2e9);
  const cpuSeconds = cpuSince(c0);
  return { name: "cpu-x86", instructions: r.instructions, seconds: r.seconds, cpuSeconds, mips: r.instructions / cpuSeconds / 1e6, wallMips: r.mips, output: out.trim(), exit: r.exit.reason };
}

async function runV86(image, jit) {
  const { V86 } = await import("v86");
  const require = createRequire(import.meta.url);
  const wasm = join(dirname(require.resolve("v86")), "v86.wasm");
  return await new Promise((resolve, reject) => {
    let out = "";
    let t0 = 0n;
    let c0;
    const emulator = new V86({
      wasm_path: wasm,
      memory_size: 64 * 1024 * 1024,
      vga_memory_size: 2 * 1024 * 1024,
      multiboot: { buffer: image.buffer.slice(image.byteOffset, image.byteOffset + image.byteLength) },
      autostart: false,
      disable_jit: !jit,
      disable_speaker: true,
    });
    const timer = setTimeout(() => reject(new Error("v86 did not finish in 300 s")), 300_000);
    emulator.add_listener("emulator-ready", () => {
      t0 = process.hrtime.bigint();
      c0 = process.cpuUsage();
      emulator.run();
    });
    emulator.add_listener("serial0-output-byte", (b) => {
      out += String.fromCharCode(b);
      if (b === 10) {
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const cpuSeconds = cpuSince(c0);
        const instructions = emulator.get_instruction_counter();
        clearTimeout(timer);
        emulator.destroy();
        resolve({ name: jit ? "v86 (JIT on)" : "v86 (JIT off)", instructions, seconds, cpuSeconds, mips: instructions / cpuSeconds / 1e6, wallMips: instructions / seconds / 1e6, output: out.trim(), exit: "done" });
      }
    });
  });
}

const image = build();
const results = [runOurs(image), await runV86(image, false), await runV86(image, true)];
const ours = results[0];
for (const r of results) {
  r.ratioVsOurs = Number((ours.mips / r.mips).toFixed(3));
  r.mips = Number(r.mips.toFixed(2));
  r.wallMips = Number(r.wallMips.toFixed(2));
  r.seconds = Number(r.seconds.toFixed(3));
  r.cpuSeconds = Number(r.cpuSeconds.toFixed(3));
}
for (const r of results) {
  process.stderr.write(`${r.name.padEnd(14)} ${String(r.mips).padStart(8)} MIPS (CPU time; wall ${r.wallMips})  ${String(r.cpuSeconds).padStart(7)} s  ${r.instructions} instr  checksum ${r.output}  cpu-x86/this = ${r.ratioVsOurs}\n`);
}
const agree = results.every((r) => r.output === ours.output);
process.stderr.write(agree ? "checksums agree\n" : "CHECKSUMS DIFFER\n");
process.stdout.write(JSON.stringify({ benchmark: "bench.asm", results, checksumsAgree: agree }, null, 2) + "\n");
if (!agree) process.exitCode = 1;
