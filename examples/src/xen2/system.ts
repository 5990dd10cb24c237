/**
 * The Xen 2.0 system of the demo, built from the packages as a toolstack would:
 *
 *   domU1: blkfront (xvda) ──ring/grants/events──▶ dom0: blkback ─▶ driver-ata (vanilla)
 *                                                  dom0: xenstored       │ checked port I/O, pirq 14
 *   hypervisor-core: domains, event channels, grant tables, scheduler,   ▼ bus-master DMA into
 *                    timer, PCI probing and I/O-space checks          hw-ide (PIIX) ─▶ disk image
 *
 * dom0 owns the IDE function (assigned by PCI id at probe time) and runs the unmodified ATA
 * driver on the hypervisor's driver platform; the domU has no hardware at all.
 */
import { VirtualClock, type BlockDevice } from "@paravirt/vm-interfaces";
import { Hypervisor, type NativeDomain } from "@paravirt/hypervisor-core";
import { PcBoard, trackBlockDevice } from "@paravirt/pc-board";
import { AtaDisk as IdeDisk, PiixIde } from "@paravirt/hw-ide";
import { probeAta, type AtaDisk } from "@paravirt/driver-ata";
import { XenstoreClient, XenstoreServer, addXenbusDevice, evtchnPort } from "@paravirt/xenstore";
import { NativeKernel } from "@paravirt/guest-kernel";
import { Blkback } from "@paravirt/blkback";
import { Blkfront } from "@paravirt/blkfront";
import { runFor } from "./machineLoop.ts";

/** xvda's virtual-device number [Xen docs/misc/vbd-interface.txt: (202 << 8) | 0]. */
export const XVDA = 51712;

export interface Xen2Options {
  /** The disk behind the IDE controller (an image file, a RAM disk). */
  disk: BlockDevice;
  /** Machine memory in MiB (default 96). */
  memoryMiB?: number;
  /** Narrative lines as they happen, with the virtual time in ns. */
  narrate?: (timeNs: number, who: string, line: string) => void;
}

export interface Xen2System {
  hv: Hypervisor;
  board: PcBoard;
  ide: PiixIde;
  xenstored: XenstoreServer;
  dom0: { domain: NativeDomain; kernel: NativeKernel; disk: AtaDisk; blkback?: Blkback };
  domU: { domain: NativeDomain; kernel: NativeKernel; xvda: Blkfront };
  /** Runs the machine until `p` settles. */
  run<T>(p: Promise<T>): Promise<T>;
}

/** Boots the hypervisor, dom0 (ATA driver, xenstored, blkback) and one domU with blkfront. */
export async function bootXen2(o: Xen2Options): Promise<Xen2System> {
  const say = o.narrate ?? (() => {});
  const clock = new VirtualClock();
  const frames = ((o.memoryMiB ?? 96) * 1024 * 1024) / 4096;
  const hv = new Hypervisor({
    memoryFrames: frames,
    clock,
    // The toolstack's configuration: the PIIX IDE function belongs to dom0.
    assignments: [{ device: { vendorId: 0x8086, deviceId: 0x7010 }, domain: "dom0" }],
    logSink: (line) => say(clock.now(), "xen", line.replace(/^\[[\d.]+ ms\] /, "")),
  });
  // The hardware: the board's RAM is the hypervisor's machine memory, so bus-master DMA lands
  // in the very frames the hypervisor hands to domains (and grants between them).
  const board = new PcBoard({ ram: hv.memory.buffer, clock, ports: hv.ports, mmio: hv.mmio, irqs: hv.irqRouter });
  const ide = new PiixIde({
    memory: board.memory,
    timers: clock,
    irq14: board.irqLine(14),
    irq15: board.irqLine(15),
    primary: { master: new IdeDisk(trackBlockDevice(o.disk, board.hostIo), { model: "PARAVIRT HARDDISK" }) },
  });
  ide.registerLegacyPorts(board.ports);
  board.plugPci(1, ide, 1);
  board.boot();
  const run = <T>(p: Promise<T>) => runFor(hv, board.hostIo, p);

  // dom0: privileged, given the IDE function's I/O space by the assignment above; the
  // controller's legacy (compatibility-mode) ports and IRQs 14/15 are not BARs, so the
  // toolstack grants them explicitly, as Xen's dom0 gets the legacy PC ranges.
  hv.probePci();
  const d0 = hv.createNativeDomain({ name: "dom0", privileged: true, memoryPages: 8192 });
  for (const ch of [{ cmd: 0x1f0, ctl: 0x3f6, irq: 14 }, { cmd: 0x170, ctl: 0x376, irq: 15 }]) {
    hv.grantIoPorts(d0.domid, ch.cmd, 8);
    hv.grantIoPorts(d0.domid, ch.ctl, 1);
    hv.grantIrq(d0.domid, ch.irq);
  }
  const xenstored = new XenstoreServer();
  const dom0Store = new XenstoreClient(xenstored.connectLocal(d0.domid));
  d0.attachXenStore(dom0Store);
  const dom0Kernel = new NativeKernel({ name: "dom0", xen: d0.services(), platform: d0.driverPlatform(), log: (l) => say(clock.now(), "dom0", l) });
  say(clock.now(), "dom0", "probing PCI for disk controllers (vanilla ATA driver)");
  const [controller] = await run(probeAta(dom0Kernel.platform!));
  const hda = controller?.disks[0];
  if (hda === undefined) throw new Error("dom0's ATA driver found no disk");
  dom0Kernel.blockDevices.add(hda.name, hda);

  // domU: no hardware; a xenstore page and port offered to dom0, which xenstored maps and binds
  // (XS_INTRODUCE), and a vbd the toolstack creates.
  const dU = hv.createNativeDomain({ name: "domU1", memoryPages: 4096 });
  const si = dU.startInfo;
  const storeMap = d0.gnttab.map(dU.domid, si.storeGref, true);
  const storePort = d0.evtchn.bindInterdomain(dU.domid, si.storePort);
  xenstored.introduce(dU.domid, evtchnPort(d0.evtchn, storePort, storeMap.bytes));
  say(clock.now(), "xenstored", `introduced domain ${dU.domid} (store page gref ${si.storeGref}, port ${si.storePort})`);
  dU.attachXenStore(new XenstoreClient(evtchnPort(dU.evtchn, si.storePort, dU.storePage()!)));
  const domUKernel = new NativeKernel({ name: "domU1", xen: dU.services(), log: (l) => say(clock.now(), "domU1", l) });

  const sectors = hda.info.sectors;
  await run(
    addXenbusDevice(dom0Store, {
      kind: "vbd",
      frontendDomid: dU.domid,
      backendDomid: d0.domid,
      devid: XVDA,
      frontend: { "virtual-device": String(XVDA), "device-type": "disk" },
      backend: { dev: "xvda", type: "phy", params: hda.name, mode: "w", "removable": "0", "sectors-hint": String(sectors) },
    }),
  );
  say(clock.now(), "toolstack", `vbd ${XVDA} (xvda) of domU1 -> dom0 ${hda.name}`);

  const dom0: Xen2System["dom0"] = { domain: d0, kernel: dom0Kernel, disk: hda };
  await run(
    dom0Kernel.backends.register("vbd", (d) => {
      const bb = new Blkback({
        xen: d.xen,
        device: hda,
        frontendDomid: d.frontendDomid,
        devid: d.devid,
        backendPath: d.backendPath,
        log: (l) => say(clock.now(), "dom0/blkback", l),
      });
      dom0.blkback = bb;
      return { start: () => bb.start(), stop: () => bb.stop() };
    }),
  );

  let xvda: Blkfront | undefined;
  await run(
    domUKernel.frontends.probe("vbd", (d) => {
      const bf = new Blkfront({ xen: d.xen, devid: d.devid, log: (l) => say(clock.now(), "domU1/blkfront", l) });
      xvda = bf;
      domUKernel.blockDevices.add("xvda", bf);
      return { connect: () => bf.connect(), close: () => bf.close() };
    }),
  );
  if (xvda === undefined) throw new Error("domU1 found no vbd");
  return { hv, board, ide, xenstored, dom0, domU: { domain: dU, kernel: domUKernel, xvda }, run };
}
