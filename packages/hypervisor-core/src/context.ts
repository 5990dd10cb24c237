/** What the hypervisor's subsystems need from each other (the facade implements it). */
import type { DomId, VirtualClock } from "@paravirt/vm-interfaces";
import type { Domain } from "./domain.ts";
import type { MachineMemory } from "./machineMemory.ts";

export interface HvContext {
  readonly memory: MachineMemory;
  readonly clock: VirtualClock;
  /** The domain with id `domid`, alive or not yet reaped. */
  domain(domid: DomId): Domain | undefined;
  /** `domid` as `caller` names it (DOMID_SELF = caller), only if alive. */
  resolve(caller: Domain, domid: DomId): Domain | undefined;
  /** Every domain not yet reaped. */
  domains(): Iterable<Domain>;
  /** An event became pending for `d` with upcalls enabled: wake it / run its upcall. */
  kick(d: Domain): void;
  /** Hypervisor log line. */
  log(message: string): void;
}
