import type { TimerQueue } from "@paravirt/vm-interfaces";

/**
 * Where the in-memory Xen delivers events and watch firings: never synchronously inside the
 * caller (a sender does not run its peer's handler), but on the microtask queue, or on a
 * {@link TimerQueue} at the current virtual time when one is given (then nothing is delivered
 * until its owner advances it).
 */
export class XenScheduler {
  private readonly timers: TimerQueue | undefined;
  /** Exceptions thrown by delivered callbacks (a handler bug, or a driver that let guest input throw). */
  readonly errors: unknown[] = [];
  /** Callbacks posted but not yet run. */
  queued = 0;
  /** Callbacks run so far. */
  delivered = 0;

  constructor(timers?: TimerQueue) {
    this.timers = timers;
  }

  /** Runs `fn` later, in its own turn; an exception it throws is recorded in {@link errors}. */
  post(fn: () => void): void {
    this.queued++;
    const run = (): void => {
      this.queued--;
      this.delivered++;
      try {
        fn();
      } catch (e) {
        this.errors.push(e);
      }
    };
    if (this.timers) this.timers.schedule(this.timers.now(), run);
    else queueMicrotask(run);
  }
}
