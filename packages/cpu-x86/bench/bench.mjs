#!/usr/bin/env node
/**
 * Benchmark: one bare-metal Multiboot kernel (bench.asm, built here with nasm + ld) on
 * @paravirt/cpu-x86 with its block compiler and interpreted only, and on the v86 npm package with
 * its JIT off and on, interleaved in rounds in the same process (`--runs N`, default 5).
 * Prints a table on stderr and a JSON summary on stdout: per-emulator median MIPS per CPU
 * second, and the median over rounds of cpu-x86 (compiled) / that emulator.
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

function runOurs(image, compiler) {
  let out = "";
  const m = new Machine(undefined, { ramSize: 64 * 1024 * 1024, logPorts: [0x3f8], onPortByte: (_p, b) => (out += String.fromCharCode(b)), compiler });
  m.loadMultiboot(image);
  const c0 = process.cpuUsage();
  const r = m.run(2e9);
  const cpuSeconds = cpuSince(c0);
  return { name: compiler ? "cpu-x86" : "cpu-x86 (interpreter)", instructions: r.instructions, seconds: r.seconds, cpuSeconds, mips: r.instructions / cpuSeconds / 1e6, wallMips: r.mips, output: out.trim(), exit: r.exit.reason };
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

const runsArg = process.argv.indexOf("--runs");
const runs = runsArg >= 0 ? Math.max(1, Number(process.argv[runsArg + 1]) || 1) : 5;
const image = build();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** Rounds of the four runs, interleaved so that load from other jobs hits all of them alike. */
const rounds = [];
for (let i = 0; i < runs; i++) {
  const round = [runOurs(image, true), runOurs(image, false), await runV86(image, false), await runV86(image, true)];
  rounds.push(round);
  process.stderr.write(`round ${i + 1}/${runs}: ${round.map((r) => `${r.name} ${r.mips.toFixed(1)}`).join(", ")} MIPS\n`);
}
const ours = rounds[0][0];
const results = rounds[0].map((first, k) => {
  const all = rounds.map((round) => round[k]);
  return {
    name: first.name,
    instructions: first.instructions,
    output: first.output,
    mips: Number(median(all.map((r) => r.mips)).toFixed(2)),
    mipsRange: [Number(Math.min(...all.map((r) => r.mips)).toFixed(2)), Number(Math.max(...all.map((r) => r.mips)).toFixed(2))],
    wallMips: Number(median(all.map((r) => r.wallMips)).toFixed(2)),
    cpuSeconds: Number(median(all.map((r) => r.cpuSeconds)).toFixed(3)),
    /** Median over rounds of cpu-x86 (compiled) MIPS / this emulator's MIPS in the same round. */
    ratioVsOurs: Number(median(rounds.map((round) => round[0].mips / round[k].mips)).toFixed(3)),
  };
});
for (const r of results) {
  process.stderr.write(`${r.name.padEnd(22)} ${String(r.mips).padStart(8)} MIPS median (CPU time; ${r.mipsRange.join("-")}; wall ${r.wallMips})  ${String(r.cpuSeconds).padStart(7)} s  ${r.instructions} instr  checksum ${r.output}  cpu-x86/this = ${r.ratioVsOurs}\n`);
}
const agree = rounds.every((round) => round.every((r) => r.output === ours.output));
process.stderr.write(agree ? "checksums agree\n" : "CHECKSUMS DIFFER\n");
process.stdout.write(JSON.stringify({ benchmark: "bench.asm", runs, results, checksumsAgree: agree }, null, 2) + "\n");
if (!agree) process.exitCode = 1;
