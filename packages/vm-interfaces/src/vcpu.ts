/**
 * A virtual CPU as the hypervisor's scheduler drives it (Cloud Hypervisor's `hypervisor`
 * crate seam): run for a budget, get back why it stopped.
 */

/** Why {@link Vcpu.run} returned. `executed` counts instructions retired in this call. */
export type VcpuExit =
  /** The instruction budget ran out. */
  | { readonly reason: "budget"; readonly executed: number }
  /** HLT with interrupts enabled or disabled; the vCPU waits for an interrupt. */
  | { readonly reason: "halt"; readonly executed: number }
  /** `int n` through a gate the embedder intercepts (the hypervisor's `int 0x82`). */
  | { readonly reason: "intercept"; readonly vector: number; readonly executed: number }
  /** A fault while delivering a double fault: the CPU would reset. */
  | { readonly reason: "triple-fault"; readonly executed: number; readonly detail: string }
  /** The embedder asked it to stop (`requestStop`) between instructions. */
  | { readonly reason: "stopped"; readonly executed: number };

export interface Vcpu {
  /** Runs at most `budget` instructions. */
  run(budget: number): VcpuExit;
  /** Makes a running `run` return "stopped" at the next instruction boundary. */
  requestStop(): void;
  /** Instructions retired since creation. */
  readonly instructionsRetired: number;
}
