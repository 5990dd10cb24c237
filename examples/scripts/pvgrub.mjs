#!/usr/bin/env node
// PV GRUB at your terminal: Debian's grub-i386-xen.bin as a domU on hypervisor-core + cpu-x86, its
// disk (an MBR + ext2 image made with mke2fs) served by dom0's blkback, its console here.
//
//   pnpm --filter @paravirt/examples build
//   node examples/scripts/pvgrub.mjs [--grub grub-i386-xen.bin] [--cfg grub.cfg] [--memory 64] [--verbose]
//
// Without --grub the binary comes from `apt-get download grub-xen-host` (cached in .cache/). Without
// --cfg the disk has no /boot/grub/grub.cfg and GRUB stops at its `grub>` prompt; try `ls`,
// `cat (xen/xvda,msdos1)/boot/grub/grub.cfg`, `date`, `lsmod`, then `halt`. Ctrl-] leaves.
// GRUB indexes the console's input ring without masking it (pv-grub.md §5): past 1024 typed bytes
// its input breaks.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RamDisk } from "@paravirt/disk-image";
import { debianPackage } from "@paravirt/test-support";
import { buildBootDisk } from "../dist/pvgrub/bootDisk.js";
import { createPvGrubSystem, runPvGrub } from "../dist/pvgrub/pvGrubSystem.js";

const { values } = parseArgs({
  options: {
    grub: { type: "string" },
    cfg: { type: "string" },
    memory: { type: "string", default: "64" },
    verbose: { type: "boolean", default: false },
  },
});
let grub = values.grub;
if (grub === undefined) {
  const pkg = debianPackage("grub-xen-host");
  if (pkg === undefined) {
    console.error("pvgrub: apt-get download grub-xen-host failed; pass --grub FILE");
    process.exit(1);
  }
  grub = join(pkg, "usr/lib/grub-xen/grub-i386-xen.bin");
}
const image = new Uint8Array(readFileSync(grub));
const disk = RamDisk.from(buildBootDisk({ grubCfg: values.cfg === undefined ? null : readFileSync(values.cfg, "utf8") }));
const memoryPages = Math.round(Number(values.memory) * 256);
const sys = await createPvGrubSystem({
  image,
  disk,
  memoryPages,
  narrate: values.verbose ? (t, who, line) => process.stderr.write(`[${(t / 1e6).toFixed(3)} ms] ${who}: ${line}\n`) : undefined,
});
const hv = sys.machine.hv;
const domid = sys.domain.domid;

let quit = false;
let typed = 0;
if (process.stdin.isTTY) process.stdin.setRawMode(true);
process.stdin.on("data", (chunk) => {
  const text = chunk.toString("latin1");
  if (text.includes("\x1d")) {
    quit = true;
    return;
  }
  typed += text.length;
  if (typed > 1000) process.stderr.write("\r\n[pvgrub: GRUB's console input ring is nearly used up (1024 bytes)]\r\n");
  hv.consoleInput(domid, text);
});
process.stdin.on("end", () => {});

let shown = 0;
let instructions = 0;
const t0 = performance.now();
for (;;) {
  const r = await runPvGrub(sys, { wallLimitMs: 25 });
  instructions += r.instructions;
  const raw = sys.console.raw;
  if (raw.length > shown) {
    process.stdout.write(raw.slice(shown));
    shown = raw.length;
  }
  if (r.stop === "shutdown" || r.stop === "crash" || quit) {
    const why = quit ? "detached" : r.stop === "crash" ? `crashed: ${r.detail ?? ""}` : `shut down (reason ${r.shutdownReason})`;
    const s = (performance.now() - t0) / 1000;
    process.stderr.write(`\r\n[pvgrub: domain ${why}; ${instructions.toLocaleString("en")} instructions in ${s.toFixed(1)} s, ${(instructions / s / 1e6).toFixed(1)} MIPS]\r\n`);
    break;
  }
}
if (process.stdin.isTTY) process.stdin.setRawMode(false);
process.exit(0);
