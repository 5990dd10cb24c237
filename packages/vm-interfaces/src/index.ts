/**
 * @paravirt/vm-interfaces: the contracts between paravirt's packages.
 * @packageDocumentation
 */
export * from "./memory.ts";
export * from "./io.ts";
export * from "./irq.ts";
export * from "./pci.ts";
export * from "./clock.ts";
export * from "./block.ts";
export * from "./net.ts";
export * from "./vcpu.ts";
export * from "./snapshot.ts";
export * from "./xen.ts";
export * from "./driver.ts";
