/**
 * @paravirt/driver-ata: a vanilla ATA driver, written only against the driver platform.
 * @packageDocumentation
 */
export { probeAta, channelResources, ATA_PCI_IDS, type AtaProbeResult } from "./probe.ts";
export { AtaChannel, type AtaRequest, type ChannelOptions, type ChannelResources } from "./channel.ts";
export { AtaDisk } from "./ataDisk.ts";
export { parseIdentify, type AtaIdentity } from "./identify.ts";
export * from "./registers.ts";
