/**
 * @paravirt/examples: compositions of paravirt's packages.
 * @packageDocumentation
 */
export { bootBareMetalDisk, type BareMetalMachine } from "./bareMetalDisk.ts";
export { bootXen2, XVDA, type Xen2Options, type Xen2System } from "./xen2/system.ts";
export { runMachine, runFor } from "./xen2/machineLoop.ts";
export { runDemo, type DemoOptions, type DemoReport } from "./demo.ts";
export { runDiskWorkload, measureThroughput, pattern, planRegions, scratchPattern, type WorkloadResult, type WrittenRegion, type ThroughputResult } from "./workload.ts";
export { bootDemoSystem, IDE_ASSIGNMENT, type DemoSystem, type DemoSystemOptions } from "./xen2/demoSystem.ts";
export {
  createMachine, plugIde, probeHardware, startAtaDriver, addDomU, addVbd, type Machine, type MachineOptions, type Guest, type Narrate,
} from "./xen2/system.ts";
export {
  bootXen2Net, runNetworkWorkload, netCounters, plugE1000, startE1000Driver, addVif, startStack, attachSimulatedHost, inGuest, WIRE_HOST,
  E1000_ASSIGNMENT, type Xen2NetSystem, type NetWorkloadResult,
} from "./xen2/network.ts";
