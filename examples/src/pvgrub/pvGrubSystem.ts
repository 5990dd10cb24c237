/**
 * Debian's unmodified 32-bit PV GRUB (`grub-i386-xen.bin`, package grub-xen-host) as a domU:
 *
 *   domU "pvgrub": PV GRUB on cpu-x86 (ring 1, PAE) ──int 0x82──▶ hypervisor-core hypercalls
 *        │ its blkfront (xendisk.c): x86_32-abi ring, grants, event channel
 *        ▼
 *   dom0: blkback ─▶ vanilla ATA driver ─▶ hw-ide (PIIX) ─▶ the disk image
 *   dom0: xenstored (the domain introduced: store page ref 1 mapped, store port bound)
 *
 * The domain is built by hypervisor-core's PV builder (pv-grub.md §2), the toolstack writes the
 * vbd's xenstore directories (pv-grub.md §4/§7), dom0's blkback reaches InitWait before GRUB's
 * first instruction, and the run stops on SCHEDOP_shutdown, on a console marker, or on a limit.
 */
import type { Blkback } from "@paravirt/blkback";
import { HYPERVISOR, SCHEDOP, buildPvDomain, type Domain, type PvBootState } from "@paravirt/hypervisor-core";
import type { BlockDevice } from "@paravirt/vm-interfaces";
import { addXenbusDevice, evtchnPort } from "@paravirt/xenstore";
import { runMachine } from "../xen2/machineLoop.ts";
import { XVDA, createMachine, plugIde, probeHardware, startAtaDriver, vbdService, type Machine, type Narrate } from "../xen2/system.ts";
import { ConsoleText } from "./console.ts";
import { createX86PvVcpu, type HypercallTrap, type X86PvVcpu } from "./x86PvVcpu.ts";

export interface PvGrubOptions {
  /** The PV GRUB ELF (`usr/lib/grub-xen/grub-i386-xen.bin`). */
  image: Uint8Array;
  /** The disk GRUB finds as xvda (served through dom0's ATA driver and blkback). */
  disk: BlockDevice & { name?: string };
  /** RAM of the domU in pages (default 16384 = 64 MiB). */
  memoryPages?: number;
  /** Stop once the (ANSI-stripped) console shows this text (printed during this run). */
  marker?: string;
  /** Wall-clock limit of the run in ms (default 120 000). */
  wallLimitMs?: number;
  /** Virtual-time limit in ns (default 60 s). */
  virtualLimitNs?: number;
  /** Instruction limit of the guest (default 2e9). */
  instructionLimit?: number;
  narrate?: Narrate;
  /** Called with each hypercall of the guest (number, arguments), before it is handled. */
  onHypercall?: (trap: HypercallTrap) => void;
}

/** Why {@link runPvGrub} stopped. */
export type PvGrubStop = "shutdown" | "marker" | "crash" | "wall-limit" | "virtual-limit" | "instruction-limit";

export interface PvGrubRun {
  stop: PvGrubStop;
  /** SCHEDOP_shutdown reason (0 poweroff, 1 reboot, 3 crash) when the domain shut down. */
  shutdownReason: number | undefined;
  /** The guest's console, ANSI sequences stripped. */
  console: string;
  /** The console as the guest wrote it. */
  rawConsole: string;
  instructions: number;
  wallMs: number;
  /** Guest instructions per wall-clock microsecond (whole machine, dom0 included). */
  mips: number;
  virtualNs: number;
  hypercalls: Map<number, number>;
  blkback: Blkback | undefined;
  /** Protocol the ring was connected with (blkback's negotiated `protocol`), e.g. "x86_32-abi". */
  ringProtocol: string | undefined;
  /** Hypervisor log lines about the domU (crashes, refusals). */
  log: string[];
  detail: string | undefined;
}

export interface PvGrubSystem {
  machine: Machine;
  domain: Domain;
  vcpu: X86PvVcpu;
  boot: PvBootState;
  console: ConsoleText;
  /** The vbd's blkback once dom0 has bound it. */
  blkback: () => Blkback | undefined;
  ringProtocol: () => string | undefined;
}

/** Builds the machine, dom0 with the disk, and the PV GRUB domain (paused until its vbd waits in InitWait). */
export async function createPvGrubSystem(o: PvGrubOptions): Promise<PvGrubSystem> {
  const pages = o.memoryPages ?? 16384;
  const m = createMachine({
    memoryMiB: 64 + Math.ceil((pages * 4096) / (1 << 20)) + 32,
    ...(o.narrate !== undefined ? { narrate: o.narrate } : {}),
    assignments: [{ device: { vendorId: 0x8086, deviceId: 0x7010 }, domain: "dom0" }],
  });
  plugIde(m, o.disk);
  probeHardware(m);
  const hda = await startAtaDriver(m);

  // dom0's blkback for every vbd: the machine's vbd service, as addVbd uses it.
  const vbds = await vbdService(m);
  const d0 = m.dom0;

  // The domain: cpu-x86 as its vCPU, built from the ELF by the hypervisor's PV builder.
  const console = new ConsoleText();
  let domain: Domain | undefined;
  const vcpu = createX86PvVcpu(m.hv, {
    onHypercall: (trap) => {
      o.onHypercall?.(trap);
      // The console backend: drain out[] when GRUB yields (it spins on yield until out_cons
      // catches up) and before a shutdown; console sends are drained by the hypervisor.
      if (domain !== undefined && (trap.nr === HYPERVISOR.sched_op || trap.nr === HYPERVISOR.sched_op_compat)) {
        if (trap.args[0] === SCHEDOP.yield || trap.args[0] === SCHEDOP.shutdown) console.take(m.hv.consoleOf(domain.domid));
      }
    },
  });
  const boot = buildPvDomain(m.hv, { name: "pvgrub", memoryPages: pages, image: o.image, vcpu });
  domain = boot.domain;
  const domid = domain.domid;
  m.hv.pause(domid);
  vcpu.boot(boot);
  m.say(m.clock.now(), "toolstack", `built d${domid} (pvgrub): entry 0x${boot.eip.toString(16)}, start_info 0x${boot.esi.toString(16)}, stack 0x${boot.esp.toString(16)}, ${boot.layout.ptPages} page-table frames`);

  // XS_INTRODUCE: dom0 maps the store page (grant ref 1) and binds the offered port.
  const si = m.hv.startInfo(domid);
  const storeMap = d0.domain.gnttab.map(domid, si.storeGref, true);
  const storePort = d0.domain.evtchn.bindInterdomain(domid, si.storePort);
  m.xenstored.introduce(domid, evtchnPort(d0.domain.evtchn, storePort, storeMap.bytes));
  m.say(m.clock.now(), "xenstored", `introduced domain ${domid} (store gref ${si.storeGref}, port ${si.storePort})`);

  // The vbd (pv-grub.md §4, §7): frontend device/vbd/51712, backend with dev, sectors, sector-size.
  const sectors = Math.floor((o.disk.info.sectors * o.disk.info.sectorSize) / 512);
  vbds.disks.set(`${domid}/${XVDA}`, hda);
  const paths = await m.run(
    addXenbusDevice(m.toolstack, {
      kind: "vbd",
      frontendDomid: domid,
      backendDomid: d0.domain.domid,
      devid: XVDA,
      frontend: { "virtual-device": String(XVDA), "device-type": "disk" },
      backend: { dev: "xvda", type: "phy", params: o.disk.name ?? "disk", mode: "r", removable: "0", sectors: String(sectors), "sector-size": "512" },
    }),
  );
  // GRUB proceeds on any backend state but InitWait, so blkback must be waiting before GRUB runs.
  await m.run(
    (async () => {
      for (let i = 0; i < 10_000; i++) {
        if ((await m.toolstack.read(`${paths.backend}/state`)) === "2") return;
        await new Promise<void>((r) => setImmediate(r));
      }
      throw new Error("blkback never reached InitWait");
    })(),
  );
  m.say(m.clock.now(), "toolstack", `vbd ${XVDA} of d${domid}: backend ${paths.backend} in InitWait; unpausing`);
  m.hv.unpause(domid);
  const blkback = (): Blkback | undefined => vbds.blkbacks.get(paths.backend);
  return { machine: m, domain, vcpu, boot, console, blkback, ringProtocol: () => blkback()?.protocol };
}

/** Runs PV GRUB until it shuts down, prints the marker, crashes, or a limit is reached. */
export async function runPvGrub(sys: PvGrubSystem, o: Pick<PvGrubOptions, "marker" | "wallLimitMs" | "virtualLimitNs" | "instructionLimit"> = {}): Promise<PvGrubRun> {
  const { machine: m, domain, vcpu, console } = sys;
  const wallLimit = o.wallLimitMs ?? 120_000;
  const virtualLimit = o.virtualLimitNs ?? 60e9;
  const instructionLimit = o.instructionLimit ?? 2e9;
  const t0 = performance.now();
  const i0 = vcpu.instructionsRetired;
  const v0 = m.clock.now();
  let stop: PvGrubStop | undefined;
  console.take(m.hv.consoleOf(domain.domid));
  // The marker counts only in what is printed during this run.
  const from = o.marker === undefined ? 0 : Math.max(0, console.text.length - o.marker.length + 1);
  const done = (): boolean => {
    console.take(m.hv.consoleOf(domain.domid));
    if (domain.state === "shutdown" || !domain.alive) stop = domain.shutdownReason === 3 && vcpu.lastUnusualExit?.reason === "triple-fault" ? "crash" : "shutdown";
    else if (o.marker !== undefined && console.text.includes(o.marker, from)) stop = "marker";
    else if (performance.now() - t0 > wallLimit) stop = "wall-limit";
    else if (m.clock.now() - v0 > virtualLimit) stop = "virtual-limit";
    else if (vcpu.instructionsRetired - i0 > instructionLimit) stop = "instruction-limit";
    return stop !== undefined;
  };
  await runMachine(m.hv, m.hostIo, done, { idleTimeoutMs: 10_000 });
  const wallMs = performance.now() - t0;
  const instructions = vcpu.instructionsRetired - i0;
  const u = vcpu.lastUnusualExit;
  return {
    stop: stop!,
    shutdownReason: domain.shutdownReason,
    console: console.text,
    rawConsole: console.raw,
    instructions,
    wallMs,
    mips: instructions / (wallMs * 1000),
    virtualNs: m.clock.now() - v0,
    hypercalls: vcpu.hypercallCounts,
    blkback: sys.blkback(),
    ringProtocol: sys.ringProtocol(),
    log: m.hv.logLines.filter((l) => l.includes(`d${domain.domid}`)),
    detail: u === undefined ? undefined : `${u.reason}${"detail" in u ? ` (${u.detail})` : ""} at eip 0x${u.eip.toString(16)}, cr2 0x${u.cr2.toString(16)}, last exception ${u.exception}`,
  };
}

/** Builds and runs PV GRUB in one call. */
export async function bootPvGrub(o: PvGrubOptions): Promise<PvGrubRun & { system: PvGrubSystem }> {
  const system = await createPvGrubSystem(o);
  const run = await runPvGrub(system, o);
  return { ...run, system };
}
