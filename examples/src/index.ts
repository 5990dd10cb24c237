/**
 * @paravirt/examples: compositions of paravirt's packages.
 * @packageDocumentation
 */
export { bootBareMetalDisk, type BareMetalMachine } from "./bareMetalDisk.ts";
export { runDiskWorkload, measureThroughput, pattern, planRegions, type WorkloadResult, type WrittenRegion, type ThroughputResult } from "./workload.ts";
