/**
 * @paravirt/driver-e1000: a vanilla Intel 82540EM driver, written only against the driver platform.
 * @packageDocumentation
 */
export { probeE1000, findE1000, type E1000ProbeResult } from "./probe.ts";
export {
  E1000Nic,
  mtaHash,
  E1000_DELAY_UNIT_NS,
  type E1000Options,
  type TxOptions,
  type RxInfo,
  type E1000AttachResult,
  type E1000Statistics,
  type E1000DriverCounters,
  type E1000HardwareCounters,
} from "./nic.ts";
export { checksumContext, type ChecksumContext } from "./offload.ts";
export { readEeprom, eepromSum, macFromEeprom, type EepromImage, type EepromAccess } from "./eeprom.ts";
export * from "./registers.ts";
