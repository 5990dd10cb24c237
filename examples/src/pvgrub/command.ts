/**
 * `paravirt pvgrub`: Debian's unmodified PV GRUB as a domU, its console (the io/console.h ring,
 * drained by dom0) printed here. Non-interactive by default: the boot disk's grub.cfg echoes a
 * marker and halts; `--interactive` leaves GRUB at its prompt with the terminal as its console.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { RamDisk } from "@paravirt/disk-image";
import { debianPackage } from "@paravirt/test-support";
import { MARKER_GRUB_CFG, buildBootDisk } from "./bootDisk.ts";
import { createPvGrubSystem, runPvGrub } from "./pvGrubSystem.ts";

export interface PvGrubCommandOptions {
  /** grub-i386-xen.bin; default: from Debian's grub-xen-host (apt-get download, cached). */
  grub?: string;
  /** grub.cfg to put on the disk; default: echo a marker and halt. */
  cfg?: string;
  /** No grub.cfg: GRUB stops at its prompt and the terminal is its console. */
  interactive: boolean;
  memoryMiB: number;
  verbose: boolean;
  write: (text: string) => void;
  error: (text: string) => void;
}

/** Returns the process exit code. */
export async function runPvGrubCommand(o: PvGrubCommandOptions): Promise<number> {
  let grub = o.grub;
  if (grub === undefined) {
    const pkg = debianPackage("grub-xen-host");
    if (pkg === undefined) {
      o.error("paravirt: apt-get download grub-xen-host failed (no apt or no network); pass --grub FILE");
      return 1;
    }
    grub = join(pkg, "usr/lib/grub-xen/grub-i386-xen.bin");
  }
  let image: Uint8Array;
  let cfg: string | null;
  try {
    image = new Uint8Array(readFileSync(grub));
    cfg = o.interactive ? null : o.cfg === undefined ? MARKER_GRUB_CFG : readFileSync(o.cfg, "utf8");
  } catch (e) {
    o.error(`paravirt: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  const disk = RamDisk.from(buildBootDisk({ grubCfg: cfg }));
  const sys = await createPvGrubSystem({
    image,
    disk,
    memoryPages: Math.round(o.memoryMiB * 256),
    ...(o.verbose ? { narrate: (t: number, who: string, line: string) => o.error(`[${(t / 1e6).toFixed(3)} ms] ${who}: ${line}`) } : {}),
  });
  const hv = sys.machine.hv;
  const domid = sys.domain.domid;
  let quit = false;
  const stdin = process.stdin;
  if (o.interactive) {
    if (stdin.isTTY) stdin.setRawMode(true);
    stdin.on("data", (chunk: Buffer) => {
      const text = chunk.toString("latin1");
      if (text.includes("\x1d")) quit = true; // Ctrl-]
      else hv.consoleInput(domid, text);
    });
    o.error("[paravirt pvgrub: GRUB's console is this terminal; Ctrl-] leaves]");
  }
  let shown = 0;
  let instructions = 0;
  const t0 = performance.now();
  let code = 0;
  for (;;) {
    const r = await runPvGrub(sys, { wallLimitMs: 25 });
    instructions += r.instructions;
    const raw = sys.console.raw;
    if (raw.length > shown) {
      o.write(raw.slice(shown));
      shown = raw.length;
    }
    const s = (performance.now() - t0) / 1000;
    if (r.stop === "shutdown" || r.stop === "crash" || quit || (!o.interactive && s > 120)) {
      const why = quit ? "detached" : r.stop === "crash" ? `crashed: ${r.detail ?? ""}` : r.stop === "shutdown" ? `shut down (reason ${r.shutdownReason})` : "did not finish within 120 s";
      if (r.stop === "crash" || (r.stop !== "shutdown" && !quit)) code = 1;
      o.error(`\n[paravirt pvgrub: domain ${domid} ${why}; ${instructions.toLocaleString("en")} instructions in ${s.toFixed(1)} s, ${(instructions / s / 1e6).toFixed(1)} MIPS]`);
      break;
    }
  }
  if (o.interactive) {
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
  }
  return code;
}
