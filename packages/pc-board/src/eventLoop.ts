/**
 * Running a machine whose devices live in virtual time but whose storage answers through real
 * promises (file I/O): let promise callbacks and host I/O settle, then advance virtual time to
 * the next timer, until a condition holds.
 */
import type { VirtualClock } from "@paravirt/vm-interfaces";

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface RunOptions {
  /** Give up (reject) after this much wall-clock time with nothing left to do. Default 30 s. */
  idleTimeoutMs?: number;
  /** Give up after virtual time passes this many ns from the start. Default: no limit. */
  virtualLimitNs?: number;
  /**
   * True while host I/O is in flight (see {@link HostIoTracker}): virtual time then stands
   * still (only timers due now run) until the host answers.
   */
  hostBusy?: () => boolean;
}

/** Runs `clock` until `done()` is true. Rejects when the machine idles or passes the virtual limit first. */
export async function runUntil(clock: VirtualClock, done: () => boolean, options: RunOptions = {}): Promise<void> {
  const idleTimeout = options.idleTimeoutMs ?? 30_000;
  const deadline = options.virtualLimitNs === undefined ? Infinity : clock.now() + options.virtualLimitNs;
  let idleSince = performance.now();
  for (;;) {
    await turn();
    if (done()) return;
    if (options.hostBusy?.()) {
      clock.advanceTo(clock.now());
      idleSince = performance.now();
      continue;
    }
    const next = clock.nextDeadline();
    if (next !== undefined && next <= deadline) {
      clock.runNext();
      idleSince = performance.now();
      continue;
    }
    if (next !== undefined && next > deadline) throw new Error(`virtual time limit reached at ${clock.now()} ns`);
    if (performance.now() - idleSince > idleTimeout) {
      throw new Error(`machine idle for ${idleTimeout} ms with nothing scheduled and the condition unmet`);
    }
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
}
