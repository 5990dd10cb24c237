/**
 * The Xen 2.0 system of the demo, built from the packages as a toolstack would:
 *
 *   domU1: blkfront (xvda) ──ring/grants/events──▶ dom0: blkback ─▶ driver-ata (vanilla)
 *                                                  dom0: xenstored       │ checked port I/O, pirq 14
 *   hypervisor-core: domains, event channels, grant tables, scheduler,   ▼ bus-master DMA into
 *                    timer, PCI probing and I/O-space checks          hw-ide (PIIX) ─▶ disk image
 *
 * dom0 owns the IDE function (assigned by PCI id at probe time) and runs the unmodified ATA
 * driver on the hypervisor's driver platform; domUs have no hardware at all.
 *
 * Built in steps so other paths can be added: {@link createMachine} (hypervisor, board, dom0
 * with xenstored), {@link addIdeDisk} (the controller and dom0's ATA driver), {@link addDomU}
 * (a guest introduced to xenstored), {@link addVbd} (a disk for a guest, served by blkback).
 */
import { VirtualClock, type BlockDevice } from "@paravirt/vm-interfaces";
import { Hypervisor, type DeviceAssignment, type NativeDomain } from "@paravirt/hypervisor-core";
import { PcBoard, trackBlockDevice } from "@paravirt/pc-board";
import { AtaDisk as IdeDisk, PiixIde } from "@paravirt/hw-ide";
import { probeAta, type AtaDisk } from "@paravirt/driver-ata";
import { XenstoreClient, XenstoreServer, addXenbusDevice, evtchnPort } from "@paravirt/xenstore";
import { NativeKernel } from "@paravirt/guest-kernel";
import { Blkback } from "@paravirt/blkback";
import { Blkfront } from "@paravirt/blkfront";
import { WakingHostIo, runFor } from "./machineLoop.ts";

/** xvda's virtual-device number [Xen docs/misc/vbd-interface.txt: (202 << 8) | 0]. */
export const XVDA = 51712;

export type Narrate = (timeNs: number, who: string, line: string) => void;

/** A running domain: the hypervisor's handle and the kernel on it. */
export interface Guest {
  domain: NativeDomain;
  kernel: NativeKernel;
}

/** The machine with dom0 running xenstored, before any device is added. */
export interface Machine {
  hv: Hypervisor;
  board: PcBoard;
  clock: VirtualClock;
  xenstored: XenstoreServer;
  dom0: Guest;
  /** dom0's privileged xenstore connection (the toolstack's). */
  toolstack: XenstoreClient;
  /** Host I/O of the machine's devices (the disk image): the machine holds still while it is in flight. */
  hostIo: WakingHostIo;
  say: Narrate;
  /** Runs the machine until `p` settles. */
  run<T>(p: Promise<T>): Promise<T>;
}

export interface MachineOptions {
  /** Machine memory in MiB (default 96). */
  memoryMiB?: number;
  /** Pages of dom0 (default 8192 = 32 MiB). */
  dom0Pages?: number;
  /** Which PCI functions dom0 (or a driver domain, by name) is given. */
  assignments?: readonly DeviceAssignment[];
  narrate?: Narrate;
}

/** Boots the hypervisor on a PC board and dom0 with xenstored. Devices are plugged before `hv.probePci()`, which `addIdeDisk` and others call. */
export function createMachine(o: MachineOptions = {}): Machine {
  const say = o.narrate ?? (() => {});
  const clock = new VirtualClock();
  const hv = new Hypervisor({
    memoryFrames: ((o.memoryMiB ?? 96) * 1024 * 1024) / 4096,
    clock,
    assignments: o.assignments ?? [],
    logSink: (line) => say(clock.now(), "xen", line.replace(/^\[[\d.]+ ms\] /, "")),
  });
  // The board's RAM is the hypervisor's machine memory, so bus-master DMA lands in the very
  // frames the hypervisor hands to domains (and that they grant to each other).
  const board = new PcBoard({ ram: hv.memory.buffer, clock, ports: hv.ports, mmio: hv.mmio, irqs: hv.irqRouter });
  const hostIo = new WakingHostIo();
  const run = <T>(p: Promise<T>) => runFor(hv, hostIo, p);
  const d0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: o.dom0Pages ?? 8192 });
  const xenstored = new XenstoreServer();
  const toolstack = new XenstoreClient(xenstored.connectLocal(d0.domid));
  d0.attachXenStore(toolstack);
  const kernel = new NativeKernel({ name: "dom0", xen: d0.services(), platform: d0.driverPlatform(), log: (l) => say(clock.now(), "dom0", l) });
  return { hv, board, clock, xenstored, dom0: { domain: d0, kernel }, toolstack, hostIo, say, run };
}

/** Plugs a PIIX IDE controller with `disk` as primary master into the board (00:01.1). */
export function plugIde(m: Machine, disk: BlockDevice): PiixIde {
  const ide = new PiixIde({
    memory: m.board.memory,
    timers: m.clock,
    irq14: m.board.irqLine(14),
    irq15: m.board.irqLine(15),
    // A DMA's host I/O starts with its data phase and holds the machine only if the modelled
    // transfer time is over before it is (the machine's work overlaps the host's).
    primary: {
      master: new IdeDisk(trackBlockDevice(disk, m.hostIo), {
        model: "PARAVIRT HARDDISK",
        overlap: { block: disk, wait: (p) => m.hostIo.track(p) },
      }),
    },
  });
  ide.registerLegacyPorts(m.board.ports);
  m.board.plugPci(1, ide, 1);
  return ide;
}

/**
 * Firmware and the hypervisor's PCI probe, after every device is plugged: BARs assigned,
 * functions given to the domains the assignments name.
 */
export function probeHardware(m: Machine): void {
  m.board.boot();
  m.hv.probePci();
}

/**
 * dom0's vanilla ATA driver finds the controller and its disk. The controller's legacy
 * (compatibility-mode) ports and IRQs 14/15 are not BARs, so the toolstack grants them to
 * dom0 explicitly, as Xen's dom0 gets the legacy PC ranges.
 */
export async function startAtaDriver(m: Machine): Promise<AtaDisk> {
  const d0 = m.dom0.domain;
  for (const ch of [{ cmd: 0x1f0, ctl: 0x3f6, irq: 14 }, { cmd: 0x170, ctl: 0x376, irq: 15 }]) {
    m.hv.grantIoPorts(d0.domid, ch.cmd, 8);
    m.hv.grantIoPorts(d0.domid, ch.ctl, 1);
    m.hv.grantIrq(d0.domid, ch.irq);
  }
  m.say(m.clock.now(), "dom0", "probing PCI for disk controllers (vanilla ATA driver)");
  const [controller] = await m.run(probeAta(m.dom0.kernel.platform!));
  const hda = controller?.disks[0];
  if (hda === undefined) throw new Error("dom0's ATA driver found no disk");
  m.dom0.kernel.blockDevices.add(hda.name, hda);
  return hda;
}

/**
 * Creates an unprivileged domain and introduces it to xenstored: dom0 maps the xenstore page
 * the builder granted it (GNTTAB_RESERVED_XENSTORE) and binds the port it was offered.
 */
export function addDomU(m: Machine, name: string, memoryPages = 4096): Guest {
  const dU = m.hv.createNativeDomain({ name, memoryPages });
  const si = dU.startInfo;
  const d0 = m.dom0.domain;
  const storeMap = d0.gnttab.map(dU.domid, si.storeGref, true);
  const storePort = d0.evtchn.bindInterdomain(dU.domid, si.storePort);
  m.xenstored.introduce(dU.domid, evtchnPort(d0.evtchn, storePort, storeMap.bytes));
  m.say(m.clock.now(), "xenstored", `introduced domain ${dU.domid} (store page gref ${si.storeGref}, port ${si.storePort})`);
  // The guest's kernel boots from its start_info: xenstore over the store page and port.
  const kernel = NativeKernel.boot({ name, services: dU.services(), storePage: dU.storePage()!, storePort: si.storePort, log: (l) => m.say(m.clock.now(), name, l) });
  dU.attachXenStore(kernel.xen.xenstore);
  return { domain: dU, kernel };
}

/** dom0's vbd service on a machine: the disk behind each vbd, and the blkback serving it. */
export interface VbdService {
  /** Disk by `<frontend domid>/<devid>`. */
  readonly disks: Map<string, BlockDevice>;
  /** Blkback by back-end path. */
  readonly blkbacks: Map<string, Blkback>;
}

const vbdServices = new WeakMap<Machine, VbdService>();

/**
 * dom0's vbd service, registering dom0's blkback driver for every vbd the first time. A
 * toolstack sets the disk of `<frontend domid>/<devid>` before writing the vbd's directories.
 */
export async function vbdService(m: Machine): Promise<VbdService> {
  const known = vbdServices.get(m);
  if (known !== undefined) return known;
  const service: VbdService = { disks: new Map(), blkbacks: new Map() };
  vbdServices.set(m, service);
  await m.run(
    m.dom0.kernel.backends.register("vbd", (d) => {
      const dev = service.disks.get(`${d.frontendDomid}/${d.devid}`);
      if (dev === undefined) throw new Error(`no disk configured for vbd ${d.frontendDomid}/${d.devid}`);
      const bb = new Blkback({ xen: d.xen, device: dev, frontendDomid: d.frontendDomid, devid: d.devid, backendPath: d.backendPath, log: (l) => m.say(m.clock.now(), "dom0/blkback", l) });
      service.blkbacks.set(d.backendPath, bb);
      return { start: () => bb.start(), stop: () => bb.stop() };
    }),
  );
  return service;
}

/**
 * Gives `guest` a vbd backed by `device` in dom0: the toolstack writes the xenstore
 * directories, dom0's xenbus binds blkback, the guest's xenbus binds blkfront.
 */
export async function addVbd(m: Machine, guest: Guest, device: BlockDevice & { name?: string }, devid = XVDA): Promise<{ blkfront: Blkfront; blkback: Blkback }> {
  const d0 = m.dom0;
  const svc = await vbdService(m);
  svc.disks.set(`${guest.domain.domid}/${devid}`, device);
  const paths = await m.run(
    addXenbusDevice(m.toolstack, {
      kind: "vbd",
      frontendDomid: guest.domain.domid,
      backendDomid: d0.domain.domid,
      devid,
      frontend: { "virtual-device": String(devid), "device-type": "disk" },
      backend: { dev: "xvda", type: "phy", params: device.name ?? "disk", mode: device.info.readOnly ? "r" : "w", removable: "0" },
    }),
  );
  m.say(m.clock.now(), "toolstack", `vbd ${devid} of ${guest.kernel.name} -> dom0 ${device.name ?? "disk"}`);
  let blkfront: Blkfront | undefined;
  await m.run(
    guest.kernel.frontends.probe("vbd", (d) => {
      const bf = new Blkfront({ xen: d.xen, devid: d.devid, log: (l) => m.say(m.clock.now(), `${guest.kernel.name}/blkfront`, l) });
      blkfront = bf;
      guest.kernel.blockDevices.add(d.devid === XVDA ? "xvda" : `xvd${d.devid}`, bf);
      return { connect: () => bf.connect(), close: () => bf.close() };
    }),
  );
  const blkback = svc.blkbacks.get(paths.backend);
  if (blkfront === undefined || blkback === undefined) throw new Error(`vbd ${devid} of ${guest.kernel.name} did not connect`);
  return { blkfront, blkback };
}

export interface Xen2Options {
  /** The disk behind the IDE controller (an image file, a RAM disk). */
  disk: BlockDevice;
  /** Machine memory in MiB (default 96). */
  memoryMiB?: number;
  /** Narrative lines as they happen, with the virtual time in ns. */
  narrate?: Narrate;
}

export interface Xen2System extends Machine {
  ide: PiixIde;
  dom0: Guest & { disk: AtaDisk; blkback: Blkback };
  domU: Guest & { xvda: Blkfront };
}

/** The block demo's system: dom0 with the IDE disk, one domU whose xvda is that disk. */
export async function bootXen2(o: Xen2Options): Promise<Xen2System> {
  const m = createMachine({
    ...(o.memoryMiB !== undefined ? { memoryMiB: o.memoryMiB } : {}),
    ...(o.narrate !== undefined ? { narrate: o.narrate } : {}),
    // The toolstack's configuration: the PIIX IDE function belongs to dom0.
    assignments: [{ device: { vendorId: 0x8086, deviceId: 0x7010 }, domain: "dom0" }],
  });
  const ide = plugIde(m, o.disk);
  probeHardware(m);
  const hda = await startAtaDriver(m);
  const domU = addDomU(m, "domU1");
  const { blkfront, blkback } = await addVbd(m, domU, hda);
  return { ...m, ide, dom0: { ...m.dom0, disk: hda, blkback }, domU: { ...domU, xvda: blkfront } };
}
