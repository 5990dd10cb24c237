/**
 * @paravirt/hw-ide: a PIIX3/PIIX4 IDE PCI function with bus-master DMA and ATA disks on
 * vm-interfaces `BlockDevice`s, behaving as QEMU 7.2's.
 * @packageDocumentation
 */
export { PiixIde, type IdeDrives, type LegacyPortRange, type PiixIdeOptions, type PiixIdeState } from "./piixIde.ts";
export { IdeChannel, type IdeChannelOptions, type IdeChannelState } from "./channel.ts";
export { BusMaster, type BusMasterState } from "./busMaster.ts";
export {
  AtaDisk,
  DEFAULT_ATA_TIMING,
  TaskFile,
  type AtaDiskOptions,
  type HostOverlap,
  type AtaDiskState,
  type AtaPhase,
  type AtaTiming,
  type DmaEngine,
  type DmaPlan,
  type DriveHost,
  type TaskFileState,
} from "./ataDisk.ts";
export { identifyDevice, identifyBytes, getAtaString, putAtaString, defaultChs, translatedChs, ID_WORD, ID_FEATURE, type Chs, type IdentifyParams, type TransferMode } from "./identify.ts";
export * from "./registers.ts";
