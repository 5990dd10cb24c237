/**
 * @paravirt/examples: compositions of paravirt's packages.
 * @packageDocumentation
 */
export { bootBareMetalDisk, type BareMetalMachine } from "./bareMetalDisk.ts";
export { bootXen2, XVDA, type Xen2Options, type Xen2System } from "./xen2/system.ts";
export { runMachine, runFor } from "./xen2/machineLoop.ts";
export { runDemo, type DemoOptions, type DemoReport } from "./demo.ts";
export { runDiskWorkload, measureThroughput, pattern, planRegions, scratchPattern, type WorkloadResult, type WrittenRegion, type ThroughputResult } from "./workload.ts";
