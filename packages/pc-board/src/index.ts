/**
 * @paravirt/pc-board: the board a paravirt machine is built on.
 * @packageDocumentation
 */
export { PhysicalAddressSpace } from "./physicalAddressSpace.ts";
export { PciHostBridge, PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_DATA_PORT, formatBdf } from "./pciHost.ts";
export { assignPciResources, configRead, configWrite, type FirmwareOptions } from "./firmware.ts";
export { PcBoard, defaultIrqRoute, type PcBoardOptions } from "./board.ts";
export { BareMetalPlatform } from "./bareMetalPlatform.ts";
export { runUntil, type RunOptions } from "./eventLoop.ts";
export { HostIoTracker, trackBlockDevice } from "./hostIo.ts";
