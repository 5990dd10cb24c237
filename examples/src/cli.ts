#!/usr/bin/env node
/** The `paravirt` command. */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { DemoError, parseSize, runDemo } from "./demo.ts";
import { runPvGrubCommand } from "./pvgrub/command.ts";

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

program
  .command("pvgrub")
  .description("boot Debian's unmodified 32-bit PV GRUB as a domU on cpu-x86 (its disk through dom0's blkback) and print its console")
  .option("--grub <file>", "grub-i386-xen.bin (default: from Debian's grub-xen-host, fetched with apt-get download)")
  .option("--cfg <file>", "grub.cfg for the boot disk (default: echo a marker and halt)")
  .option("--interactive", "no grub.cfg: GRUB's prompt on this terminal (Ctrl-] leaves)")
  .option("--memory <MiB>", "domU memory", (v) => {
    if (!/^\d+$/.test(v) || Number(v) < 8 || Number(v) > 1024) throw new InvalidArgumentError("must be a whole number of MiB between 8 and 1024");
    return Number(v);
  }, 64)
  .option("--verbose", "narrate the machine (hypercalls, xenstore, blkback) on stderr")
  .action(async (opts: { grub?: string; cfg?: string; interactive?: boolean; memory: number; verbose?: boolean }) => {
    const code = await runPvGrubCommand({
      ...(opts.grub !== undefined ? { grub: opts.grub } : {}),
      ...(opts.cfg !== undefined ? { cfg: opts.cfg } : {}),
      interactive: opts.interactive === true,
      memoryMiB: opts.memory,
      verbose: opts.verbose === true,
      write: (t) => process.stdout.write(t),
      error: (t) => process.stderr.write(`${t}\n`),
    });
    process.exitCode = code;
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
