/**
 * @paravirt/device-channel: Xen's device-channel ABI, byte for byte.
 * @packageDocumentation
 */
export * from "./ring.ts";
export * from "./grantTable.ts";
export * from "./eventChannel.ts";
export * from "./xenbus.ts";
export * from "./byteRing.ts";
export * from "./console.ts";
export * from "./xsWire.ts";
export * from "./blkif.ts";
export * from "./netif.ts";
