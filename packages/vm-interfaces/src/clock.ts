/**
 * Deterministic virtual time, in nanoseconds.
 *
 * No device model, driver or kernel calls `setTimeout` or `Date.now`: time is a service
 * (Effect `Clock`, TanStack `TimeoutProvider`), advanced by whoever runs the machine. Same
 * inputs, same run.
 */

/** Reads virtual time. */
export interface Clock {
  /** Virtual nanoseconds since the machine started. */
  now(): number;
}

/** Opaque handle of a scheduled callback. */
export type TimerId = number;

/** Schedules callbacks in virtual time. */
export interface TimerQueue extends Clock {
  /** Calls `callback` when virtual time reaches `at` (ns). Callbacks due together run in schedule order. */
  schedule(at: number, callback: () => void): TimerId;
  /** Cancels a scheduled callback; cancelling a fired or unknown id does nothing. */
  cancel(id: TimerId): void;
}

interface Entry {
  at: number;
  seq: number;
  id: TimerId;
  callback: () => void;
}

/**
 * A virtual clock with a timer queue (binary heap ordered by time, then schedule order).
 * Time moves only through {@link advanceTo}, {@link advanceBy} or {@link runNext}.
 */
export class VirtualClock implements TimerQueue {
  private time = 0;
  private seq = 0;
  private readonly heap: Entry[] = [];
  private readonly live = new Set<TimerId>();

  now(): number {
    return this.time;
  }

  schedule(at: number, callback: () => void): TimerId {
    const id = ++this.seq;
    this.push({ at: Math.max(at, this.time), seq: id, id, callback });
    this.live.add(id);
    return id;
  }

  /** Schedules `callback` `delay` ns from now. */
  after(delay: number, callback: () => void): TimerId {
    return this.schedule(this.time + delay, callback);
  }

  cancel(id: TimerId): void {
    this.live.delete(id);
  }

  /** Time of the next live timer, or `undefined` when none is scheduled. */
  nextDeadline(): number | undefined {
    this.dropCancelled();
    return this.heap[0]?.at;
  }

  /** Number of live scheduled timers. */
  get pending(): number {
    return this.live.size;
  }

  /** Runs every timer due at or before `t` (including ones they schedule), then sets now to `t`. */
  advanceTo(t: number): void {
    for (;;) {
      this.dropCancelled();
      const top = this.heap[0];
      if (top === undefined || top.at > t) break;
      this.fireTop();
    }
    if (t > this.time) this.time = t;
  }

  advanceBy(ns: number): void {
    this.advanceTo(this.time + ns);
  }

  /** Jumps to the next timer and runs it (and any due at the same time). False when idle. */
  runNext(): boolean {
    const at = this.nextDeadline();
    if (at === undefined) return false;
    this.advanceTo(at);
    return true;
  }

  private fireTop(): void {
    const e = this.pop()!;
    this.live.delete(e.id);
    if (e.at > this.time) this.time = e.at;
    e.callback();
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && !this.live.has(this.heap[0]!.id)) this.pop();
  }

  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
