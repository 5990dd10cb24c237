/**
 * The x86run command line (src/bin/x86run.ts is its executable): runs a raw ROM image (mapped below 4 GiB and shadowed at 0xF0000, starting at the
 * reset vector F000:FFF0) or a Multiboot ELF kernel on X86Cpu until HLT or a budget.
 *
 *   x86run rom.bin --port-log 0xE9 --budget 100000000
 *   x86run kernel.elf --json
 */
import { readFileSync } from "node:fs";
import { Command, InvalidArgumentError } from "commander";
import { isElf32, Machine } from "./machine.ts";

function parseNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`not a number: ${v}`);
  return n;
}
function parsePorts(v: string): number[] {
  return v.split(",").map((p) => {
    const n = Number(p.trim());
    if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new InvalidArgumentError(`not a port: ${p}`);
    return n;
  });
}

/** Where the CLI writes: stdout for output, stderr for the human summary. */
export interface CliStreams {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown };
}

/**
 * Runs x86run with `argv` (without the node and script names). Returns the exit code:
 * 0 when the guest halted, 1 otherwise.
 */
export function main(argv: readonly string[], io: CliStreams = { stdout: process.stdout, stderr: process.stderr }): number {
  let code = 1;
  const program = new Command()
  .name("x86run")
  .description("Run a raw ROM image or a Multiboot ELF on @paravirt/cpu-x86 until HLT or a budget")
  .argument("<image>", "raw ROM image (reset vector at its last 16 bytes) or Multiboot ELF32")
  .option("--budget <n>", "maximum instructions to execute", parseNumber, 1e9)
  .option("--mem <MiB>", "RAM size in MiB", parseNumber, 64)
  .option("--port-log <ports>", "log bytes written to these ports, e.g. 0x190,0xE9", parsePorts, [] as number[])
  .option("--json", "print a machine-readable summary on stdout")
  .exitOverride()
  .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
  .action((image: string, opts: { budget: number; mem: number; portLog: number[]; json?: boolean }) => {
    const bytes = new Uint8Array(readFileSync(image));
    const elf = isElf32(bytes);
    const machine = new Machine(elf ? undefined : bytes, {
      ramSize: Math.floor(opts.mem) * 1024 * 1024,
      logPorts: opts.portLog,
      onPortByte: opts.json ? undefined : (_p, b) => io.stdout.write(String.fromCharCode(b)),
    });
    if (elf) machine.loadMultiboot(bytes);
    const r = machine.run(opts.budget);
    const summary = {
      image,
      format: elf ? "multiboot-elf" : "rom",
      exit: r.exit.reason,
      ...(r.exit.reason === "triple-fault" ? { detail: r.exit.detail } : {}),
      ...(r.exit.reason === "intercept" ? { vector: r.exit.vector } : {}),
      instructions: r.instructions,
      seconds: Number(r.seconds.toFixed(4)),
      mips: Number(r.mips.toFixed(2)),
      eip: machine.cpu.eipU,
      portOutput: Buffer.from(r.portOutput).toString("latin1"),
    };
    if (opts.json) {
      io.stdout.write(JSON.stringify(summary) + "\n");
    } else {
      io.stderr.write(`\n${summary.exit}: ${r.instructions} instructions in ${summary.seconds} s, ${summary.mips} MIPS\n`);
    }
    code = r.exit.reason === "halt" ? 0 : 1;
  });
  try {
    program.parse([...argv], { from: "user" });
  } catch (e) {
    if ((e as { exitCode?: number }).exitCode !== undefined) return (e as { exitCode: number }).exitCode === 0 ? 0 : 2;
    throw e;
  }
  return code;
}
