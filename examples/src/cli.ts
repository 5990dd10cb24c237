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
  .description("boot dom0 (ATA and e1000 drivers, blkback, netback, bridge, xenstored) and two domUs, run disk and network workloads in them, and explain what happened")
  .option("--disk <file>", "raw disk image to use (created at --size when missing); default: a fresh one in a temporary folder")
  .option("--size <MiB>", "size of a new image", (v) => {
    try {
      return parseSize(v);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message.replace(/^--size /, ""));
    }
  }, 64)
  .option("--pcap <file>", "capture the e1000's wire to a pcap file (tshark -r reads it)")
  .option("--json", "print one JSON object (writes, throughput, ping/UDP results, counters) instead of the narrative")
  .action(async (opts: { disk?: string; size: number; json?: boolean; pcap?: string }) => {
    await runDemo({
      ...(opts.disk !== undefined ? { disk: opts.disk } : {}),
      ...(opts.pcap !== undefined ? { pcap: opts.pcap } : {}),
      sizeMiB: opts.size,
      json: opts.json === true,
    });
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
