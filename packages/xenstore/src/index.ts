/**
 * @paravirt/xenstore: xenstored and a xenstore client over the shared xenstore page
 * [io/xs_wire.h, docs/misc/xenstore.txt].
 * @packageDocumentation
 */
export { XenstoreServer, DEFAULT_XENSTORE_QUOTA, type XenstoreServerOptions, type XenstoreQuota } from "./server.ts";
export { XenstoreClient, type XenstoreClientOptions } from "./client.ts";
export { createLocalChannel, evtchnPort, type XenstorePort, type LocalChannelOptions } from "./port.ts";
export { domainPath, resolvePath, SPECIAL_WATCH } from "./paths.ts";
export { switchState, readState, waitForState, XenbusStateKeeper, type XenbusStateKeeperOptions } from "./handshake.ts";
export { addXenbusDevice, removeXenbusDevice, xenbusDevicePaths, type XenbusDeviceSpec } from "./toolstack.ts";
