/**
 * @paravirt/xen-testing: an in-memory Xen (domains, grant tables, event channels, xenstore)
 * that hands out vm-interfaces `XenServices`, for testing split drivers without a hypervisor.
 * @packageDocumentation
 */
export { InMemoryXen, InMemoryDomain, type InMemoryXenOptions, type CreateDomainOptions } from "./inMemoryXen.ts";
export { InMemoryGrantTable, GNTTAB_NR_RESERVED_ENTRIES } from "./grantTable.ts";
export { InMemoryEventChannels, NR_EVENT_CHANNELS } from "./eventChannels.ts";
export { InMemoryXenStore, XenStoreTree, XS_TRANSACTION_RETRIES } from "./xenstore.ts";
export { DomainMemory, FIRST_FRAME } from "./memory.ts";
export { XenScheduler } from "./scheduler.ts";
export { addDevice, removeDevice, type AddDeviceOptions, type DevicePaths } from "./toolstack.ts";
