/**
 * @paravirt/hypervisor-core: the Xen 2.0 hypervisor (timer, interrupt dispatch, probing,
 * memory ownership, event channels, grant tables, scheduling, one hypercall table).
 * @packageDocumentation
 */
export { Hypervisor, UPCALL_COST_NS } from "./hypervisor.ts";
export type { DeviceAssignment, DomainResources, StartInfo, HypervisorOptions, NativeDomainOptions, ProbedDevice, PvDomainOptions, RunAsyncOptions } from "./hypervisor.ts";
export { NativeDomain, DEFAULT_TASK_NS } from "./nativeDomain.ts";
export { XenDriverPlatform } from "./driverPlatform.ts";
export { Domain, X86_REG, registerFile } from "./domain.ts";
export { PseudoPhysicalMemory, identityVirtualMemory } from "./p2m.ts";
export type { DomainKind, DomainState, GuestVirtualMemory, PvVcpu, X86Registers } from "./domain.ts";
export { Hypercalls, HYPERCALL_COVERAGE } from "./hypercalls.ts";
export type { HypercallInfo } from "./hypercalls.ts";
export { ARGS_X86_32, CONSOLEIO, DOMCTL, MMU, XENMEM, GNTTAB_FIRST_FREE_REF, GNTTAB_RESERVED, HYPERVISOR, PHYSDEVOP, SCHEDOP, SHUTDOWN, VMASST, XENIRQSTAT, XENVER, XEN_VERSION } from "./abi.ts";
export type { EvtchnStatus } from "./eventChannels.ts";
export { GRANT_FRAMES } from "./grantTable.ts";
export type { CopyOp, CopyPtr, MapResult } from "./grantTable.ts";
export { FRAME_TYPE, MachineMemory, NO_OWNER } from "./machineMemory.ts";
export type { FrameType } from "./machineMemory.ts";
export { NR_EVTCHN_PORTS, SHARED_INFO, SharedInfoPage, VCPU_INFO, VCPU_TIME_INFO, tscScale } from "./sharedInfo.ts";
export { LAPIC_TIMER_REG, LVT_TIMER, LocalApicTimer } from "./timer.ts";
export { DEFAULT_WEIGHT, TIMER_VECTOR } from "./scheduler.ts";
export type { RunResult } from "./scheduler.ts";
export { NR_IRQS } from "./interrupts.ts";
export { PCI_CONF1, PciConfigMechanism1, configAddress, decodeConfigAddress, formatBdf, probePci } from "./pciProbe.ts";
export type { ProbeOptions } from "./pciProbe.ts";
export { IoSpace } from "./ioSpace.ts";
export { MMUEXT, PTE, UVMF, cr3ToMfn, mfnToCr3, pagingVirtualMemory, translate } from "./pae.ts";
export type { PvPaging } from "./pae.ts";
export { FLAT_RING1, HYPERVISOR_VIRT_START_PAE, PvImageError, SIF, START_INFO, XEN_ELFNOTE, buildPvDomain, parsePvImage } from "./pvBuilder.ts";
export type { PvBootState, PvBuildOptions, PvImage } from "./pvBuilder.ts";
