/**
 * The whole demo system: one machine with both paths of the Xen 2.0 I/O architecture.
 *
 *   domU1: blkfront xvda ─▶ dom0 blkback ─▶ ATA driver ─▶ hw-ide (PIIX) ─▶ disk image
 *   domU1: netfront eth0 ─┐
 *   domU2: netfront eth0 ─┴▶ dom0 netback vifs ─▶ xenbr0 ─▶ e1000 driver ─▶ hw-e1000 ─▶ wire ─▶ simulated host
 *
 * dom0 is given both PCI functions (by id) and runs the vanilla drivers; the domUs have no
 * hardware.
 */
import type { BlockDevice } from "@paravirt/vm-interfaces";
import type { AtaDisk } from "@paravirt/driver-ata";
import type { Blkback } from "@paravirt/blkback";
import type { Blkfront } from "@paravirt/blkfront";
import type { PcapWriter } from "@paravirt/net-wire";
import { PcapFile } from "@paravirt/net-wire";
import { addDomU, addVbd, createMachine, plugIde, probeHardware, startAtaDriver, type Narrate } from "./system.ts";
import {
  E1000_ASSIGNMENT, addVif, attachSimulatedHost, dom0Network, plugE1000, startE1000Driver, startStack, type NetGuest, type Xen2NetSystem,
} from "./network.ts";

/** dom0's IDE controller assignment (PIIX3 IDE, 8086:7010). */
export const IDE_ASSIGNMENT = { device: { vendorId: 0x8086, deviceId: 0x7010 }, domain: "dom0" } as const;

export interface DemoSystemOptions {
  disk: BlockDevice;
  /** Capture the e1000's wire to this pcap file. */
  pcap?: string | PcapWriter;
  narrate?: Narrate;
}

export interface DemoSystem extends Xen2NetSystem {
  hda: AtaDisk;
  blkback: Blkback;
  xvda: Blkfront;
}

/** Boots dom0 (ATA + e1000 drivers, xenstored, blkback, netback, bridge) and two domUs. */
export async function bootDemoSystem(o: DemoSystemOptions): Promise<DemoSystem> {
  const m = createMachine({ ...(o.narrate ? { narrate: o.narrate } : {}), assignments: [IDE_ASSIGNMENT, E1000_ASSIGNMENT] });
  plugIde(m, o.disk);
  const e1000 = plugE1000(m, o.pcap !== undefined ? { pcap: o.pcap } : {});
  const host = attachSimulatedHost(m, e1000.wire);
  probeHardware(m);
  const hda = await startAtaDriver(m);
  await startE1000Driver(m);
  const domUs: NetGuest[] = [];
  let blk: { blkfront: Blkfront; blkback: Blkback } | undefined;
  for (let i = 1; i <= 2; i++) {
    const g = addDomU(m, `domU${i}`);
    if (i === 1) blk = await addVbd(m, g, hda);
    const mac = `00:16:3e:00:00:${i.toString(16).padStart(2, "0")}`;
    const vif = await addVif(m, g, mac);
    const ip = `10.0.0.${10 + i}`;
    domUs.push({ ...g, vif, stack: startStack(m, g, ip), ip, mac });
  }
  const net = dom0Network(m);
  return Object.assign(m, {
    e1000,
    dom0: { ...m.dom0, ...net },
    domUs,
    host,
    hda,
    blkback: blk!.blkback,
    xvda: blk!.blkfront,
    close: () => {
      if (e1000.pcap instanceof PcapFile) e1000.pcap.close();
    },
  });
}
