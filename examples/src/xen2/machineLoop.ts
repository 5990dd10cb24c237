/**
 * Running a hypervisor-based machine: the hypervisor's scheduler runs domains' tasks in
 * virtual time, promise continuations and host I/O (the disk image) run on the host's event
 * loop in between. Virtual time never moves while host I/O is in flight, so a device's
 * timeout cannot fire because the host's disk is slow.
 */
import type { Hypervisor } from "@paravirt/hypervisor-core";
import { HostIoTracker } from "@paravirt/pc-board";

/** Virtual time one scheduling slice of the loop may cover. */
const SLICE_NS = 1_000_000;

export interface LoopOptions {
  /** Wall-clock ms with nothing to do before giving up. Default 30 000. */
  idleTimeoutMs?: number;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A host I/O tracker that also says when an operation settles, so that the machine loop sleeps
 * in the host's event loop while the host works (a disk image read on libuv's thread pool)
 * instead of checking at every turn.
 */
export class WakingHostIo extends HostIoTracker {
  /** Operations in flight (this class counts them itself, to wake the loop from the same callback). */
  private pending = 0;
  private waiters: (() => void)[] = [];

  override get inFlight(): number {
    return this.pending;
  }

  override track<T>(p: Promise<T>): Promise<T> {
    this.pending++;
    // The device model's continuation is attached to the promise returned, so it runs after this
    // one; a woken loop takes its next step in a later host turn, after both.
    return p.finally(this.settle);
  }

  /** Resolves when an operation in flight settles (at once when none is). */
  settled(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private readonly settle = (): void => {
    this.pending--;
    const w = this.waiters;
    if (w.length === 0) return;
    this.waiters = [];
    for (const resolve of w) resolve();
  };
}

/** Runs until `done()`; rejects when the machine has nothing left to do first. */
export async function runMachine(hv: Hypervisor, hostIo: HostIoTracker, done: () => boolean, options: LoopOptions = {}): Promise<void> {
  const idleTimeout = options.idleTimeoutMs ?? 30_000;
  // Within a slice too: while host I/O is in flight nothing runs and time stands still.
  const hostBusy = () => hostIo.inFlight > 0;
  const waking = hostIo instanceof WakingHostIo ? hostIo : undefined;
  const hostSettled = waking !== undefined ? () => waking.settled() : undefined;
  let idleSince = performance.now();
  while (!done()) {
    if (hostBusy()) {
      await (waking !== undefined ? waking.settled().then(turn) : turn());
      idleSince = performance.now();
      continue;
    }
    const before = hv.clock.now();
    const r = await hv.runAsync(before + SLICE_NS, hostSettled !== undefined ? { hostBusy, hostSettled } : { hostBusy });
    if (r === "idle" && hostIo.inFlight === 0 && !done()) {
      if (performance.now() - idleSince > idleTimeout) {
        throw new Error(`the machine went idle for ${idleTimeout} ms before finishing (virtual time ${hv.clock.now()} ns)`);
      }
      await new Promise<void>((resolve) => setTimeout(resolve, 1));
    } else {
      idleSince = performance.now();
    }
  }
}

/** Runs the machine until `p` settles; returns its value or throws its error. */
export async function runFor<T>(hv: Hypervisor, hostIo: HostIoTracker, p: Promise<T>, options?: LoopOptions): Promise<T> {
  let settled = false;
  const watched = p.finally(() => {
    settled = true;
  });
  watched.catch(() => {});
  await runMachine(hv, hostIo, () => settled, options);
  return watched;
}
