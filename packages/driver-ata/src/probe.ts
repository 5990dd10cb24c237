/**
 * Finding IDE controllers and their disks, as a driver's probe routine does: PCI functions of
 * class 01:01 (or the PIIX ids), channels in compatibility or native mode by prog-if
 * [PCI IDE Controller Spec rev 1.0 §2], the bus-master block from BAR4.
 */
import type { DriverPlatform, PciDeviceInfo } from "@paravirt/vm-interfaces";
import { AtaChannel, type ChannelOptions, type ChannelResources } from "./channel.ts";
import { AtaDisk } from "./ataDisk.ts";
import { BM_REG, LEGACY_CHANNELS, PCI_CLASS_IDE } from "./registers.ts";

/** PCI ids the driver binds to by name (it also binds any class 01:01 function). */
export const ATA_PCI_IDS = [
  { vendorId: 0x8086, deviceId: 0x7010, name: "PIIX3 IDE" },
  { vendorId: 0x8086, deviceId: 0x7111, name: "PIIX4 IDE" },
] as const;

function isIde(d: PciDeviceInfo): boolean {
  return d.classCode >> 8 === PCI_CLASS_IDE || ATA_PCI_IDS.some((id) => id.vendorId === d.vendorId && id.deviceId === d.deviceId);
}

/** The channels of one controller: legacy ports and IRQs 14/15 unless prog-if says native mode. */
export function channelResources(d: PciDeviceInfo): ChannelResources[] {
  const progIf = d.classCode & 0xff;
  const bar4 = d.bars[4];
  const bm = bar4 !== undefined && bar4.kind === "io" ? bar4.base : undefined;
  return [0, 1].map((i) => {
    const native = (progIf & (1 << (i * 2))) !== 0;
    const cmdBar = d.bars[i * 2];
    const ctlBar = d.bars[i * 2 + 1];
    const legacy = LEGACY_CHANNELS[i]!;
    const useNative = native && cmdBar !== undefined && ctlBar !== undefined && d.irq !== undefined;
    return {
      name: `ide${i}`,
      command: useNative ? cmdBar.base : legacy.command,
      control: useNative ? ctlBar.base + 2 : legacy.control,
      irq: useNative ? d.irq! : legacy.irq,
      busMaster: bm === undefined ? undefined : bm + i * BM_REG.SECONDARY,
    };
  });
}

export interface AtaProbeResult {
  controller: PciDeviceInfo;
  channels: AtaChannel[];
  /** Disks found, named hda, hdb (primary master/slave), hdc, hdd. */
  disks: AtaDisk[];
}

/** Probes every IDE controller the platform shows, resets its channels and identifies the disks. */
export async function probeAta(platform: DriverPlatform, options: ChannelOptions = {}): Promise<AtaProbeResult[]> {
  const results: AtaProbeResult[] = [];
  for (const d of platform.pciDevices().filter(isIde)) {
    const channels: AtaChannel[] = [];
    const disks: AtaDisk[] = [];
    for (const [ci, res] of channelResources(d).entries()) {
      const ch = new AtaChannel(platform, res, options);
      const ids = await ch.init();
      channels.push(ch);
      ids.forEach((id, drive) => {
        if (id === undefined) return;
        const name = `hd${String.fromCharCode(97 + ci * 2 + drive)}`;
        platform.log(`${name}: ${id.model}, ${id.sectors} sectors (${((id.sectors * id.sectorSize) / 2 ** 20).toFixed(1)} MiB)${id.lba48 ? ", LBA48" : ""}, DMA`);
        disks.push(new AtaDisk(ch, drive as 0 | 1, id, name));
      });
    }
    results.push({ controller: d, channels, disks });
  }
  return results;
}
