#!/usr/bin/env node
/** The `paravirt` command. */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { DemoError, parseSize, runDemo } from "./demo.ts";

const program = new Command();
program
  .name("paravirt")
  .description("The Xen 2.0 I/O architecture on emulated x86 hardware")
  .showHelpAfterError("(run paravirt --help for usage)")
  .exitOverride();

program
  .command("demo")
  .description("boot dom0 (ATA driver, blkback, xenstored) and a domU (blkfront), run a disk workload in the domU, and explain what happened")
  .option("--disk <file>", "raw disk image to use (created at --size when missing); default: a fresh one in a temporary folder")
  .option("--size <MiB>", "size of a new image", (v) => {
    try {
      return parseSize(v);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message.replace(/^--size /, ""));
    }
  }, 64)
  .option("--json", "print one JSON object (writes, throughput, counters) instead of the narrative")
  .action(async (opts: { disk?: string; size: number; json?: boolean }) => {
    await runDemo({ ...(opts.disk !== undefined ? { disk: opts.disk } : {}), sizeMiB: opts.size, json: opts.json === true });
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 1);
  if (e instanceof DemoError) {
    process.stderr.write(`paravirt: ${e.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`paravirt: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
