/**
 * Finding 82540EMs and bringing them up, as a driver's probe routine does: every PCI function
 * with a matching vendor/device id [8254x SDM 4.1, table 4-2] is attached in turn.
 */
import type { DriverPlatform, PciDeviceInfo } from "@paravirt/vm-interfaces";
import { E1000Nic, type E1000Options } from "./nic.ts";
import { E1000_PCI_IDS } from "./registers.ts";

/** What {@link probeE1000} found. */
export interface E1000ProbeResult {
  /** Interfaces that came up, in PCI order. */
  nics: E1000Nic[];
  /** Functions with a matching id that could not be brought up, and why. */
  failed: { device: PciDeviceInfo; reason: string }[];
}

/** The PCI functions this driver binds to. */
export function findE1000(platform: DriverPlatform): PciDeviceInfo[] {
  return E1000_PCI_IDS.flatMap((id) => platform.pciDevices({ vendorId: id.vendorId, deviceId: id.deviceId }));
}

/** Probes every 82540EM the platform shows and attaches the driver to each. */
export async function probeE1000(platform: DriverPlatform, options: E1000Options = {}): Promise<E1000ProbeResult> {
  const result: E1000ProbeResult = { nics: [], failed: [] };
  for (const device of findE1000(platform)) {
    const r = await E1000Nic.attach(platform, device, options);
    if (r.ok) result.nics.push(r.nic);
    else result.failed.push({ device, reason: r.reason });
  }
  return result;
}
